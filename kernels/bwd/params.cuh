// Backward kernel parameters, passed by value as one __grid_constant__ struct. The host
// (src/cuda/bwdParams.ts) writes the same layout byte for byte; the static_asserts pin it.
#pragma once
#include <cstddef>
#include <cuda.h>

namespace flash3 {

struct BwdParams {
  CUtensorMap tm_q;     // (headdim, seqlen_q, heads_q, batch), box (64, 64)
  CUtensorMap tm_k;     // (headdim, seqlen_k, heads_kv, batch), box (64, BlockN)
  CUtensorMap tm_v;     // as tm_k
  CUtensorMap tm_do;    // as tm_q
  CUtensorMap tm_dk;    // as tm_k, box (64, 64)
  CUtensorMap tm_dv;    // as tm_dk
  const float* lse_log2;  // (batch, heads_q, seqlen_q_padded): lse * log2(e), +inf for rows without keys
  const float* dpsum;     // (batch, heads_q, seqlen_q_padded): D = rowsum(dO * O)
  float* dq_accum;        // unscaled dS K: (batch, heads_q, query block, 64-column panel) tiles of
                          // 64 x 64 floats in accumulator order (bwd/prepost.cuh undoes it)
  int* dq_counters;       // one per dQ tile: the deterministic builds' semaphores, the converting builds'
                          // contributions still to come (bwd/kernel.cuh keep_counts), else null
  int seqlen_q;
  int seqlen_k;
  int heads_q;
  int group_size;    // heads_q / heads_kv
  int window_left;   // -1 = unbounded
  int window_right;  // 0 = causal, -1 = unbounded
  float scale_log2;  // softmax_scale * log2(e)
  float softmax_scale;
  int num_m_blocks;  // query blocks of 64 rows; seqlen_q_padded = 64 * num_m_blocks
  int num_n_blocks;  // key blocks (one CTA each per kv head and batch)
  int rotate;         // unmasked: key blocks per rotation group, each starting at its own query block; 0 = off
  int arrival_order;  // deterministic, masked: dQ tiles take key blocks in descending order
  // Soft-capping (fwd/softcap.cuh), read by the softcap builds only: softmax_scale / softcap;
  // softcap * log2(e); its inverse.
  float softcap_scale;
  float softcap_log2;
  float softcap_inv_log2;
  // Persistent builds: the items after the first gridDim.x are taken from this counter (zeroed by
  // the pre-pass); num_items = key blocks x kv heads x batch.
  int* work_counter;
  int num_items;
  void* dq;  // converting builds: the contiguous (batch, seqlen_q, heads_q, head dim) dQ, of the element type
  int* dq_queue;  // converting builds: tail, head, then a slot per dQ tile (bwd/kernel.cuh convert_tiles), zeroed by the pre-pass
};

static_assert(offsetof(BwdParams, lse_log2) == 768, "host layout");
static_assert(offsetof(BwdParams, dq_counters) == 792, "host layout");
static_assert(offsetof(BwdParams, seqlen_q) == 800, "host layout");
static_assert(offsetof(BwdParams, scale_log2) == 824, "host layout");
static_assert(offsetof(BwdParams, rotate) == 840, "host layout");
static_assert(offsetof(BwdParams, arrival_order) == 844, "host layout");
static_assert(offsetof(BwdParams, softcap_scale) == 848, "host layout");
static_assert(offsetof(BwdParams, work_counter) == 864 && offsetof(BwdParams, num_items) == 872, "host layout");
static_assert(offsetof(BwdParams, dq) == 880 && offsetof(BwdParams, dq_queue) == 888, "host layout");
static_assert(sizeof(BwdParams) == 896 && alignof(BwdParams) == 128, "host layout");

}  // namespace flash3
