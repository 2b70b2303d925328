// Backward attention, warp-specialised. One CTA per (key block, kv head, batch): K and V of the
// block are loaded once; warpgroup 0's first warp streams Q, dO and their per-row lse and
// D = rowsum(dO * O) through a ring of stages; consumer warpgroups each own 64 keys and work on
// transposed tiles (S^T = K Q^T, dP^T = V dO^T), so that P^T and dS^T come out of the accumulators
// already in the A-operand layout of dV += P^T dO and dK += dS^T Q. dS^T also goes to shared
// memory, from where dQ = dS K reads it transposed; each 64 x 64 dQ tile is added from registers
// into a float32 buffer in global memory by red.add (in deterministic mode in a fixed order of key
// blocks per tile, kept by a semaphore per tile, whose turns warpgroup 0's other warps keep). A
// tuning build converts dQ itself: warpgroup 0's second warp counts each tile's contributions in
// and queues the tiles whose last is in, and every CTA's third (and, where it fits, fourth) warp
// converts queued tiles (see keep_counts).
// dK and dV stay in registers over the query heads of the GQA group and are written once.
#pragma once
#include <cstdint>
#include <utility>

#include "../fwd/epilogue.cuh"
#include "../fwd/fragments.cuh"
#include "../fwd/pipeline.cuh"
#include "../fwd/softcap.cuh"
#include "../fwd/softmax.cuh"
#include "../ptx/bulk.cuh"
#include "../ptx/mbarrier.cuh"
#include "../ptx/shared.cuh"
#include "../ptx/stmatrix.cuh"
#include "../ptx/tma.cuh"
#include "../ptx/warpgroup.cuh"
#include "../ptx/wgmma.cuh"
#include "mask.cuh"
#include "params.cuh"
#include "prepost.cuh"

// Timing-only tuning builds that take the dQ-converting build apart (session 26; delete with the
// question of why it measured slower): FLASH3_BWD_BISECT=1 runs the default build's producer as a
// whole warp (split_roles_by_warp), as the converting build must; with FLASH3_BWD_CONVERT_DQ=1, 2
// leaves the keeper's counts out (no tile is converted: dQ is wrong) and 3 leaves the consumers'
// posts out (the keeper and converter only wait).
#ifndef FLASH3_BWD_BISECT
#define FLASH3_BWD_BISECT 0
#endif
// FLASH3_BWD_RELEASER=1: the deterministic twin passes turns on from a releaser warp (see
// post_release), a tuning build.
#ifndef FLASH3_BWD_RELEASER
#define FLASH3_BWD_RELEASER 0
#endif
namespace flash3 {

// `Schedule`: see kHandoff below; `OverlapGrads`: see key_gradients; `Softcap`: soft-capped scores
// (fwd/softcap.cuh), a build of its own like the forward's (the cap's code behind a branch not taken
// cost the uncapped backward ~10%); `Deterministic`: dQ's contributions in a fixed order (see
// keep_turns), also a build of its own (its turn keepers made the default mode 3-8% slower at d=128);
// `Persistent`: one CTA per SM takes the (key block, kv head, batch) items in turn from a counter
// (see produce), and loads each item's K and V while the consumers still run the last one's epilogue;
// default mode only (deterministic, its producer warp spilled 4-28 B in its 24 registers);
// `ConvertsDq`: the kernel writes dQ itself, where the default mode's builds ran a conversion pass
// after it (see keep_counts; deterministic mode keeps the pass, its keepers keep turns).
template <typename T, int HeadDim, int ConsumerWGs, int Stages, int Schedule, bool OverlapGrads, bool Softcap,
          bool Deterministic, bool Persistent = false, bool ConvertsDq = false>
struct BwdKernel {
  static constexpr int kBlockM = 64;                 // query rows per step
  static constexpr int kChunk = HeadDim < 128 ? HeadDim : 128;  // dK/dV/dQ columns per pass
  // Two warpgroups at head dim 256 split the columns instead of the keys: both take the CTA's 64
  // keys and compute the same S^T and dP^T, and each runs one 128-column pass (dK, dV, dQ) side by
  // side with the other, where one warpgroup ran the two passes in turn.
  static constexpr bool kSplitColumns = ConsumerWGs > 1 && HeadDim / kChunk == ConsumerWGs;
  static constexpr int kKeyGroups = kSplitColumns ? 1 : ConsumerWGs;  // warpgroups along the keys
  static constexpr int kBlockN = 64 * kKeyGroups;    // keys per CTA
  static constexpr int kPasses = kSplitColumns ? 1 : HeadDim / kChunk;  // passes each warpgroup runs
  static constexpr int kChunkPanels = kChunk / 64;
  static constexpr int kPanels = HeadDim / 64;
  static constexpr int kThreads = 128 * (ConsumerWGs + 1);
  static constexpr int kConsumerThreads = 128 * ConsumerWGs;
  // setmaxnreg only moves registers within what the CTA got at launch (kThreads x the kernel's
  // count, which launch bounds cap at 168 for 384 threads); asking for more stalls the consumers'
  // setmaxnreg.inc forever. With one consumer warpgroup there is room to spare.
  static constexpr int kLaunchRegs = (65536 / kThreads) / 8 * 8 < 248 ? (65536 / kThreads) / 8 * 8 : 248;
  static constexpr int kProducerRegs = ConsumerWGs == 1 ? 40 : 24;
  static constexpr int kConsumerRegs = ConsumerWGs == 1 ? 248 : 240;
  static_assert(kProducerRegs + ConsumerWGs * kConsumerRegs <= (ConsumerWGs + 1) * kLaunchRegs, "register split");

  static constexpr int kKVBytes = kBlockN * HeadDim * 2;
  static constexpr int kQBytes = kBlockM * HeadDim * 2;
  static constexpr int kDsBytes = kBlockN * kBlockM * 2;  // one dS^T buffer: kBlockN rows of 128 B
  static constexpr int kRowBytes = kBlockM * 4;           // lse or D of one query block
  static constexpr int kDqTileBytes = 64 * 64 * 4;        // one float32 dQ tile, as the accumulator holds it
  // dQ tiles a warpgroup adds per step: all panels of its pass with one warpgroup or split
  // columns, else at most one. They go from registers to global memory by red.add (session 8:
  // 3-9% faster at d=64 and 1-4% at d=128 than staging each in shared memory for one bulk
  // reduction, deterministic mode 13-25% at d=64), in deterministic mode after one semaphore turn
  // per warpgroup and step.
  static constexpr bool kAllPieces = ConsumerWGs == 1 || kSplitColumns;
  static constexpr int kPiecesPerStep = kAllPieces ? kChunkPanels : 1;
  // Schedule (FLASH3_BWD_SCHEDULE for tuning builds): 0 steps in order with a barrier of both
  // warpgroups each step; 1 handoff through mbarriers with dQ a step late, where each of two
  // warpgroups owns one dQ piece a step; 2 that with turns for S^T and dP^T. The handoff keeps a
  // third dS^T buffer, so that a warpgroup rarely waits for the other's dQ before writing its next.
  static constexpr bool kHandoff = Schedule >= 1 && ConsumerWGs == 2 && kChunkPanels == ConsumerWGs && !kSplitColumns;
  static constexpr bool kTurns = Schedule == 2;
  static constexpr int kDsBuffers = kHandoff ? 3 : 2;

