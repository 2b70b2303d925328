// Kernel parameters, passed by value as one __grid_constant__ struct. The host
// (src/cuda/fwdParams.ts) writes the same layout byte for byte; the static_asserts below pin it.
#pragma once
#include <cstddef>
#include <cuda.h>

namespace flash3 {

struct FwdParams {  // CUtensorMap is alignas(128) in CUDA 13, so the struct is too
  // Boxes span one swizzle row: 64 16-bit or 128 (head dim 64: 64) e4m3 elements.
  CUtensorMap tm_q;  // (headdim, seqlen_q, heads_q, batch), box (row, 64)
  CUtensorMap tm_k;  // (headdim, seqlen_k, heads_kv, batch), box (row, BlockN)
  CUtensorMap tm_v;  // 16-bit: like tm_k; e4m3: V^T (keys, headdim, heads_kv, batch), box (BlockN, headdim)
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
  // FP8 only: x = stored * descale, one descale per (batch, head, block of rows), contiguous.
  const float* q_descale;
  const float* k_descale;
  const float* v_descale;  // blocked like k
  int q_descale_rows;      // rows per Q descale
  int k_descale_rows;      // keys per K/V descale, a multiple of BlockN
  int q_descale_blocks;    // per (batch, head)
  int k_descale_blocks;
  // Read by the softcap builds only (softcap.cuh): softmax_scale / softcap, and softcap * log2(e).
  float softcap_scale;
  float softcap_log2;
};

static_assert(offsetof(FwdParams, lse) == 512, "host layout");
static_assert(offsetof(FwdParams, seqlen_q) == 520, "host layout");
static_assert(offsetof(FwdParams, scale_log2) == 544, "host layout");
static_assert(offsetof(FwdParams, schedule) == 552, "host layout");
static_assert(offsetof(FwdParams, q_descale) == 560, "host layout");
static_assert(offsetof(FwdParams, q_descale_rows) == 584, "host layout");
static_assert(offsetof(FwdParams, softcap_scale) == 600, "host layout");
static_assert(sizeof(FwdParams) == 640 && alignof(FwdParams) == 128, "host layout");

}  // namespace flash3
