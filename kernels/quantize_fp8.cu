// FP8 quantization for the FP8 forward (FlashAttention-3's block quantization and incoherent
// processing): optionally rotate each row by the random-sign Hadamard transform, then scale
// each block of rows (one (batch, head) slice, `block_rows` sequence positions) so its amax maps
// to e4m3's 448, and round with saturation. One CTA per (block, head, batch), one warp per row at
// a time; a row's dim/32 consecutive columns live in one lane, so the transform's short strides
// stay in registers and the long ones are warp shuffles.
//
// Per-tensor scaling runs three launches: AMAX_ONLY writes each block's amax, flash3_fp8_descale_all
// turns their maximum into one descale for every block, and USE_DESCALE quantizes with it.
// V for the FP8 forward is written transposed (V^T, keys contiguous, see fwd/element.cuh), with
// every 32-key chunk in the order P's registers use, through shared memory so stores coalesce.
#include <cstddef>
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fwd/element.cuh"
#include "ptx/convert.cuh"

namespace flash3 {

// kCopy re-lays out e4m3 data as it is (scale 1, descale untouched): V given already quantized
// becomes V^T for the forward.
enum QuantizeMode : int { kBlockScale = 0, kAmaxOnly = 1, kUseDescale = 2, kCopy = 3 };

struct QuantizeParams {
  const void* x;  // (batch, seqlen, heads, dim) 16-bit (e4m3 for kCopy), dim contiguous
  long long stride_b, stride_s, stride_h;  // in elements
  uint8_t* out;   // rows: (batch, seqlen, heads, dim) contiguous; transposed: (batch, heads, dim, seqlen_pad)
  float* descale;  // (batch, heads, blocks); AMAX_ONLY writes amax here
  int seqlen, heads, dim, block_rows, blocks, seqlen_pad;
  int mode;        // QuantizeMode
  int transposed;  // write V^T (block_rows a multiple of 32, at most kMaxTransposeRows)
  int hadamard;
  int terms;  // 2: rows hold [Q1 | Q2], Q2 = e4m3(x / scale - Q1), sharing the descale (accuracy mode)
  int pow2_scales;  // block scales rounded up to powers of two (for V: see fwd/kernel.cuh, Descales)
  uint32_t signs[8];  // bit c set: column c is negated before the transform
};

static_assert(offsetof(QuantizeParams, signs) == 92 && sizeof(QuantizeParams) == 128, "host layout (src/cuda/quantize.ts)");

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxTransposeRows = 128;
constexpr int kMaxDim = 256;
constexpr float kE4m3Max = 448.f;

// Row `row` of the block, as this lane's E = dim/32 columns (lane*E ..), rotated when asked.
template <typename T, int E>
__device__ __forceinline__ void load_row(const QuantizeParams& p, int batch, int head, int row, int lane, float (&v)[E]) {
  const T* src = static_cast<const T*>(p.x) + batch * p.stride_b + row * p.stride_s + head * p.stride_h + lane * E;
#pragma unroll
  for (int e = 0; e < E; ++e) v[e] = ptx::to_float(src[e]);
  if (!p.hadamard) return;
#pragma unroll
  for (int e = 0; e < E; ++e) {
    const int c = lane * E + e;
    if ((p.signs[c / 32] >> (c % 32)) & 1) v[e] = -v[e];
  }
  // Sylvester-ordered fast Walsh-Hadamard transform: pairs (j, j + h) become (a + b, a - b).
#pragma unroll
  for (int h = 1; h < E; h *= 2)
#pragma unroll
    for (int e = 0; e < E; ++e)
      if ((e & h) == 0) {
        const float a = v[e], b = v[e + h];
        v[e] = a + b;
        v[e + h] = a - b;
      }
  for (int lanes = 1; lanes < 32; lanes *= 2) {
    const bool upper = lane & lanes;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const float other = __shfl_xor_sync(0xffffffff, v[e], lanes);
      v[e] = upper ? other - v[e] : v[e] + other;
    }
  }
  const float norm = rsqrtf(float(p.dim));
#pragma unroll
  for (int e = 0; e < E; ++e) v[e] *= norm;
}

__device__ __forceinline__ float block_max(float x, float* scratch) {
  for (int o = 16; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, o));
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) scratch[warp] = x;
  __syncthreads();
  float m = 0.f;
  for (int w = 0; w < kWarps; ++w) m = fmaxf(m, scratch[w]);
  return m;
}

// Two e4m3 (low byte first) back to floats, exactly.
__device__ __forceinline__ float2 e4m3x2_to_float2(uint16_t bits) {
  uint32_t halves;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(halves) : "h"(bits));
  return __half22float2(*reinterpret_cast<__half2*>(&halves));
}

// Slot of key k (0..31) within its chunk of V^T: the inverse of key_of_fp8_slot.
__device__ __forceinline__ int fp8_slot_of_key(int k) {
  return 16 * (k >> 4) + 4 * ((k >> 1) & 3) + 2 * ((k >> 3) & 1) + (k & 1);
}

// The smallest power of two s with amax <= 448 s, no smaller than the least normal float (as
// src/cpu/fp8.ts). 448 = 1.75 * 2^8, so with amax = m * 2^e (m in [0.5, 1)) s is 2^(e-9) when
// m <= 0.875 and 2^(e-8) otherwise: exact, with no division to round.
__device__ __forceinline__ float pow2_scale_for(float amax) {
  int e;
  const float m = frexpf(amax, &e);
  return ldexpf(1.f, max(m <= 0.875f ? e - 9 : e - 8, -126));
}

