/**
 * FP8 quantization on the GPU (kernels/quantize_fp8.cu): Hadamard rotation, block or per-tensor
 * scaling to e4m3, and the V^T layout the FP8 forward reads. Launches are queued on the default
 * stream; callers synchronize where they hand results back.
 */
import type { Tensor } from '../tensor.js';
import type { CudaContext } from './context.js';
import { QUANTIZE_CUBIN } from './kernels.js';
import { KernelModule, type KernelFunction } from './module.js';
import { packParamBlock } from './paramBlock.js';

const PARAMS_BYTES = 128;
const THREADS = 256;
/** V^T blocks are staged whole in shared memory (kMaxTransposeRows in the kernel). */
export const MAX_TRANSPOSE_ROWS = 128;
/** Keys of V^T are padded to whole chunks of the P-register order (fwd/element.cuh). */
export const VT_CHUNK = 32;

const MODES = { block: 0, amax: 1, 'use-descale': 2, copy: 3 } as const;
export type QuantizeMode = keyof typeof MODES;

export interface QuantizeLaunch {
  /** (batch, seqlen, heads, dim) on the device, dim contiguous: 16-bit, or e4m3 for 'copy'. */
  x: Tensor;
  /** Destination bytes: (batch, seqlen, heads, dim), or V^T (batch, heads, dim, seqlenPad) when transposed. */
  out: bigint;
  /** (batch, heads, blocks) float32; unused by 'copy'. */
  descale: bigint;
  blockRows: number;
  mode: QuantizeMode;
  transposed: boolean;
  /** ±1 per column for the Hadamard rotation, or null for none. */
  signs: Float64Array | null;
  /** 2: write [Q1 | Q2] rows (accuracy mode); default 1. */
  terms?: 1 | 2;
  /** Block scales rounded up to powers of two (mode 'block'). */
  powerOfTwoScales?: boolean;
}

/** V^T's padded key count: whole chunks, so the permuted order never reaches past the buffer. */
export function vtSeqlenPad(seqlen: number): number {
  return Math.ceil(seqlen / VT_CHUNK) * VT_CHUNK;
}

interface QuantizeFunctions {
  bfloat16: KernelFunction;
  float16: KernelFunction;
  float8_e4m3: KernelFunction;
  descaleAll: KernelFunction;
}

const cache = new WeakMap<CudaContext, QuantizeFunctions>();

function functions(ctx: CudaContext): QuantizeFunctions {
  let f = cache.get(ctx);
  if (!f) {
    const module = KernelModule.load(ctx, QUANTIZE_CUBIN);
    f = {
      bfloat16: module.getFunction('flash3_fp8_quantize_bf16'),
      float16: module.getFunction('flash3_fp8_quantize_fp16'),
      float8_e4m3: module.getFunction('flash3_fp8_transpose_e4m3'),
      descaleAll: module.getFunction('flash3_fp8_descale_all'),
    };
    cache.set(ctx, f);
  }
  return f;
}

export function launchQuantize(ctx: CudaContext, l: QuantizeLaunch): void {
  const [batch, seqlen, heads, dim] = l.x.shape;
  const blocks = Math.ceil(seqlen / l.blockRows);
  // Bit c of the sign words: column c is negated before the Hadamard transform.
  const signWords = new Array<number>(8).fill(0);
  l.signs?.forEach((sign, c) => {
    if (sign < 0) signWords[c >> 5] |= 1 << (c & 31);
  });
  const ints = [seqlen, heads, dim, l.blockRows, blocks, vtSeqlenPad(seqlen), MODES[l.mode], l.transposed ? 1 : 0, l.signs ? 1 : 0, l.terms ?? 1, l.powerOfTwoScales ? 1 : 0, ...signWords];
  // Layout: QuantizeParams in kernels/quantize_fp8.cu (strides are non-negative, so u64 bits = i64 bits).
  const bytes = packParamBlock(PARAMS_BYTES, [], {
    u64: [[0, l.x.devicePointer], ...l.x.strides.slice(0, 3).map((st, i): [number, bigint] => [8 + 8 * i, BigInt(st)]), [32, l.out], [40, l.descale]],
    i32: ints.map((n, i): [number, number] => [48 + 4 * i, n]),
  });
  const f = functions(ctx);
  const fn = l.mode === 'copy' ? f.float8_e4m3 : f[l.x.dtype as 'bfloat16' | 'float16'];
  fn.launch({ grid: [blocks, heads, batch], block: [THREADS, 1, 1], sharedMemBytes: 0 }, [{ kind: 'bytes', value: bytes, align: 8 }]);
}

/** Per-tensor scaling: the `count` block amaxes at `descale` become the tensor's one descale, everywhere. */
export function launchDescaleAll(ctx: CudaContext, descale: bigint, count: number): void {
  functions(ctx).descaleAll.launch({ grid: [1, 1, 1], block: [THREADS, 1, 1], sharedMemBytes: 0 }, [
    { kind: 'ptr', value: descale },
    { kind: 'i32', value: count },
  ]);
}
