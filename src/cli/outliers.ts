/**
 * The input distribution of FlashAttention-3's FP8 error study (section 4.3): mostly N(0, 1),
 * plus a rare large outlier, N(0, 1) + N(0, 100)·Bernoulli(0.001), as seen in real activations.
 * The outliers are what make one scale per tensor waste the FP8 range.
 */
import { Rng } from '../numerics/random.js';

export const OUTLIER_PROBABILITY = 0.001;
/** N(0, 100) has standard deviation 10. */
export const OUTLIER_STD = 10;

export function outlierNormals(n: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const base = rng.normal();
    out[i] = rng.uniform() < OUTLIER_PROBABILITY ? base + OUTLIER_STD * rng.normal() : base;
  }
  return out;
}
