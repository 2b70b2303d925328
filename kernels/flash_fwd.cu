// One cubin per (input type, head dim): built with -DFLASH3_ELEMENT=bf16|fp16|e4m3 and
// -DFLASH3_HEADDIM=64|128|256 by scripts/build-kernels.mjs; e4m3 builds also take
// -DFLASH3_OUT=bf16|fp16, the output type, and -DFLASH3_Q_TERMS=2 for the accuracy mode;
// -DFLASH3_LONG_TILE builds the long-sequence tile (TileConfigLong, TileConfigFp8Long), -DFLASH3_WIDE_TILE
// the FP8 tile of the longest sequences (TileConfigFp8Wide), -DFLASH3_TALL_TILE
// the three-warpgroup tile of unmasked problems (TileConfigTall), -DFLASH3_TRIO_TILE the tile of three
// CTAs per SM for short masked problems (TileConfigTrio), -DFLASH3_SOFTCAP=1 the default
// tile with soft-capped scores (16-bit only). FLASH3_PINGPONG and
// FLASH3_INTRA_OVERLAP (default: the tile table's choice) override the schedule for the ablation,
// FLASH3_WARP_SPECIALIZED=0 builds its baseline (no producer warpgroup);
// FLASH3_BLOCK_N, FLASH3_STAGES, FLASH3_CONSUMER_WGS, FLASH3_MAX_SLACK and FLASH3_CTAS_PER_SM override the tile table
// for tuning builds. The host reads the launch shape from the exported constants (flash3_fwd_threads etc.).
#include "fwd/element.cuh"
#include "fwd/kernel.cuh"
#include "fwd/tile_config.cuh"

#if !defined(FLASH3_ELEMENT) || !defined(FLASH3_HEADDIM)
#error "build with -DFLASH3_ELEMENT=bf16|fp16|e4m3 -DFLASH3_HEADDIM=64|128|256"
#endif

#define FLASH3_bf16 __nv_bfloat16
#define FLASH3_fp16 __half
#define FLASH3_CAT(a, b) a##b
#define FLASH3_TYPE(x) FLASH3_CAT(FLASH3_, x)
#define FLASH3_IS_e4m3 1
#define FLASH3_IS(x) FLASH3_CAT(FLASH3_IS_, x)

#if FLASH3_IS(FLASH3_ELEMENT) == 1
#ifndef FLASH3_OUT
#error "e4m3 builds need -DFLASH3_OUT=bf16|fp16"
#endif
#ifndef FLASH3_Q_TERMS
#define FLASH3_Q_TERMS 1
#endif
using Inputs = flash3::Fp8Inputs<FLASH3_TYPE(FLASH3_OUT), FLASH3_Q_TERMS>;
#ifdef FLASH3_LONG_TILE
using Config = flash3::TileConfigFp8Long<FLASH3_HEADDIM>;
#elif defined(FLASH3_WIDE_TILE)
using Config = flash3::TileConfigFp8Wide<FLASH3_HEADDIM>;
#else
using Config = flash3::TileConfigFp8<FLASH3_HEADDIM>;
#endif
#elif defined(FLASH3_LONG_TILE)
using Inputs = flash3::HalfInputs<FLASH3_TYPE(FLASH3_ELEMENT)>;
using Config = flash3::TileConfigLong<FLASH3_HEADDIM>;
#elif defined(FLASH3_TALL_TILE)
using Inputs = flash3::HalfInputs<FLASH3_TYPE(FLASH3_ELEMENT)>;
using Config = flash3::TileConfigTall<FLASH3_HEADDIM>;
#elif defined(FLASH3_TRIO_TILE)
using Inputs = flash3::HalfInputs<FLASH3_TYPE(FLASH3_ELEMENT)>;
using Config = flash3::TileConfigTrio<FLASH3_HEADDIM>;
#else
#ifndef FLASH3_SOFTCAP
#define FLASH3_SOFTCAP 0
#endif
using Inputs = flash3::HalfInputs<FLASH3_TYPE(FLASH3_ELEMENT), FLASH3_SOFTCAP != 0>;
using Config = flash3::TileConfig<FLASH3_HEADDIM>;
#endif

#ifndef FLASH3_INTRA_OVERLAP
#define FLASH3_INTRA_OVERLAP Config::kIntraOverlap
#endif
#ifndef FLASH3_PINGPONG
#define FLASH3_PINGPONG Config::kPingpong
#endif
#ifndef FLASH3_BLOCK_N
#define FLASH3_BLOCK_N Config::kBlockN
#endif
#ifndef FLASH3_STAGES
#define FLASH3_STAGES Config::kStages
#endif
#ifndef FLASH3_CONSUMER_WGS
#define FLASH3_CONSUMER_WGS Config::kConsumerWarpgroups
#endif
#ifndef FLASH3_MAX_SLACK
#define FLASH3_MAX_SLACK Config::kMaxSlack
#endif
#ifndef FLASH3_CTAS_PER_SM
#define FLASH3_CTAS_PER_SM Config::kCtasPerSm
#endif
#ifndef FLASH3_WARP_SPECIALIZED
#define FLASH3_WARP_SPECIALIZED 1
#endif
using Kernel = flash3::FwdKernel<Inputs, FLASH3_HEADDIM, FLASH3_BLOCK_N, FLASH3_STAGES, FLASH3_CONSUMER_WGS,
                                 FLASH3_PINGPONG != 0, FLASH3_INTRA_OVERLAP != 0, FLASH3_MAX_SLACK, FLASH3_CTAS_PER_SM,
                                 FLASH3_WARP_SPECIALIZED != 0>;

extern "C" {
__device__ __attribute__((used)) const int flash3_fwd_threads = Kernel::kThreads;
__device__ __attribute__((used)) const int flash3_fwd_smem_bytes = Kernel::kSmemBytes;
__device__ __attribute__((used)) const int flash3_fwd_block_m = Kernel::kBlockM;
__device__ __attribute__((used)) const int flash3_fwd_block_n = FLASH3_BLOCK_N;
__device__ __attribute__((used)) const int flash3_fwd_ctas_per_sm = FLASH3_CTAS_PER_SM;
// e4m3 builds: the keys of V^T in one TMA box (16-bit builds read V as it is).
__device__ __attribute__((used)) const int flash3_fwd_vt_panel_keys = Kernel::kVtPanelKeys;

__global__ void __launch_bounds__(Kernel::kThreads, FLASH3_CTAS_PER_SM) flash3_fwd(const __grid_constant__ flash3::FwdParams p) {
  Kernel::run(p);
}
}
