/**
 * The always-available backend: float64 reference attention on the host. Every dtype decodes
 * exactly to float64, so it accepts anything the validator accepts and serves as ground truth.
 */
import type { Backend } from '../backend.js';
import type { ResolvedOptions } from '../options.js';
import type { ProblemShape } from '../problem.js';
import { Tensor } from '../tensor.js';
import type { CpuProblem } from './problem.js';
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

export const cpuBackend: Backend = {
  name: 'cpu',

  probe: () => ({ ok: true, detail: 'float64 reference attention on the host' }),

  supports: () => null,

  forward(q, k, v, shape, opts) {
    const { out, lse } = referenceAttention(cpuProblemOf(q, k, v, shape, opts));
    const hostOut = Tensor.fromArray(out, [shape.batch, shape.seqlenQ, shape.headsQ, shape.headDimV], shape.dtype);
    const hostLse = Tensor.fromArray(lse, [shape.batch, shape.headsQ, shape.seqlenQ], 'float32');
    if (shape.location === 'cpu') return { out: hostOut, lse: hostLse };
    // Callers holding device tensors expect device results whichever backend ran.
    try {
      const devOut = hostOut.cuda(shape.device);
      try {
        return { out: devOut, lse: hostLse.cuda(shape.device) };
      } catch (e) {
        devOut.dispose();
        throw e;
      }
    } finally {
      hostOut.dispose();
      hostLse.dispose();
    }
  },
};
