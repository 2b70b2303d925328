// Forward attention, warp-specialised: warpgroup 0 is the producer (one thread issues every TMA
// load into a Q tile and a ring of K/V stages), warpgroups 1.. are consumers that each own 64
// query rows and run S = Q K^T and O += P V on wgmma with the softmax in between. (WarpSpecialized
// false is the ablation's baseline: no producer, see TileLoads.) The grid is
// persistent; which tiles each CTA computes is planned on the host (src/cuda/schedule.ts), so the
// producer and the consumers read the same list and nothing has to be handed between them.
#pragma once
#include <cstdint>

#include "../ptx/mbarrier.cuh"
#include "../ptx/tma.cuh"
#include "../ptx/warpgroup.cuh"
#include "../ptx/wgmma.cuh"
#include "element.cuh"
#include "epilogue.cuh"
#include "fragments.cuh"
#include "mask.cuh"
#include "params.cuh"
#include "pipeline.cuh"
#include "softcap.cuh"
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

// This CTA's tiles: schedule[blockIdx.x] .. schedule[blockIdx.x + 1] index the list that
// follows the gridDim.x + 1 offsets.
struct CtaTiles {
  const int* list;
  int begin, end;
};

__device__ __forceinline__ CtaTiles cta_tiles(const FwdParams& p) {
  return {p.schedule + gridDim.x + 1, __ldg(p.schedule + blockIdx.x), __ldg(p.schedule + blockIdx.x + 1)};
}

// `Inputs`: HalfInputs<T> or Fp8Inputs<Out> (element.cuh).
// `MaxSlack`: see OnlineSoftmax (softmax.cuh).
template <typename Inputs, int HeadDim, int BlockN, int Stages, int ConsumerWGs, bool Pingpong, bool IntraOverlap,
          int MaxSlack, int CtasPerSm = 1, bool WarpSpecialized = true>
struct FwdKernel {
  using In = typename Inputs::In;
  using Out = typename Inputs::Out;
  static constexpr bool kFp8 = Inputs::kFp8;
  static constexpr int kBlockM = 64 * ConsumerWGs;
  static constexpr int kThreads = 128 * (ConsumerWGs + (WarpSpecialized ? 1 : 0));
  // Q and K rows are split into panels of one swizzle row each (128 bytes; 64 for e4m3 at head dim 64).
  static constexpr int kRowBytes = HeadDim * Inputs::kBytes < 128 ? HeadDim * Inputs::kBytes : 128;
  static constexpr int kPanels = HeadDim * Inputs::kBytes / kRowBytes;
  static constexpr int kRowElems = kRowBytes / Inputs::kBytes;
  static constexpr int kKSteps = HeadDim * Inputs::kBytes / 32;  // wgmma k-slices of 32 bytes over the head dim
  // Q rows hold kQTerms head dims side by side (element.cuh), panelled like K.
  static constexpr int kQWidthBytes = HeadDim * Inputs::kBytes * Inputs::kQTerms;
  static constexpr int kQRowBytes = kQWidthBytes < 128 ? kQWidthBytes : 128;
  static constexpr int kQPanels = kQWidthBytes / kQRowBytes;
  static constexpr int kPRegs = BlockN / 2 * Inputs::kBytes / 4;  // P packed for the A operand
  static constexpr int kQBytesPerWG = 64 * kQWidthBytes;
  static constexpr int kOBytesPerWG = 64 * HeadDim * int(sizeof(Out));
  static constexpr int kKBytes = BlockN * HeadDim * Inputs::kBytes;
  // e4m3's V^T stage: HeadDim rows of BlockN keys, in panels of the widest swizzle row that
  // divides BlockN (a TMA box and a wgmma descriptor span one); where none does (160, 224), 128-key
  // panels with the last one part-filled by keys the P V never reads (the next block's, or the
  // zeros TMA writes past the end).
  static constexpr int kVtPanelKeys = BlockN % 128 == 0 ? 128 : BlockN % 64 == 0 ? 64 : 128;
  static constexpr int kVtPanels = (BlockN + kVtPanelKeys - 1) / kVtPanelKeys;
  static constexpr int kVBytes = kFp8 ? kVtPanels * kVtPanelKeys * HeadDim : kKBytes;
  // Q's wgmma descriptors are the same every key block, and the compiler keeps them in registers
  // through the loop. FP8 at head dim 256 with overlap has none to spare (it spilled 12 B), so
  // there they are rebuilt each block instead; elsewhere rebuilding measured -1% (d=128 8k) to -5%
  // (bf16 d=256 8k) on an H100.
  static constexpr bool kHoistQDescriptors = !(kFp8 && HeadDim == 256);
  // CtasPerSm CTAs share an SM (more warps to hide the softmax's latency with): each gets its share
  // of the registers at launch, which setmaxnreg moves from the producer to the consumers.
  static constexpr int kLaunchRegs = 65536 / CtasPerSm / kThreads / 8 * 8;
  static constexpr int kProducerRegs = CtasPerSm > 1 ? 24 : ConsumerWGs == 2 ? 24 : 32;
  static constexpr int kConsumerRegs =
      CtasPerSm > 1 ? (kThreads * kLaunchRegs - 128 * kProducerRegs) / (128 * ConsumerWGs) / 8 * 8 : ConsumerWGs == 2 ? 240 : 160;
  static constexpr int kSmemBudget = CtasPerSm > 1 ? 228 * 1024 / CtasPerSm - 1024 : 227 * 1024;

