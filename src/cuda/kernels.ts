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
 * The ablation builds of docs/perf-log.md (bf16, head dim 128, the 128 x 128 tile): the baseline
 * without warp specialisation (the consumers issue their own TMA loads a block ahead, a barrier of
 * every consumer per key block), warp specialisation alone, then with pingpong, with intra-warpgroup
 * overlap, and with both (the tile table's choice for this tile, kernels/fwd/tile_config.cuh).
 */
export const ABLATION_SCHEDULES = ['sync', 'ws', 'ws-pingpong', 'ws-overlap', 'ws-pingpong-overlap'] as const;
/**
 * 'default' (the tile table's choice for the problem, see forwardVariantFor), 'long', 'tall',
 * 'softcap', one of ABLATION_SCHEDULES, or the name of a tuning build (scripts/build-kernels.mjs --extra).
 */
export type Variant = string;

export interface SequenceTile {
  /** The build: 'long' (TileConfigLong, TileConfigFp8Long), 'wide' (TileConfigFp8Wide), 'tall' (TileConfigTall) or 'trio' (TileConfigTrio). */
  variant: 'long' | 'wide' | 'tall' | 'trio';
  fp8: boolean;
  headDim: number;
  /** Query rows from which the tile is used. */
  minSeqlenQ: number;
  /** Used only for problems without a mask, or only for masked ones (causal or a window); absent: for both. */
  mask?: 'unmasked' | 'masked';
  blockM: number;
  blockN: number;
}

/**
 * The builds chosen by problem size, the first that matches winning (kernels/fwd/tile_config.cuh
 * holds their measurements). The taller or wider blocks win on long sequences and lose on short
 * ones, where the blocks pad and more of them need masks; the trio tile (three CTAs per SM) wins
 * only on short masked problems. An FP8 tile runs only K and V scaled in blocks its block N divides
 * (BuildTraits.fp8KeyRows), else the next match does.
 */
export const SEQUENCE_TILES: readonly SequenceTile[] = [
  { variant: 'long', fp8: false, headDim: 64, minSeqlenQ: 2048, blockM: 192, blockN: 128 },
  { variant: 'tall', fp8: false, headDim: 64, minSeqlenQ: 512, mask: 'unmasked', blockM: 192, blockN: 128 },
  { variant: 'trio', fp8: false, headDim: 64, minSeqlenQ: 512, mask: 'masked', blockM: 64, blockN: 64 },
  { variant: 'tall', fp8: false, headDim: 128, minSeqlenQ: 2048, mask: 'unmasked', blockM: 192, blockN: 128 },
  { variant: 'long', fp8: false, headDim: 128, minSeqlenQ: 8192, blockM: 128, blockN: 176 },
  { variant: 'long', fp8: false, headDim: 256, minSeqlenQ: 2048, blockM: 128, blockN: 80 },
  { variant: 'wide', fp8: true, headDim: 64, minSeqlenQ: 16384, blockM: 192, blockN: 160 },
  { variant: 'long', fp8: true, headDim: 64, minSeqlenQ: 2048, blockM: 192, blockN: 128 },
  { variant: 'long', fp8: true, headDim: 128, minSeqlenQ: 2048, blockM: 192, blockN: 128 },
];

/** The mask of a problem as the kernels see it (ResolvedOptions and CpuProblem have it). */
export interface MaskWindow {
  windowLeft: number;
  windowRight: number;
}

/**
 * What of a problem, besides its sizes, picks the build: the mask, a soft-cap (0: none), and for
 * FP8 inputs the keys per K/V descale (absent: not yet quantized, any blocking will do).
 */
export interface BuildTraits extends MaskWindow {
  softcap?: number;
  fp8KeyRows?: number;
}

/** Whether any key is masked away (causal, or a window bounded on either side). */
export function isMasked(mask: MaskWindow): boolean {
  return mask.windowLeft >= 0 || mask.windowRight >= 0;
}

// Soft-capped problems run the default tile's softcap build, whatever their length.
function sequenceTileFor(inputs: ForwardInputs, headDim: number, seqlenQ: number, traits: BuildTraits): SequenceTile | undefined {
  if (traits.softcap) return undefined;
  const fp8 = typeof inputs !== 'string';
  const kind = isMasked(traits) ? 'masked' : 'unmasked';
  const keyRows = fp8 ? traits.fp8KeyRows : undefined;
  return SEQUENCE_TILES.find(
    (t) => t.fp8 === fp8 && t.headDim === headDim && seqlenQ >= t.minSeqlenQ && (t.mask ?? kind) === kind && (keyRows === undefined || keyRows % t.blockN === 0),
  );
}

/** The build that 'default' means for a problem: a sequence tile where one pays, or the softcap build. */
export function forwardVariantFor(inputs: ForwardInputs, headDim: number, seqlenQ: number, traits: BuildTraits): Variant {
  if (traits.softcap) return 'softcap';
  return sequenceTileFor(inputs, headDim, seqlenQ, traits)?.variant ?? 'default';
}

/** The blocking of the build that runs a problem, for emulating it on the CPU. */
export function forwardTileFor(inputs: ForwardInputs, headDim: number, seqlenQ: number, traits: BuildTraits): { blockM: number; blockN: number } {
  const tables = typeof inputs === 'string' ? FORWARD_TILES : FP8_FORWARD_TILES;
  const tile = sequenceTileFor(inputs, headDim, seqlenQ, traits);
  if (tile) return { blockM: tile.blockM, blockN: tile.blockN };
  return tables[headDim as keyof typeof tables] ?? { blockM: 128, blockN: 128 };
}

const short = (e: KernelElement) => (e === 'bfloat16' ? 'bf16' : 'fp16');

export function forwardCubinPath(inputs: ForwardInputs, headDim: number, variant: Variant = 'default'): string {
  const suffix = variant === 'default' ? '' : `_${variant}`;
  const element = typeof inputs === 'string' ? short(inputs) : `${inputs.qTerms === 2 ? 'e4m3x2' : 'e4m3'}_${short(inputs.out)}`;
  return `${KERNEL_DIR}flash_fwd_${element}_hd${headDim}${suffix}.cubin`;
}

/** The backward build for a tuning `variant` ('default': the tile table's) and mode. */
export function backwardBuild(variant: string, softcap: boolean, deterministic: boolean): string {
  const build = variant === 'default' && softcap ? 'softcap' : variant;
  if (!deterministic) return build;
  return build === 'default' ? 'det' : `${build}_det`;
}

/**
 * The backward's cubin (pre-pass, main kernel and dQ conversion) for one element type and head dim;
 * other builds: the deterministic mode's and soft-capping's (backwardBuild) and tuning builds
 * (scripts/build-kernels.mjs --extra-bwd).
 */
export function backwardCubinPath(element: KernelElement, headDim: number, variant = 'default'): string {
  const suffix = variant === 'default' ? '' : `_${variant}`;
  return `${KERNEL_DIR}flash_bwd_${short(element)}_hd${headDim}${suffix}.cubin`;
}

/** FP8 quantization, V^T re-layout and per-tensor descale (kernels/quantize_fp8.cu). */
export const QUANTIZE_CUBIN = `${KERNEL_DIR}quantize_fp8.cubin`;

/** The forward builds with one output type: 16-bit inputs, or e4m3 with a one- or two-term Q. */
export function forwardInputsFor(fp8: boolean, out: KernelElement): ForwardInputs[] {
  return fp8 ? [{ fp8: true, out }, { fp8: true, out, qTerms: 2 }] : [out];
}

/** The cubins that are missing, as paths; empty when the kernels are built. */
export function missingCubins(): string[] {
  const paths = [QUANTIZE_CUBIN];
  for (const out of ['bfloat16', 'float16'] as const) {
    for (const d of FORWARD_HEAD_DIMS) {
      for (const build of ['default', 'softcap', 'det', 'softcap_det']) paths.push(backwardCubinPath(out, d, build));
      paths.push(forwardCubinPath(out, d, 'softcap'));
      for (const inputs of [...forwardInputsFor(false, out), ...forwardInputsFor(true, out)]) paths.push(forwardCubinPath(inputs, d));
    }
    for (const t of SEQUENCE_TILES) for (const inputs of forwardInputsFor(t.fp8, out)) paths.push(forwardCubinPath(inputs, t.headDim, t.variant));
  }
  return paths.filter((p) => !existsSync(p));
}

export interface ForwardKernel {
  fn: KernelFunction;
  threads: number;
  smemBytes: number;
  blockM: number;
  blockN: number;
  /** CTAs the kernel is built to share an SM with (its persistent grid is that many per SM). */
  ctasPerSm: number;
  /** e4m3 builds: keys of V^T per TMA box (the box's swizzle row, or 128 with the last box part-used). */
  vtPanelKeys: number;
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
      ctasPerSm: module.readGlobalInt32('flash3_fwd_ctas_per_sm'),
      vtPanelKeys: module.readGlobalInt32('flash3_fwd_vt_panel_keys'),
    };
    fn.setMaxDynamicSharedMemory(kernel.smemBytes);
    perContext.set(path, kernel);
  }
  return kernel;
}
