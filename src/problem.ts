/**
 * Checks q, k, v against each other before anything runs, so a mistake surfaces as one typed
 * error naming the tensor, the offending number and the fix, not as a kernel fault or NaNs.
 */
import type { ProblemDims } from './cpu/problem.js';
import type { DType } from './dtype.js';
import { DTypeError, DisposedError, ShapeError, StrideError, UnsupportedError } from './errors.js';
import { Tensor, type Location } from './tensor.js';

export interface ProblemShape extends ProblemDims {
  dtype: DType;
  location: Location;
  /** CUDA ordinal of the inputs; -1 on the host. */
  device: number;
}

type Name = 'q' | 'k' | 'v';
const LAYOUT = '(batch, seqlen, heads, headDim)';
const DIM_NAMES = ['batch', 'seqlen', 'heads', 'headDim'];

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (ArrayBuffer.isView(x)) return `${x.constructor.name}(${(x as unknown as ArrayLike<number>).length ?? x.byteLength})`;
  if (Array.isArray(x)) return `Array(${x.length})`;
  if (typeof x === 'object') return x.constructor?.name ?? 'object';
  return typeof x;
}

function checkOne(t: unknown, name: Name): asserts t is Tensor {
  if (!(t instanceof Tensor)) {
    throw new ShapeError(`${name} must be a flash3 Tensor, got ${describe(t)}`, {
      param: name,
      value: describe(t),
      fix: `wrap the data, e.g. Tensor.fromArray(values, [batch, seqlen, heads, headDim], 'bfloat16')`,
    });
  }
  if (t.disposed) {
    throw new DisposedError(`${name} is ${t}`, { param: name, fix: `pass ${name} before disposing it, or create it again` });
  }
  if (t.shape.length !== 4) {
    throw new ShapeError(`${name} must have rank 4 ${LAYOUT}, got rank ${t.shape.length}`, {
      param: `${name}.shape`,
      value: [...t.shape],
      fix: `reshape ${name} to ${LAYOUT}; add a leading batch dimension of 1 for a single sequence`,
    });
  }
  t.shape.forEach((d, i) => {
    if (d < 1) {
      throw new ShapeError(`${name} has an empty ${DIM_NAMES[i]} dimension`, {
        param: `${name}.shape[${i}]`,
        value: d,
        fix: `every dimension of ${name} must be >= 1; skip the call for empty inputs`,
      });
    }
  });
  if (t.strides[3] !== 1) {
    throw new StrideError(`${name}'s last dimension is not contiguous (stride ${t.strides[3]})`, {
      param: `${name}.strides[3]`,
      value: t.strides[3],
      fix: 'call .contiguous() / pass a view whose last dimension is contiguous',
    });
  }
}

function mismatch(name: Name, dim: number, what: string, got: number, want: number, against: string, shapes: string): ShapeError {
  return new ShapeError(`${name} has ${what} ${got} but ${against} has ${want}`, {
    param: `${name}.shape[${dim}]`,
    value: got,
    fix: `give ${name} and ${against} the same ${what}; shapes are ${shapes}`,
  });
}

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

export function validateAttentionInputs(q: unknown, k: unknown, v: unknown): ProblemShape {
  checkOne(q, 'q');
  checkOne(k, 'k');
  checkOne(v, 'v');

  for (const [t, name] of [[k, 'k'], [v, 'v']] as const) {
    if (t.dtype !== q.dtype) {
      throw new DTypeError(`${name} has dtype ${t.dtype} but q has ${q.dtype}`, {
        param: `${name}.dtype`,
        value: t.dtype,
        fix: `q, k and v must share one dtype: convert ${name} to ${q.dtype} (or q to ${t.dtype})`,
      });
    }
    if (t.location !== q.location || t.device !== q.device) {
      throw new UnsupportedError(`${name} is ${t} but q is ${q}`, {
        param: `${name}.location`,
        value: t.location,
        fix: `move q, k and v to one device with .cuda(device) or .cpu()`,
      });
    }
  }

  const [batch, seqlenQ, headsQ, headDim] = q.shape;
  const [, seqlenK, headsKv] = k.shape;
  const shapes = `q [${q.shape.join(', ')}], k [${k.shape.join(', ')}], v [${v.shape.join(', ')}]`;
  if (k.shape[0] !== batch) throw mismatch('k', 0, 'batch size', k.shape[0], batch, 'q', shapes);
  if (v.shape[0] !== batch) throw mismatch('v', 0, 'batch size', v.shape[0], batch, 'q', shapes);
  if (v.shape[1] !== seqlenK) throw mismatch('v', 1, 'seqlen', v.shape[1], seqlenK, 'k', shapes);
  if (v.shape[2] !== headsKv) throw mismatch('v', 2, 'number of heads', v.shape[2], headsKv, 'k', shapes);
  if (k.shape[3] !== headDim) throw mismatch('k', 3, 'headDim', k.shape[3], headDim, 'q', shapes);
  if (headsQ % headsKv !== 0) {
    throw new ShapeError(`heads not divisible: q has ${headsQ} heads but k and v have ${headsKv}`, {
      param: 'q.shape[2]',
      value: headsQ,
      fix: `grouped-query attention needs q's heads to be a multiple of k/v's heads: give k and v ${divisors(headsQ).join(' or ')} heads, or q a multiple of ${headsKv}`,
    });
  }

  return { batch, seqlenQ, seqlenK, headsQ, headsKv, headDim, headDimV: v.shape[3], dtype: q.dtype, location: q.location, device: q.device };
}