  // Shared memory: [Q per consumer][K ring][V ring][O staging per consumer, when it fits][barriers];
  // every tile 1 KiB aligned for the swizzle. With its own O buffer a warpgroup hands Q back right
  // after its last S = Q K^T, so the next tile's Q and K load under the last P V and the epilogue.
  // Where O does not fit whole, a buffer of a few 64-column panels per warpgroup stages it a chunk
  // at a time, each chunk waiting for the store of the one before to be read; where not even one
  // panel fits, see kOInLastV below.
  static constexpr int kOffQ = 0;
  static constexpr int kOffK = kOffQ + ConsumerWGs * kQBytesPerWG;
  static constexpr int kOffV = kOffK + Stages * kKBytes;
  static constexpr int kEndKV = kOffV + Stages * kVBytes;
  static constexpr int kOPanelBytes = 64 * 128;  // 64 rows of one 128-byte swizzle row
  static constexpr int kOPanels = kOBytesPerWG / kOPanelBytes;
  static constexpr int kOPanelsFree = (kSmemBudget - 2048 - kEndKV) / (ConsumerWGs * kOPanelBytes);
  static constexpr int kOPanelsFit = kOPanelsFree >= kOPanels ? kOPanels : kOPanelsFree >= 2 ? 2 : kOPanelsFree;
  static constexpr bool kSeparateO = kOPanelsFit >= 1;
  static constexpr int kOChunkPanels = kSeparateO ? kOPanelsFit : kOPanels;
  static constexpr int kOChunks = kOPanels / kOChunkPanels;
  static constexpr int kOStageBytesPerWG = kSeparateO ? kOChunkPanels * kOPanelBytes : kOBytesPerWG;
  // Without a buffer of its own, O goes into the last key block's V stage where that holds a chunk
  // for every warpgroup (d=256's long tile): Q is then still released after the last S, and the
  // stage after the stores have read it. A tile with no key block (fully masked) has no V stage
  // and stages O in Q's place, as does every tile where a V stage is too small: the next tile's
  // Q then loads after the epilogue.
  static constexpr int kOVStagePanels = kVBytes / (ConsumerWGs * kOPanelBytes);
  static constexpr int kOVChunkPanels = kOVStagePanels >= kOPanels ? kOPanels : kOVStagePanels >= 2 ? 2 : 1;
  static constexpr bool kOInLastV = !kSeparateO && kOVStagePanels >= 1 && kOPanels % kOVChunkPanels == 0;
  static constexpr int kOffO = kSeparateO ? kEndKV : kOffQ;
  static constexpr int kOffBarriers = kSeparateO ? kEndKV + ConsumerWGs * kOStageBytesPerWG : kEndKV;
  static constexpr int kBarriers = 2 + 4 * Stages;
  static constexpr int kSmemBytes = kOffBarriers + 8 * kBarriers + 1024;

  // Hardware named barriers (0 is __syncthreads): 1.. per-warpgroup epilogue, then pingpong turns.
  static constexpr int kBarEpilogue = 1;
  static constexpr int kBarTurn = kBarEpilogue + ConsumerWGs;
  static constexpr int kBarTileEnd = kBarTurn + ConsumerWGs;  // every consumer is done with the last V stage
  static constexpr int kBarBlock = kBarTileEnd + 1;  // without a producer: every consumer is done with a stage

