/**
 * Times the CUDA forward kernel with CUDA events: warm-up launches first (module load, clocks),
 * then several repetitions of back-to-back launches; the median repetition is reported.
 */
import type { DType } from '../dtype.js';
import { Event, CudaContext } from '../cuda/context.js';
import { forwardKernelFor, planForward } from '../cuda/forward.js';
import { vtSeqlenPad } from '../cuda/quantize.js';
import { DEFAULT_BLOCK_ROWS, keyBlockRows } from '../fp8.js';
import type { Variant } from '../cuda/kernels.js';
import { resolveOptions } from '../options.js';
import { validateAttentionInputs } from '../problem.js';
import { Tensor } from '../tensor.js';
import { median, type BenchPoint } from './grid.js';
import { randn } from '../numerics/random.js';
import { encode } from '../numerics/convert.js';

export interface TimingOptions {
  warmup: number;
  iterations: number;
  repetitions: number;
}

// H100 (one run): with 3 warm-up calls and 10 x 5 timed ones, d=128 non-causal 2k-4k read 447-466
// TFLOPS; with 10 and 20 x 7 the same build read 578-587, as tune.mjs did in isolation. The GPU
// needs the longer warm-up to settle its clocks between points.
export const DEFAULT_TIMING: TimingOptions = { warmup: 10, iterations: 20, repetitions: 7 };

/**
 * Device buffers big enough for every point of a grid (the paper's grid keeps b·s·h·d fixed),
 * filled with random normals, so each point's tensors are views and nothing is re-uploaded.
 */
export class BenchBuffers {
  readonly tensors: Tensor[];
  constructor(
    readonly dtype: DType,
    readonly elements: number,
    seed: number,
  ) {
    // A random block repeated over the buffer: random, non-zero data without generating 10^8 normals in JS.
    const block = encode(randn(1 << 20, seed), dtype);
    this.tensors = [0, 1, 2].map(() => {
      const t = Tensor.empty([elements], dtype, 'cuda');
      const ctx = CudaContext.get(t.device);
      const esize = block.BYTES_PER_ELEMENT;
      for (let at = 0; at < elements; at += block.length) {
        const n = Math.min(block.length, elements - at);
        ctx.upload(t.devicePointer + BigInt(at * esize), block.subarray(0, n));
      }
      return t;
    });
  }

  dispose(): void {
    for (const t of this.tensors) t.dispose();
  }
}

/** Median milliseconds per call of `launch`: `warmup` calls, then `repetitions` timed runs of `iterations` calls. */
export function medianLaunchMs(ctx: CudaContext, launch: () => void, timing: TimingOptions): number {
  const start = new Event(ctx);
  const end = new Event(ctx);
  try {
    for (let i = 0; i < timing.warmup; i++) launch();
    ctx.synchronize();
    const samples: number[] = [];
    for (let r = 0; r < timing.repetitions; r++) {
      start.record();
      for (let i = 0; i < timing.iterations; i++) launch();
      end.record();
      samples.push(Event.elapsedMs(start, end) / timing.iterations);
    }
    return median(samples);
  } finally {
    start.destroy();
    end.destroy();
  }
}

/** One point's planned launch, ready to be timed as often as wanted; dispose() frees its tensors. */
export interface PreparedLaunch {
  launch(): void;
  dispose(): void;
}

/**
 * The forward at one point of the grid, on views of `buffers`. FP8 buffers (float8_e4m3) time the
 * FP8 kernel alone, as FA3's FP8 numbers are: the third buffer is read as V^T already in the
 * kernel's layout, and the output is bf16. The V^T re-layout (one pass over V,
 * src/cuda/quantize.ts) is not part of the time.
 */
export function prepareCudaForward(buffers: BenchBuffers, p: BenchPoint, variant: Variant = 'default', qTerms: 1 | 2 = 1): PreparedLaunch {
  const shape = [p.batch, p.seqlen, p.heads, p.headDim];
  const strides = [p.seqlen * p.heads * p.headDim, p.heads * p.headDim, p.headDim, 1];
  const [q1, k, v] = buffers.tensors.map((t) => t.view(shape, strides, 0));
  // The accuracy mode's q is (batch, seqlen, heads, 2 · headDim): [q1 | q2] (BenchBuffers sized for it).
  const q = qTerms === 2 ? buffers.tensors[0].view([p.batch, p.seqlen, p.heads, 2 * p.headDim], strides.map((x, i) => (i < 3 ? 2 * x : x)), 0) : q1;
  const fp8 = buffers.dtype === 'float8_e4m3';
  const out = Tensor.empty(shape, fp8 ? 'bfloat16' : buffers.dtype, 'cuda');
  const lse = Tensor.empty([p.batch, p.heads, p.seqlen], 'float32', 'cuda');
  const ctx = CudaContext.get(q.device);
  // Block descales that differ from block to block, as real block-quantized inputs have (with
  // equal ones the kernel would never rescale O for them); V's are powers of two, as
  // attention()'s fp8 option makes them, which the kernel folds into P without rescaling O.
  const blocks = p.batch * p.heads * Math.ceil(p.seqlen / DEFAULT_BLOCK_ROWS);
  const descaleTensor = (f: (i: number) => number) => Tensor.fromArray(Float64Array.from({ length: blocks }, (_, i) => f(i)), [blocks], 'float32').cuda();
  const descales = fp8 ? { qk: descaleTensor((i) => 1 + (i % 7) / 64), v: descaleTensor((i) => 2 ** ((i % 5) - 2)) } : null;
  const release = () => {
    for (const t of new Set([q, q1, k, v, out, lse])) t.dispose();
    descales?.qk.dispose();
    descales?.v.dispose();
  };
  try {
    const opts = resolveOptions({ causal: p.causal }, p.headDim);
    const problem = validateAttentionInputs(q1, k, v);
    // K/V descale blocks of the default's rows where the kernel's key block divides them, else of
    // that block (wider ones): never more blocks than Q's, so Q and K share one buffer.
    const blockN = fp8 ? forwardKernelFor(ctx, { fp8: true, out: 'bfloat16', qTerms }, problem, opts, variant).blockN : DEFAULT_BLOCK_ROWS;
    const kRows = keyBlockRows(blockN);
    const vInput = descales
      ? {
          vt: { ptr: v.devicePointer, seqlenPad: vtSeqlenPad(p.seqlen), headDim: p.headDim, heads: p.heads, batch: p.batch },
          descale: { q: descales.qk.devicePointer, k: descales.qk.devicePointer, v: descales.v.devicePointer, qRows: DEFAULT_BLOCK_ROWS, kRows },
        }
      : v;
    const plan = planForward(ctx, { q, k, v: vInput, out, lse }, problem, opts, variant);
    return {
      launch: () => plan.launch(),
      dispose: () => {
        plan.dispose();
        release();
      },
    };
  } catch (e) {
    release();
    throw e;
  }
}

/** Median milliseconds per forward at `p` (scripts/tune.mjs compares kernel builds with it). */
export function timeCudaForward(
  buffers: BenchBuffers,
  p: BenchPoint,
  timing: TimingOptions = DEFAULT_TIMING,
  variant: Variant = 'default',
  qTerms: 1 | 2 = 1,
): number {
  const prepared = prepareCudaForward(buffers, p, variant, qTerms);
  try {
    return medianLaunchMs(CudaContext.get(buffers.tensors[0].device), prepared.launch, timing);
  } finally {
    prepared.dispose();
  }
}
