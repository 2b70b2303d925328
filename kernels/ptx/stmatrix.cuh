// Warp-wide stores of 8x8 16-bit matrices from the registers of an MMA fragment.
#pragma once
#include <cstdint>

namespace flash3::ptx {

// Four 8x8 b16 matrices: register j of thread t holds row t/4, columns 2(t%4) and 2(t%4)+1 of
// matrix j (an accumulator fragment's own layout); thread 8j + r gives the address of row r of
// matrix j. One instruction replaces 16 32-bit shared stores per thread.
__device__ __forceinline__ void stmatrix_x4(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(addr), "r"(r0), "r"(r1),
               "r"(r2), "r"(r3)
               : "memory");
}

}  // namespace flash3::ptx