  // Shared memory: [K][V][stages x (Q, dO)][dS^T x kDsBuffers][stages x (lse, D)]
  // [barriers]. dS^T has two or three buffers so a warpgroup can write the next step's while the
  // other still reads this one's; at the end of a pass the same bytes stage dV and dK for their stores.
  static constexpr int kOffK = 0;
  static constexpr int kOffV = kKVBytes;
  static constexpr int kOffStages = 2 * kKVBytes;
  static constexpr int kOffDs = kOffStages + Stages * 2 * kQBytes;
  static constexpr int kOffRows = kOffDs + kDsBuffers * kDsBytes;
  static constexpr int kOffBarriers = kOffRows + Stages * 2 * kRowBytes;
  // Deterministic builds' turns, per consumer warpgroup: turn_request, turn_ready, adds_done
  // mbarriers and a slot with the requested (tile, rank) after the barriers (see keep_turns).
  static constexpr int kTurnBarriers = Deterministic ? 3 * ConsumerWGs : 0;
  // Persistent builds: kv_empty (the consumers are done with the item's K and V), item_full (the
  // producer has written the next item into the item slot) and, where the dK/dV staging lies in the
  // Q/dO stages (split columns), staging_free (the item's epilogue has stored it).
  static constexpr int kItemBarriers = Persistent ? 3 : 0;
  // Builds that convert dQ (the producer warpgroup's warps 1 and 2 are idle in the default mode):
  // a ring of kConvertSlots slots from the consumers to the keeper, each with a posted mbarrier
  // (the consumers' adds of an item are issued; the slot names the item) and a taken one (the
  // keeper has read the slot); keeper_done (the keeper has queued its last tile, see
  // convert_tiles); and a 16 KiB buffer per converter warp through which it reads a dQ tile.
  // Warps 2 and 3 both convert where their buffers fit (not beside d=256's 208 KiB).
  static constexpr int kConvertSlots = 2;
  static constexpr int kConvertBarriers = ConvertsDq ? 2 * kConvertSlots + 1 : 0;
  // Deterministic builds with a releaser (warp 3): the keepers hand each finished turn's tile to it
  // through a ring of kReleaseSlots (full and empty mbarriers, a slot each, and a claim counter,
  // since both keepers post into it), so that its gpu-scope release fence is off their path.
  static constexpr bool kReleaser = Deterministic && FLASH3_BWD_RELEASER != 0;
  static constexpr int kReleaseSlots = kReleaser ? 4 : 0;
  static constexpr int kBarriers =
      1 + 2 * Stages + 2 * kDsBuffers + kTurnBarriers + kItemBarriers + kConvertBarriers + 2 * kReleaseSlots;
  static constexpr int kOffTurnSlots = kOffBarriers + 8 * kBarriers;
  static constexpr int kOffItemSlot = kOffTurnSlots + (Deterministic ? 8 * ConsumerWGs : 0);
  static constexpr int kOffConvertSlots = kOffItemSlot + (Persistent ? 8 : 0);
  static constexpr int kOffConvertStaging = (kOffConvertSlots + 4 * kConvertSlots + 127) / 128 * 128;
  static constexpr int kSmemLimit = 227 * 1024;  // a CTA's opt-in shared memory on sm_90
  static constexpr int kConverters = kOffConvertStaging + 2 * kDqTileBytes + 1024 <= kSmemLimit ? 2 : 1;
  static constexpr int kOffReleaseSlots = kOffConvertSlots + (ConvertsDq ? 4 * kConvertSlots : 0);
  static constexpr int kSmemBytes =
      (ConvertsDq ? kOffConvertStaging + kConverters * kDqTileBytes : kOffReleaseSlots + 4 * (kReleaseSlots + 1)) + 1024;

  // Named barriers: 1 joins the consumer warpgroups, 2 + wg is one warpgroup's epilogue, kBarTurn + wg
  // opens its GEMM turn (kTurns).
  static constexpr int kBarConsumers = 1;
  static constexpr int kBarEpilogue = 2;
  static constexpr int kBarTurn = kBarEpilogue + ConsumerWGs;

  static_assert(HeadDim % 64 == 0 && kChunk % 64 == 0, "tile shape");
  static_assert(kSplitColumns || 2 * kDsBytes >= kBlockN * kChunk * 2, "dS buffers must hold the dK/dV staging");
  static_assert(!kSplitColumns || Stages * 2 * kQBytes >= ConsumerWGs * kBlockN * kChunk * 2,
                "the Q/dO stages must hold the dK/dV staging");
  static_assert(ConsumerWGs == 1 || kChunkPanels <= ConsumerWGs, "one dQ tile per warpgroup and step");
  static_assert(ConsumerWGs <= 3, "a turn keeper per consumer warpgroup among the producer's warps 1-3");
  static_assert(!kReleaser || ConsumerWGs <= 2, "the releaser is the warp after the keepers");
  static_assert(!(Persistent && Deterministic), "the persistent schedule is the default mode's");
  static_assert(!(ConvertsDq && Deterministic), "the deterministic mode's keepers keep turns");
  static constexpr bool kPersistent = Persistent;  // exported to the host (flash3_bwd_persistent)
  static constexpr bool kConvertsDq = ConvertsDq;  // exported (flash3_bwd_converts_dq)
  static_assert(kSmemBytes <= kSmemLimit, "shared memory");

  // Tiles' addresses in bytes (TMA, stmatrix) or, with unit = ptx::kDescUnits, in the units of wgmma
  // descriptors; every offset is a multiple of 16 bytes, so both are a base plus constants.
  struct Smem {
    uint32_t base;
    __device__ uint32_t k(int panel, uint32_t unit = 1) const {
      return base / unit + (kOffK + panel * kBlockN * 128) / unit;
    }
    __device__ uint32_t v(int panel, uint32_t unit = 1) const {
      return base / unit + (kOffV + panel * kBlockN * 128) / unit;
    }
    __device__ uint32_t q(int stage, int panel, uint32_t unit = 1) const {
      return base / unit + (kOffStages + panel * 64 * 128) / unit + stage * (2 * kQBytes / unit);
    }
    __device__ uint32_t dout(int stage, int panel, uint32_t unit = 1) const {
      return q(stage, panel, unit) + kQBytes / unit;
    }
    __device__ uint32_t ds(int buffer, uint32_t unit = 1) const {
      return base / unit + kOffDs / unit + buffer * (kDsBytes / unit);
    }
    __device__ uint32_t lse(int stage) const { return base + kOffRows + stage * 2 * kRowBytes; }
    __device__ uint32_t dpsum(int stage) const { return lse(stage) + kRowBytes; }
    __device__ uint32_t kv_full() const { return base + kOffBarriers; }
    __device__ uint32_t full(int s) const { return base + kOffBarriers + 8 * (1 + s); }
    __device__ uint32_t empty(int s) const { return base + kOffBarriers + 8 * (1 + Stages + s); }
    __device__ uint32_t ds_full(int b) const { return base + kOffBarriers + 8 * (1 + 2 * Stages + b); }
    __device__ uint32_t ds_empty(int b) const { return base + kOffBarriers + 8 * (1 + 2 * Stages + kDsBuffers + b); }
    __device__ uint32_t turn_request(int wg) const { return base + kOffBarriers + 8 * (1 + 2 * Stages + 2 * kDsBuffers + wg); }
    __device__ uint32_t turn_ready(int wg) const { return turn_request(wg) + 8 * ConsumerWGs; }
    __device__ uint32_t adds_done(int wg) const { return turn_request(wg) + 16 * ConsumerWGs; }
    __device__ uint32_t turn_slot(int wg) const { return base + kOffTurnSlots + 8 * wg; }
    __device__ uint32_t kv_empty() const { return turn_request(0) + 8 * kTurnBarriers; }
    __device__ uint32_t item_full() const { return kv_empty() + 8; }
    __device__ uint32_t staging_free() const { return kv_empty() + 16; }
    __device__ uint32_t item_slot() const { return base + kOffItemSlot; }
    __device__ uint32_t posted(int r) const { return kv_empty() + 8 * (kItemBarriers + r); }
    __device__ uint32_t taken(int r) const { return posted(r) + 8 * kConvertSlots; }
    __device__ uint32_t convert_slot(int r) const { return base + kOffConvertSlots + 4 * r; }
    __device__ uint32_t keeper_done() const { return taken(0) + 8 * kConvertSlots; }
    __device__ uint32_t convert_staging(int converter) const { return base + kOffConvertStaging + converter * kDqTileBytes; }
    __device__ uint32_t release_full(int r) const { return base + kOffBarriers + 8 * (kBarriers - 2 * kReleaseSlots + r); }
    __device__ uint32_t release_empty(int r) const { return release_full(r) + 8 * kReleaseSlots; }
    __device__ uint32_t release_slot(int r) const { return base + kOffReleaseSlots + 4 * r; }
    __device__ uint32_t release_claims() const { return release_slot(kReleaseSlots); }
  };

