// Soft-capped scores (Gemma 2 style): x -> cap * tanh(x * softmax_scale / cap) before the softmax,
// in builds of their own of the 16-bit kernels. The host passes softcap_scale = softmax_scale / cap
// and softcap_log2 = cap * log2(e), the factor that then replaces scale_log2 in exp2.
#pragma once

#include "../ptx/math.cuh"

namespace flash3 {

// tanh x = 1 - 2 / (e^(2x) + 1), from ex2 and a reciprocal: absolute error ~1e-7, so a capped
// logit moves by ~cap * 1e-7, where tanh.approx.f32 (2^-11 relative) would move it by up to
// cap * 5e-4 (1.5% in P at cap 30). e^(2x) overflowing to +inf gives 1, underflowing to 0 gives -1.
__device__ __forceinline__ float tanh_accurate(float x) {
  return 1.f - 2.f * ptx::rcp_approx(ptx::ex2(x * 2.8853900817779268f) + 1.f);
}

// The backward's factor d(capped score)/d(score) = 1 - t^2, with t recovered from P =
// exp2(t * softcap_log2 - lse_log2) rather than kept in registers: t = (log2 P + lse_log2) /
// softcap_log2. Where P is 0 (masked, or underflowed) dS is 0 whatever the factor, so 0.
__device__ __forceinline__ float softcap_slope(float p, float lse_log2, float inv_softcap_log2) {
  const float t = (ptx::lg2_approx(p) + lse_log2) * inv_softcap_log2;
  return p > 0.f ? 1.f - t * t : 0.f;
}

// Scores in place: tanh(x * softcap_scale), to be scaled by softcap_log2 in exp2.
template <int N>
__device__ __forceinline__ void soft_cap(float (&s)[N], float softcap_scale) {
#pragma unroll
  for (int i = 0; i < N; ++i) s[i] = tanh_accurate(s[i] * softcap_scale);
}

}  // namespace flash3
