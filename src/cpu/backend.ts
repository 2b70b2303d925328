/**
 * The always-available backend: float64 reference attention on the host. Every dtype decodes
 * exactly to float64, so it accepts anything the validator accepts and serves as ground truth.
 */
import type { Backend } from '../backend.js';
import type { ResolvedOptions } from '../options.js';
import type { ProblemShape } from '../problem.js';
import { Tensor } from '../tensor.js';
import type { CpuProblem } from './problem.js';
import { attentionBackwardCpu } from './backward.js';
import { referenceAttention } from './reference.js';

/** The CPU kernels' view of validated tensors: contiguous float64 values (exact for every dtype). */
export function cpuProblemOf(q: Tensor, k: Tensor, v: Tensor, shape: ProblemShape, opts: ResolvedOptions): CpuProblem {
  return {
    batch: shape.batch,
    seqlenQ: shape.seqlenQ,
    seqlenK: shape.seqlenK,
    headsQ: shape.headsQ,
    headsKv: shape.headsKv,
    headDim: shape.headDim,
    headDimV: shape.headDimV,
    q: q.toFloat64Array(),
    k: k.toFloat64Array(),
    v: v.toFloat64Array(),
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

export const cpuBackend: Backend = {
  name: 'cpu',

  probe: () => ({ ok: true, detail: 'float64 reference attention on the host' }),

  supports: () => null,

  forward(q, k, v, shape, opts) {
    const { out, lse } = referenceAttention(cpuProblemOf(q, k, v, shape, opts));
    const [o, l] = toCallerDevice(shape, [
      Tensor.fromArray(out, [shape.batch, shape.seqlenQ, shape.headsQ, shape.headDimV], shape.dtype),
      Tensor.fromArray(lse, [shape.batch, shape.headsQ, shape.seqlenQ], 'float32'),
    ]);
    return { out: o, lse: l };
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
