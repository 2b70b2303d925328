/**
 * Error measures for checking an attention result against the float64 reference. Shared by the
 * CPU and GPU test suites and by `flash3 check`, so a test and the CLI can never disagree on
 * what "passes" means.
 */

/** ||a - b|| / ||b|| (Frobenius); NaN or a length mismatch gives Infinity so it can never pass. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) return Infinity;
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return den === 0 ? (num === 0 ? 0 : Infinity) : Math.sqrt(num / den);
}

/** Largest |a - b| over entries where both are finite; entries where exactly one is -inf count as Infinity. */
export function maxAbsDiffLse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) return Infinity;
    if (a[i] === -Infinity || b[i] === -Infinity) {
      if (a[i] !== b[i]) return Infinity;
      continue;
    }
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  return worst;
}

export { cpuProblemOf } from '../cpu/backend.js';