// `tile`: kMaxDim x kMaxTransposeRows bytes staging V^T; `scratch`: one float per warp.
template <typename T, int E>
__device__ void quantize(const QuantizeParams& p, uint8_t* tile, float* scratch) {
  const int blk = blockIdx.x, head = blockIdx.y, batch = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = blk * p.block_rows;
  const int rows = min(p.block_rows, p.seqlen - row0);
  float* descale = p.descale + (size_t(batch) * p.heads + head) * p.blocks + blk;

  float scale;
  if (p.mode == kCopy) {
    scale = 1.f;
  } else if (p.mode == kUseDescale) {
    scale = *descale;
  } else {
    float amax = 0.f;
    for (int r = warp; r < rows; r += kWarps) {
      float v[E];
      load_row<T, E>(p, batch, head, row0 + r, lane, v);
#pragma unroll
      for (int e = 0; e < E; ++e) amax = fmaxf(amax, fabsf(v[e]));
    }
    amax = block_max(amax, scratch);
    if (p.mode == kAmaxOnly) {
      if (threadIdx.x == 0) *descale = amax;
      return;
    }
    // An all-zero block quantizes exactly with any scale; 1 avoids 0/0 (as src/cpu/fp8.ts).
    scale = amax > 0.f ? (p.pow2_scales ? pow2_scale_for(amax) : amax / kE4m3Max) : 1.f;
    if (threadIdx.x == 0) *descale = scale;
  }

  if (p.transposed) {
    // Keys past seqlen in the last chunk must read as 0, not garbage: P is 0 there, and 0 * NaN is not.
    for (int i = threadIdx.x; i < p.dim * p.block_rows / 4; i += kThreads) reinterpret_cast<uint32_t*>(tile)[i] = 0;
    __syncthreads();
  }
  for (int r = warp; r < rows; r += kWarps) {
    float v[E];
    load_row<T, E>(p, batch, head, row0 + r, lane, v);
#pragma unroll
    for (int e = 0; e < E; ++e) v[e] = __fdiv_rn(v[e], scale);
    if (p.transposed) {
      const int slot = (r & ~31) + fp8_slot_of_key(r & 31);
#pragma unroll
      for (int e = 0; e < E; ++e)
        tile[(lane * E + e) * p.block_rows + slot] = uint8_t(pack_e4m3x4(v[e], 0.f, 0.f, 0.f) & 0xff);
    } else {
      uint8_t* dst = p.out + ((size_t(batch) * p.seqlen + row0 + r) * p.heads + head) * p.dim * p.terms + lane * E;
#pragma unroll
      for (int e = 0; e < E; e += 2) {
        const uint16_t packed = uint16_t(pack_e4m3x4(v[e], v[e + 1], 0.f, 0.f));
        *reinterpret_cast<uint16_t*>(dst + e) = packed;
        if (p.terms == 2) {
          const float2 first = e4m3x2_to_float2(packed);
          *reinterpret_cast<uint16_t*>(dst + p.dim + e) = uint16_t(pack_e4m3x4(v[e] - first.x, v[e + 1] - first.y, 0.f, 0.f));
        }
      }
    }
  }
  if (!p.transposed) return;
  __syncthreads();
  // Slots up to the padded length: whole 32-key chunks, the pad zeroed above.
  const int slots = min(p.block_rows, p.seqlen_pad - row0);
  const int words = slots / 4;
  uint8_t* dst = p.out + (size_t(batch) * p.heads + head) * p.dim * size_t(p.seqlen_pad) + row0;
  for (int i = threadIdx.x; i < p.dim * words; i += kThreads) {
    const int d = i / words, w = i % words;
    *reinterpret_cast<uint32_t*>(dst + size_t(d) * p.seqlen_pad + 4 * w) =
        reinterpret_cast<const uint32_t*>(tile + d * p.block_rows)[w];
  }
}

template <typename T>
__device__ void quantize_any_dim(const QuantizeParams& p) {
  __shared__ float scratch[kWarps];
  __shared__ __align__(16) uint8_t tile[kMaxDim * kMaxTransposeRows];
  switch (p.dim) {
    case 64: return quantize<T, 2>(p, tile, scratch);
    case 128: return quantize<T, 4>(p, tile, scratch);
    case 256: return quantize<T, 8>(p, tile, scratch);
  }
}

}  // namespace flash3

extern "C" {
__global__ void __launch_bounds__(flash3::kThreads) flash3_fp8_quantize_bf16(const __grid_constant__ flash3::QuantizeParams p) {
  flash3::quantize_any_dim<__nv_bfloat16>(p);
}
__global__ void __launch_bounds__(flash3::kThreads) flash3_fp8_quantize_fp16(const __grid_constant__ flash3::QuantizeParams p) {
  flash3::quantize_any_dim<__half>(p);
}

__global__ void __launch_bounds__(flash3::kThreads) flash3_fp8_transpose_e4m3(const __grid_constant__ flash3::QuantizeParams p) {
  flash3::quantize_any_dim<__nv_fp8_e4m3>(p);
}

// Per-tensor scaling: every block's amax (from AMAX_ONLY) becomes the tensor's one descale.
__global__ void __launch_bounds__(flash3::kThreads) flash3_fp8_descale_all(float* descale, int n) {
  __shared__ float scratch[flash3::kWarps];
  float amax = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) amax = fmaxf(amax, descale[i]);
  amax = flash3::block_max(amax, scratch);
  const float scale = amax > 0.f ? amax / flash3::kE4m3Max : 1.f;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) descale[i] = scale;
}
}