  struct Block {
    int n_block, head_kv, batch;
    QueryBlockRange range;
    int rotation;  // first query block visited; 0 unless p.rotate
  };

  // Which 64 keys of the CTA's block a warpgroup owns, and which dS^T buffer it writes at a step
  // (split columns: a buffer of its own, since both warpgroups write the same dS^T).
  __device__ static int key_group(int wg) { return kSplitColumns ? 0 : wg; }
  __device__ static int ds_buffer(int step, int wg) { return kSplitColumns ? wg : step & 1; }

  // Items are numbered key block fastest, then kv head, then batch: the order in which the
  // non-persistent grid's CTAs (blockIdx x, y, z) are dispatched. Persistent CTAs take the first
  // gridDim.x of them by index and the rest from p.work_counter, in that order too. In arrival
  // order the key blocks that contribute first to each dQ tile (the later ones) are dispatched
  // first, so a CTA only ever waits on CTAs dispatched before it, resident or done.
  __device__ static Block this_block(const BwdParams& p, int item) {
    Block b;
    if constexpr (Persistent) {
      const int heads_kv = p.heads_q / p.group_size;
      const int n_index = item % p.num_n_blocks;
      b = {p.arrival_order ? p.num_n_blocks - 1 - n_index : n_index, item / p.num_n_blocks % heads_kv,
           item / p.num_n_blocks / heads_kv, {}, 0};
    } else {
      b = {p.arrival_order ? int(gridDim.x) - 1 - int(blockIdx.x) : int(blockIdx.x), int(blockIdx.y), int(blockIdx.z), {}, 0};
    }
    b.range = query_block_range<kBlockM, kBlockN>(b.n_block, p.seqlen_q, p.seqlen_k, p.window_left, p.window_right);
    // Unmasked, every key block visits every query block: starting each at its own offset keeps
    // the CTAs of a head on different dQ rows (fewer collisions; no waiting in deterministic mode).
    if (p.rotate) {
      const RotationGroup g = rotation_group(b.n_block, p);
      b.rotation = int((long long)(b.n_block - g.first) * p.num_m_blocks / g.size);
    }
    return b;
  }

  // Rotated key blocks form groups of p.rotate consecutive ones (the last may be smaller), each
  // spreading its starts over the query blocks; one group per head unless deterministic mode needs
  // groups that fit the GPU at once (see dq_rank).
  struct RotationGroup {
    int first, size;
  };
  __device__ static RotationGroup rotation_group(int n_block, const BwdParams& p) {
    const int first = n_block / p.rotate * p.rotate;
    return {first, min(p.rotate, p.num_n_blocks - first)};
  }

  __device__ static int visit(const Block& b, int t, const BwdParams& p) {
    const int m = b.range.m_min + b.rotation + t;
    return m < b.range.m_max ? m : m - (b.range.m_max - b.range.m_min);
  }

  // Position of this key block among the contributors to a dQ tile of query block m. In
  // deterministic mode the tile takes contributions in this order, which the host picks as the
  // order in which the CTAs of a head reach m: rotated, group by group, and within a group by
  // arrival step (the CTA whose offset is nearest below m first; it waits on CTAs of its group with
  // higher and lower indices, so the host makes a group no larger than the GPU holds at once: the
  // CTAs it waits on are then earlier groups' or its own group's, which gets dispatched whole as
  // earlier CTAs finish); under a mask by descending key block (later key blocks start at later
  // query blocks, so they get to m in fewer steps; dispatched in that order, see this_block).
  __device__ static int dq_rank(const Block& b, int m, const BwdParams& p) {
    if (p.rotate) {
      const RotationGroup g = rotation_group(b.n_block, p);
      // 32 bits suffice: deterministic mode makes a group no larger than the GPU's SM count.
      const int started = min(g.size, int((unsigned(m + 1) * g.size + p.num_m_blocks - 1) / unsigned(p.num_m_blocks)));
      return g.first + (started - 1 - (b.n_block - g.first) + g.size) % g.size;
    }
    const BlockRange keys =
        key_block_range<kBlockM, kBlockN>(m, p.seqlen_q, p.seqlen_k, p.window_left, p.window_right);
    return keys.n_max - 1 - b.n_block;
  }

  __device__ static void run(const BwdParams& p) {
    extern __shared__ __align__(1024) uint8_t smem_raw[];
    uint8_t* smem_ptr = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
    const Smem smem{ptx::smem_addr(smem_ptr)};
    if (threadIdx.x == 0) {
      ptx::mbarrier_init(smem.kv_full(), 1);
      for (int s = 0; s < Stages; ++s) {
        ptx::mbarrier_init(smem.full(s), 1);
        ptx::mbarrier_init(smem.empty(s), 128 * ConsumerWGs);  // one arrival per consumer thread
      }
      for (int b = 0; b < kDsBuffers; ++b) {
        ptx::mbarrier_init(smem.ds_full(b), 128 * ConsumerWGs);
        ptx::mbarrier_init(smem.ds_empty(b), 128 * ConsumerWGs);
      }
      for (int wg = 0; wg < (Deterministic ? ConsumerWGs : 0); ++wg) {
        ptx::mbarrier_init(smem.turn_request(wg), 1);
        ptx::mbarrier_init(smem.turn_ready(wg), 1);
        ptx::mbarrier_init(smem.adds_done(wg), 128);
      }
      if constexpr (Persistent) {
        ptx::mbarrier_init(smem.kv_empty(), 128 * ConsumerWGs);
        ptx::mbarrier_init(smem.item_full(), 1);
        ptx::mbarrier_init(smem.staging_free(), 128 * ConsumerWGs);
      }
      for (int r = 0; r < (ConvertsDq ? kConvertSlots : 0); ++r) {
        ptx::mbarrier_init(smem.posted(r), kConsumerThreads);
        ptx::mbarrier_init(smem.taken(r), 1);
      }
      if constexpr (ConvertsDq) ptx::mbarrier_init(smem.keeper_done(), 1);
      for (int r = 0; r < kReleaseSlots; ++r) {
        ptx::mbarrier_init(smem.release_full(r), 1);
        ptx::mbarrier_init(smem.release_empty(r), 1);
      }
      if constexpr (kReleaser) ptx::st_shared_s32(smem.release_claims(), 0);
      ptx::fence_barrier_init();
    }
    __syncthreads();
    if constexpr (Deterministic || ConvertsDq || FLASH3_BWD_BISECT == 1) {
      ptx::split_roles_by_warp<kProducerRegs, kConsumerRegs>(
          [&](int warp) {
            if (warp == 0) {
              produce(p, smem, ptx::elect_one());
            } else if constexpr (Deterministic) {
              if (warp <= ConsumerWGs) {
                keep_turns(p, smem, warp - 1);
              } else if constexpr (kReleaser) {
                if (warp == ConsumerWGs + 1) release_turns(p, smem);
              }
            } else if constexpr (ConvertsDq) {
              if (warp == 1) keep_counts(p, smem);
              else if (warp - 2 < kConverters) convert_tiles(p, smem, smem.convert_staging(warp - 2));
            }
          },
          [&](int wg) { consume(p, smem, smem_ptr, wg); });
    } else {
      ptx::split_roles<kProducerRegs, kConsumerRegs>([&] { produce(p, smem, true); },
                                                     [&](int wg) { consume(p, smem, smem_ptr, wg); });
    }
  }

