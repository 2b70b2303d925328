/**
 * The CUDA backward: plans the launches of one gradient computation (pre-pass, main kernel and,
 * unless the main kernel converts dQ itself, the dQ conversion) over the caller's strided tensors,
 * and runs them into freshly allocated gradients. The plan owns a workspace (laid out by
 * bwdWorkspace.ts) and can be launched many times (benchmarks).
 */
import { bytesPerElement } from '../dtype.js';
import type { BackwardResult } from '../backend.js';
import type { ResolvedOptions } from '../options.js';
import type { ProblemShape } from '../problem.js';
import { Tensor } from '../tensor.js';
import type { CudaContext, Stream } from './context.js';
import { BWD_PARAMS_ALIGN, packBwdParams } from './bwdParams.js';
import { bwdWorkspaceLayout } from './bwdWorkspace.js';
import { softcapTerms } from './fwdParams.js';
import { checkTmaLayout, tensorMap } from './forward.js';
import { backwardBuild, backwardCubinPath, isMasked, type KernelElement } from './kernels.js';
import { KernelModule, type KernelArg, type KernelFunction } from './module.js';

export interface BackwardKernel {
  main: KernelFunction;
  prepare: KernelFunction;
  convertDq: KernelFunction;
  threads: number;
  smemBytes: number;
  /** Query rows per step of the main kernel, and the padding unit of the workspace rows. */
  blockM: number;
  /** Keys per CTA. */
  blockN: number;
  /** The pre-pass's CTA size, and the workspace rows each of its CTAs covers. */
  prepareThreads: number;
  prepareRowsPerCta: number;
  /** The dQ conversion's CTA size (one CTA per 64 x 64 dQ tile). */
  convertThreads: number;
  /** The main kernel is persistent: one CTA per SM (at most one per item), items from a counter. */
  persistent: boolean;
  /**
   * The main kernel writes dQ itself (no conversion launch) and leaves the float32 accumulator
   * zeroed for the next launch, so the plan zeroes it once, before its first launch.
   */
  convertsDq: boolean;
  /**
   * The main kernel and the conversion wait for the kernel before them on entry, so they are
   * launched to overlap it (programmatic dependent launch; a tuning build).
   */
  overlapsLaunches: boolean;
}

const cache = new WeakMap<CudaContext, Map<string, BackwardKernel>>();

export function backwardKernel(ctx: CudaContext, element: KernelElement, headDim: number, variant = 'default'): BackwardKernel {
  let perContext = cache.get(ctx);
  if (!perContext) cache.set(ctx, (perContext = new Map()));
  const key = `${element}/${headDim}/${variant}`;
  let kernel = perContext.get(key);
  if (!kernel) {
    const module = KernelModule.load(ctx, backwardCubinPath(element, headDim, variant));
    kernel = {
      main: module.getFunction('flash3_bwd'),
      prepare: module.getFunction('flash3_bwd_prepare'),
      convertDq: module.getFunction('flash3_bwd_convert_dq'),
      threads: module.readGlobalInt32('flash3_bwd_threads'),
      smemBytes: module.readGlobalInt32('flash3_bwd_smem_bytes'),
      blockM: module.readGlobalInt32('flash3_bwd_block_m'),
      blockN: module.readGlobalInt32('flash3_bwd_block_n'),
      prepareThreads: module.readGlobalInt32('flash3_bwd_prepare_threads'),
      prepareRowsPerCta: module.readGlobalInt32('flash3_bwd_prepare_rows_per_cta'),
      convertThreads: module.readGlobalInt32('flash3_bwd_convert_threads'),
      persistent: module.readGlobalInt32('flash3_bwd_persistent') === 1,
      convertsDq: module.readGlobalInt32('flash3_bwd_converts_dq') === 1,
      overlapsLaunches: module.readGlobalInt32('flash3_bwd_overlaps_launches') === 1,
    };
    kernel.main.setMaxDynamicSharedMemory(kernel.smemBytes);
    perContext.set(key, kernel);
  }
  return kernel;
}

