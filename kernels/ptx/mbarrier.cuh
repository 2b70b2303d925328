// mbarrier: the completion mechanism shared by TMA loads (transaction bytes) and by
// consumer warps handing a shared-memory stage back to the producer (arrivals).
#pragma once
#include <cstdint>

namespace flash3::ptx {

__device__ __forceinline__ void mbarrier_init(uint32_t bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(arrivals) : "memory");
}

// Makes initialised barriers visible to the async proxy (TMA) before first use.
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// One arrival that also announces how many bytes TMA will deliver to this phase.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbarrier_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

// Spins until the phase with the given parity has completed. (A suspend-time hint on the
// producers' waits, which otherwise re-issue try_wait ~180 times per key block, measured -2% to +1%
// on an H100: the issue slots it frees were not what the consumers lacked.)
__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// The same for a warp that waits long and has nothing else to do (the backward's dQ keeper waits
// a whole item, its turn releaser a turn): a suspend-time hint lets the thread sleep until the phase completes (or 10 ms
// pass) rather than re-issue try_wait, whose issue slots the consumer warps on its SM sub-partition need.
__device__ __forceinline__ void mbarrier_wait_sleeping(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1, %2;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(bar),
      "r"(parity), "r"(10000000u)
      : "memory");
}

// Whether the phase with the given parity has completed, without waiting.
__device__ __forceinline__ bool mbarrier_test(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

}  // namespace flash3::ptx
