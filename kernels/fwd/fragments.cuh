// Register fragments of a 64 x N wgmma accumulator held by one warpgroup. Thread `lane` of warp
// `w` holds rows 16w + lane/4 and 16w + lane/4 + 8; element 4i + 2r + c sits at row r, column
// 8i + 2(lane%4) + c. The same pairs, packed to 16 bits, are exactly the A-operand fragment of
// the next wgmma (k-slice kk uses packed registers 4kk..4kk+3), so P never leaves registers.
#pragma once
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace flash3 {

template <typename T>
__device__ __forceinline__ uint32_t pack2(float a, float b);

template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float a, float b) {
  __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&v);
}

template <>
__device__ __forceinline__ uint32_t pack2<__half>(float a, float b) {
  __half2 v = __floats2half2_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&v);
}

template <typename T, int NAcc>
__device__ __forceinline__ void pack_fragments(const float (&acc)[NAcc], uint32_t (&out)[NAcc / 2]) {
#pragma unroll
  for (int j = 0; j < NAcc / 2; ++j) out[j] = pack2<T>(acc[2 * j], acc[2 * j + 1]);
}

template <int N>
__device__ __forceinline__ const uint32_t (&a_slice(const uint32_t (&p)[N], int kk))[4] {
  return *reinterpret_cast<const uint32_t(*)[4]>(&p[4 * kk]);
}

template <int NAcc>
__device__ __forceinline__ void scale_rows(float (&acc)[NAcc], const float (&factor)[2]) {
#pragma unroll
  for (int i = 0; i < NAcc / 4; ++i) {
    acc[4 * i + 0] *= factor[0];
    acc[4 * i + 1] *= factor[0];
    acc[4 * i + 2] *= factor[1];
    acc[4 * i + 3] *= factor[1];
  }
}

}  // namespace flash3
