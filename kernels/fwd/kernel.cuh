// Forward attention, warp-specialised: warpgroup 0 is the producer (one thread issues every TMA
// load into a Q tile and a ring of K/V stages), warpgroups 1.. are consumers that each own 64
// query rows and run S = Q K^T and O += P V on wgmma with the softmax in between. The grid is
// persistent: each CTA walks tiles blockIdx.x, blockIdx.x + gridDim.x, ...
#pragma once
#include <cstdint>

#include "../ptx/mbarrier.cuh"
#include "../ptx/tma.cuh"
#include "../ptx/warpgroup.cuh"
#include "../ptx/wgmma.cuh"
#include "epilogue.cuh"
#include "fragments.cuh"
#include "mask.cuh"
#include "params.cuh"
#include "pipeline.cuh"
#include "softmax.cuh"

namespace flash3 {

struct Tile {
  int m_block, head, batch;
};

// Heads (and batches) outermost so that the CTAs of one wave share a head's K/V in L2; within a
// head, the last query blocks first, since under a causal mask they see the most keys.
__device__ __forceinline__ Tile decode_tile(int tile, const FwdParams& p) {
  const int bh = tile / p.num_m_blocks;
  return {p.num_m_blocks - 1 - tile % p.num_m_blocks, bh % p.heads_q, bh / p.heads_q};
}

template <typename T, int HeadDim, int BlockN, int Stages, int ConsumerWGs>
struct FwdKernel {
  static constexpr int kBlockM = 64 * ConsumerWGs;
  static constexpr int kThreads = 128 * (ConsumerWGs + 1);
  static constexpr int kPanels = HeadDim / 64;
  static constexpr int kQBytesPerWG = 64 * HeadDim * int(sizeof(T));
  static constexpr int kKVBytes = BlockN * HeadDim * int(sizeof(T));
  static constexpr int kProducerRegs = ConsumerWGs == 2 ? 24 : 32;
  static constexpr int kConsumerRegs = ConsumerWGs == 2 ? 240 : 160;

  // Shared memory: [Q per consumer][K ring][V ring][barriers]; every tile 1 KiB aligned for the swizzle.
  static constexpr int kOffQ = 0;
  static constexpr int kOffK = kOffQ + ConsumerWGs * kQBytesPerWG;
  static constexpr int kOffV = kOffK + Stages * kKVBytes;
  static constexpr int kOffBarriers = kOffV + Stages * kKVBytes;
  static constexpr int kBarriers = 2 + 3 * Stages;
  static constexpr int kSmemBytes = kOffBarriers + 8 * kBarriers + 1024;

  static_assert(HeadDim % 64 == 0 && BlockN % 16 == 0, "tile shape");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory");

  struct Smem {
    uint32_t base;
    __device__ uint32_t q(int wg, int panel) const { return base + kOffQ + wg * kQBytesPerWG + panel * 64 * 128; }
    __device__ uint32_t k(int stage, int panel) const { return base + kOffK + stage * kKVBytes + panel * BlockN * 128; }
    __device__ uint32_t v(int stage, int panel) const { return base + kOffV + stage * kKVBytes + panel * BlockN * 128; }
    __device__ uint32_t barrier(int i) const { return base + kOffBarriers + 8 * i; }
    __device__ uint32_t q_full() const { return barrier(0); }
    __device__ uint32_t q_empty() const { return barrier(1); }
    __device__ uint32_t k_full(int s) const { return barrier(2 + s); }
    __device__ uint32_t v_full(int s) const { return barrier(2 + Stages + s); }
    __device__ uint32_t kv_empty(int s) const { return barrier(2 + 2 * Stages + s); }
  };

  __device__ static void run(const FwdParams& p) {
    extern __shared__ __align__(1024) uint8_t smem_raw[];
    uint8_t* smem_ptr = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    const Smem smem{ptx::smem_addr(smem_ptr)};
    const int warpgroup = threadIdx.x / 128;

    if (threadIdx.x == 0) {
      ptx::mbarrier_init(smem.q_full(), 1);
      ptx::mbarrier_init(smem.q_empty(), ConsumerWGs);
      for (int s = 0; s < Stages; ++s) {
        ptx::mbarrier_init(smem.k_full(s), 1);
        ptx::mbarrier_init(smem.v_full(s), 1);
        ptx::mbarrier_init(smem.kv_empty(s), 4 * ConsumerWGs);  // one arrival per consumer warp
      }
      ptx::fence_barrier_init();
    }
    __syncthreads();

    if (warpgroup == 0) {
      ptx::setmaxnreg_dec<kProducerRegs>();
      if (threadIdx.x == 0) produce(p, smem);
    } else {
      ptx::setmaxnreg_inc<kConsumerRegs>();
      consume(p, smem, smem_ptr, warpgroup - 1);
    }
  }

