// Warpgroup MMA ordering and shared-memory matrix descriptors. The MMA instructions themselves
// are generated (generated/wgmma_ops.cuh).
#pragma once
#include <cstdint>

#include "../generated/wgmma_ops.cuh"

namespace flash3::ptx {

// Must precede the first wgmma of a batch whose registers (accumulators, A) were written by other instructions.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }

__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }

// Waits until at most N committed wgmma groups of this warpgroup are still in flight.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// Accumulators are written asynchronously: this empty asm pins every use of them after the
// preceding wait (and every write before the next MMA), which the compiler cannot see otherwise.
template <int N>
__device__ __forceinline__ void fence_registers(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// Bytes per unit of a descriptor's address fields.
inline constexpr uint32_t kDescUnits = 16;

// Descriptors take shared-memory addresses in those units (the start-address field's), which
// the kernels' Smem helpers give as a base plus compile-time offsets: stepping to the next k-slice,
// panel or ring stage is then one add per wgmma. (Encoding each byte address anew cost a chain of
// four dependent integer ops before every wgmma.) Shared memory ends below 2^18 bytes, so the
// 14-bit field never carries into the leading offset above it.

// A swizzled K-major tile as TMA writes it (Q, K, and V^T for FP8): rows of RowBytes (128 or 64,
// swizzled alike), 8-row atoms; the leading offset is unused, the stride offset steps between atoms.
template <int RowBytes>
__device__ __forceinline__ uint64_t smem_desc_kmajor(uint32_t addr16) {
  static_assert(RowBytes == 128 || RowBytes == 64, "swizzle span");
  constexpr uint32_t layout = RowBytes == 128 ? 1 : 2;
  constexpr uint32_t hi = (8 * RowBytes >> 4) | (layout << 30);
  return (uint64_t(hi) << 32) | (addr16 + (1u << 16));
}

// MN-major (V read as B of P V): the leading offset steps between 64-column panels of the
// tile, the stride offset between 8-key atoms.
template <uint32_t PanelBytes>
__device__ __forceinline__ uint64_t smem_desc_mnmajor_sw128(uint32_t addr16) {
  static_assert(PanelBytes % 16 == 0 && PanelBytes >> 4 < (1u << 14), "leading offset");
  constexpr uint32_t hi = (1024 >> 4) | (1u << 30);
  return (uint64_t(hi) << 32) | (addr16 + ((PanelBytes >> 4) << 16));
}

}  // namespace flash3::ptx