  static_assert(HeadDim % 64 == 0 && BlockN % 16 == 0, "tile shape");
  static_assert(kSeparateO || kOBytesPerWG <= kQBytesPerWG, "O staged in Q's place must fit there");
  static_assert(kOChunks * kOChunkPanels == kOPanels, "O's panels split into whole chunks");
  static_assert(!kFp8 || BlockN % 32 == 0, "P V steps through V^T in k-slices of 32 keys");
  static_assert(kSmemBytes <= kSmemBudget, "shared memory");
  // The baseline is FA2's loop on Hopper instructions: nothing of FA3's schedule.
  static_assert(WarpSpecialized || (!Pingpong && !IntraOverlap && Stages == 2 && kSeparateO && CtasPerSm == 1),
                "the unspecialised baseline has no pingpong, overlap or O in Q's or V's place");

  // Tiles' addresses in bytes (TMA, stmatrix) or, with unit = ptx::kDescUnits, in the units of wgmma
  // descriptors; every offset is a multiple of 16 bytes, so both are a base plus constants.
  struct Smem {
    uint32_t base;
    __device__ uint32_t q(int wg, int panel, uint32_t unit = 1) const {
      return base / unit + (kOffQ + panel * 64 * kQRowBytes) / unit + wg * (kQBytesPerWG / unit);
    }
    __device__ uint32_t k(int stage, int panel, uint32_t unit = 1) const {
      return base / unit + (kOffK + panel * BlockN * kRowBytes) / unit + stage * (kKBytes / unit);
    }
    // 16-bit: 64-column panels of key-major V; e4m3: panels of V^T, HeadDim rows of kVtPanelKeys keys.
    __device__ uint32_t v(int stage, int panel, uint32_t unit = 1) const {
      constexpr int kPanelBytes = kFp8 ? kVtPanelKeys * HeadDim : BlockN * 128;
      return base / unit + (kOffV + panel * kPanelBytes) / unit + stage * (kVBytes / unit);
    }
    __device__ uint32_t barrier(int i) const { return base + kOffBarriers + 8 * i; }
    __device__ uint32_t q_full() const { return barrier(0); }
    __device__ uint32_t q_empty() const { return barrier(1); }
    __device__ uint32_t k_full(int s) const { return barrier(2 + s); }
    __device__ uint32_t v_full(int s) const { return barrier(2 + Stages + s); }
    __device__ uint32_t k_empty(int s) const { return barrier(2 + 2 * Stages + s); }
    __device__ uint32_t v_empty(int s) const { return barrier(2 + 3 * Stages + s); }
  };

  __device__ static void run(const FwdParams& p) {
    extern __shared__ __align__(1024) uint8_t smem_raw[];
    uint8_t* smem_ptr = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    const Smem smem{ptx::smem_addr(smem_ptr)};
    if (threadIdx.x == 0) {
      ptx::mbarrier_init(smem.q_full(), 1);
      ptx::mbarrier_init(smem.q_empty(), 4 * ConsumerWGs);  // one arrival per consumer warp
      for (int s = 0; s < Stages; ++s) {
        ptx::mbarrier_init(smem.k_full(s), 1);
        ptx::mbarrier_init(smem.v_full(s), 1);
        ptx::mbarrier_init(smem.k_empty(s), 4 * ConsumerWGs);  // one arrival per consumer warp
        ptx::mbarrier_init(smem.v_empty(s), 4 * ConsumerWGs);
      }
      ptx::fence_barrier_init();
    }
    __syncthreads();
    if constexpr (WarpSpecialized)
      ptx::split_roles<kProducerRegs, kConsumerRegs>([&] { produce(p, smem); },
                                                     [&](int wg) { consume(p, smem, smem_ptr, wg); });
    else
      consume(p, smem, smem_ptr, threadIdx.x / 128);
  }

  // One tile's TMA loads, each completing on its stage's full barrier, issued by one thread: the
  // producer, once the stage's empty barrier says the consumers are done with it, or (the baseline)
  // consumer thread 0 after a barrier of all consumers, one key block ahead of the GEMMs.
  struct TileLoads {
    const FwdParams& p;
    const Smem& smem;
    Tile tile;
    int head_kv;

    __device__ TileLoads(const FwdParams& p, const Smem& smem, const Tile& tile)
        : p(p), smem(smem), tile(tile), head_kv(tile.head / p.group_size) {}

