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

// `panel_bytes`: bytes between 64-column panels of the staging tile (rows * 128). Each stmatrix
// stores two 8-column groups of the warp's 16 rows: matrices (group i, rows 0-7), (i, rows 8-15),
// (i + 1, rows 0-7), (i + 1, rows 8-15), each row a 16-byte chunk at its swizzled place.
template <typename T, int HeadDim>
__device__ __forceinline__ void stage_output(const float (&o)[HeadDim / 2], const float (&inv_sum)[2], uint8_t* tile,
                                             int panel_bytes, int warp, int lane) {
  static_assert(HeadDim % 16 == 0, "column groups in pairs");
  const uint32_t base = ptx::smem_addr(tile);
  const int matrix = lane / 8;  // the matrix whose row this thread addresses
  const int row = 16 * warp + 8 * (matrix % 2) + lane % 8;
#pragma unroll
  for (int i = 0; i < HeadDim / 8; i += 2) {
    const int group = i + matrix / 2;
    const uint32_t addr = base + (group / 8) * panel_bytes + row * 128 + (((group % 8) ^ (row & 7)) << 4);
    ptx::stmatrix_x4(addr, pack2<T>(o[4 * i] * inv_sum[0], o[4 * i + 1] * inv_sum[0]),
                     pack2<T>(o[4 * i + 2] * inv_sum[1], o[4 * i + 3] * inv_sum[1]),
                     pack2<T>(o[4 * i + 4] * inv_sum[0], o[4 * i + 5] * inv_sum[0]),
                     pack2<T>(o[4 * i + 6] * inv_sum[1], o[4 * i + 7] * inv_sum[1]));
  }
}

}  // namespace flash3
