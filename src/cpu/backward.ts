/**
 * Attention gradients on the host: the float64 ground truth for the backward kernels, and the same
 * computation with the precision steps of a FlashAttention backward kernel (P and dS rounded to the
 * input dtype before the GEMMs that consume them), so a GPU error can be judged against "the same
 * computation at the same precision". Uses the forward's out and lse, as FlashAttention does:
 *   P = exp(s - lse), dV = Pᵀ dO, dP = dO Vᵀ, D = rowsum(dO ∘ O), dS = P ∘ (dP − D) [∘ softcap′],
 *   dQ = scale · dS K, dK = scale · dSᵀ Q; dK and dV summed over the query heads of a GQA group.
 */
import type { DType } from '../dtype.js';
import { roundTo } from '../numerics/convert.js';
import { type CpuProblem, firstKey, kvHeadOf, lastKey, lseIndex, validateProblem } from './problem.js';

export interface CpuBackwardInputs {
  /** (batch, seqlenQ, headsQ, headDimV) */
  dout: Float64Array;
  /** The forward output, (batch, seqlenQ, headsQ, headDimV). */
  out: Float64Array;
  /** The forward log-sum-exp, (batch, headsQ, seqlenQ). */
  lse: Float64Array;
}

export interface CpuGradients {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/** Round P and dS to `dtype` before they feed a GEMM (float64 = no rounding). */
export interface BackwardEmulation {
  dtype: DType;
}

export function attentionBackwardCpu(p: CpuProblem, g: CpuBackwardInputs, emu: BackwardEmulation = { dtype: 'float64' }): CpuGradients {
  validateProblem(p);
  const { batch, seqlenQ: sq, seqlenK: sk, headsQ, headsKv, headDim: d, headDimV: dvDim, softmaxScale: scale, softcap } = p;
  const round = (x: number) => roundTo(x, emu.dtype);
  const dq = new Float64Array(p.q.length);
  const dk = new Float64Array(p.k.length);
  const dv = new Float64Array(p.v.length);
  const qAt = (b: number, i: number, h: number) => ((b * sq + i) * headsQ + h) * d;
  const oAt = (b: number, i: number, h: number) => ((b * sq + i) * headsQ + h) * dvDim;
  const kAt = (b: number, j: number, h: number) => ((b * sk + j) * headsKv + h) * d;
  const vAt = (b: number, j: number, h: number) => ((b * sk + j) * headsKv + h) * dvDim;

  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < headsQ; h++) {
      const kh = kvHeadOf(p, h);
      for (let i = 0; i < sq; i++) {
        const lse = g.lse[lseIndex(p, b, h, i)];
        const lo = firstKey(p, i);
        const hi = lastKey(p, i);
        if (lo > hi || lse === -Infinity) continue;
        const qi = qAt(b, i, h);
        const oi = oAt(b, i, h);
        let rowD = 0;
        for (let c = 0; c < dvDim; c++) rowD += g.dout[oi + c] * g.out[oi + c];
        for (let j = lo; j <= hi; j++) {
          const kj = kAt(b, j, kh);
          const vj = vAt(b, j, kh);
          let x = 0;
          for (let c = 0; c < d; c++) x += p.q[qi + c] * p.k[kj + c];
          x *= scale;
          const s = softcap > 0 ? softcap * Math.tanh(x / softcap) : x;
          const prob = Math.exp(s - lse);
          const pRounded = round(prob);
          let dp = 0;
          for (let c = 0; c < dvDim; c++) {
            dv[vj + c] += pRounded * g.dout[oi + c];
            dp += g.dout[oi + c] * p.v[vj + c];
          }
          let ds = prob * (dp - rowD);
          // d(c·tanh(x/c))/dx = 1 − tanh², with tanh = s/c.
          if (softcap > 0) ds *= 1 - (s / softcap) ** 2;
          ds = round(ds);
          for (let c = 0; c < d; c++) {
            dq[qi + c] += scale * ds * p.k[kj + c];
            dk[kj + c] += scale * ds * p.q[qi + c];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