    // Announces Q's bytes. The producer does so before decoding its tile, and the consumers wait
    // for Q before decoding theirs: the order of the warp-specialised builds before the baseline
    // existed, which compiles them to the same cubins (decoding first in both roles cost the tall
    // tile 1.5%, H100, session 19).
    __device__ static void expect_q(const Smem& smem) {
      ptx::mbarrier_arrive_expect_tx(smem.q_full(), ConsumerWGs * kQBytesPerWG);
    }
    __device__ void q() const {
      for (int wg = 0; wg < ConsumerWGs; ++wg)
        for (int panel = 0; panel < kQPanels; ++panel)
          ptx::tma_load_4d(smem.q(wg, panel), &p.tm_q, smem.q_full(), panel * kQRowBytes / Inputs::kBytes,
                           tile.m_block * kBlockM + wg * 64, tile.head, tile.batch);
    }
    __device__ void k(int stage, int n) const {
      const uint32_t full = smem.k_full(stage);
      ptx::mbarrier_arrive_expect_tx(full, kKBytes);
      for (int panel = 0; panel < kPanels; ++panel)
        ptx::tma_load_4d(smem.k(stage, panel), &p.tm_k, full, panel * kRowElems, n * BlockN, head_kv, tile.batch);
    }
    __device__ void v(int stage, int n) const {
      const uint32_t full = smem.v_full(stage);
      ptx::mbarrier_arrive_expect_tx(full, kVBytes);
      if constexpr (kFp8) {
        for (int panel = 0; panel < kVtPanels; ++panel)
          ptx::tma_load_4d(smem.v(stage, panel), &p.tm_v, full, n * BlockN + panel * kVtPanelKeys, 0, head_kv,
                           tile.batch);
      } else {
        for (int panel = 0; panel < HeadDim / 64; ++panel)
          ptx::tma_load_4d(smem.v(stage, panel), &p.tm_v, full, panel * 64, n * BlockN, head_kv, tile.batch);
      }
    }
  };

  __device__ static void produce(const FwdParams& p, const Smem& smem) {
    ptx::tma_prefetch_descriptor(&p.tm_q);
    ptx::tma_prefetch_descriptor(&p.tm_k);
    ptx::tma_prefetch_descriptor(&p.tm_v);
    ptx::tma_prefetch_descriptor(&p.tm_o);
    // K and V have rings of their own: K of a block is freed as soon as S is computed, V only
    // after P V, and loads are issued in the order the consumers need them (K_n, then V_{n+1}).
    PipelineState<Stages> k_ring, v_ring;
    uint32_t q_phase = 0;
    const CtaTiles tiles = cta_tiles(p);
    for (int i = tiles.begin; i < tiles.end; ++i) {
      const int t = __ldg(tiles.list + i);
      ptx::mbarrier_wait(smem.q_empty(), q_phase ^ 1);
      TileLoads::expect_q(smem);
      const Tile tile = decode_tile(t, p);
      const TileLoads loads(p, smem, tile);
      const BlockRange range =
          key_block_range<kBlockM, BlockN>(tile.m_block, p.seqlen_q, p.seqlen_k, p.window_left, p.window_right);
      loads.q();
      auto load_k = [&](int n) {
        ptx::mbarrier_wait(smem.k_empty(k_ring.index), k_ring.phase ^ 1);
        loads.k(k_ring.index, n);
        k_ring.advance();
      };
      auto load_v = [&](int n) {
        ptx::mbarrier_wait(smem.v_empty(v_ring.index), v_ring.phase ^ 1);
        loads.v(v_ring.index, n);
        v_ring.advance();
      };
      for (int n = range.n_max - 1; n >= range.n_min; --n) {
        load_k(n);
        if (n + 1 < range.n_max) load_v(n + 1);
      }
      if (range.n_max > range.n_min) load_v(range.n_min);
      q_phase ^= 1;
    }
  }

