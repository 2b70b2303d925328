/**
 * The always-available backend: float64 reference attention on the host. Every dtype decodes
 * exactly to float64, so it accepts anything the validator accepts and serves as ground truth.
 */
import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { UnsupportedError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { ProblemShape } from '../problem.js';
import { Tensor } from '../tensor.js';
import type { CpuProblem, CpuResult } from './problem.js';
import { forwardTileFor } from '../cuda/kernels.js';
import { attentionBackwardCpu } from './backward.js';
import { fp8AttentionQuantized } from './fp8.js';
import { referenceAttention } from './reference.js';

/** The CPU kernels' view of validated tensors: contiguous float64 values (exact for every dtype). */
export function cpuProblemOf(q: Tensor, k: Tensor, v: Tensor, shape: ProblemShape, opts: ResolvedOptions): CpuProblem {
  return cpuProblemOfValues(q.toFloat64Array(), k.toFloat64Array(), v.toFloat64Array(), shape, opts);
}

/** The same, from values already in float64 (e.g. the summed terms of a two-term FP8 q). */
function cpuProblemOfValues(q: Float64Array, k: Float64Array, v: Float64Array, shape: ProblemShape, opts: ResolvedOptions): CpuProblem {
  return {
    batch: shape.batch,
    seqlenQ: shape.seqlenQ,
    seqlenK: shape.seqlenK,
    headsQ: shape.headsQ,
    headsKv: shape.headsKv,
    headDim: shape.headDim,
    headDimV: shape.headDimV,
    q,
    k,
    v,
    softmaxScale: opts.softmaxScale,
    windowLeft: opts.windowLeft,
    windowRight: opts.windowRight,
    softcap: opts.softcap,
  };
}

/** Callers holding device tensors expect device results whichever backend ran: move host results there. */
function toCallerDevice(shape: ProblemShape, results: Tensor[]): Tensor[] {
  if (shape.location === 'cpu') return results;
  const moved: Tensor[] = [];
  try {
    for (const t of results) moved.push(t.cuda(shape.device));
    return moved;
  } catch (e) {
    for (const t of moved) t.dispose();
    throw e;
  } finally {
    for (const t of results) t.dispose();
  }
}

/** out (in `outDtype`) and lse as Tensors where the caller's inputs live. */
function forwardResult(shape: ProblemShape, { out, lse }: CpuResult, outDtype: DType) {
  const [o, l] = toCallerDevice(shape, [
    Tensor.fromArray(out, [shape.batch, shape.seqlenQ, shape.headsQ, shape.headDimV], outDtype),
    Tensor.fromArray(lse, [shape.batch, shape.headsQ, shape.seqlenQ], 'float32'),
  ]);
  return { out: o, lse: l };
}

export const cpuBackend: Backend = {
  name: 'cpu',

  probe: () => ({ ok: true, detail: 'float64 reference attention on the host' }),

  supports: () => null,

  forward(q, k, v, shape, opts) {
    return forwardResult(shape, referenceAttention(cpuProblemOf(q, k, v, shape, opts)), shape.dtype);
  },

  supportsFp8: (shape) => (shape.headDimV === shape.headDim ? null : 'FP8 needs equal q/k and v head dims'),

  // Emulates the CUDA FP8 kernel that would run the problem, blocking included (head dims without
  // a kernel use 128 x 128).
  forwardFp8({ q, k, v }, shape, opts, outDtype) {
    const tile = forwardTileFor({ fp8: true, out: outDtype }, shape.headDim, shape.seqlenQ, { ...opts, fp8KeyRows: k.blockRows });
    if (k.blockRows % tile.blockN !== 0) {
      throw new UnsupportedError(`k and v are scaled per ${k.blockRows} keys, not a multiple of the FP8 key block ${tile.blockN}`, {
        param: 'k.blockRows',
        value: k.blockRows,
        fix: `quantize k and v with blockRows a multiple of ${tile.blockN} (the default, 128, is)`,
      });
    }
    const descales = { q: q.descale.toFloat64Array(), k: k.descale.toFloat64Array(), v: v.descale.toFloat64Array(), qRows: q.blockRows, kRows: k.blockRows };
    const p = cpuProblemOfValues(q.summedValues(), k.data.toFloat64Array(), v.data.toFloat64Array(), shape, opts);
    return forwardResult(shape, fp8AttentionQuantized(p, descales, tile), outDtype);
  },

  backward(q, k, v, grads, shape, opts) {
    const g = attentionBackwardCpu(cpuProblemOf(q, k, v, shape, opts), {
      dout: grads.dout.toFloat64Array(),
      out: grads.out.toFloat64Array(),
      lse: grads.lse.toFloat64Array(),
    });
    const [dq, dk, dv] = toCallerDevice(shape, [
      Tensor.fromArray(g.dq, q.shape, shape.dtype),
      Tensor.fromArray(g.dk, k.shape, shape.dtype),
      Tensor.fromArray(g.dv, v.shape, shape.dtype),
    ]);
    return { dq, dk, dv };
  },
};
