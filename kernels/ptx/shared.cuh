// Shared-memory loads and stores by 32-bit shared address. The kernels align their dynamic shared
// memory through an integer cast, after which the compiler no longer knows a pointer into it is
// shared and emits generic LD.E (through the L1TEX path, long-scoreboard waits); these keep LDS.
#pragma once
#include <cstdint>

namespace flash3::ptx {

__device__ __forceinline__ float2 ld_shared_f32x2(uint32_t addr) {
  float2 v;
  asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr) : "memory");
  return v;
}

__device__ __forceinline__ int2 ld_shared_s32x2(uint32_t addr) {
  int2 v;
  asm volatile("ld.shared.v2.s32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "r"(addr) : "memory");
  return v;
}

__device__ __forceinline__ int ld_shared_s32(uint32_t addr) {
  int v;
  asm volatile("ld.shared.s32 %0, [%1];" : "=r"(v) : "r"(addr) : "memory");
  return v;
}

__device__ __forceinline__ void st_shared_s32(uint32_t addr, int x) {
  asm volatile("st.shared.s32 [%0], %1;" ::"r"(addr), "r"(x) : "memory");
}

__device__ __forceinline__ void st_shared_s32x2(uint32_t addr, int x, int y) {
  asm volatile("st.shared.v2.s32 [%0], {%1, %2};" ::"r"(addr), "r"(x), "r"(y) : "memory");
}

}  // namespace flash3::ptx
