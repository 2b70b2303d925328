// Output epilogue: normalised O goes to shared memory in the 128-byte-swizzled layout the O
// tensor map expects, then one TMA store per 64-column panel writes it (rows past seqlen_q are
// clipped by the TMA unit, so tails need no masking here).
#pragma once
#include <cstdint>

#include "../ptx/tma.cuh"
#include "fragments.cuh"

namespace flash3 {

// `panel_bytes`: bytes between 64-column panels of the staging tile (rows * 128).
template <typename T, int HeadDim>
__device__ __forceinline__ void stage_output(const float (&o)[HeadDim / 2], const float (&inv_sum)[2], uint8_t* tile,
                                             int panel_bytes, int warp, int lane) {
  const int quad_row = lane / 4;
  const int quad_col = lane % 4;
#pragma unroll
  for (int i = 0; i < HeadDim / 8; ++i) {
    const int panel = i / 8;
    const int chunk = i % 8;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = 16 * warp + quad_row + 8 * r;
      const int offset = panel * panel_bytes + row * 128 + ((chunk ^ (row & 7)) << 4) + quad_col * 4;
      *reinterpret_cast<uint32_t*>(tile + offset) =
          pack2<T>(o[4 * i + 2 * r] * inv_sum[r], o[4 * i + 2 * r + 1] * inv_sum[r]);
    }
  }
}

}  // namespace flash3
