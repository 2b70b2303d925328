// Which key blocks a query tile must visit, and which of them need an element-wise mask.
// Causal is the window (-1, 0), aligned to the bottom-right corner as in FlashAttention 2/3:
// query i sees keys j with i + sk - sq - left <= j <= i + sk - sq + right.
#pragma once

namespace flash3 {

struct BlockRange {
  int n_min;
  int n_max;  // exclusive; n_max <= n_min means the tile sees no key
};

__device__ __forceinline__ int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

template <int BlockM, int BlockN>
__device__ __forceinline__ BlockRange key_block_range(int m_block, int sq, int sk, int left, int right) {
  const int row_first = m_block * BlockM;
  const int row_last = min(row_first + BlockM, sq) - 1;
  const int shift = sk - sq;
  int n_max = (sk + BlockN - 1) / BlockN;
  if (right >= 0) n_max = min(n_max, max(0, floor_div(row_last + shift + right, BlockN) + 1));
  int n_min = 0;
  if (left >= 0) n_min = max(0, floor_div(row_first + shift - left, BlockN));
  return {n_min, n_max};
}

template <int BlockM, int BlockN>
__device__ __forceinline__ bool block_needs_mask(int m_block, int n_block, int sq, int sk, int left, int right) {
  const int row_first = m_block * BlockM;
  const int row_last = min(row_first + BlockM, sq) - 1;
  const int col_first = n_block * BlockN;
  const int col_last = col_first + BlockN - 1;
  const int shift = sk - sq;
  if (col_last >= sk) return true;
  if (right >= 0 && col_last > row_first + shift + right) return true;
  if (left >= 0 && col_first < row_last + shift - left) return true;
  return false;
}

}  // namespace flash3

namespace flash3 {

// Sets masked scores to -inf. `row0` is the global query row of this thread's first accumulator
// row (the second is row0 + 8); `col0` the key index of its first accumulator column.
template <int NAcc>
__device__ __forceinline__ void apply_mask(float (&s)[NAcc], int row0, int col0, int sq, int sk, int left, int right) {
  const int shift = sk - sq;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + 8 * r;
    const int hi = right >= 0 ? min(sk - 1, row + shift + right) : sk - 1;
    const int lo = left >= 0 ? row + shift - left : 0;
#pragma unroll
    for (int i = 0; i < NAcc / 4; ++i) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int col = col0 + 8 * i + c;
        if (col > hi || col < lo) s[4 * i + 2 * r + c] = -INFINITY;
      }
    }
  }
}

}  // namespace flash3