  // FP8 descales of one tile (16-bit inputs: the plain softmax scale, and no-ops). Scores of key
  // block n are scaled by the row's Q descale times the block's K descale. O is accumulated in a
  // unit u = 2^E · mu; block n's V descale v(n) = 2^e · m enters in two exact parts:
  // - 2^(e - E) goes into P, as an integer added to exp2's argument (the row sum takes it back out
  //   by the same power of two), while 0 <= e - E <= kMaxPShift keeps P below e4m3's 448;
  // - the mantissa: moving to block n multiplies O by mu / m and the unit becomes 2^E · m.
  // With power-of-two V block scales (quantizeFp8's powerOfTwoScales) every mantissa is 1, so O
  // is rescaled only when the row max moves, as for 16-bit inputs (rescaling by v(last) / v(n)
  // every block cost 7-10%, H100). A block outside that exponent range (a new smallest exponent,
  // a handful of times per tile) rebases the unit to v(n) exactly, so P is never scaled below 1.
  // Blocks come in descending order; each block's descales load while the one before is processed.
  struct Descales {
    static constexpr int kMaxPShift = 8 - MaxSlack;  // P <= 2^MaxSlack, times 2^8 < 448
    int kv_base = 0;  // this head's first K/V descale (an index, not two pointers: registers are short)
    // Q descale blocks are whole multiples of 16 rows (src/cuda/forward.ts checks), so the two rows
    // a thread holds, 8 apart in one 16-row group, share one descale: one register fewer, which
    // keeps head dim 64 with three consumer warpgroups free of spills.
    float q = 1.f;
    float k_next = 1.f, v_next = 1.f;  // of the block the softmax takes next
    float unit = 1.f;

    __device__ Descales(const FwdParams& p, const Tile& tile, int row0, int n_first) {
      if constexpr (kFp8) {
        const size_t q_base = (size_t(tile.batch) * p.heads_q + tile.head) * p.q_descale_blocks;
        kv_base = (tile.batch * (p.heads_q / p.group_size) + tile.head / p.group_size) * p.k_descale_blocks;
        // Rows past seqlen_q are computed but never stored; any finite descale does for them.
        q = __ldg(p.q_descale + q_base + min(row0, p.seqlen_q - 1) / p.q_descale_rows);
        load(p, n_first);
        unit = v_next;
      }
    }
    __device__ void load(const FwdParams& p, int n) {
      const int block = max(n, 0) * BlockN / p.k_descale_rows;  // past the last block: any valid one
      k_next = __ldg(p.k_descale + kv_base + block);
      v_next = __ldg(p.v_descale + kv_base + block);
    }
    __device__ float score_scale(const FwdParams& p) const { return p.scale_log2 * (kFp8 ? q * k_next : 1.f); }

    // P's factor for the next block (log2 of it, and the row sum's 1 / factor) and the change of
    // O's unit, folded into the rescale the softmax returns.
    struct BlockUnits {
      float p_log2 = 0.f, sum_scale = 1.f, o_ratio = 1.f;
    };
    __device__ BlockUnits enter_block() {
      BlockUnits b;
      if constexpr (kFp8) {
        constexpr uint32_t kExp = 0x7f800000, kMant = 0x007fffff;
        const uint32_t u = __float_as_uint(unit), v = __float_as_uint(v_next);
        // Sign and exponent together: descales of opposite signs never share a unit.
        const int shift = int(v >> 23) - int(u >> 23);
        if ((u & kExp) != 0 && shift >= 0 && shift <= kMaxPShift) {
          const uint32_t v_mant = v & kMant;
          if ((u & kMant) != v_mant)
            b.o_ratio = __uint_as_float((u & kMant) | 0x3f800000) / __uint_as_float(v_mant | 0x3f800000);
          unit = __uint_as_float((u & ~kMant) | v_mant);
          b.p_log2 = float(shift);
          b.sum_scale = __uint_as_float(uint32_t(127 - shift) << 23);
        } else {
          b.o_ratio = unit / v_next;
          unit = v_next;
        }
      }
      return b;
    }
    __device__ void next_block(const FwdParams& p, int n) {
      if constexpr (kFp8) load(p, n - 1);
    }
    __device__ void to_output_units(float (&inv_sum)[2]) const {
      inv_sum[0] *= unit;
      inv_sum[1] *= unit;
    }
  };

  // Pingpong: consumer warpgroups take turns issuing their GEMMs (barrier kBarTurn + wg opens
  // warpgroup wg's turn), so one warpgroup's softmax runs while another's GEMMs hold the tensor cores.
  __device__ static void gemm_turn_begin(int wg) {
    if constexpr (Pingpong) ptx::named_barrier_sync(kBarTurn + wg, 256);
  }
  __device__ static void gemm_turn_end(int wg) {
    if constexpr (Pingpong) ptx::named_barrier_arrive(kBarTurn + (wg + 1) % ConsumerWGs, 256);
  }

