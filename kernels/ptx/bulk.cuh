// Non-tensor bulk copies, global reductions and the flags between CTAs of the backward kernels.
#pragma once
#include <cstdint>

namespace flash3::ptx {

// Contiguous global -> shared copy completing on an mbarrier (bytes and both addresses 16-byte aligned).
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}

// Adds four consecutive floats into global memory at `base` + Offset bytes (16-byte aligned), in
// L2. The offset is an immediate of the instruction: a series of adds from one base then needs
// one 64-bit address register, not one each (an asm operand must be a register).
template <int Offset>
__device__ __forceinline__ void red_add_f32x4(float* base, float a, float b, float c, float d) {
  asm volatile("red.global.add.v4.f32 [%0+%5], {%1, %2, %3, %4};" ::"l"(base), "f"(a), "f"(b), "f"(c), "f"(d),
               "n"(Offset)
               : "memory");
}

// Orders every write this thread has seen (its own, and those a barrier ordered before) before its
// later writes, at GPU scope: the release half of a flag handed between CTAs, lighter than
// __threadfence()'s sequentially consistent membar.gl.
__device__ __forceinline__ void fence_acq_rel_gpu() { asm volatile("fence.acq_rel.gpu;" ::: "memory"); }

__device__ __forceinline__ void red_relaxed_add(int* addr, int v) {
  asm volatile("red.relaxed.gpu.global.add.s32 [%0], %1;" ::"l"(addr), "r"(v) : "memory");
}

// Adds to a counter and returns its old value, with no ordering: a ticket (the persistent
// backward's work counter).
__device__ __forceinline__ int fetch_add_relaxed(int* addr, int v) {
  int old;
  asm volatile("atom.relaxed.gpu.global.add.s32 %0, [%1], %2;" : "=r"(old) : "l"(addr), "r"(v) : "memory");
  return old;
}

// Adds to a counter after every write this thread has seen: a flag handed between CTAs.
__device__ __forceinline__ void red_release_add(int* addr, int v) {
  fence_acq_rel_gpu();
  red_relaxed_add(addr, v);
}

// Compares and swaps with no ordering: returns the old value (a claim on a queue's head).
__device__ __forceinline__ int compare_swap_relaxed(int* addr, int expected, int desired) {
  int old;
  asm volatile("atom.relaxed.gpu.global.cas.b32 %0, [%1], %2, %3;" : "=r"(old) : "l"(addr), "r"(expected), "r"(desired) : "memory");
  return old;
}

// Plain gpu-scope accesses to a flag or slot, ordered by fences around them.
__device__ __forceinline__ int load_relaxed(const int* addr) {
  int v;
  asm volatile("ld.relaxed.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(addr) : "memory");
  return v;
}
__device__ __forceinline__ void store_relaxed(int* addr, int v) {
  asm volatile("st.relaxed.gpu.global.b32 [%0], %1;" ::"l"(addr), "r"(v) : "memory");
}

__device__ __forceinline__ int load_acquire(const int* addr) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(addr) : "memory");
  return v;
}

}  // namespace flash3::ptx