  // Run by one thread, or by a whole warp of which the `leader` lane issues. Persistent, the next
  // item is taken from the counter once this one's loads are issued, its K and V load once the
  // consumers are done with this item's (kv_empty), under this item's epilogue, and its Q and dO
  // as soon as stages free up.
  __device__ static void produce(const BwdParams& p, const Smem& smem, bool leader) {
    PipelineState<Stages> ring;
    int item = blockIdx.x;
    for (uint32_t n = 0;; ++n) {
      const Block b = this_block(p, item);
      if (leader) {
        if (n == 0) {
          ptx::tma_prefetch_descriptor(&p.tm_q);
          ptx::tma_prefetch_descriptor(&p.tm_do);
        }
        ptx::mbarrier_arrive_expect_tx(smem.kv_full(), 2 * kKVBytes);
        for (int panel = 0; panel < kPanels; ++panel) {
          ptx::tma_load_4d(smem.k(panel), &p.tm_k, smem.kv_full(), panel * 64, b.n_block * kBlockN, b.head_kv, b.batch);
          ptx::tma_load_4d(smem.v(panel), &p.tm_v, smem.kv_full(), panel * 64, b.n_block * kBlockN, b.head_kv, b.batch);
        }
      }
      if constexpr (!Persistent) {
        load_query_blocks(p, smem, b, ring, leader);
        return;
      }
      // Split columns stage dK and dV in the Q/dO stages: the last item's epilogue must be done with them.
      if (kSplitColumns && n > 0) ptx::mbarrier_wait(smem.staging_free(), (n - 1) & 1);
      load_query_blocks(p, smem, b, ring, leader);
      // The counter's round trip runs under the item's last steps.
      const int next = publish_next_item(p, smem, leader, n);
      ptx::mbarrier_wait(smem.kv_empty(), n & 1);
      if (next >= p.num_items) return;
      item = next;
    }
  }

  // The leader takes the next item from the counter (the first gridDim.x items went to the CTAs
  // by index) and writes it to the item slot; every thread of the role reads it back. The n-th
  // item_full phase carries the item after the n-th.
  __device__ static int publish_next_item(const BwdParams& p, const Smem& smem, bool leader, uint32_t n) {
    if (leader) {
      ptx::st_shared_s32(smem.item_slot(), int(gridDim.x) + ptx::fetch_add_relaxed(p.work_counter, 1));
      ptx::mbarrier_arrive(smem.item_full());
    }
    return read_next_item(smem, n);
  }
  __device__ static int read_next_item(const Smem& smem, uint32_t n) {
    ptx::mbarrier_wait(smem.item_full(), n & 1);
    return ptx::ld_shared_s32(smem.item_slot());
  }

  // Q, dO and their lse and D rows for each step of one item, into the ring of stages.
  __device__ static void load_query_blocks(const BwdParams& p, const Smem& smem, const Block& b,
                                           PipelineState<Stages>& ring, bool leader) {
    const int steps = b.range.m_max - b.range.m_min;
    const int padded = p.num_m_blocks * kBlockM;
    for (int pass = 0; pass < kPasses; ++pass) {
      for (int g = 0; g < p.group_size; ++g) {
        const int head = b.head_kv * p.group_size + g;
        const size_t row_base = (size_t(b.batch) * p.heads_q + head) * padded;
        // Where the loader shares the producer warpgroup's 24 registers with the dQ keepers, unrolled
        // it spilled 24-48 B; 4 is what the compiler picks for the other builds.
#pragma unroll(ConvertsDq ? 1 : 4)
        for (int t = 0; t < steps; ++t) {
          const int m = visit(b, t, p);
          ptx::mbarrier_wait(smem.empty(ring.index), ring.phase ^ 1);
          if (leader) {
            ptx::mbarrier_arrive_expect_tx(smem.full(ring.index), 2 * kQBytes + 2 * kRowBytes);
            for (int panel = 0; panel < kPanels; ++panel) {
              ptx::tma_load_4d(smem.q(ring.index, panel), &p.tm_q, smem.full(ring.index), panel * 64, m * kBlockM,
                               head, b.batch);
              ptx::tma_load_4d(smem.dout(ring.index, panel), &p.tm_do, smem.full(ring.index), panel * 64,
                               m * kBlockM, head, b.batch);
            }
            ptx::bulk_load(smem.lse(ring.index), p.lse_log2 + row_base + m * kBlockM, kRowBytes, smem.full(ring.index));
            ptx::bulk_load(smem.dpsum(ring.index), p.dpsum + row_base + m * kBlockM, kRowBytes, smem.full(ring.index));
          }
          ring.advance();
        }
      }
    }
  }

  // X^T = A B^T for A = this warpgroup's 64 rows of K (or V) and B = the stage's Q (or dO): both
  // K-major, contracted over the whole head dim.
  // Tiles in descriptor units (ptx::kDescUnits).
  __device__ static void issue_transposed_scores(float (&acc)[kBlockM / 2], uint32_t a_tile, uint32_t b_tile, int wg) {
    // K and V never move, so the compiler would hoist all their descriptors out of the query loop
    // into registers that dK and dV need; rebuilding them per step costs an add each.
    ptx::opaque(a_tile);
#pragma unroll
    for (int kk = 0; kk < HeadDim / 16; ++kk) {
      constexpr uint32_t u = ptx::kDescUnits;
      const uint32_t a = a_tile + ((kk / 4) * kBlockN * 128 + (kk % 4) * 32) / u + key_group(wg) * (64 * 128 / u);
      const uint32_t bb = b_tile + ((kk / 4) * 64 * 128 + (kk % 4) * 32) / u;
      Wgmma<T, kBlockM>::ss(acc, ptx::smem_desc_kmajor<128>(a), ptx::smem_desc_kmajor<128>(bb), kk > 0);
    }
  }

  // acc (64 keys x this pass's columns) += frag (keys x 64 queries) * tile (queries x columns),
  // the tile read MN-major from the stage (Q or dO); tiles in descriptor units here and below.
  __device__ static void issue_key_gradient(float (&acc)[kChunk / 2], const uint32_t (&frag)[kBlockM / 4],
                                            uint32_t tile_chunk) {
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk)
      Wgmma<T, kChunk>::rs_bt(acc, a_slice(frag, kk),
                              ptx::smem_desc_mnmajor_sw128<64 * 128>(tile_chunk + kk * 16 * 128 / ptx::kDescUnits), 1);
  }

