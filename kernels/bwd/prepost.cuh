// The backward's pre-pass and post-pass: elementwise kernels around the main one, bound by memory
// bandwidth, so both move 16-byte vectors with several loads in flight per thread.
#pragma once
#include <cmath>
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../fwd/fragments.cuh"
#include "../fwd/mask.cuh"
#include "../ptx/convert.cuh"

namespace flash3 {

struct Strides {
  long long batch, seq, head;  // in elements; the head dim is contiguous
};

// Where dQ tile `index` of the accumulator lies: tiles are (batch x head, query block, 64-column
// panel), panel fastest (the main kernel's dq_tile). The index keeps its caller's type (blockIdx.x
// is unsigned), so that each caller's division stays what it was.
struct DqTile {
  int panel, m_block, batch, head;
};
template <typename Index>
__device__ __forceinline__ DqTile dq_tile_at(Index index, int panels, int m_blocks, int heads) {
  const int panel = index % panels;
  const int m_block = (index / panels) % m_blocks;
  const int bh = index / (panels * m_blocks);
  return {panel, m_block, bh / heads, bh % heads};
}

// Two floats as two 16-bit elements, one 4-byte store.
template <typename T>
__device__ __forceinline__ void store_pair(T* dst, float a, float b) {
  *reinterpret_cast<uint32_t*>(dst) = pack2<T>(a, b);
}

// Eight 16-bit elements: one 16-byte load or store.
template <typename T>
union Vec8 {
  uint4 bits;
  T x[8];
};

// A row is read by HeadDim / 8 lanes, one 16-byte vector of O and one of dO each (the host checks
// that out's and dout's rows are 16-byte aligned), so a warp covers 32 / (HeadDim / 8) rows:
// D = rowsum(dO * O), the lse in log2 units (+inf where the row saw no key, or is padding, so that
// P = exp2(s - lse) = 0 there) and the row's counter: the first `counter_tiles` count the key
// blocks that visit dQ tile `row` (a main kernel that converts dQ counts them down), the rest (the
// deterministic mode's semaphores, a persistent main kernel's work counter) are zeroed. Where the
// main kernel converts dQ (ConvertsDq) its accumulator stays zeroed between calls, and the rows
// that no key block visits get their zero dQ here; otherwise the row's share (HeadDim floats) of
// the accumulator is zeroed. The host launches ceil(rows / kPrepareRowsPerCta<HeadDim>) CTAs of
// kPrepareThreads, both read from the cubin.
constexpr int kPrepareThreads = 256;
template <int HeadDim>
constexpr int kPrepareRowsPerCta = kPrepareThreads / 32 * (32 / (HeadDim / 8));

struct MaskShape {
  int seqlen_q, seqlen_k, window_left, window_right;
};

template <int BlockM, int BlockN>
__device__ int visiting_key_blocks(int m_block, const MaskShape& s) {
  const BlockRange keys = key_block_range<BlockM, BlockN>(m_block, s.seqlen_q, s.seqlen_k, s.window_left, s.window_right);
  return max(0, keys.n_max - keys.n_min);
}

template <typename T, int HeadDim, int BlockN, bool ConvertsDq>
__device__ void prepare_rows(const T* out, Strides so, const T* dout, Strides sdo, const float* lse, Strides slse,
                             float* lse_log2, float* dpsum, float* dq_accum, T* dq, int* counters, int counter_tiles,
                             int counter_count, int heads, MaskShape mask, int padded, int rows) {
  const int seqlen_q = mask.seqlen_q;
  constexpr int kLanesPerRow = HeadDim / 8;
  constexpr int kRowsPerWarp = 32 / kLanesPerRow;
  const int lane = threadIdx.x % 32;
  const int row = (blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32) * kRowsPerWarp + lane / kLanesPerRow;
  const int part = lane % kLanesPerRow;
  const bool live = row < rows;
  const int i = row % padded;
  const int bh = row / padded;
  const int b = bh / heads;
  const int h = bh % heads;
  float d = 0.f;
  if (live && i < seqlen_q) {
    Vec8<T> o, g;
    o.bits = __ldg(reinterpret_cast<const uint4*>(out + b * so.batch + i * so.seq + h * so.head) + part);
    g.bits = __ldg(reinterpret_cast<const uint4*>(dout + b * sdo.batch + i * sdo.seq + h * sdo.head) + part);
#pragma unroll
    for (int e = 0; e < 8; ++e) d += ptx::to_float(o.x[e]) * ptx::to_float(g.x[e]);
  }
  // Every lane shuffles (rows past the end hold 0): the groups of a row are aligned lane ranges.
#pragma unroll
  for (int off = kLanesPerRow / 2; off > 0; off /= 2) d += __shfl_xor_sync(0xffffffff, d, off);
  if (!live) return;
  if constexpr (ConvertsDq) {
    if (i < seqlen_q && visiting_key_blocks<64, BlockN>(i / 64, mask) == 0)
      reinterpret_cast<uint4*>(dq + ((size_t(b) * seqlen_q + i) * heads + h) * HeadDim)[part] = uint4{0, 0, 0, 0};
  } else {
    float4* acc = reinterpret_cast<float4*>(dq_accum + size_t(row) * HeadDim);
    acc[part] = make_float4(0.f, 0.f, 0.f, 0.f);
    acc[part + kLanesPerRow] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  if (part == 0) {
    float l = INFINITY;
    if (i < seqlen_q) {
      const float x = lse[b * slse.batch + h * slse.head + i * slse.seq];
      l = x == -INFINITY ? INFINITY : x * 1.4426950408889634f;
    }
    dpsum[row] = d;
    lse_log2[row] = l;
    if (row < counter_count) {
      counters[row] =
          row < counter_tiles ? visiting_key_blocks<64, BlockN>(dq_tile_at(row, HeadDim / 64, padded / 64, heads).m_block, mask) : 0;
    }
  }
}

// dQ = softmax_scale * accumulator, to the contiguous (batch, seqlen_q, heads, d) output, one
// 64 x 64 tile per CTA of 128 threads. The accumulator holds such tiles per (batch, head, query
// block, column panel) in the main kernel's register order: thread t's float4 number g is rows
// R and R + 8, columns 8g + 2(t % 4) and the next, with R = 16(t / 32) + (t % 32) / 4. Reading it
// in that order is coalesced; the tile then goes through shared memory so that 8 threads write
// each 128-byte output row.
constexpr int kConvertThreads = 128;

template <typename T>
__device__ void convert_dq(const float* dq_accum, T* dq, float scale, int heads, int seqlen_q, int padded,
                           int headdim) {
  constexpr int kPitch = 64 + 8;  // elements; a warp's 4-byte stores then hit 32 distinct banks
  __shared__ __align__(16) T tile[64 * kPitch];
  const int panels = headdim / 64;
  const int m_blocks = padded / 64;
  const int t = threadIdx.x;
  const float4* src = reinterpret_cast<const float4*>(dq_accum) + size_t(blockIdx.x) * 1024;
  float4 f[8];
#pragma unroll
  for (int g = 0; g < 8; ++g) f[g] = src[128 * g + t];
  const int r0 = 16 * (t / 32) + (t % 32) / 4;
#pragma unroll
  for (int g = 0; g < 8; ++g) {
    const int col = 8 * g + 2 * (t % 4);
    store_pair(tile + r0 * kPitch + col, f[g].x * scale, f[g].y * scale);
    store_pair(tile + (r0 + 8) * kPitch + col, f[g].z * scale, f[g].w * scale);
  }
  __syncthreads();
  const DqTile at = dq_tile_at(blockIdx.x, panels, m_blocks, heads);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int chunk = t + kConvertThreads * j;  // 8 chunks of 8 elements per row
    const int row = chunk / 8;
    const int i = at.m_block * 64 + row;
    if (i < seqlen_q) {
      T* dst = dq + ((size_t(at.batch) * seqlen_q + i) * heads + at.head) * headdim + at.panel * 64 + (chunk % 8) * 8;
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(tile + row * kPitch + (chunk % 8) * 8);
    }
  }
}

}  // namespace flash3
