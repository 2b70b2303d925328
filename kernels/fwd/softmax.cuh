// Online softmax over the two accumulator rows a thread holds. A row is spread over the four
// threads of a quad, so row maxima are reduced with two butterfly shuffles; row sums stay
// per-thread until the end (every rescale factor is shared by the quad).
#pragma once
#include <cmath>

#include "../ptx/math.cuh"

namespace flash3 {

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffff, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffff, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffff, x, 1);
  return x + __shfl_xor_sync(0xffffffff, x, 2);
}

// MaxSlack (log2 units, 0 = exact): the running max only moves when a block's max exceeds it by
// more than this, so P may reach 2^MaxSlack (harmless in fp32 and in P's 16-bit format) while
// most blocks leave the rescale factor at exactly 1 and the output is not rescaled at all.
template <int MaxSlack>
struct OnlineSoftmax {
  float row_max[2];  // running max of scores * scale * log2(e)
  float row_sum[2];  // this thread's share of the running sum

  __device__ __forceinline__ void reset() {
    row_max[0] = row_max[1] = -INFINITY;
    row_sum[0] = row_sum[1] = 0.f;
  }

  // Turns raw scores into P = exp2(s * scale_log2 - max) and returns, per row, the factor by
  // which the output accumulated so far must be rescaled (FP8 folds the thread's Q descale and the
  // block's K descale into the scale). Maxima and sums run in kChains independent chains rather
  // than one dependent FMNMX/FADD chain per row (H200: +9% for FP8 at head dim 64, within noise
  // elsewhere): up to 4, as many as split the column groups evenly (block N 80 has 10 groups: 2).
  template <int NAcc>
  static constexpr int kChainsFor = (NAcc / 4) % 4 == 0 ? 4 : (NAcc / 4) % 2 == 0 ? 2 : 1;

  // P comes out multiplied by 2^p_log2 (an integer: FP8's V block descales, 0 otherwise) and the
  // block's sum by sum_scale = 2^-p_log2, so the row sum stays that of P itself; both are exact.
  template <int NAcc>
  __device__ __forceinline__ void step(float (&s)[NAcc], float scale_log2, float p_log2, float sum_scale,
                                       float (&rescale)[2]) {
    constexpr int kChains = kChainsFor<NAcc>;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float m[kChains];
#pragma unroll
      for (int k = 0; k < kChains; ++k) m[k] = -INFINITY;
#pragma unroll
      for (int i = 0; i < NAcc / 4; ++i) m[i % kChains] = fmaxf(m[i % kChains], fmaxf(s[4 * i + 2 * r], s[4 * i + 2 * r + 1]));
#pragma unroll
      for (int k = 1; k < kChains; ++k) m[0] = fmaxf(m[0], m[k]);
      const float m_block = quad_max(m[0]) * scale_log2;
      const bool grows = m_block > row_max[r] + float(MaxSlack);
      const float m_new = grows ? m_block : row_max[r];
      // A row that has seen only masked keys keeps max -inf; subtracting 0 keeps exp2 at 0, not NaN.
      const float base = m_new == -INFINITY ? 0.f : m_new;
      const float shift = p_log2 - base;
      rescale[r] = grows ? ptx::ex2(row_max[r] - base) : 1.f;
      row_max[r] = m_new;
      float sum[kChains] = {};
#pragma unroll
      for (int i = 0; i < NAcc / 4; ++i) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          float& x = s[4 * i + 2 * r + c];
          x = ptx::ex2(fmaf(x, scale_log2, shift));
          sum[i % kChains] += x;
        }
      }
#pragma unroll
      for (int k = 1; k < kChains; ++k) sum[0] += sum[k];
      row_sum[r] = row_sum[r] * rescale[r] + sum[0] * sum_scale;
    }
  }

  // Final normalisation factors and natural-log LSE; rows that saw no key get 0 and -inf.
  __device__ __forceinline__ void finish(float (&inv_sum)[2], float (&lse)[2]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float sum = quad_sum(row_sum[r]);
      const bool empty = sum == 0.f;
      inv_sum[r] = empty ? 0.f : 1.f / sum;
      lse[r] = empty ? -INFINITY : (row_max[r] + __log2f(sum)) * 0.69314718055994530942f;
    }
  }
};

}  // namespace flash3
