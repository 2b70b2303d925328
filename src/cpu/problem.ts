/**
 * The attention problem as the CPU paths see it: plain Float64Arrays in FlashAttention's
 * (batch, seqlen, heads, dim) layout, plus the mask helpers every CPU path must agree on.
 */
import { OptionError, ShapeError } from '../errors.js';

/** The sizes of an attention problem, shared by every layer that describes one. */
export interface ProblemDims {
  batch: number;
  seqlenQ: number;
  seqlenK: number;
  headsQ: number;
  headsKv: number;
  headDim: number;
  headDimV: number;
}

export interface CpuProblem extends ProblemDims {
  /** contiguous (batch, seqlenQ, headsQ, headDim) */
  q: Float64Array;
  /** contiguous (batch, seqlenK, headsKv, headDim) */
  k: Float64Array;
  /** contiguous (batch, seqlenK, headsKv, headDimV) */
  v: Float64Array;
  softmaxScale: number;
  /**
   * Keys allowed for query row i: i + seqlenK - seqlenQ - windowLeft <= j <= i + seqlenK - seqlenQ + windowRight;
   * -1 = unbounded. causal == (windowLeft -1, windowRight 0): bottom-right aligned as FlashAttention 2/3.
   */
  windowLeft: number;
  windowRight: number;
  /** 0 = off; else scores s = softcap * tanh(s / softcap) applied after scaling by softmaxScale. */
  softcap: number;
}

export interface CpuResult {
  /** (batch, seqlenQ, headsQ, headDimV) */
  out: Float64Array;
  /** (batch, headsQ, seqlenQ): natural log of sum exp of scaled (capped) scores; -Infinity for rows with no allowed key, whose out is 0 */
  lse: Float64Array;
}

const DIMS = ['batch', 'seqlenQ', 'seqlenK', 'headsQ', 'headsKv', 'headDim', 'headDimV'] as const;

/** Throws ShapeError/OptionError unless `p` describes a problem every CPU path can run. */
export function validateProblem(p: CpuProblem): void {
  for (const name of DIMS) {
    const n = p[name];
    if (!Number.isInteger(n) || n < 1) {
      throw new ShapeError(`${name} must be a positive integer`, { param: name, value: n });
    }
  }
  if (p.headsQ % p.headsKv !== 0) {
    throw new ShapeError('headsQ must be a multiple of headsKv (GQA/MQA)', {
      param: 'headsKv',
      value: p.headsKv,
      fix: `use a divisor of headsQ = ${p.headsQ}`,
    });
  }
  const expect = (name: 'q' | 'k' | 'v', len: number): void => {
    if (p[name].length !== len) {
      throw new ShapeError(`${name} has ${p[name].length} elements, expected ${len}`, {
        param: name,
        fix: 'pass a contiguous (batch, seqlen, heads, dim) array',
      });
    }
  };
  expect('q', p.batch * p.seqlenQ * p.headsQ * p.headDim);
  expect('k', p.batch * p.seqlenK * p.headsKv * p.headDim);
  expect('v', p.batch * p.seqlenK * p.headsKv * p.headDimV);
  if (!Number.isFinite(p.softmaxScale)) {
    throw new OptionError('softmaxScale must be finite', { param: 'softmaxScale', value: p.softmaxScale });
  }
  for (const name of ['windowLeft', 'windowRight'] as const) {
    if (!Number.isInteger(p[name]) || p[name] < -1) {
      throw new OptionError(`${name} must be an integer >= -1 (-1 = unbounded)`, { param: name, value: p[name] });
    }
  }
  if (!(p.softcap >= 0) || !Number.isFinite(p.softcap)) {
    throw new OptionError('softcap must be finite and >= 0 (0 = off)', { param: 'softcap', value: p.softcap });
  }
}

/** The kv head query head h reads under GQA/MQA. */
export function kvHeadOf(p: CpuProblem, h: number): number {
  return Math.floor(h / (p.headsQ / p.headsKv));
}

/** First key query row i may attend to (may exceed lastKey when none is allowed). */
export function firstKey(p: CpuProblem, i: number): number {
  return p.windowLeft < 0 ? 0 : Math.max(0, i + p.seqlenK - p.seqlenQ - p.windowLeft);
}

/** Last key query row i may attend to (may be below firstKey, even negative, when none is allowed). */
export function lastKey(p: CpuProblem, i: number): number {
  return p.windowRight < 0 ? p.seqlenK - 1 : Math.min(p.seqlenK - 1, i + p.seqlenK - p.seqlenQ + p.windowRight);
}

/** Copies head h of batch b out of a (batch, seqlen, heads, dim) array into a contiguous (seqlen, dim) one. */
export function gatherHead(x: Float64Array, seqlen: number, heads: number, dim: number, b: number, h: number): Float64Array {
  const out = new Float64Array(seqlen * dim);
  const rowStride = heads * dim;
  let src = (b * seqlen * heads + h) * dim;
  for (let s = 0; s < seqlen; s++, src += rowStride) out.set(x.subarray(src, src + dim), s * dim);
  return out;
}

/** Inverse of gatherHead: writes a (seqlen, dim) slice into head h of batch b. */
export function scatterHead(
  x: Float64Array,
  slice: Float64Array,
  seqlen: number,
  heads: number,
  dim: number,
  b: number,
  h: number,
): void {
  const rowStride = heads * dim;
  let dst = (b * seqlen * heads + h) * dim;
  for (let s = 0; s < seqlen; s++, dst += rowStride) x.set(slice.subarray(s * dim, (s + 1) * dim), dst);
}

/** Where row (b, h, i) of the (batch, headsQ, seqlenQ) lse array lives. */
export function lseIndex(p: CpuProblem, b: number, h: number, i: number): number {
  return (b * p.headsQ + h) * p.seqlenQ + i;
}