  __device__ static void produce(const FwdParams& p, const Smem& smem) {
    ptx::tma_prefetch_descriptor(&p.tm_q);
    ptx::tma_prefetch_descriptor(&p.tm_k);
    ptx::tma_prefetch_descriptor(&p.tm_v);
    ptx::tma_prefetch_descriptor(&p.tm_o);
    PipelineState<Stages> kv;
    uint32_t q_phase = 0;
    for (int t = blockIdx.x; t < p.num_tiles; t += gridDim.x) {
      const Tile tile = decode_tile(t, p);
      const int head_kv = tile.head / p.group_size;
      const BlockRange range =
          key_block_range<kBlockM, BlockN>(tile.m_block, p.seqlen_q, p.seqlen_k, p.window_left, p.window_right);

      ptx::mbarrier_wait(smem.q_empty(), q_phase ^ 1);
      ptx::mbarrier_arrive_expect_tx(smem.q_full(), ConsumerWGs * kQBytesPerWG);
      for (int wg = 0; wg < ConsumerWGs; ++wg)
        for (int panel = 0; panel < kPanels; ++panel)
          ptx::tma_load_4d(smem.q(wg, panel), &p.tm_q, smem.q_full(), panel * 64, tile.m_block * kBlockM + wg * 64,
                           tile.head, tile.batch);

      for (int n = range.n_max - 1; n >= range.n_min; --n) {
        ptx::mbarrier_wait(smem.kv_empty(kv.index), kv.phase ^ 1);
        ptx::mbarrier_arrive_expect_tx(smem.k_full(kv.index), kKVBytes);
        for (int panel = 0; panel < kPanels; ++panel)
          ptx::tma_load_4d(smem.k(kv.index, panel), &p.tm_k, smem.k_full(kv.index), panel * 64, n * BlockN, head_kv,
                           tile.batch);
        ptx::mbarrier_arrive_expect_tx(smem.v_full(kv.index), kKVBytes);
        for (int panel = 0; panel < kPanels; ++panel)
          ptx::tma_load_4d(smem.v(kv.index, panel), &p.tm_v, smem.v_full(kv.index), panel * 64, n * BlockN, head_kv,
                           tile.batch);
        kv.advance();
      }
      q_phase ^= 1;
    }
  }

  __device__ static void consume(const FwdParams& p, const Smem& smem, uint8_t* smem_ptr, int wg) {
    const int tid = threadIdx.x % 128;
    const int warp = tid / 32;
    const int lane = tid % 32;
    PipelineState<Stages> kv;
    uint32_t q_phase = 0;

    for (int t = blockIdx.x; t < p.num_tiles; t += gridDim.x) {
      const Tile tile = decode_tile(t, p);
      const BlockRange range =
          key_block_range<kBlockM, BlockN>(tile.m_block, p.seqlen_q, p.seqlen_k, p.window_left, p.window_right);
      const int row0 = tile.m_block * kBlockM + wg * 64 + warp * 16 + lane / 4;

      float o[HeadDim / 2];
#pragma unroll
      for (int i = 0; i < HeadDim / 2; ++i) o[i] = 0.f;
      OnlineSoftmax softmax;
      softmax.reset();

      ptx::mbarrier_wait(smem.q_full(), q_phase);
      for (int n = range.n_max - 1; n >= range.n_min; --n) {
        float s[BlockN / 2];
        ptx::mbarrier_wait(smem.k_full(kv.index), kv.phase);
        ptx::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < HeadDim / 16; ++kk) {
          const uint32_t q_addr = smem.q(wg, kk / 4) + (kk % 4) * 32;
          const uint32_t k_addr = smem.k(kv.index, kk / 4) + (kk % 4) * 32;
          Wgmma<T, BlockN>::ss(s, ptx::smem_desc_kmajor_sw128(q_addr), ptx::smem_desc_kmajor_sw128(k_addr), kk > 0);
        }
        ptx::wgmma_commit();
        ptx::wgmma_wait<0>();
        ptx::fence_registers(s);

        if (block_needs_mask<kBlockM, BlockN>(tile.m_block, n, p.seqlen_q, p.seqlen_k, p.window_left, p.window_right))
          apply_mask(s, row0, n * BlockN + 2 * (lane % 4), p.seqlen_q, p.seqlen_k, p.window_left, p.window_right);
        float rescale[2];
        softmax.step(s, p.scale_log2, rescale);
        scale_rows(o, rescale);
        uint32_t p_frag[BlockN / 4];
        pack_fragments<T>(s, p_frag);

        ptx::mbarrier_wait(smem.v_full(kv.index), kv.phase);
        ptx::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BlockN / 16; ++kk) {
          const uint32_t v_addr = smem.v(kv.index, 0) + kk * 16 * 128;
          Wgmma<T, HeadDim>::rs_bt(o, a_slice(p_frag, kk), ptx::smem_desc_mnmajor_sw128(v_addr, BlockN * 128), 1);
        }
        ptx::wgmma_commit();
        ptx::wgmma_wait<0>();
        ptx::fence_registers(o);

        __syncwarp();
        if (lane == 0) ptx::mbarrier_arrive(smem.kv_empty(kv.index));
        kv.advance();
      }

      float inv_sum[2], lse[2];
      softmax.finish(inv_sum, lse);
      if (lane % 4 == 0) {
        float* lse_row = p.lse + (size_t(tile.batch) * p.heads_q + tile.head) * p.seqlen_q;
        if (row0 < p.seqlen_q) lse_row[row0] = lse[0];
        if (row0 + 8 < p.seqlen_q) lse_row[row0 + 8] = lse[1];
      }

      // The Q tile of this warpgroup is free (its last wgmma has completed): stage O there.
      uint8_t* tile_smem = smem_ptr + kOffQ + wg * kQBytesPerWG;
      stage_output<T, HeadDim>(o, inv_sum, tile_smem, 64 * 128, warp, lane);
      ptx::fence_async_shared();
      ptx::named_barrier_sync(1 + wg, 128);
      if (tid == 0) {
        for (int panel = 0; panel < kPanels; ++panel)
          ptx::tma_store_4d(&p.tm_o, smem.q(wg, panel), panel * 64, tile.m_block * kBlockM + wg * 64, tile.head,
                            tile.batch);
        ptx::tma_store_commit();
        ptx::tma_store_wait_read();
        ptx::mbarrier_arrive(smem.q_empty());
      }
      q_phase ^= 1;
    }
  }
};

}  // namespace flash3
