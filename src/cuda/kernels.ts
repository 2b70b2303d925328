/**
 * Where the built cubins live and what each forward kernel needs at launch. The launch shape
 * (threads, shared memory, tile sizes) is read from constants compiled into the cubin, so the
 * tile table has one home: kernels/fwd/tile_config.cuh.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CudaContext } from './context.js';
import { KernelModule, type KernelFunction } from './module.js';

/** dist/kernels, next to dist/src where this module runs from. */
export const KERNEL_DIR = fileURLToPath(new URL('../../kernels/', import.meta.url));

export type KernelElement = 'bfloat16' | 'float16';
/**
 * What a forward kernel reads: 16-bit inputs (output alike), or e4m3 inputs with a 16-bit output,
 * Q in one or (accuracy mode) two terms.
 */
export type ForwardInputs = KernelElement | { fp8: true; out: KernelElement; qTerms?: 1 | 2 };
export const FORWARD_HEAD_DIMS = [64, 128, 256] as const;

/**
 * The forward tiles of kernels/fwd/tile_config.cuh, for emulating the kernels' blocking where no
 * cubin can be asked (CPU-only machines); a GPU test checks this copy against the cubins.
 */
export const FORWARD_TILES: Record<(typeof FORWARD_HEAD_DIMS)[number], { blockM: number; blockN: number }> = {
  64: { blockM: 128, blockN: 128 },
  128: { blockM: 128, blockN: 128 },
  256: { blockM: 128, blockN: 64 },
};

/** The FP8 forward's tiles (TileConfigFp8 in kernels/fwd/tile_config.cuh); K/V descale blocks must be multiples of blockN. */
export const FP8_FORWARD_TILES: Record<(typeof FORWARD_HEAD_DIMS)[number], { blockM: number; blockN: number }> = {
  64: { blockM: 128, blockN: 128 },
  128: { blockM: 128, blockN: 128 },
  256: { blockM: 128, blockN: 128 },
};

/**
 * The ablation builds of docs/perf-log.md (bf16, head dim 128): warp specialisation alone, then
 * with pingpong, with intra-warpgroup overlap, and with both. The default build uses the tile
 * table's choice (kernels/fwd/tile_config.cuh), which at head dim 128 is ws-overlap.
 */
export const ABLATION_SCHEDULES = ['ws', 'ws-pingpong', 'ws-overlap', 'ws-pingpong-overlap'] as const;
/**
 * 'default' (the tile table's choice for the problem, see forwardVariantFor), 'long', one of
 * ABLATION_SCHEDULES, or the name of a tuning build (scripts/build-kernels.mjs --extra).
 */
export type Variant = string;

/**
 * Head dims with a long-sequence build for every input kind (TileConfigLong and TileConfigFp8Long
 * in kernels/fwd/tile_config.cuh: three consumer warpgroups, block M 192), and the query length
 * from which it is used. On an H100 it measured 6-9% faster (FP8: up to 32%) from 2k, and up to
 * 10% (FP8 causal: 13%) slower at 512-1k, where 192-row blocks pad.
 */
export const LONG_TILE_HEAD_DIMS = [64] as const;
export const LONG_TILE_MIN_SEQLEN_Q = 2048;

/** The build that 'default' means for a problem: the long-sequence tile where it pays. */
export function forwardVariantFor(headDim: number, seqlenQ: number): Variant {
  const long = (LONG_TILE_HEAD_DIMS as readonly number[]).includes(headDim) && seqlenQ >= LONG_TILE_MIN_SEQLEN_Q;
  return long ? 'long' : 'default';
}

const short = (e: KernelElement) => (e === 'bfloat16' ? 'bf16' : 'fp16');

export function forwardCubinPath(inputs: ForwardInputs, headDim: number, variant: Variant = 'default'): string {
  const suffix = variant === 'default' ? '' : `_${variant}`;
  const element = typeof inputs === 'string' ? short(inputs) : `${inputs.qTerms === 2 ? 'e4m3x2' : 'e4m3'}_${short(inputs.out)}`;
  return `${KERNEL_DIR}flash_fwd_${element}_hd${headDim}${suffix}.cubin`;
}

/** The backward's cubin (pre-pass, main kernel and dQ conversion) for one element type and head dim. */
export function backwardCubinPath(element: KernelElement, headDim: number): string {
  return `${KERNEL_DIR}flash_bwd_${short(element)}_hd${headDim}.cubin`;
}

/** FP8 quantization, V^T re-layout and per-tensor descale (kernels/quantize_fp8.cu). */
export const QUANTIZE_CUBIN = `${KERNEL_DIR}quantize_fp8.cubin`;

/** The cubins that are missing, as paths; empty when the kernels are built. */
export function missingCubins(): string[] {
  const paths = [QUANTIZE_CUBIN];
  for (const out of ['bfloat16', 'float16'] as const) {
    for (const d of FORWARD_HEAD_DIMS) paths.push(forwardCubinPath(out, d), forwardCubinPath({ fp8: true, out }, d), backwardCubinPath(out, d));
    for (const d of LONG_TILE_HEAD_DIMS) {
      for (const inputs of [out, { fp8: true, out }, { fp8: true, out, qTerms: 2 }] as ForwardInputs[]) paths.push(forwardCubinPath(inputs, d, 'long'));
    }
    for (const d of FORWARD_HEAD_DIMS) paths.push(forwardCubinPath({ fp8: true, out, qTerms: 2 }, d));
  }
  return paths.filter((p) => !existsSync(p));
}

export interface ForwardKernel {
  fn: KernelFunction;
  threads: number;
  smemBytes: number;
  blockM: number;
  blockN: number;
}

const cache = new WeakMap<CudaContext, Map<string, ForwardKernel>>();

export function forwardKernel(ctx: CudaContext, inputs: ForwardInputs, headDim: number, variant: Variant = 'default'): ForwardKernel {
  let perContext = cache.get(ctx);
  if (!perContext) cache.set(ctx, (perContext = new Map()));
  const path = forwardCubinPath(inputs, headDim, variant);
  let kernel = perContext.get(path);
  if (!kernel) {
    const module = KernelModule.load(ctx, path);
    const fn = module.getFunction('flash3_fwd');
    kernel = {
      fn,
      threads: module.readGlobalInt32('flash3_fwd_threads'),
      smemBytes: module.readGlobalInt32('flash3_fwd_smem_bytes'),
      blockM: module.readGlobalInt32('flash3_fwd_block_m'),
      blockN: module.readGlobalInt32('flash3_fwd_block_n'),
    };
    fn.setMaxDynamicSharedMemory(kernel.smemBytes);
    perContext.set(path, kernel);
  }
  return kernel;
}
