// Shared-memory loads and stores by 32-bit shared address. The kernels align their dynamic shared
// memory through an integer cast, after which the compiler no longer knows a pointer into it is
// shared and emits generic LD.E/ST.E (through the L1TEX path, long-scoreboard waits); these keep
// LDS/STS.
#pragma once
#include <cstdint>

namespace flash3::ptx {

__device__ __forceinline__ float2 ld_shared_f32x2(uint32_t addr) {
  float2 v;
  asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr) : "memory");
  return v;
}

__device__ __forceinline__ void st_shared_f32x4(uint32_t addr, float a, float b, float c, float d) {
  asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};" ::"r"(addr), "f"(a), "f"(b), "f"(c), "f"(d) : "memory");
}

}  // namespace flash3::ptx
