import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hadamardRows, randomSigns } from '../../src/numerics/hadamard.js';
import { randn } from '../../src/numerics/random.js';
import { OptionError, ShapeError } from '../../src/errors.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
};

test('n=4 hand-checked: (1/2)·H4·x', () => {
  close(hadamardRows(Float64Array.from([1, 2, 3, 4]), 4), [5, -1, -2, 0]);
  // Two rows are transformed independently.
  close(hadamardRows(Float64Array.from([1, 0, 0, 0, 0, 1, 0, 0]), 4), [0.5, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, -0.5]);
  // Signs flip the input before H: diag(1,-1,1,-1)·[1,2,3,4] = [1,-2,3,-4].
  close(hadamardRows(Float64Array.from([1, 2, 3, 4]), 4, Float64Array.from([1, -1, 1, -1])), [-1, 5, 0, -2]);
});

test('n=1 is the identity; applying twice (no signs) is the identity', () => {
  close(hadamardRows(Float64Array.from([3, -7]), 1), [3, -7]);
  const x = randn(64, 3);
  close(hadamardRows(hadamardRows(Float64Array.from(x), 64), 64), x);
});

test('orthogonal: norms and q·k preserved with shared signs', () => {
  const d = 128;
  const rows = 16;
  const signs = randomSigns(d, 11);
  assert.ok(signs.every((s) => s === 1 || s === -1));
  assert.ok(signs.some((s) => s === -1) && signs.some((s) => s === 1));
  const q = randn(rows * d, 1);
  const k = randn(rows * d, 2);
  const qh = hadamardRows(Float64Array.from(q), d, signs);
  const kh = hadamardRows(Float64Array.from(k), d, signs);
  const dot = (a: Float64Array, i: number, b: Float64Array, j: number): number => {
    let s = 0;
    for (let c = 0; c < d; c++) s += a[i * d + c] * b[j * d + c];
    return s;
  };
  for (let i = 0; i < rows; i++) {
    assert.ok(Math.abs(dot(qh, i, qh, i) - dot(q, i, q, i)) < 1e-10);
    for (let j = 0; j < rows; j++) assert.ok(Math.abs(dot(qh, i, kh, j) - dot(q, i, k, j)) < 1e-12 * d);
  }
});

test('spreads an outlier over the whole row', () => {
  const x = new Float64Array(64);
  x[5] = 100;
  hadamardRows(x, 64, randomSigns(64, 0));
  assert.ok(x.every((v) => Math.abs(Math.abs(v) - 12.5) < 1e-12));
});

test('bad shapes are rejected', () => {
  assert.throws(() => hadamardRows(new Float64Array(6), 6), OptionError);
  assert.throws(() => hadamardRows(new Float64Array(6), 4), ShapeError);
  assert.throws(() => hadamardRows(new Float64Array(8), 4, new Float64Array(2)), ShapeError);
});