  // With two Q terms the k-slices run over [Q1 | Q2] while K's wrap around: S = Q1 K^T + Q2 K^T.
  __device__ static void issue_qk(float (&s)[BlockN / 2], const Smem& smem, int wg, int stage) {
    constexpr int kStepsPerRow = kRowBytes / 32;
    constexpr int kQStepsPerRow = kQRowBytes / 32;
    uint32_t q_base = smem.q(wg, 0, ptx::kDescUnits);
    if constexpr (!kHoistQDescriptors) ptx::opaque(q_base);
    ptx::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kKSteps * Inputs::kQTerms; ++kk) {
      const int kk_k = kk % kKSteps;
      constexpr uint32_t u = ptx::kDescUnits;
      const uint32_t q_addr = q_base + ((kk / kQStepsPerRow) * 64 * kQRowBytes + (kk % kQStepsPerRow) * 32) / u;
      const uint32_t k_addr = smem.k(stage, kk_k / kStepsPerRow, u) + (kk_k % kStepsPerRow) * 32 / u;
      Wgmma<In, BlockN>::ss(s, ptx::smem_desc_kmajor<kQRowBytes>(q_addr), ptx::smem_desc_kmajor<kRowBytes>(k_addr),
                            kk > 0);
    }
    ptx::wgmma_commit();
  }

  __device__ static void issue_pv(float (&o)[HeadDim / 2], const uint32_t (&p_frag)[kPRegs], const Smem& smem,
                                  int stage) {
    ptx::wgmma_fence();
    if constexpr (kFp8) {
      // 32 keys of V^T per k-slice, kVtPanelKeys / 32 slices to a panel.
      constexpr int kSlicesPerPanel = kVtPanelKeys / 32;
#pragma unroll
      for (int kk = 0; kk < BlockN / 32; ++kk) {
        const uint32_t v_addr = smem.v(stage, kk / kSlicesPerPanel, ptx::kDescUnits) + (kk % kSlicesPerPanel) * 32 / ptx::kDescUnits;
        Wgmma<In, HeadDim>::rs(o, a_slice(p_frag, kk), ptx::smem_desc_kmajor<kVtPanelKeys>(v_addr), 1);
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < BlockN / 16; ++kk) {
        const uint32_t v_addr = smem.v(stage, 0, ptx::kDescUnits) + kk * 16 * 128 / ptx::kDescUnits;
        Wgmma<In, HeadDim>::rs_bt(o, a_slice(p_frag, kk), ptx::smem_desc_mnmajor_sw128<BlockN * 128>(v_addr), 1);
      }
    }
    ptx::wgmma_commit();
  }

  // Most blocks leave every row's factor at exactly 1 (MaxSlack, FP8 block descales aside): the
  // warp then skips the multiply, which at head dim 256 costs four times the softmax's exponentials.
  __device__ static void rescale_output(float (&o)[HeadDim / 2], const float (&rescale)[2]) {
    if (__any_sync(0xffffffff, rescale[0] != 1.f || rescale[1] != 1.f)) scale_rows(o, rescale);
  }

  // Hands a K or V stage back to the producer once every warp of this warpgroup is done with it.
  // Without a producer nothing waits on the empty barriers: the consumers' per-block barrier frees stages.
  __device__ static void release(uint32_t empty_barrier, int lane) {
    if constexpr (!WarpSpecialized) return;
    __syncwarp();
    if (lane == 0) ptx::mbarrier_arrive(empty_barrier);
  }

  __device__ static void release_q_early(const Smem& smem, int lane) {
    if constexpr (kSeparateO || kOInLastV) release(smem.q_empty(), lane);
  }

  // Stages this warpgroup's O in `buf` ChunkPanels 64-column panels at a time and stores each chunk
  // with TMA; before every chunk but the first (and before the first too when `first_waits`),
  // thread 0 waits for the previous store to have read the buffer.
  template <int ChunkPanels>
  __device__ static void store_output(const FwdParams& p, const Tile& tile, const float (&o)[HeadDim / 2],
                                      const float (&inv_sum)[2], uint8_t* buf, int wg, bool first_waits) {
    const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
#pragma unroll
    for (int c = 0; c < kOPanels / ChunkPanels; ++c) {
      if (c > 0 || first_waits) {
        if (tid == 0) ptx::tma_store_wait_read();
        ptx::named_barrier_sync(kBarEpilogue + wg, 128);
      }
      stage_output<Out, HeadDim, ChunkPanels>(o, inv_sum, buf, kOPanelBytes, warp, lane, c * ChunkPanels);
      ptx::fence_async_shared();
      ptx::named_barrier_sync(kBarEpilogue + wg, 128);
      if (tid == 0) {
        for (int panel = 0; panel < ChunkPanels; ++panel)  // O is 16-bit: 64-column panels
          ptx::tma_store_4d(&p.tm_o, ptx::smem_addr(buf) + panel * kOPanelBytes, (c * ChunkPanels + panel) * 64,
                            tile.m_block * kBlockM + wg * 64, tile.head, tile.batch);
        ptx::tma_store_commit();
      }
    }
  }

  __device__ static void consume(const FwdParams& p, const Smem& smem, uint8_t* smem_ptr, int wg) {
    const int tid = threadIdx.x % 128;
    const int warp = tid / 32;
    const int lane = tid % 32;
    PipelineState<Stages> k_ring, v_ring;
    PipelineState<Stages> load_ring;  // the baseline: the stage thread 0 loads next
    uint32_t q_phase = 0;
    // The last warpgroup opens the first turn.
    if (wg == ConsumerWGs - 1) gemm_turn_end(wg);

    const CtaTiles tiles = cta_tiles(p);
    for (int i = tiles.begin; i < tiles.end; ++i) {
      const int t = __ldg(tiles.list + i);
      // With a producer, Q is on its way: wait for it before decoding (see TileLoads::expect_q).
      // The baseline's thread 0 needs the tile to load Q at all.
      if constexpr (WarpSpecialized) ptx::mbarrier_wait(smem.q_full(), q_phase);
      const Tile tile = decode_tile(t, p);
      const BlockRange range =
          key_block_range<kBlockM, BlockN>(tile.m_block, p.seqlen_q, p.seqlen_k, p.window_left, p.window_right);
      // The baseline's loads of block n into the stage block n + 2 used, once every consumer is
      // past that block (and, for the first, past the last tile's Q and stores).
      const TileLoads loads(p, smem, tile);
      auto load_ahead = [&](int n, bool with_q) {
        if constexpr (!WarpSpecialized) {
          ptx::named_barrier_sync(kBarBlock, kThreads);
          if (threadIdx.x == 0) {
            if (with_q) {
              TileLoads::expect_q(smem);
              loads.q();
            }
            if (n >= range.n_min) {
              loads.k(load_ring.index, n);
              loads.v(load_ring.index, n);
              load_ring.advance();
            }
          }
        }
      };
      load_ahead(range.n_max - 1, true);
      if constexpr (!WarpSpecialized) ptx::mbarrier_wait(smem.q_full(), q_phase);
      const int row0 = tile.m_block * kBlockM + wg * 64 + warp * 16 + lane / 4;
      Descales descales(p, tile, row0, range.n_max - 1);
      OnlineSoftmax<MaxSlack> softmax;
      auto softmax_block = [&](float(&s)[BlockN / 2], int n, float(&rescale)[2]) {
        // Capped before the mask, which then sets -inf.
        constexpr bool capped = Inputs::kSoftcap;
        if constexpr (capped) soft_cap(s, p.softcap_scale);
        if (block_needs_mask<kBlockM, BlockN>(tile.m_block, n, p.seqlen_q, p.seqlen_k, p.window_left, p.window_right))
          apply_mask(s, row0, n * BlockN + 2 * (lane % 4), p.seqlen_q, p.seqlen_k, p.window_left, p.window_right);
        const auto units = descales.enter_block();
        softmax.step(s, capped ? p.softcap_log2 : descales.score_scale(p), units.p_log2, units.sum_scale, rescale);
        rescale[0] *= units.o_ratio;
        rescale[1] *= units.o_ratio;
        descales.next_block(p, n);
      };

      float o[HeadDim / 2];
#pragma unroll
      for (int i = 0; i < HeadDim / 2; ++i) o[i] = 0.f;
      // A tile with no key block hands Q back now only if O has a buffer of its own: without one
      // (kOInLastV included: there is no last V stage) O is staged in Q's place.
      if (kSeparateO && range.n_max <= range.n_min) release(smem.q_empty(), lane);
      softmax.reset();

      float s[BlockN / 2];
      uint32_t p_frag[kPRegs];
      float rescale[2];
      // One turn on the tensor cores: S = Q K^T on the next K stage and/or O += P V on the next V stage.
      auto issue = [&](bool qk, bool pv) {
        if (qk) ptx::mbarrier_wait(smem.k_full(k_ring.index), k_ring.phase);
        if (pv) ptx::mbarrier_wait(smem.v_full(v_ring.index), v_ring.phase);
        gemm_turn_begin(wg);
        if (qk) issue_qk(s, smem, wg, k_ring.index);
        if (pv) issue_pv(o, p_frag, smem, v_ring.index);
        gemm_turn_end(wg);
      };
      // After the wgmma wait that covers it: S is readable and its K stage (and, last, Q) free.
      auto qk_done = [&](int n) {
        ptx::fence_registers(s);
        release(smem.k_empty(k_ring.index), lane);
        k_ring.advance();
        if (n == range.n_min) release_q_early(smem, lane);
      };
      int o_stage = 0;  // kOInLastV: the last block's V stage, kept for the epilogue
      auto pv_done = [&](bool last = false) {
        ptx::fence_registers(o);
        if (kOInLastV && last) o_stage = v_ring.index;
        else release(smem.v_empty(v_ring.index), lane);
        v_ring.advance();
      };

      if constexpr (IntraOverlap) {
        // S of the next key block is issued before the softmax of the current one, and P V of the
        // current block runs under the next block's softmax: the tensor cores always have work queued.
        if (range.n_max > range.n_min) {
          int n = range.n_max - 1;
          issue(true, false);
          ptx::wgmma_wait<0>();
          qk_done(n);
          softmax_block(s, n, rescale);
          pack_p<Inputs>(s, p_frag);
          for (--n; n >= range.n_min; --n) {
            issue(true, true);
            ptx::wgmma_wait<1>();
            qk_done(n);
            softmax_block(s, n, rescale);
            ptx::wgmma_wait<0>();
            pv_done();
            // O holds P_prev V at the old row max; bring it to the new one before adding more.
            rescale_output(o, rescale);
            pack_p<Inputs>(s, p_frag);
          }
          issue(false, true);
          ptx::wgmma_wait<0>();
          pv_done(true);
        }
      } else {
        for (int n = range.n_max - 1; n >= range.n_min; --n) {
          if (n > range.n_min) load_ahead(n - 1, false);
          issue(true, false);
          ptx::wgmma_wait<0>();
          qk_done(n);
          softmax_block(s, n, rescale);
          rescale_output(o, rescale);
          pack_p<Inputs>(s, p_frag);
          issue(false, true);
          ptx::wgmma_wait<0>();
          pv_done(n == range.n_min);
        }
      }

      float inv_sum[2], lse[2];
      softmax.finish(inv_sum, lse);
      descales.to_output_units(inv_sum);
      if (lane % 4 == 0) {
        float* lse_row = p.lse + (size_t(tile.batch) * p.heads_q + tile.head) * p.seqlen_q;
        if (row0 < p.seqlen_q) lse_row[row0] = lse[0];
        if (row0 + 8 < p.seqlen_q) lse_row[row0 + 8] = lse[1];
      }

      if (kOInLastV && range.n_max > range.n_min) {
        // Every warpgroup's last P V must be done reading the stage before any O lands in it.
        ptx::named_barrier_sync(kBarTileEnd, 128 * ConsumerWGs);
        uint8_t* staging = smem_ptr + kOffV + o_stage * kVBytes + wg * kOVChunkPanels * kOPanelBytes;
        store_output<kOVChunkPanels>(p, tile, o, inv_sum, staging, wg, false);
        if (tid == 0) ptx::tma_store_wait_read();
        ptx::named_barrier_sync(kBarEpilogue + wg, 128);
        release(smem.v_empty(o_stage), lane);
      } else {
        uint8_t* staging = smem_ptr + kOffO + wg * kOStageBytesPerWG;
        // A chunked buffer waits for the last tile's last store before its first chunk; a whole
        // one (or the Q tile itself) is waited for right after its store.
        store_output<kOChunkPanels>(p, tile, o, inv_sum, staging, wg, kOChunks > 1);
        if (kOChunks == 1 && tid == 0) ptx::tma_store_wait_read();
        if constexpr (!kSeparateO) {
          ptx::named_barrier_sync(kBarEpilogue + wg, 128);
          release(smem.q_empty(), lane);
        }
      }
      q_phase ^= 1;
    }
    // Shared memory must outlive the last store's read of it.
    if (kOChunks > 1 && tid == 0) ptx::tma_store_wait_read();
  }
};

}  // namespace flash3
