// The backward's pre-pass and post-pass: elementwise kernels around the main one.
#pragma once
#include <cmath>
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../ptx/convert.cuh"

namespace flash3 {

struct Strides {
  long long batch, seq, head;  // in elements; the head dim is contiguous
};

// One warp per padded query row (batch, head, row < seqlen_q_padded): D = rowsum(dO * O), the
// lse in log2 units (+inf where the row saw no key, or is padding, so that P = exp2(s - lse) = 0
// there), and a row's worth (headdim floats) of the dQ accumulator and of the deterministic-mode
// semaphores zeroed.
template <typename T>
__device__ void prepare_rows(const T* out, Strides so, const T* dout, Strides sdo, const float* lse, Strides slse,
                             float* lse_log2, float* dpsum, float* dq_accum, int* semaphores, int semaphore_count,
                             int heads, int seqlen_q, int padded, int headdim, int rows) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int i = row % padded;
  const int bh = row / padded;
  const int b = bh / heads;
  const int h = bh % heads;
  float d = 0.f;
  float l = INFINITY;
  if (i < seqlen_q) {
    const T* o = out + b * so.batch + i * so.seq + h * so.head;
    const T* g = dout + b * sdo.batch + i * sdo.seq + h * sdo.head;
    for (int c = lane; c < headdim; c += 32) d += ptx::to_float(o[c]) * ptx::to_float(g[c]);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) d += __shfl_xor_sync(0xffffffff, d, off);
    const float x = lse[b * slse.batch + h * slse.head + i * slse.seq];
    l = x == -INFINITY ? INFINITY : x * 1.4426950408889634f;
  }
  float* acc = dq_accum + size_t(row) * headdim;
  for (int c = lane; c < headdim; c += 32) acc[c] = 0.f;
  if (lane == 0) {
    dpsum[row] = d;
    lse_log2[row] = l;
    if (row < semaphore_count) semaphores[row] = 0;
  }
}

// dQ = softmax_scale * accumulator, to the contiguous (batch, seqlen_q, heads, d) output, two
// elements per thread. The accumulator holds 64 x 64 tiles per (batch, head, query block, column
// panel) in the main kernel's register order: float 4 * (128 * (col / 8) + thread) + 2 * r + col % 2
// with thread = 32 * (row / 16) + 4 * (row % 8) + (col % 8) / 2 and r = (row % 16) / 8.
template <typename T>
__device__ void convert_dq(const float* dq_accum, T* dq, float scale, int heads, int seqlen_q, int padded, int headdim,
                           long long pairs) {
  const int panels = headdim / 64;
  const int m_blocks = padded / 64;
  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < pairs; e += (long long)gridDim.x * blockDim.x) {
    const long long x = 2 * e;
    const int c = int(x % headdim);
    const long long r = x / headdim;  // (b, i, h) row of the output
    const int h = int(r % heads);
    const int i = int((r / heads) % seqlen_q);
    const int b = int(r / (heads * (long long)seqlen_q));
    const size_t tile = ((size_t(b) * heads + h) * m_blocks + i / 64) * panels + c / 64;
    const int row = i % 64;
    const int col = c % 64;
    const int thread = 32 * (row / 16) + 4 * (row % 8) + (col % 8) / 2;
    const float2 v = *reinterpret_cast<const float2*>(dq_accum + tile * 4096 + 4 * (128 * (col / 8) + thread) +
                                                      2 * ((row % 16) / 8));
    dq[x] = ptx::from_float<T>(v.x * scale);
    dq[x + 1] = ptx::from_float<T>(v.y * scale);
  }
}

}  // namespace flash3
