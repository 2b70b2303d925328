/**
 * Plans one forward launch: TMA descriptors over the caller's strided tensors, the params
 * struct, and the persistent grid. The plan can be launched many times (benchmarks).
 */
import { bytesPerElement } from '../dtype.js';
import { StrideError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { ProblemShape } from '../problem.js';
import type { Tensor } from '../tensor.js';
import type { CudaContext, Stream } from './context.js';
import { packFwdParams, FWD_PARAMS_ALIGN } from './fwdParams.js';
import { forwardKernel, type KernelElement, type Variant } from './kernels.js';
import { planSchedule } from './schedule.js';
import { encodeTensorMapTiled } from './tensormap.js';

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

/** (headdim, seqlen, heads, batch) view of a (batch, seqlen, heads, headdim) tensor, 64-column boxes. */
export function tensorMap(ctx: CudaContext, t: Tensor, boxRows: number): Uint8Array {
  const esize = bytesPerElement(t.dtype);
  const [b, s, h, d] = t.shape;
  return encodeTensorMapTiled(ctx, {
    dtype: t.dtype as KernelElement,
    globalAddress: t.devicePointer,
    globalDims: [d, s, h, b],
    globalStridesBytes: [t.strides[1] * esize, t.strides[2] * esize, t.strides[0] * esize],
    boxDims: [64, boxRows, 1, 1],
    swizzle: '128B',
    l2Promotion: '256B',
  });
}

export function planForward(
  ctx: CudaContext,
  tensors: { q: Tensor; k: Tensor; v: Tensor; out: Tensor; lse: Tensor },
  shape: ProblemShape,
  opts: ResolvedOptions,
  variant: Variant = 'default',
): ForwardPlan {
  const { q, k, v, out, lse } = tensors;
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) checkTmaLayout(name, t);
  const kernel = forwardKernel(ctx, shape.dtype as KernelElement, shape.headDim, variant);
  const numMBlocks = Math.ceil(shape.seqlenQ / kernel.blockM);
  const numTiles = numMBlocks * shape.headsQ * shape.batch;
  const grid = Math.min(numTiles, ctx.multiprocessorCount);
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
    tmV: tensorMap(ctx, v, kernel.blockN),
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