  // dQ (64 queries x 64 columns) = dS (queries x keys) K (keys x columns): dS^T read transposed
  // from shared memory (16-bit operands allow an MN-major A), K read MN-major at one 64-column panel.
  __device__ static void issue_dq(float (&acc)[32], uint32_t ds_tile, uint32_t k_panel) {
    ptx::opaque(k_panel);
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk)
      Wgmma<T, 64>::ss_tt(acc, ptx::smem_desc_mnmajor_sw128<kDsBytes>(ds_tile + kk * 16 * 128 / ptx::kDescUnits),
                          ptx::smem_desc_mnmajor_sw128<kBlockN * 128>(k_panel + kk * 16 * 128 / ptx::kDescUnits),
                          kk > 0);
  }

  // The stage's lse and D rows were read with generic loads by every thread, and the next bulk
  // copy into the stage writes through the async proxy. An arrive releases only the arriving
  // thread's own reads, so every thread arrives (one elected lane per warp left compute-sanitizer
  // racecheck reporting write-after-read hazards), after a proxy fence.
  __device__ static void release(uint32_t empty_barrier) {
    ptx::fence_async_shared();
    ptx::mbarrier_arrive(empty_barrier);
  }

  // P^T = exp2(S^T scale_log2 - lse_log2[query]) in place of S^T (soft-capped: exp2(tanh(S^T
  // softcap_scale) softcap_log2 - lse_log2)), masked where the block needs it.
  __device__ static void probabilities(const BwdParams& p, const Block& b, const Smem& smem, int stage, int m,
                                       float (&s)[kBlockM / 2], int wg, int tid) {
    const int warp = tid / 32, lane = tid % 32;
    if constexpr (Softcap) soft_cap(s, p.softcap_scale);
    const float scale_log2 = Softcap ? p.softcap_log2 : p.scale_log2;
#pragma unroll
    for (int i = 0; i < kBlockM / 8; ++i) {
      const float2 l = ptx::ld_shared_f32x2(smem.lse(stage) + 8 * (4 * i + lane % 4));
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        s[4 * i + 2 * r] = ptx::ex2(fmaf(s[4 * i + 2 * r], scale_log2, -l.x));
        s[4 * i + 2 * r + 1] = ptx::ex2(fmaf(s[4 * i + 2 * r + 1], scale_log2, -l.y));
      }
    }
    if (block_needs_mask<kBlockM, kBlockN>(m, b.n_block, p.seqlen_q, p.seqlen_k, p.window_left, p.window_right)) {
      const int key0 = b.n_block * kBlockN + key_group(wg) * 64 + warp * 16 + lane / 4;
      mask_transposed(s, key0, m * kBlockM + 2 * (lane % 4), p.seqlen_q, p.seqlen_k, p.window_left, p.window_right);
    }
  }

  // dS^T = P^T (dP^T - D[query]) in place of dP^T, times the soft-cap's slope where capped.
  __device__ static void score_gradients(const BwdParams& p, const Smem& smem, int stage, const float (&s)[kBlockM / 2],
                                         float (&dp)[kBlockM / 2], int tid) {
    const int lane = tid % 32;
#pragma unroll
    for (int i = 0; i < kBlockM / 8; ++i) {
      const float2 d = ptx::ld_shared_f32x2(smem.dpsum(stage) + 8 * (4 * i + lane % 4));
      const float2 l = Softcap ? ptx::ld_shared_f32x2(smem.lse(stage) + 8 * (4 * i + lane % 4)) : float2{0.f, 0.f};
      float2 slope = {1.f, 1.f};
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        if constexpr (Softcap) {
          slope = {softcap_slope(s[4 * i + 2 * r], l.x, p.softcap_inv_log2),
                   softcap_slope(s[4 * i + 2 * r + 1], l.y, p.softcap_inv_log2)};
        }
        dp[4 * i + 2 * r] = s[4 * i + 2 * r] * (dp[4 * i + 2 * r] - d.x) * slope.x;
        dp[4 * i + 2 * r + 1] = s[4 * i + 2 * r + 1] * (dp[4 * i + 2 * r + 1] - d.y) * slope.y;
      }
    }
  }

  // This warpgroup's 64 rows of dS^T (at shared address `ds_tile`), in the 128-byte-swizzled
  // layout dQ's wgmma reads: each stmatrix stores two 8-column groups of the warp's 16 rows.
  __device__ static void store_ds(const uint32_t (&ds_frag)[kBlockM / 4], uint32_t ds_tile, int tid) {
    const int warp = tid / 32, lane = tid % 32;
    const int matrix = lane / 8;  // the matrix whose row this thread addresses
    const int row = 16 * warp + 8 * (matrix % 2) + lane % 8;
#pragma unroll
    for (int j = 0; j < kBlockM / 8; j += 2)
      ptx::stmatrix_x4(swizzled_chunk(ds_tile, row, j + matrix / 2, 0), ds_frag[2 * j], ds_frag[2 * j + 1],
                       ds_frag[2 * j + 2], ds_frag[2 * j + 3]);
    ptx::fence_async_shared();
  }

  // One step's S^T, dP^T, dV and dK; P^T and dS^T go to registers packed as the A fragments of
  // dV += P^T dO and dK += dS^T Q, and dS^T to `ds_tile`. With OverlapGrads the arithmetic of each
  // half runs under a GEMM still in flight: P under dP^T, dS^T under dV. dV and dK are left in
  // flight; with `turns`, S^T and dP^T are issued in this warpgroup's GEMM turn.
  __device__ static void key_gradients(const BwdParams& p, const Block& b, const Smem& smem, float (&dk)[kChunk / 2],
                                       float (&dv)[kChunk / 2], int stage, int m, int pass, uint32_t ds_tile, int wg,
                                       int tid, bool turns) {
    float s[kBlockM / 2], dp[kBlockM / 2];
    uint32_t p_frag[kBlockM / 4], ds_frag[kBlockM / 4];
    if (turns) turn_begin(wg);
    ptx::wgmma_fence();
    issue_transposed_scores(s, smem.k(0, ptx::kDescUnits), smem.q(stage, 0, ptx::kDescUnits), wg);
    if constexpr (OverlapGrads) ptx::wgmma_commit();
    issue_transposed_scores(dp, smem.v(0, ptx::kDescUnits), smem.dout(stage, 0, ptx::kDescUnits), wg);
    ptx::wgmma_commit();
    if (turns) turn_end(wg);
    if constexpr (OverlapGrads) {
      ptx::wgmma_wait<1>();
      ptx::fence_registers(s);
      probabilities(p, b, smem, stage, m, s, wg, tid);
      pack_fragments<T>(s, p_frag);
      ptx::wgmma_fence();
      issue_key_gradient(dv, p_frag, smem.dout(stage, pass * kChunkPanels, ptx::kDescUnits));
      ptx::wgmma_commit();
      ptx::wgmma_wait<1>();
      ptx::fence_registers(dp);
      score_gradients(p, smem, stage, s, dp, tid);
      pack_fragments<T>(dp, ds_frag);
      store_ds(ds_frag, ds_tile, tid);
      ptx::wgmma_fence();
    } else {
      ptx::wgmma_wait<0>();
      ptx::fence_registers(s);
      ptx::fence_registers(dp);
      probabilities(p, b, smem, stage, m, s, wg, tid);
      score_gradients(p, smem, stage, s, dp, tid);
      pack_fragments<T>(s, p_frag);
      pack_fragments<T>(dp, ds_frag);
      store_ds(ds_frag, ds_tile, tid);
      ptx::wgmma_fence();
      issue_key_gradient(dv, p_frag, smem.dout(stage, pass * kChunkPanels, ptx::kDescUnits));
    }
    issue_key_gradient(dk, ds_frag, smem.q(stage, pass * kChunkPanels, ptx::kDescUnits));
    ptx::wgmma_commit();
  }

  // The float32 dQ buffer holds 64 x 64 tiles in row-block order, as the conversion pass reads them:
  // the tiles of query head g of the GQA group start at dq_head_tiles, and query block m's
  // 64-column piece `piece` of this pass is dq_tile of that.
  __device__ static int dq_head_tiles(const BwdParams& p, const Block& b, int g) {
    return (b.batch * p.heads_q + b.head_kv * p.group_size + g) * p.num_m_blocks;
  }
  __device__ static int dq_tile(int head_tiles, int m, int pass, int piece) {
    return (head_tiles + m) * kPanels + pass * kChunkPanels + piece;
  }

  // The dQ tile `index` added from registers, each thread's four consecutive floats by one red.add:
  // the accumulator's order is thread-major per group of 4, which the conversion pass undoes.
  // One base address per thread and immediate offsets: with an address each, the eight 64-bit
  // addresses took 16 LEAs a piece, and the first register the compiler reused after the adds was
  // one of them, held until the memory pipe had taken its red (ncu, session 8: 7.9% of d=128's
  // stall samples, long scoreboard, at that one instruction).
  __device__ static void add_dq(const BwdParams& p, const float (&dq)[32], int index, int tid) {
    add_dq_groups(p.dq_accum + size_t(index) * (kDqTileBytes / 4) + 4 * tid, dq, std::make_integer_sequence<int, 8>());
  }
  template <int... I>
  __device__ static void add_dq_groups(float* base, const float (&dq)[32], std::integer_sequence<int, I...>) {
    (ptx::red_add_f32x4<I * 128 * 16>(base, dq[4 * I], dq[4 * I + 1], dq[4 * I + 2], dq[4 * I + 3]), ...);
  }

  // Deterministic mode. Each dQ tile takes its contributions in one order of key blocks (dq_rank),
  // kept by a semaphore per tile; a warpgroup adds its pieces of a step (all of them, with split
  // columns) under the turn of the first. An idle producer warp keeps each consumer warpgroup's
  // turns, so that neither the poll for a turn nor the release fence that passes it on sits in the
  // consumers' path (session 9, H100, d=128 16k: each cost ~1.1x, both 1.23x, when thread 0 did
  // them between barriers of its warpgroup). The warpgroup's thread 0 requests the turn of its next
  // piece well before the adds; all its threads wait on turn_ready, add, and arrive on adds_done.
  __device__ static void request_turn(const Smem& smem, int wg, int tile, int rank) {
    ptx::st_shared_s32x2(smem.turn_slot(wg), tile, rank);
    ptx::mbarrier_arrive(smem.turn_request(wg));
  }

  // The keeper of warpgroup wg's turns: polls the semaphore of each requested tile until the
  // contributions ranked before this one are in, opens turn_ready, and passes the turn on once
  // the warpgroup's adds are done (their arrivals, then a gpu-scope release). A request waits for
  // the previous turn's turn_ready, so one slot holds it. Run by a whole warp, whose leader lane
  // reads the slot and signals (an arrival releases only the arriving thread's own reads).
  __device__ static void keep_turns(const BwdParams& p, const Smem& smem, int wg) {
    const bool leader = ptx::elect_one();
    const int leader_lane = __ffs(__ballot_sync(0xffffffffu, leader)) - 1;
    for (uint32_t parity = 0;; parity ^= 1) {
      ptx::mbarrier_wait(smem.turn_request(wg), parity);
      int2 turn = {0, 0};
      if (leader) turn = ptx::ld_shared_s32x2(smem.turn_slot(wg));
      turn.x = __shfl_sync(0xffffffffu, turn.x, leader_lane);
      turn.y = __shfl_sync(0xffffffffu, turn.y, leader_lane);
      if (turn.x < 0) {  // the warpgroup is done
        if constexpr (kReleaser) {
          if (leader) post_release(smem, -1);
        }
        return;
      }
      int* semaphore = p.dq_counters + turn.x;
      while (ptx::load_acquire(semaphore) != turn.y) {  // (a 200 ns or 1 us sleep per poll: equal)
      }
      if (leader) ptx::mbarrier_arrive(smem.turn_ready(wg));
      ptx::mbarrier_wait(smem.adds_done(wg), parity);
      if (leader) {
        if constexpr (kReleaser) post_release(smem, turn.x);
        else ptx::red_release_add(semaphore, 1);
      }
    }
  }

  // A keeper's leader hands a tile whose turn is done (-1: its warpgroup is done) to the releaser.
  // A claim waits on its slot's release of the claim kReleaseSlots before; with two claimers at
  // most one claim each outstanding, every earlier use of the slot is then released, so the parity
  // names one phase.
  __device__ static void post_release(const Smem& smem, int tile) {
    const uint32_t i = ptx::atom_add_shared_u32(smem.release_claims(), 1);
    const int r = i % kReleaseSlots;
    ptx::mbarrier_wait(smem.release_empty(r), ((i / kReleaseSlots) & 1) ^ 1);
    ptx::st_shared_s32(smem.release_slot(r), tile);
    ptx::mbarrier_arrive(smem.release_full(r));
  }

  // The releaser, a warp whose lane 0 passes each handed turn on (a gpu-scope release, which
  // orders the warpgroup's adds, seen through the keeper's barriers, before the semaphore's
  // increment) until every keeper is done.
  __device__ static void release_turns(const BwdParams& p, const Smem& smem) {
    const int lane = threadIdx.x % 32;
    int done = 0;
    for (uint32_t i = 0; done < ConsumerWGs; ++i) {
      const int r = i % kReleaseSlots;
      const int tile =
          take_slot(smem.release_full(r), smem.release_empty(r), smem.release_slot(r), (i / kReleaseSlots) & 1, lane);
      if (tile < 0) ++done;
      else if (lane == 0) ptx::red_release_add(p.dq_counters + tile, 1);
    }
  }

  // Builds that convert dQ. Once an item's adds are all issued, every consumer thread arrives on
  // the next slot's posted barrier (thread 0 has written the item there; -1 ends the keeper), once
  // the keeper has taken the slot's previous post: all wait, since an arrival for a phase ahead of
  // the keeper's wait would make the parity ambiguous.
  __device__ static void post_item(const Smem& smem, int item, uint32_t& posts, int consumer_tid) {
    const int r = posts % kConvertSlots;
    ptx::mbarrier_wait(smem.taken(r), ((posts / kConvertSlots) & 1) ^ 1);
    if (consumer_tid == 0) ptx::st_shared_s32(smem.convert_slot(r), item);
    ptx::mbarrier_arrive(smem.posted(r));
    ++posts;
  }

  // The dQ keeper: for each posted item it counts the item's contribution to each of its dQ tiles
  // in, a decrement of the tile's counter (set by the pre-pass to the number of key blocks that
  // visit the tile), one tile per lane and all in flight at once, after a gpu-scope release fence
  // (the consumers' arrivals order their adds before it). A lane that takes a counter to zero has
  // the last contribution: after an acquire fence the tile, whose sum of every key block's adds is
  // then in L2, is queued for any CTA's converter (the fence also releases the queue's slot).
  // Counting per item rather than per step: a counter's round trip per step (with its fences) made
  // the consumers wait for the keeper (3x slower at 512, session 25). Queued for every CTA rather
  // than handed to this CTA's converter: counted per item, all of a tile's counts but the last come
  // in before the last key block's item ends, so that item's CTA took every tile of its head (512 at
  // d=128 16k) and converted them one after another (session 26's reading of the 9-37% loss).
  __device__ static void keep_counts(const BwdParams& p, const Smem& smem) {
    const int lane = threadIdx.x % 32;
    for (uint32_t k = 0;; ++k) {
      const int r = k % kConvertSlots;
      const int item = take_slot(smem.posted(r), smem.taken(r), smem.convert_slot(r), (k / kConvertSlots) & 1, lane);
      if (item < 0) break;
      const Block b = this_block(p, item);
      const int steps = max(0, b.range.m_max - b.range.m_min);
      const int tiles = steps * p.group_size * kPanels;
      // Tile i of the item: panel i % kPanels of query block m_min + i / kPanels % steps of the
      // GQA group's head i / kPanels / steps, whose tiles follow each other (dq_tile).
      const int first_tile = (dq_head_tiles(p, b, 0) + b.range.m_min) * kPanels;
      const int head_gap = (p.num_m_blocks - steps) * kPanels;
      if (FLASH3_BWD_BISECT != 2) ptx::fence_acq_rel_gpu();
#pragma unroll 1
      for (int first = 0; first < tiles; first += 32) {
        const int i = first + lane;
        int tile = -1;
        if (i < tiles) {
          tile = first_tile + i + i / (steps * kPanels) * head_gap;
          if (FLASH3_BWD_BISECT == 2 || ptx::fetch_add_relaxed(p.dq_counters + tile, -1) != 1) tile = -1;
        }
        const uint32_t last = __ballot_sync(0xffffffffu, tile >= 0);
        if (last) {
          ptx::fence_acq_rel_gpu();
          int base = 0;
          if (lane == 0) base = ptx::fetch_add_relaxed(p.dq_queue + kQueueTail, __popc(last));
          base = __shfl_sync(0xffffffffu, base, 0);
          if (tile >= 0) ptx::store_relaxed(p.dq_queue + kQueueSlots + base + __popc(last & ((1u << lane) - 1)), tile + 1);
        }
      }
    }
    if (lane == 0) ptx::mbarrier_arrive(smem.keeper_done());
  }

  // A warp takes the value in a ring's slot once `full` completes the phase of `parity`, and hands
  // the slot back on `emptied`. Lane 0 alone reads it (an arrival releases only the arriving
  // thread's reads) and passes it on.
  __device__ static int take_slot(uint32_t full, uint32_t emptied, uint32_t slot, uint32_t parity, int lane) {
    ptx::mbarrier_wait_sleeping(full, parity);
    int value = 0;
    if (lane == 0) {
      value = ptx::ld_shared_s32(slot);
      ptx::mbarrier_arrive(emptied);
    }
    return __shfl_sync(0xffffffffu, value, 0);
  }

  // p.dq_queue: the tiles whose last contribution is in, for any CTA's converter. The keepers
  // claim slots at the tail and write tile + 1 into them (0, as the pre-pass leaves them, is a
  // slot claimed but not yet written); converters claim published slots at the head.
  static constexpr int kQueueTail = 0;
  static constexpr int kQueueHead = 1;
  static constexpr int kQueueSlots = 2;

  // The converter: claims and converts queued tiles until its own CTA's keeper has queued its last
  // and no claimable tile is left. It never waits for another CTA (so no CTA waits on one not yet
  // resident): a tile queued later comes from a CTA whose own converter has not left.
  __device__ static void convert_tiles(const BwdParams& p, const Smem& smem, uint32_t staging) {
    const int lane = threadIdx.x % 32;
    for (bool keeper_done = false;;) {
      int tile = -1;
      if (lane == 0) tile = claim_queued(p.dq_queue);
      tile = __shfl_sync(0xffffffffu, tile, 0);
      if (tile >= 0) {
        __syncwarp();  // orders every lane's reads of the tile after lane 0's acquire
        convert_tile(p, staging, tile, lane);
        continue;
      }
      if (keeper_done) return;  // nothing claimable after this CTA's last tile was queued
      keeper_done = ptx::mbarrier_test(smem.keeper_done(), 0);
      if (!keeper_done) __nanosleep(500);
    }
  }

  // The tile in a slot of the queue that a keeper has claimed and no converter has, once the
  // keeper has written it (the keeper's fence released the store; the fence here acquires it), or
  // -1 if there is no such slot now.
  __device__ static int claim_queued(int* queue) {
    int head = ptx::load_relaxed(queue + kQueueHead);
    while (head < ptx::load_relaxed(queue + kQueueTail)) {
      const int seen = ptx::compare_swap_relaxed(queue + kQueueHead, head, head + 1);
      if (seen == head) {
        int value;
        while ((value = ptx::load_relaxed(queue + kQueueSlots + head)) == 0) {
        }
        ptx::fence_acq_rel_gpu();
        return value - 1;
      }
      head = seen;
    }
    return -1;
  }

  // One 64 x 64 dQ tile from the accumulator (in add_dq's order: consumer thread t's float4 g is
  // rows R and R + 8, columns 8g + 2(t % 4) and the next, R = 16(t / 32) + (t % 32) / 4) to the
  // contiguous (batch, seqlen_q, heads_q, head dim) dQ, scaled, by one warp. The warp's 24
  // registers hold one 16-byte load in flight per lane, so the tile comes through shared memory by
  // cp.async, all 16 KiB in flight at once (lane l copies and reads back float4s 32j + l, which
  // are consumer thread 32k + l's number g for j = 4g + k).
  __device__ static void convert_tile(const BwdParams& p, uint32_t staging, int tile, int lane) {
    float4* src = reinterpret_cast<float4*>(p.dq_accum) + size_t(tile) * (kDqTileBytes / 16) + lane;
    const uint32_t staged = staging + 16 * lane;
#pragma unroll
    for (int j = 0; j < 32; ++j) ptx::cp_async_l2_16(staged + 512 * j, src + 32 * j);
    ptx::cp_async_wait_all();
    const DqTile at = dq_tile_at(tile, kPanels, p.num_m_blocks, p.heads_q);
    const int pitch = p.heads_q * HeadDim;
    T* dst = static_cast<T*>(p.dq) + (size_t(at.batch) * p.seqlen_q + at.m_block * kBlockM) * pitch +
             at.head * HeadDim + at.panel * 64 + 2 * (lane % 4) + (lane / 4) * pitch;
    const int rows = p.seqlen_q - at.m_block * kBlockM - lane / 4;
    const float s = p.softmax_scale;
#pragma unroll 1
    for (int k = 0; k < 4; ++k, dst += 16 * pitch) {
      const bool low = 16 * k < rows, high = 16 * k + 8 < rows;
#pragma unroll
      for (int g = 0; g < 8; ++g) {
        const int j = 4 * g + k;
        const float4 a = ptx::ld_shared_f32x4(staged + 512 * j);
        src[32 * j] = make_float4(0.f, 0.f, 0.f, 0.f);
        if (low) store_pair(dst + 8 * g, a.x * s, a.y * s);
        if (high) store_pair(dst + 8 * pitch + 8 * g, a.z * s, a.w * s);
      }
    }
  }

  __device__ static void consume(const BwdParams& p, const Smem& smem, uint8_t* smem_ptr, int wg) {
    const int tid = threadIdx.x % 128;
    PipelineState<Stages> ring;
    int step = 0;  // over all passes and items: picks the dS buffer (and, in order, the dQ piece)
    uint32_t turn = 0;  // deterministic: parity of this warpgroup's next turn
    uint32_t posts = 0;  // converting dQ: items posted to the keeper
    int item = blockIdx.x;
    for (uint32_t n = 0;; ++n) {
      const int current = item;
      const Block b = this_block(p, item);
      const int steps = b.range.m_max - b.range.m_min;
      ptx::mbarrier_wait(smem.kv_full(), n & 1);
      if (kHandoff && kTurns && wg == 1 && n == 0) turn_end(wg);  // warpgroup 0 goes first
      for (int pass = 0; pass < kPasses; ++pass) {
        const int cols = kSplitColumns ? wg : pass;  // which 128 (or fewer) columns: the pass of the loops below
        float dk[kChunk / 2], dv[kChunk / 2];
#pragma unroll
        for (int i = 0; i < kChunk / 2; ++i) dk[i] = dv[i] = 0.f;
        if constexpr (kHandoff)
          handoff_steps(p, b, smem, dk, dv, ring, step, turn, steps, cols, wg, tid);
        else
          steps_in_order(p, b, smem, dk, dv, ring, step, turn, steps, cols, wg, tid);
        if (Persistent && pass == kPasses - 1) {
          // Past the item's last GEMM on K and V: the next item (published under this one; read
          // before the arrival, so that item_full never completes a phase ahead of this wait),
          // then K and V handed back.
          item = read_next_item(smem, n);
          ptx::mbarrier_arrive(smem.kv_empty());
        }
        epilogue(p, b, smem, smem_ptr, dk, dv, cols, wg, tid);
      }
      if constexpr (Persistent && kSplitColumns) ptx::mbarrier_arrive(smem.staging_free());
      // After the epilogue, so that a keeper behind never holds up K and V's or the stages' reuse.
      if constexpr (ConvertsDq && FLASH3_BWD_BISECT != 3) post_item(smem, current, posts, threadIdx.x - 128);
      if constexpr (!Persistent) break;
      if (item >= p.num_items) break;
    }
    if (Deterministic && tid == 0) request_turn(smem, wg, -1, 0);  // releases the keeper
    if constexpr (ConvertsDq) post_item(smem, -1, posts, threadIdx.x - 128);
  }

  // Each step in turn: S^T, dP^T, dV and dK, then (after both warpgroups' dS^T are in shared
  // memory) the dQ pieces of this warpgroup, each waited for before it is reduced.
  __device__ static void steps_in_order(const BwdParams& p, const Block& b, const Smem& smem,
                                        float (&dk)[kChunk / 2], float (&dv)[kChunk / 2], PipelineState<Stages>& ring,
                                        int& step, uint32_t& turn, int steps, int pass, int wg, int tid) {
    for (int g = 0; g < p.group_size; ++g) {
      const int head_tiles = dq_head_tiles(p, b, g);
      for (int t = 0; t < steps; ++t, ++step) {
        const int m = visit(b, t, p);
        // dQ's 64-column panels of this pass are shared out between the warpgroups, rotating with
        // the step so that a single panel (head dim 64) alternates; one warpgroup does all.
        const int first_piece = kAllPieces ? 0 : (wg - step % ConsumerWGs + ConsumerWGs) % ConsumerWGs;
        const bool takes_turn = Deterministic && first_piece < kChunkPanels;
        if (takes_turn && tid == 0) request_turn(smem, wg, dq_tile(head_tiles, m, pass, first_piece), dq_rank(b, m, p));
        const int stage = ring.index;
        ptx::mbarrier_wait(smem.full(stage), ring.phase);
        key_gradients(p, b, smem, dk, dv, stage, m, pass, smem.ds(ds_buffer(step, wg)) + key_group(wg) * 64 * 128, wg,
                      tid, false);

        // After this barrier both warpgroups' dS^T are in shared memory (split columns: this
        // warpgroup's, which only it reads).
        if constexpr (kSplitColumns) ptx::named_barrier_sync(kBarEpilogue + wg, 128);
        else ptx::named_barrier_sync(kBarConsumers, kConsumerThreads);
        // dV and dK done: the stage's Q and dO are free, and P and dS leave the registers before
        // dQ's accumulators need them.
        ptx::wgmma_wait<0>();
        ptx::fence_registers(dv);
        ptx::fence_registers(dk);
        release(smem.empty(stage));
        ring.advance();

#pragma unroll
        for (int slot = 0; slot < kPiecesPerStep; ++slot) {
          const int piece = first_piece + slot;
          if (piece >= kChunkPanels) continue;
          float dq[32];
          ptx::wgmma_fence();
          issue_dq(dq, smem.ds(ds_buffer(step, wg), ptx::kDescUnits),
                   smem.k(pass * kChunkPanels + piece, ptx::kDescUnits));
          ptx::wgmma_commit();
          if (takes_turn && slot == 0) ptx::mbarrier_wait(smem.turn_ready(wg), turn);  // while the GEMM runs
          ptx::wgmma_wait<0>();
          ptx::fence_registers(dq);
          add_dq(p, dq, dq_tile(head_tiles, m, pass, piece), tid);
        }
        if (takes_turn) {
          ptx::mbarrier_arrive(smem.adds_done(wg));
          turn ^= 1;
        }
      }
    }
  }

  // The warpgroups run free of each other (optionally taking turns for S^T and dP^T, kTurns): no
  // barrier joins them each step. dQ lags one step, after dV and dK are done (issued with them,
  // its accumulators would spill): step u reduces dQ(u-1), whose other half of dS^T the other
  // warpgroup wrote a while before. dS^T buffers hand over through mbarriers (ds_full: both halves
  // written; ds_empty: both dQ done reading).
  __device__ static void handoff_steps(const BwdParams& p, const Block& b, const Smem& smem,
                                       float (&dk)[kChunk / 2], float (&dv)[kChunk / 2], PipelineState<Stages>& ring,
                                       int& step, uint32_t& turn, int steps, int pass, int wg, int tid) {
    int prev_tile = -1;  // the dQ tile of the step before; -1 before the first step
    for (int g = 0; g < p.group_size; ++g) {
      const int head_tiles = dq_head_tiles(p, b, g);
      for (int t = 0; t < steps; ++t, ++step) {
        const int m = visit(b, t, p);
        const int stage = ring.index;
        const int buf = step % kDsBuffers;
        ptx::mbarrier_wait(smem.full(stage), ring.phase);
        ptx::mbarrier_wait(smem.ds_empty(buf), ((step / kDsBuffers) & 1) ^ 1);
        key_gradients(p, b, smem, dk, dv, stage, m, pass, smem.ds(buf) + wg * 64 * 128, wg, tid, kTurns);
        ptx::mbarrier_arrive(smem.ds_full(buf));
        ptx::wgmma_wait<0>();
        ptx::fence_registers(dv);
        ptx::fence_registers(dk);
        release(smem.empty(stage));
        ring.advance();
        if (prev_tile >= 0) lagged_dq(p, smem, turn, step - 1, prev_tile, pass, wg);
        prev_tile = dq_tile(head_tiles, m, pass, wg);
        // Requested a step before the adds (the previous turn's turn_ready is past).
        if (Deterministic && tid == 0) request_turn(smem, wg, prev_tile, dq_rank(b, m, p));
      }
    }
    if (prev_tile >= 0) lagged_dq(p, smem, turn, step - 1, prev_tile, pass, wg);
  }

  // This warpgroup's dQ piece of `step` (over all passes), once the other warpgroup's half of
  // dS^T is in, added into the float32 buffer.
  __device__ static void lagged_dq(const BwdParams& p, const Smem& smem, uint32_t& turn, int step, int tile, int pass,
                                   int wg) {
    const int tid = threadIdx.x % 128;
    const int buf = step % kDsBuffers;
    ptx::mbarrier_wait(smem.ds_full(buf), (step / kDsBuffers) & 1);
    float dq[32];
    ptx::wgmma_fence();
    issue_dq(dq, smem.ds(buf, ptx::kDescUnits), smem.k(pass * kChunkPanels + wg, ptx::kDescUnits));
    ptx::wgmma_commit();
    if (Deterministic) ptx::mbarrier_wait(smem.turn_ready(wg), turn);  // while the GEMM runs
    ptx::wgmma_wait<0>();
    ptx::fence_registers(dq);
    ptx::mbarrier_arrive(smem.ds_empty(buf));
    add_dq(p, dq, tile, tid);
    if (Deterministic) {
      ptx::mbarrier_arrive(smem.adds_done(wg));
      turn ^= 1;
    }
  }

  // Barrier kBarTurn + wg opens warpgroup wg's turn; the other warpgroup opens it after its batch.
  __device__ static void turn_begin(int wg) { ptx::named_barrier_sync(kBarTurn + wg, 256); }
  __device__ static void turn_end(int wg) { ptx::named_barrier_arrive(kBarTurn + (wg ^ 1), 256); }

  // dV then dK of this pass through the dS buffers (free once both warpgroups are past their last
  // dQ; split columns: through the Q/dO stages, free once both are past their last step), one TMA
  // store per 64-column panel of this warpgroup's 64 keys; keys past seqlen_k are clipped by the store.
  __device__ static void epilogue(const BwdParams& p, const Block& b, const Smem& smem, uint8_t* smem_ptr,
                                  const float (&dk)[kChunk / 2], const float (&dv)[kChunk / 2], int pass, int wg,
                                  int tid) {
    const int warp = tid / 32;
    const int lane = tid % 32;
    ptx::named_barrier_sync(kBarConsumers, kConsumerThreads);
    // This warpgroup's staging (panel c at staging_at(c)): its 64 rows within each panel of kBlockN
    // rows, or with split columns panels of its own in the Q/dO stages.
    auto staging_at = [&](int c) {
      return kSplitColumns ? smem.q(0, 0) + (wg * kChunkPanels + c) * kBlockN * 128
                           : smem.ds(0) + c * kBlockN * 128 + wg * 64 * 128;
    };
    uint8_t* staging = kSplitColumns ? smem_ptr + (smem.q(0, 0) - smem.base) + wg * kChunkPanels * kBlockN * 128
                                     : smem_ptr + (smem.ds(0) - smem.base) + wg * 64 * 128;
    auto store = [&](const float(&acc)[kChunk / 2], float scale, const CUtensorMap* map) {
      const float factor[2] = {scale, scale};
      stage_output<T, kChunk>(acc, factor, staging, kBlockN * 128, warp, lane);
      ptx::fence_async_shared();
      ptx::named_barrier_sync(kBarEpilogue + wg, 128);
      if (tid == 0) {
        for (int c = 0; c < kChunkPanels; ++c)
          ptx::tma_store_4d(map, staging_at(c), pass * kChunk + c * 64, b.n_block * kBlockN + key_group(wg) * 64,
                            b.head_kv, b.batch);
        ptx::tma_store_commit();
        ptx::tma_store_wait_read();
      }
      ptx::named_barrier_sync(kBarEpilogue + wg, 128);
    };
    store(dv, 1.f, &p.tm_dv);
    store(dk, p.softmax_scale, &p.tm_dk);
  }
};

}  // namespace flash3
