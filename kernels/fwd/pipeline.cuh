// Position in a ring of shared-memory stages: which slot, and the parity of the slot's
// mbarrier phase for the current lap. Producer and consumers advance identical copies.
#pragma once
#include <cstdint>

namespace flash3 {

template <int Stages>
struct PipelineState {
  int index = 0;
  uint32_t phase = 0;

  __device__ __forceinline__ void advance() {
    if (++index == Stages) {
      index = 0;
      phase ^= 1;
    }
  }
};

}  // namespace flash3
