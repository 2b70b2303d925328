// The backward walks the mask from the key side: which query blocks a key block must visit, and
// the element mask on transposed score tiles (rows are keys, columns are queries). Same window
// convention as fwd/mask.cuh: query i sees keys j with i + sk - sq - left <= j <= i + sk - sq + right.
#pragma once
#include <climits>
#include <cmath>

#include "../fwd/mask.cuh"

namespace flash3 {

struct QueryBlockRange {
  int m_min;
  int m_max;  // exclusive; m_max <= m_min means no query sees this key block
};

// Exactly the query blocks for which key_block_range includes n_block, so that both sides agree
// on who contributes to a query block's dQ (the deterministic ordering depends on it).
template <int BlockM, int BlockN>
__device__ __forceinline__ QueryBlockRange query_block_range(int n_block, int sq, int sk, int left, int right) {
  const int col_first = n_block * BlockN;
  const int col_last = min(col_first + BlockN, sk) - 1;
  const int shift = sk - sq;
  const int num_m = (sq + BlockM - 1) / BlockM;
  int m_min = 0;
  if (right >= 0) m_min = max(0, floor_div(col_first - shift - right, BlockM));
  int m_max = num_m;
  if (left >= 0) m_max = min(num_m, max(0, floor_div(col_last - shift + left, BlockM) + 1));
  return {m_min, m_max};
}

// Zeroes probabilities of invisible (key, query) pairs. `key0`: this thread's first accumulator
// row (the second is key0 + 8); `query0`: the query of its first accumulator column. Each key
// sees an interval of queries; it is computed once per row, relative to query0, so the per-element
// test is two comparisons against column constants (this runs where registers are scarcest).
template <int NAcc>
__device__ __forceinline__ void mask_transposed(float (&p)[NAcc], int key0, int query0, int sq, int sk, int left,
                                                int right) {
  const int shift = sk - sq;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = key0 + 8 * r;
    int lo = right >= 0 ? key - shift - right - query0 : INT_MIN;
    int hi = left >= 0 ? key - shift + left - query0 : INT_MAX;
    if (key >= sk) lo = INT_MAX;
#pragma unroll
    for (int i = 0; i < NAcc / 4; ++i) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int col = 8 * i + c;
        if (col < lo || col > hi) p[4 * i + 2 * r + c] = 0.f;
      }
    }
  }
}

}  // namespace flash3
