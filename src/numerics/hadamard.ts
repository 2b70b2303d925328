/**
 * Randomized Hadamard transform, used before FP8 quantization to spread outliers across a row
 * (FlashAttention-3, section 3.3). The transform is orthogonal, so applying it with the same
 * signs to q and k rows leaves every q·k unchanged.
 */
import { OptionError, ShapeError } from '../errors.js';
import { Rng } from './random.js';

/** n independent ±1 values from Rng(seed). */
export function randomSigns(n: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.nextUint32() & 1 ? -1 : 1;
  return out;
}

const isPowerOfTwo = (n: number): boolean => Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;

/**
 * In place: each contiguous row of `rowLen` becomes (1/sqrt(rowLen)) · H · diag(signs) · row,
 * with H the Sylvester-ordered Hadamard matrix, via the fast Walsh–Hadamard transform.
 */
export function hadamardRows(x: Float64Array, rowLen: number, signs?: Float64Array): Float64Array {
  if (!isPowerOfTwo(rowLen)) {
    throw new OptionError('Hadamard row length must be a power of two', {
      param: 'rowLen',
      value: rowLen,
      fix: 'use a head dim of 64, 128 or 256, or disable the Hadamard transform',
    });
  }
  if (x.length % rowLen !== 0) {
    throw new ShapeError(`array length ${x.length} is not a multiple of the row length ${rowLen}`, {
      param: 'x',
      fix: 'pass whole rows',
    });
  }
  if (signs !== undefined && signs.length !== rowLen) {
    throw new ShapeError(`signs has length ${signs.length}, expected the row length ${rowLen}`, {
      param: 'signs',
      fix: 'create them with randomSigns(rowLen, seed)',
    });
  }
  const norm = 1 / Math.sqrt(rowLen);
  for (let base = 0; base < x.length; base += rowLen) {
    if (signs) for (let c = 0; c < rowLen; c++) x[base + c] *= signs[c];
    for (let h = 1; h < rowLen; h *= 2) {
      for (let i = base; i < base + rowLen; i += 2 * h) {
        for (let j = i; j < i + h; j++) {
          const a = x[j];
          const b = x[j + h];
          x[j] = a + b;
          x[j + h] = a - b;
        }
      }
    }
    for (let c = base; c < base + rowLen; c++) x[c] *= norm;
  }
  return x;
}
