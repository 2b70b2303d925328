import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, randn } from '../../src/numerics/random.js';
import { OptionError } from '../../src/errors.js';

test('same seed gives the same stream; different seeds differ', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  for (let i = 0; i < 100; i++) assert.equal(a.nextUint32(), b.nextUint32());
  assert.deepEqual(randn(50, 7), randn(50, 7));
  assert.notDeepEqual(randn(50, 7), randn(50, 8));
  assert.notDeepEqual(randn(8, 1), randn(8, 1 + 2 ** 32));
});

test('uint32 and uniform ranges', () => {
  const rng = new Rng(1);
  for (let i = 0; i < 10000; i++) {
    const u = rng.nextUint32();
    assert.ok(Number.isInteger(u) && u >= 0 && u < 2 ** 32);
    const x = rng.uniform();
    assert.ok(x >= 0 && x < 1);
  }
});

test('normal: mean and std of 1e5 samples close to 0 and 1', (t) => {
  const x = randn(100000, 123);
  let sum = 0;
  let sq = 0;
  for (const v of x) {
    sum += v;
    sq += v * v;
  }
  const mean = sum / x.length;
  const std = Math.sqrt(sq / x.length - mean * mean);
  t.diagnostic(`mean ${mean.toFixed(5)} std ${std.toFixed(5)}`);
  assert.ok(Math.abs(mean) < 0.015);
  assert.ok(Math.abs(std - 1) < 0.015);
  const shifted = randn(100000, 123, 2, 5);
  assert.ok(Math.abs(shifted[10] - (5 + 2 * x[10])) < 1e-12);
});

test('uniform mean close to 1/2', () => {
  const rng = new Rng(9);
  let s = 0;
  for (let i = 0; i < 100000; i++) s += rng.uniform();
  assert.ok(Math.abs(s / 100000 - 0.5) < 0.005);
});

test('non-finite seeds are rejected', () => {
  assert.throws(() => new Rng(NaN), OptionError);
});
