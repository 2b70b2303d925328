// Warpgroup-level coordination: register reallocation between roles and named barriers.
#pragma once
#include <cstdint>

namespace flash3::ptx {

// Producer warpgroups give registers back so consumer warpgroups can hold larger tiles.
template <int Regs>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(Regs));
}

template <int Regs>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(Regs));
}

// Hardware barriers 1..15 (0 is __syncthreads) synchronising a subset of the CTA's threads.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// Warp specialisation: after the CTA-wide setup, warpgroup 0 gives registers back and each of its
// four warps runs `produce(warp)` with all its lanes, which elect one where a single thread must act
// (elect_one); the other warpgroups take the registers and run `consume(index from 0)`. ptxas fits
// whole-warp roles in the producer's few registers where single-thread roles of two warps spilled
// (the backward's turn keepers beside its loader: 36 B, whatever the keeper did).
template <int ProducerRegs, int ConsumerRegs, typename Produce, typename Consume>
__device__ __forceinline__ void split_roles_by_warp(Produce&& produce, Consume&& consume) {
  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    setmaxnreg_dec<ProducerRegs>();
    produce(int(threadIdx.x / 32));
  } else {
    setmaxnreg_inc<ConsumerRegs>();
    consume(warpgroup - 1);
  }
}

// The same split with a single producer thread, warpgroup 0's first, running `produce()`.
template <int ProducerRegs, int ConsumerRegs, typename Produce, typename Consume>
__device__ __forceinline__ void split_roles(Produce&& produce, Consume&& consume) {
  split_roles_by_warp<ProducerRegs, ConsumerRegs>(
      [&](int) {
        if (threadIdx.x == 0) produce();
      },
      consume);
}

// True in one lane of the (converged) warp.
__device__ __forceinline__ bool elect_one() {
  uint32_t leader;
  asm volatile(
      "{\n"
      ".reg .pred P;\n"
      "elect.sync _|P, 0xffffffff;\n"
      "selp.u32 %0, 1, 0, P;\n"
      "}\n"
      : "=r"(leader));
  return leader != 0;
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Hides a value from the optimiser, so that what is computed from it is not hoisted out of a loop
// (where it would hold registers for the whole loop: shared-memory descriptors, for instance).
__device__ __forceinline__ void opaque(uint32_t& x) { asm volatile("" : "+r"(x)); }

}  // namespace flash3::ptx
