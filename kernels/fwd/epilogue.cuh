// Output epilogue: normalised O goes to shared memory (stmatrix) in the 128-byte-swizzled layout
// the O tensor map expects, then one TMA store per 64-column panel writes it (rows past seqlen_q
// are clipped by the TMA unit, so tails need no masking here).
#pragma once
#include <cstdint>

#include "../ptx/stmatrix.cuh"
#include "../ptx/tma.cuh"
#include "../ptx/warpgroup.cuh"
#include "fragments.cuh"

namespace flash3 {

// Shared address of row `row`'s 16-byte chunk of 8-column group `group` in a 128-byte-swizzled
// tile at `base` whose 64-column panels are `panel_bytes` apart: the layout TMA and wgmma use.
__device__ __forceinline__ uint32_t swizzled_chunk(uint32_t base, int row, int group, int panel_bytes) {
  return base + (group / 8) * panel_bytes + row * 128 + (((group % 8) ^ (row & 7)) << 4);
}

// `panel_bytes`: bytes between 64-column panels of the staging tile (rows * 128). Each stmatrix
// stores two 8-column groups of the warp's 16 rows: matrices (group i, rows 0-7), (i, rows 8-15),
// (i + 1, rows 0-7), (i + 1, rows 8-15), each row a 16-byte chunk at its swizzled place.
// `Panels` panels from `first_panel` on are staged, the first at `tile` (a staging buffer smaller
// than O takes it a chunk at a time); callers unroll over chunks, so `o` stays in registers.
template <typename T, int HeadDim, int Panels = HeadDim / 64>
__device__ __forceinline__ void stage_output(const float (&o)[HeadDim / 2], const float (&inv_sum)[2], uint8_t* tile,
                                             int panel_bytes, int warp, int lane, int first_panel = 0) {
  static_assert(HeadDim % 16 == 0, "column groups in pairs");
  const uint32_t base = ptx::smem_addr(tile);
  const int matrix = lane / 8;  // the matrix whose row this thread addresses
  const int row = 16 * warp + 8 * (matrix % 2) + lane % 8;
  constexpr int kGroups = HeadDim / 8 < Panels * 8 ? HeadDim / 8 : Panels * 8;
#pragma unroll
  for (int j = 0; j < kGroups; j += 2) {
    const int i = first_panel * 8 + j;  // this pair's first 8-column group within O
    const int group = j + matrix / 2;
    ptx::stmatrix_x4(swizzled_chunk(base, row, group, panel_bytes),
                     pack2<T>(o[4 * i] * inv_sum[0], o[4 * i + 1] * inv_sum[0]),
                     pack2<T>(o[4 * i + 2] * inv_sum[1], o[4 * i + 3] * inv_sum[1]),
                     pack2<T>(o[4 * i + 4] * inv_sum[0], o[4 * i + 5] * inv_sum[0]),
                     pack2<T>(o[4 * i + 6] * inv_sum[1], o[4 * i + 7] * inv_sum[1]));
  }
}

}  // namespace flash3
