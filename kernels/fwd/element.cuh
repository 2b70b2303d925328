// What the forward kernel does differently per input precision: operand bytes, the swizzle of
// a shared-memory row, how P becomes the A operand of O += P V, and how V is read.
//
// 16-bit inputs: V is read as stored (key-major) through the descriptor's transpose bit, and P's
// accumulator pairs are exactly the A fragment.
// e4m3 inputs: 8-bit wgmma has no transpose bit, so V arrives as V^T (head-dim rows, keys
// contiguous), written by the quantization pre-pass (kernels/quantize_fp8.cu). An 8-bit A
// fragment holds four consecutive k per register, while the f32 accumulator gives a thread the
// column pairs {2q, 2q+1} and {8+2q, 9+2q} of each 16 columns (q = lane % 4). Rather than shuffle
// P between threads, the pre-pass stores the keys of every 32-key chunk of V^T in the order P's
// registers already have (key_of_fp8_slot), which a sum over keys does not notice.
#pragma once
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "../ptx/wgmma.cuh"
#include "fragments.cuh"

namespace flash3 {

// `Softcap`: scores soft-capped before the softmax (softcap.cuh). A build of its own, because the
// cap's code in the loop, even behind a branch not taken, costs the uncapped kernel 1-3%.
template <typename T, bool Softcap = false>
struct HalfInputs {
  using In = T;
  using Out = T;
  static constexpr int kBytes = 2;
  static constexpr bool kFp8 = false;
  static constexpr int kQTerms = 1;
  static constexpr bool kSoftcap = Softcap;
};

// QTerms = 2 is the accuracy mode: Q arrives as [Q1 | Q2] (2 x head dim columns, one descale),
// Q ~ (Q1 + Q2) * descale, and S = Q1 K^T + Q2 K^T accumulates in one wgmma chain.
template <typename OutT, int QTerms = 1>
struct Fp8Inputs {
  using In = __nv_fp8_e4m3;
  using Out = OutT;
  static constexpr int kBytes = 1;
  static constexpr bool kFp8 = true;
  static constexpr int kQTerms = QTerms;
  static constexpr bool kSoftcap = false;
};

// Slot c of a 32-key chunk of V^T holds key key_of_fp8_slot(c) of that chunk (quantize_fp8.cu writes
// the inverse, fp8_slot_of_key).
__host__ __device__ constexpr int key_of_fp8_slot(int c) {
  return 16 * (c >> 4) + 8 * ((c & 3) >> 1) + 2 * ((c & 15) >> 2) + (c & 1);
}

// Four e4m3 from four floats, `a` in the lowest byte.
__device__ __forceinline__ uint32_t pack_e4m3x4(float a, float b, float c, float d) {
  uint16_t lo, hi;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(lo) : "f"(b), "f"(a));
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(hi) : "f"(d), "f"(c));
  return uint32_t(lo) | (uint32_t(hi) << 16);
}

// P (accumulator layout, see fragments.cuh) to e4m3 A fragments in this thread's own order:
// per 32 keys, register 0/2 hold row r = 0 of columns groups (0,1)/(2,3), registers 1/3 row r = 1.
template <int NAcc>
__device__ __forceinline__ void pack_fragments_fp8(const float (&s)[NAcc], uint32_t (&out)[NAcc / 4]) {
#pragma unroll
  for (int kk = 0; kk < NAcc / 16; ++kk) {
    const float* g = &s[16 * kk];  // four 8-column groups of 4 values each
#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
      for (int r = 0; r < 2; ++r)
        out[4 * kk + 2 * half + r] = pack_e4m3x4(g[8 * half + 2 * r], g[8 * half + 2 * r + 1], g[8 * half + 4 + 2 * r],
                                                 g[8 * half + 4 + 2 * r + 1]);
  }
}

template <typename Inputs, int NAcc, int NOut>
__device__ __forceinline__ void pack_p(const float (&s)[NAcc], uint32_t (&out)[NOut]) {
  static_assert(NOut == NAcc * Inputs::kBytes / 4, "P fragment size");
  if constexpr (Inputs::kFp8)
    pack_fragments_fp8(s, out);
  else
    pack_fragments<typename Inputs::In>(s, out);
}

}  // namespace flash3
