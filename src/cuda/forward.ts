/**
 * Plans one forward launch: TMA descriptors over the caller's strided tensors, the params
 * struct, and the persistent grid. The plan can be launched many times (benchmarks).
 */
import { bytesPerElement } from '../dtype.js';
import { StrideError, UnsupportedError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { ProblemShape } from '../problem.js';
import { Tensor } from '../tensor.js';
import type { CudaContext, Stream } from './context.js';
import { packFwdParams, softcapTerms, FWD_PARAMS_ALIGN, type Fp8Descales } from './fwdParams.js';
import { forwardKernel, forwardVariantFor, type ForwardInputs, type ForwardKernel, type KernelElement, type Variant } from './kernels.js';
import { planSchedule } from './schedule.js';
import { encodeTensorMapTiled, type TensorMapDType } from './tensormap.js';

export interface ForwardPlan {
  /** Queues the kernel on `stream` (default stream when omitted); does not wait. */
  launch(stream?: Stream): void;
  /** Frees the plan's tile schedule on the device; queued launches still complete. */
  dispose(): void;
  grid: number;
  threads: number;
  blockM: number;
  blockN: number;
}

const TMA_ALIGN = 16;

/** TMA addresses rows by byte strides that are multiples of 16; say which tensor breaks that. */
export function checkTmaLayout(name: string, t: Tensor): void {
  const esize = bytesPerElement(t.dtype);
  const bad = t.strides.slice(0, 3).findIndex((s) => (s * esize) % TMA_ALIGN !== 0);
  if (bad >= 0 || t.devicePointer % BigInt(TMA_ALIGN) !== 0n) {
    throw new StrideError(`${name} cannot be read by the CUDA kernels: batch/seqlen/head strides must be multiples of 16 bytes and the data 16-byte aligned`, {
      param: `${name}.strides`,
      value: [...t.strides],
      fix: `pass ${name}.contiguous(), or a view into a buffer whose row pitch is a multiple of ${TMA_ALIGN / esize} elements`,
    });
  }
}

/**
 * (headdim, seqlen, heads, batch) view of a (batch, seqlen, heads, headdim) tensor; a box row is
 * one swizzle row (kernels/fwd/kernel.cuh: 128 bytes, or 64 for e4m3 at head dim 64).
 */
export function tensorMap(ctx: CudaContext, t: Tensor, boxRows: number): Uint8Array {
  const esize = bytesPerElement(t.dtype);
  const [b, s, h, d] = t.shape;
  const rowBytes = Math.min(128, d * esize);
  return encodeTensorMapTiled(ctx, {
    dtype: t.dtype as TensorMapDType,
    globalAddress: t.devicePointer,
    globalDims: [d, s, h, b],
    globalStridesBytes: [t.strides[1] * esize, t.strides[2] * esize, t.strides[0] * esize],
    boxDims: [rowBytes / esize, boxRows, 1, 1],
    swizzle: rowBytes === 128 ? '128B' : '64B',
    l2Promotion: '256B',
  });
}

/**
 * V^T of the FP8 forward, (keys padded, headdim, heads, batch) e4m3 bytes; a box is `panelKeys`
 * keys of every head-dim row, one swizzle row wide, and a key block takes one box or more.
 */
function vtTensorMap(ctx: CudaContext, vt: Fp8ValueLayout, panelKeys: number): Uint8Array {
  const { ptr, seqlenPad, headDim, heads, batch } = vt;
  return encodeTensorMapTiled(ctx, {
    dtype: 'float8_e4m3',
    globalAddress: ptr,
    globalDims: [seqlenPad, headDim, heads, batch],
    globalStridesBytes: [seqlenPad, seqlenPad * headDim, seqlenPad * headDim * heads],
    boxDims: [panelKeys, headDim, 1, 1],
    swizzle: panelKeys === 128 ? '128B' : '64B',
    l2Promotion: '256B',
  });
}

/** What the FP8 forward reads besides Q and K: V^T (src/cuda/quantize.ts) and the descales. */
export interface Fp8ForwardInputs {
  vt: Fp8ValueLayout;
  descale: Omit<Fp8Descales, 'kBlocks' | 'qBlocks'>;
}

export interface Fp8ValueLayout {
  ptr: bigint;
  seqlenPad: number;
  headDim: number;
  heads: number;
  batch: number;
}

/** A thread of the FP8 kernel holds two query rows 8 apart in a 16-row group and reads one q descale for both. */
const Q_DESCALE_ROW_MULTIPLE = 16;

/**
 * The build that runs a problem: `variant`, where 'default' is the tile table's choice for it
 * and, for FP8 inputs already quantized, for their K/V blocking (`fp8KeyRows`).
 */
export function forwardKernelFor(
  ctx: CudaContext,
  inputs: ForwardInputs,
  shape: ProblemShape,
  opts: ResolvedOptions,
  variant: Variant = 'default',
  fp8KeyRows?: number,
): ForwardKernel {
  return forwardKernel(ctx, inputs, shape.headDim, variant === 'default' ? forwardVariantFor(inputs, shape.headDim, shape.seqlenQ, { ...opts, fp8KeyRows }) : variant);
}

export function planForward(
  ctx: CudaContext,
  tensors: { q: Tensor; k: Tensor; v: Tensor | Fp8ForwardInputs; out: Tensor; lse: Tensor },
  shape: ProblemShape,
  opts: ResolvedOptions,
  variant: Variant = 'default',
): ForwardPlan {
  const { q, k, v, out, lse } = tensors;
  const fp8 = v instanceof Tensor ? null : v;
  if (fp8 && opts.softcap !== 0) {
    throw new UnsupportedError('softcap with FP8 inputs (the FP8 kernels do not soft-cap)', {
      param: 'softcap',
      value: opts.softcap,
      fix: 'pass 16-bit q, k, v, or softcap: 0',
    });
  }
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) if (t instanceof Tensor) checkTmaLayout(name, t);
  const inputs: ForwardInputs = fp8 ? { fp8: true, out: out.dtype as KernelElement, qTerms: q.shape[3] === 2 * shape.headDim ? 2 : 1 } : (shape.dtype as KernelElement);
  const kernel = forwardKernelFor(ctx, inputs, shape, opts, variant, fp8?.descale.kRows);
  if (fp8 && fp8.descale.kRows % kernel.blockN !== 0) {
    throw new UnsupportedError(`k and v are scaled per ${fp8.descale.kRows} keys, but the FP8 kernel at head dim ${shape.headDim} walks keys in blocks of ${kernel.blockN}`, {
      param: 'k.blockRows',
      value: fp8.descale.kRows,
      fix: `quantize k and v with blockRows a multiple of ${kernel.blockN} (the default, 128, is)`,
    });
  }
  if (fp8 && fp8.descale.qRows % Q_DESCALE_ROW_MULTIPLE !== 0) {
    throw new UnsupportedError(`q is scaled per ${fp8.descale.qRows} rows, but the FP8 kernel reads one q descale per ${Q_DESCALE_ROW_MULTIPLE} rows`, {
      param: 'q.blockRows',
      value: fp8.descale.qRows,
      fix: `quantize q with blockRows a multiple of ${Q_DESCALE_ROW_MULTIPLE} (the default, 128, is)`,
    });
  }
  const numMBlocks = Math.ceil(shape.seqlenQ / kernel.blockM);
  const numTiles = numMBlocks * shape.headsQ * shape.batch;
  const grid = Math.min(numTiles, ctx.multiprocessorCount * kernel.ctasPerSm);
  const schedule = planSchedule({
    numMBlocks,
    headsQ: shape.headsQ,
    batch: shape.batch,
    blockM: kernel.blockM,
    blockN: kernel.blockN,
    seqlenQ: shape.seqlenQ,
    seqlenK: shape.seqlenK,
    windowLeft: opts.windowLeft,
    windowRight: opts.windowRight,
    grid,
  });
  const scheduleBuffer = ctx.alloc(schedule.byteLength);
  ctx.upload(scheduleBuffer.ptr, schedule);
  const params = packFwdParams({
    tmQ: tensorMap(ctx, q, 64),
    tmK: tensorMap(ctx, k, kernel.blockN),
    tmV: fp8 ? vtTensorMap(ctx, fp8.vt, kernel.vtPanelKeys) : tensorMap(ctx, v as Tensor, kernel.blockN),
    tmO: tensorMap(ctx, out, 64),
    lse: lse.devicePointer,
    seqlenQ: shape.seqlenQ,
    seqlenK: shape.seqlenK,
    headsQ: shape.headsQ,
    groupSize: shape.headsQ / shape.headsKv,
    windowLeft: opts.windowLeft,
    windowRight: opts.windowRight,
    scaleLog2: opts.softmaxScale * Math.LOG2E,
    numMBlocks,
    schedule: scheduleBuffer.ptr,
    descale: fp8
      ? {
          ...fp8.descale,
          qBlocks: Math.ceil(shape.seqlenQ / fp8.descale.qRows),
          kBlocks: Math.ceil(shape.seqlenK / fp8.descale.kRows),
        }
      : undefined,
    softcap: softcapTerms(opts.softmaxScale, opts.softcap),
  });
  return {
    dispose: () => scheduleBuffer.free(),
    grid,
    threads: kernel.threads,
    blockM: kernel.blockM,
    blockN: kernel.blockN,
    launch(stream?: Stream) {
      kernel.fn.launch(
        { grid: [grid, 1, 1], block: [kernel.threads, 1, 1], sharedMemBytes: kernel.smemBytes, stream },
        [{ kind: 'bytes', value: params, align: FWD_PARAMS_ALIGN }],
      );
    },
  };
}
