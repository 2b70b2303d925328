// One backward cubin per (element type, head dim), built like flash_fwd.cu with
// -DFLASH3_ELEMENT=bf16|fp16 -DFLASH3_HEADDIM=64|128|256: the pre-pass, the main kernel and the
// dQ conversion. The host reads the launch shape from the exported constants. FLASH3_BWD_SCHEDULE,
// FLASH3_BWD_OVERLAP and FLASH3_BWD_STAGES override the tile table for tuning builds;
// -DFLASH3_SOFTCAP=1 builds the soft-capping backward (flash_bwd_<type>_hd<d>_softcap),
// -DFLASH3_DETERMINISTIC=1 the deterministic mode's (..._det, ..._softcap_det). FLASH3_BWD_PERSISTENT
// (the table's kPersistent) picks the persistent main kernel for the default mode;
// FLASH3_BWD_CONVERT_DQ=1 has it write dQ itself, without the conversion pass: a tuning build
// (convdq), measured 9-37% slower in session 25 (docs/perf-log.md) with each CTA converting its own
// finished tiles, since session 26 converting them from a queue shared by all CTAs (not yet run;
// its d=64 softcap build spills 4 B).
// The deterministic twin is always per item and keeps the conversion pass. FLASH3_BWD_BISECT and
// FLASH3_BWD_RELEASER: see bwd/kernel.cuh. FLASH3_BWD_PDL=1 (a tuning build, pdl) has the main
// kernel and the conversion launched to overlap the kernel before them (programmatic dependent
// launch): each waits for it on entry, so what overlaps is the launch and the CTAs' start.
#include "bwd/kernel.cuh"
#include "bwd/prepost.cuh"
#include "bwd/tile_config.cuh"
#include "ptx/griddep.cuh"

#if !defined(FLASH3_ELEMENT) || !defined(FLASH3_HEADDIM)
#error "build with -DFLASH3_ELEMENT=bf16|fp16 -DFLASH3_HEADDIM=64|128|256"
#endif

#define FLASH3_bf16 __nv_bfloat16
#define FLASH3_fp16 __half
#define FLASH3_CAT(a, b) a##b
#define FLASH3_TYPE(x) FLASH3_CAT(FLASH3_, x)

using Element = FLASH3_TYPE(FLASH3_ELEMENT);
using Config = flash3::BwdTileConfig<FLASH3_HEADDIM>;
#ifndef FLASH3_BWD_SCHEDULE
#define FLASH3_BWD_SCHEDULE Config::kSchedule
#endif
#ifndef FLASH3_BWD_OVERLAP
#define FLASH3_BWD_OVERLAP Config::kOverlapGrads
#endif
#ifndef FLASH3_BWD_STAGES
#define FLASH3_BWD_STAGES Config::kStages
#endif
#ifndef FLASH3_SOFTCAP
#define FLASH3_SOFTCAP 0
#endif
#ifndef FLASH3_DETERMINISTIC
#define FLASH3_DETERMINISTIC 0
#endif
#ifndef FLASH3_BWD_PERSISTENT
#define FLASH3_BWD_PERSISTENT Config::kPersistent
#endif
#ifndef FLASH3_BWD_CONVERT_DQ
#define FLASH3_BWD_CONVERT_DQ 0
#endif
#ifndef FLASH3_BWD_PDL
#define FLASH3_BWD_PDL 0
#endif
constexpr bool kOverlapsLaunches = FLASH3_BWD_PDL != 0;
using Kernel = flash3::BwdKernel<Element, FLASH3_HEADDIM, Config::kConsumerWarpgroups, FLASH3_BWD_STAGES,
                                 FLASH3_BWD_SCHEDULE, FLASH3_BWD_OVERLAP != 0, FLASH3_SOFTCAP != 0,
                                 FLASH3_DETERMINISTIC != 0, FLASH3_BWD_PERSISTENT != 0 && FLASH3_DETERMINISTIC == 0,
                                 FLASH3_BWD_CONVERT_DQ != 0 && FLASH3_DETERMINISTIC == 0>;

extern "C" {
__device__ __attribute__((used)) const int flash3_bwd_threads = Kernel::kThreads;
__device__ __attribute__((used)) const int flash3_bwd_smem_bytes = Kernel::kSmemBytes;
__device__ __attribute__((used)) const int flash3_bwd_block_m = Kernel::kBlockM;
__device__ __attribute__((used)) const int flash3_bwd_block_n = Kernel::kBlockN;
// 1: launch one CTA per SM (at most one per item), which take the items from p.work_counter.
__device__ __attribute__((used)) const int flash3_bwd_persistent = Kernel::kPersistent;
// 1: the main kernel writes dQ itself (no conversion pass) and leaves the accumulator zeroed.
__device__ __attribute__((used)) const int flash3_bwd_converts_dq = Kernel::kConvertsDq;
// 1: launch the main kernel and the conversion with overlapsPrevious (they wait on entry).
__device__ __attribute__((used)) const int flash3_bwd_overlaps_launches = kOverlapsLaunches;
__device__ __attribute__((used)) const int flash3_bwd_prepare_threads = flash3::kPrepareThreads;
__device__ __attribute__((used)) const int flash3_bwd_prepare_rows_per_cta = flash3::kPrepareRowsPerCta<FLASH3_HEADDIM>;
__device__ __attribute__((used)) const int flash3_bwd_convert_threads = flash3::kConvertThreads;

__global__ void __launch_bounds__(Kernel::kThreads, 1) flash3_bwd(const __grid_constant__ flash3::BwdParams p) {
  if constexpr (kOverlapsLaunches) flash3::ptx::wait_prior_grids();
  Kernel::run(p);
}

__global__ void __launch_bounds__(flash3::kPrepareThreads) flash3_bwd_prepare(const Element* out, flash3::Strides so, const Element* dout,
                                                          flash3::Strides sdo, const float* lse, flash3::Strides slse,
                                                          float* lse_log2, float* dpsum, float* dq_accum,
                                                          Element* dq, int* counters, int counter_tiles,
                                                          int counter_count, int heads, flash3::MaskShape mask,
                                                          int padded, int rows) {
  // The main kernel waits for all of this grid anyway: it may launch as soon as this starts.
  if constexpr (kOverlapsLaunches) flash3::ptx::launch_dependents();
  flash3::prepare_rows<Element, FLASH3_HEADDIM, Kernel::kBlockN, Kernel::kConvertsDq>(
      out, so, dout, sdo, lse, slse, lse_log2, dpsum, dq_accum, dq, counters, counter_tiles, counter_count, heads, mask,
      padded, rows);
}

__global__ void __launch_bounds__(flash3::kConvertThreads) flash3_bwd_convert_dq(const float* dq_accum, Element* dq,
                                                                                float scale, int heads, int seqlen_q,
                                                                                int padded) {
  if constexpr (kOverlapsLaunches) flash3::ptx::wait_prior_grids();
  flash3::convert_dq(dq_accum, dq, scale, heads, seqlen_q, padded, FLASH3_HEADDIM);
}
}