export interface BackwardTensors {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  out: Tensor;
  dout: Tensor;
  lse: Tensor;
  /** Contiguous outputs shaped like q, k, v. */
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

export interface BackwardPlan {
  /** Queues the kernels on `stream` (default stream when omitted); does not wait. */
  launch(stream?: Stream): void;
  /** Frees the workspace; queued launches still complete. */
  dispose(): void;
  grid: [number, number, number];
  blockN: number;
  /** Whether query blocks are visited from a per-CTA offset (unmasked problems). */
  rotated: boolean;
}

/** (batch, seq, head) element strides of a (batch, seq, head, d) tensor, as the kernels' Strides struct. */
function stridesArg(batch: number, seq: number, head: number): KernelArg {
  const bytes = new Uint8Array(24);
  const view = new DataView(bytes.buffer);
  [batch, seq, head].forEach((s, i) => view.setBigInt64(8 * i, BigInt(s), true));
  return { kind: 'bytes', value: bytes, align: 8 };
}

/**
 * `variant`: a tuning build of the backward (scripts/tune.mjs --backward); 'default' is the tile
 * table's build, or its softcap build when opts.softcap is set. The deterministic mode runs the
 * chosen build's deterministic twin (`<build>_det`).
 */
export function planBackward(
  ctx: CudaContext,
  t: BackwardTensors,
  shape: ProblemShape,
  opts: ResolvedOptions,
  deterministic: boolean,
  variant = 'default',
): BackwardPlan {
  // The pre-pass reads out's and dout's rows as 16-byte vectors, TMA reads the others.
  for (const [name, x] of [['q', t.q], ['k', t.k], ['v', t.v], ['dout', t.dout], ['out', t.out]] as const) checkTmaLayout(name, x);
  const kernel = backwardKernel(ctx, shape.dtype as KernelElement, shape.headDim, backwardBuild(variant, opts.softcap !== 0, deterministic));
  const { batch, headsQ, headsKv, seqlenQ, seqlenK, headDim } = shape;
  const numMBlocks = Math.ceil(seqlenQ / kernel.blockM);
  const numNBlocks = Math.ceil(seqlenK / kernel.blockN);
  const padded = numMBlocks * kernel.blockM;
  const rows = batch * headsQ * padded;
  const layout = bwdWorkspaceLayout({ rows, headDim, deterministic, persistent: kernel.persistent, convertsDq: kernel.convertsDq });
  const { dqTiles, counterCount: counters } = layout;
  const numItems = numNBlocks * headsKv * batch;
  // Deterministic mode orders each dQ tile's contributions as the CTAs arrive at it. Rotated
  // (unmasked), a CTA waits on CTAs of its rotation group with higher and lower indices, which is
  // safe when a group fits the GPU at once (one CTA per SM): a head's key blocks rotate in as few
  // groups as fit, each taking its turn at every dQ tile after the groups before it. Under a mask
  // the kernel dispatches key blocks in descending order, the order of arrival, so a CTA waits
  // only on CTAs dispatched before it, at any size.
  const unmasked = !isMasked(opts);
  const groups = deterministic ? Math.ceil(numNBlocks / ctx.multiprocessorCount) : 1;
  const rotateGroup = unmasked ? Math.ceil(numNBlocks / groups) : 0;
  const arrivalOrder = deterministic && !unmasked;

  const workspace = ctx.alloc(layout.bytes);
  const at = (offset: number | undefined) => (offset === undefined ? 0n : workspace.ptr + BigInt(offset));
  const lseLog2 = at(layout.lseLog2);
  const dpsum = at(layout.dpsum);
  const dqAccum = at(layout.dqAccum);
  const countersPtr = at(layout.counters);
  const dqCounters = layout.tileCounters > 0 ? countersPtr : 0n;
  const workCounter = at(layout.workCounter);
  const dqQueue = at(layout.dqQueue);
  const mask = new Uint8Array(16);
  const maskView = new DataView(mask.buffer);
  [seqlenQ, seqlenK, opts.windowLeft, opts.windowRight].forEach((x, i) => maskView.setInt32(4 * i, x, true));

  const params = packBwdParams({
    tmQ: tensorMap(ctx, t.q, 64),
    tmK: tensorMap(ctx, t.k, kernel.blockN),
    tmV: tensorMap(ctx, t.v, kernel.blockN),
    tmDout: tensorMap(ctx, t.dout, 64),
    tmDk: tensorMap(ctx, t.dk, 64),
    tmDv: tensorMap(ctx, t.dv, 64),
    lseLog2,
    dpsum,
    dqAccum,
    dqCounters,
    seqlenQ,
    seqlenK,
    headsQ,
    groupSize: headsQ / headsKv,
    windowLeft: opts.windowLeft,
    windowRight: opts.windowRight,
    scaleLog2: opts.softmaxScale * Math.LOG2E,
    softcap: softcapTerms(opts.softmaxScale, opts.softcap),
    softmaxScale: opts.softmaxScale,
    numMBlocks,
    numNBlocks,
    rotateGroup,
    arrivalOrder,
    workCounter,
    numItems,
    dq: kernel.convertsDq ? t.dq.devicePointer : 0n,
    dqQueue,
  });
  const grid: [number, number, number] = kernel.persistent
    ? [Math.min(numItems, ctx.multiprocessorCount), 1, 1]
    : [numNBlocks, headsKv, batch];
  const prepareArgs: KernelArg[] = [
    { kind: 'ptr', value: t.out.devicePointer },
    stridesArg(t.out.strides[0], t.out.strides[1], t.out.strides[2]),
    { kind: 'ptr', value: t.dout.devicePointer },
    stridesArg(t.dout.strides[0], t.dout.strides[1], t.dout.strides[2]),
    { kind: 'ptr', value: t.lse.devicePointer },
    stridesArg(t.lse.strides[0], t.lse.strides[2], t.lse.strides[1]),
    { kind: 'ptr', value: lseLog2 },
    { kind: 'ptr', value: dpsum },
    { kind: 'ptr', value: dqAccum },
    { kind: 'ptr', value: t.dq.devicePointer },
    { kind: 'ptr', value: counters > 0 ? countersPtr : 0n },
    { kind: 'i32', value: kernel.convertsDq ? dqTiles : 0 },
    { kind: 'i32', value: counters },
    { kind: 'i32', value: headsQ },
    { kind: 'bytes', value: mask, align: 4 },
    { kind: 'i32', value: padded },
    { kind: 'i32', value: rows },
  ];
  const convertArgs: KernelArg[] = [
    { kind: 'ptr', value: dqAccum },
    { kind: 'ptr', value: t.dq.devicePointer },
    { kind: 'f32', value: opts.softmaxScale },
    { kind: 'i32', value: headsQ },
    { kind: 'i32', value: seqlenQ },
    { kind: 'i32', value: padded },
  ];
  const prepareGrid: [number, number, number] = [Math.ceil(rows / kernel.prepareRowsPerCta), 1, 1];
  let accumulatorZeroed = !kernel.convertsDq;
  return {
    grid,
    blockN: kernel.blockN,
    rotated: rotateGroup > 0,
    dispose: () => workspace.free(),
    launch(stream?: Stream) {
      if (!accumulatorZeroed) {
        ctx.memset8(dqAccum, 0, rows * headDim * 4, stream);
        accumulatorZeroed = true;
      }
      kernel.prepare.launch({ grid: prepareGrid, block: [kernel.prepareThreads, 1, 1], sharedMemBytes: 0, stream }, prepareArgs);
      kernel.main.launch(
        { grid, block: [kernel.threads, 1, 1], sharedMemBytes: kernel.smemBytes, stream, overlapsPrevious: kernel.overlapsLaunches },
        [{ kind: 'bytes', value: params, align: BWD_PARAMS_ALIGN }],
      );
      if (!kernel.convertsDq) {
        kernel.convertDq.launch(
          { grid: [dqTiles, 1, 1], block: [kernel.convertThreads, 1, 1], sharedMemBytes: 0, stream, overlapsPrevious: kernel.overlapsLaunches },
          convertArgs,
        );
      }
    },
  };
}

/**
 * The gradients of one problem whose inputs are already on `device`: dq, dk, dv allocated and
 * poisoned with NaN, the plan launched and waited for, and the gradients returned where the
 * caller's inputs live (downloaded when those were host tensors).
 */
export function gradientsOnDevice(
  ctx: CudaContext,
  device: number,
  inputs: Omit<BackwardTensors, 'dq' | 'dk' | 'dv'>,
  shape: ProblemShape,
  opts: ResolvedOptions,
  deterministic: boolean,
): BackwardResult {
  const outputs = {
    dq: Tensor.empty(inputs.q.shape, shape.dtype, 'cuda', device),
    dk: Tensor.empty(inputs.k.shape, shape.dtype, 'cuda', device),
    dv: Tensor.empty(inputs.v.shape, shape.dtype, 'cuda', device),
  };
  const all = Object.values(outputs);
  try {
    // All-ones bytes are NaN in every float format: a gradient the kernels fail to write cannot pass for a result.
    for (const t of all) ctx.memset8(t.devicePointer, 0xff, t.numel * bytesPerElement(t.dtype));
    const plan = planBackward(ctx, { ...inputs, ...outputs }, shape, opts, deterministic);
    try {
      plan.launch();
      ctx.synchronize();
    } finally {
      plan.dispose();
    }
  } catch (e) {
    for (const t of all) t.dispose();
    throw e;
  }
  if (shape.location !== 'cpu') return outputs;
  try {
    return { dq: outputs.dq.cpu(), dk: outputs.dk.cpu(), dv: outputs.dv.cpu() };
  } finally {
    for (const t of all) t.dispose();
  }
}
