// Kernel parameters, passed by value as one __grid_constant__ struct. The host
// (src/cuda/fwdParams.ts) writes the same layout byte for byte; the static_asserts below pin it.
#pragma once
#include <cstddef>
#include <cuda.h>

namespace flash3 {

struct FwdParams {  // CUtensorMap is alignas(128) in CUDA 13, so the struct is too
  CUtensorMap tm_q;  // (headdim, seqlen_q, heads_q, batch), box (64, 64)
  CUtensorMap tm_k;  // (headdim, seqlen_k, heads_kv, batch), box (64, BlockN)
  CUtensorMap tm_v;  // (headdim, seqlen_k, heads_kv, batch), box (64, BlockN)
  CUtensorMap tm_o;  // (headdim, seqlen_q, heads_q, batch), box (64, 64)
  float* lse;        // (batch, heads_q, seqlen_q), contiguous
  int seqlen_q;
  int seqlen_k;
  int heads_q;
  int group_size;    // heads_q / heads_kv
  int window_left;   // keys before the diagonal a query may see; -1 = unbounded
  int window_right;  // keys after the diagonal; 0 = causal, -1 = unbounded
  float scale_log2;  // softmax_scale * log2(e): exp2 replaces exp with the scale folded in
  int num_m_blocks;
  const int* schedule;  // per-CTA tile lists (src/cuda/schedule.ts): gridDim.x + 1 offsets, then tiles
};

static_assert(offsetof(FwdParams, lse) == 512, "host layout");
static_assert(offsetof(FwdParams, seqlen_q) == 520, "host layout");
static_assert(offsetof(FwdParams, scale_log2) == 544, "host layout");
static_assert(offsetof(FwdParams, schedule) == 552, "host layout");
static_assert(sizeof(FwdParams) == 640 && alignof(FwdParams) == 128, "host layout");

}  // namespace flash3
