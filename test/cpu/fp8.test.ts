import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fp8AttentionEmulated, pow2ScaleFor, quantizeFp8 } from '../../src/cpu/fp8.js';
import { attendAllHeads, vUnitSteps } from '../../src/cpu/tiled.js';
import { gatherHead } from '../../src/cpu/problem.js';
import { referenceAttention } from '../../src/cpu/reference.js';
import type { CpuProblem } from '../../src/cpu/problem.js';
import { Rng, randn } from '../../src/numerics/random.js';
import { roundTo } from '../../src/numerics/convert.js';
import { OptionError } from '../../src/errors.js';

/** N(0,1) plus, with probability 0.001, an N(0,100) outlier: the FA3 paper's test inputs. */
function withOutliers(n: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const x = randn(n, seed + 1000);
  for (let i = 0; i < n; i++) if (rng.uniform() < 0.001) x[i] += 10 * rng.normal();
  return x;
}

function rmse(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s / a.length);
}

const withNoOutliers = (n: number, seed: number): Float64Array => randn(n, seed);

function problem(gen: (n: number, seed: number) => Float64Array, s: number, h: number, d: number): CpuProblem {
  return {
    batch: 1,
    seqlenQ: s,
    seqlenK: s,
    headsQ: h,
    headsKv: h,
    headDim: d,
    headDimV: d,
    q: gen(s * h * d, 1),
    k: gen(s * h * d, 2),
    v: gen(s * h * d, 3),
    softmaxScale: 1 / Math.sqrt(d),
    windowLeft: -1,
    windowRight: -1,
    softcap: 0,
  };
}

test('quantizeFp8: tensor and block scales, values representable', () => {
  const x = Float64Array.from([1, -2, 0.5, 4, 0, 0, 0.25, -0.125]); // 4 rows of 2
  const t = quantizeFp8(x, 4, 2, { scaling: 'tensor', blockRows: 2, hadamard: false, seed: 0 });
  // float32 scales, as the device computes them
  assert.deepEqual(Array.from(t.descale), [Math.fround(4 / 448)]);
  assert.equal(t.values[3], 448);
  const b = quantizeFp8(x, 4, 2, { scaling: 'block', blockRows: 2, hadamard: false, seed: 0 });
  assert.deepEqual(Array.from(b.descale), [Math.fround(4 / 448), Math.fround(0.25 / 448)]);
  assert.equal(b.values[1], -224);
  assert.equal(b.values[6], 448);
  for (const v of b.values) assert.equal(roundTo(v, 'float8_e4m3'), v);
  const e5 = quantizeFp8(x, 4, 2, { scaling: 'tensor', blockRows: 1, hadamard: false, seed: 0, dtype: 'float8_e5m2' });
  assert.equal(e5.descale[0], Math.fround(4 / 57344));
  assert.deepEqual(Array.from(x), [1, -2, 0.5, 4, 0, 0, 0.25, -0.125], 'input untouched');
  // A partial last block and an all-zero block.
  const z = quantizeFp8(new Float64Array(6), 3, 2, { scaling: 'block', blockRows: 2, hadamard: true, seed: 1 });
  assert.equal(z.descale.length, 2);
  assert.ok(z.values.every((v) => v === 0));
  assert.throws(() => quantizeFp8(x, 4, 2, { scaling: 'block', blockRows: 0, hadamard: false, seed: 0 }), OptionError);
});

test('quantizeFp8: dequantized error is small relative to each block', () => {
  const x = randn(64 * 128, 5);
  const q = quantizeFp8(x, 64, 128, { scaling: 'block', blockRows: 16, hadamard: false, seed: 0 });
  for (let i = 0; i < x.length; i++) {
    const scale = q.descale[Math.floor(i / (16 * 128))];
    // Half an ulp: 2^-4 relative for normals (3 mantissa bits), 2^-10 absolute for subnormals.
    assert.ok(Math.abs(q.values[i] * scale - x[i]) <= Math.max(Math.abs(x[i]) / 16, 2 ** -10 * scale) * (1 + 1e-12));
  }
});

test('fp8 attention without outliers is close to the reference', (t) => {
  const p = problem(withNoOutliers, 128, 2, 64);
  const ref = referenceAttention(p);
  const r = fp8AttentionEmulated(p, { scaling: 'block', hadamard: true, seed: 3, blockM: 64, blockN: 64 });
  const e = rmse(r.out, ref.out);
  t.diagnostic(`rmse ${e.toExponential(3)}`);
  assert.ok(e < 0.05 && e > 0);
  assert.ok(!r.out.some(Number.isNaN) && !r.lse.some(Number.isNaN));
});

test('FA3 section 4.3: block scaling + Hadamard beats per-tensor fp8 on outlier inputs', (t) => {
  const p = problem(withOutliers, 512, 4, 128);
  const ref = referenceAttention(p);
  const base = { seed: 7, blockM: 128, blockN: 128 };
  const perTensor = rmse(fp8AttentionEmulated(p, { ...base, scaling: 'tensor', hadamard: false }).out, ref.out);
  const blockOnly = rmse(fp8AttentionEmulated(p, { ...base, scaling: 'block', hadamard: false }).out, ref.out);
  const blockHad = rmse(fp8AttentionEmulated(p, { ...base, scaling: 'block', hadamard: true }).out, ref.out);
  t.diagnostic(
    `RMSE vs float64 reference: per-tensor ${perTensor.toExponential(3)}, block ${blockOnly.toExponential(3)}, ` +
      `block+hadamard ${blockHad.toExponential(3)} (ratio ${(perTensor / blockHad).toFixed(2)}x)`,
  );
  assert.ok(perTensor > blockHad, `per-tensor ${perTensor} vs block+hadamard ${blockHad}`);
  const split = rmse(fp8AttentionEmulated(p, { ...base, scaling: 'block', hadamard: true, qSplit: true }).out, ref.out);
  t.diagnostic(`two-term Q (accuracy mode) ${split.toExponential(3)}`);
  assert.ok(split < 0.9 * blockHad, `two-term Q ${split} should beat block+hadamard ${blockHad} by 10%`);
});

test('pow2ScaleFor: the smallest power of two that maps amax into e4m3', () => {
  assert.equal(pow2ScaleFor(448), 1, 'an amax of 448 keeps scale 1');
  assert.equal(pow2ScaleFor(449), 2);
  assert.equal(pow2ScaleFor(4), 2 ** -6, '448 * 2^-7 = 3.5 < 4 <= 7');
  assert.equal(pow2ScaleFor(3.5), 2 ** -7);
  assert.equal(pow2ScaleFor(0.25), 2 ** -10);
  assert.equal(pow2ScaleFor(1e-40), 2 ** -126, 'no smaller than the least normal float32');
  const x = Float64Array.from([4, -3, 0.25, 0.1]);
  const b = quantizeFp8(x, 2, 2, { scaling: 'block', blockRows: 1, hadamard: false, seed: 0, powerOfTwo: true });
  assert.deepEqual(Array.from(b.descale), [2 ** -6, 2 ** -10]);
  assert.equal(b.values[0], 256);
  for (const v of b.values) assert.equal(roundTo(v, 'float8_e4m3'), v);
  const t = quantizeFp8(x, 2, 2, { scaling: 'tensor', blockRows: 1, hadamard: false, seed: 0, powerOfTwo: true });
  assert.deepEqual(Array.from(t.descale), [Math.fround(4 / 448)], 'per-tensor scaling keeps its amax scale');
});

test('vUnitSteps: power-of-two V scales never rescale O; others rescale or rebase exactly', () => {
  const pow2 = [2 ** -3, 2 ** -1, 2 ** -5, 2 ** -3, 2 ** 2];
  const a = vUnitSteps((nb) => pow2[nb], 0, 4);
  // Walked last block first: 2^2 is the first unit, 2^-3 (blocks 3, 0) and 2^-5 (block 2) are new minima.
  assert.deepEqual(a.steps.map((s) => s.oRatio), [1, 1, 2 ** 2, 2 ** 5, 1]);
  assert.deepEqual(a.steps.map((s) => s.pShift), [2, 4, 0, 0, 0]);
  assert.equal(a.unit, 2 ** -5);
  const b = vUnitSteps((nb) => [1.5, 1.25][nb], 0, 1);
  assert.deepEqual(b.steps.map((s) => s.pShift), [0, 0]);
  assert.equal(b.steps[0].oRatio, Math.fround(1.25 / 1.5), 'same exponent, new mantissa: O *= mu / m');
  assert.equal(b.unit, 1.5);
  const c = vUnitSteps((nb) => [2 ** 9 * 1.5, 1][nb], 0, 1);
  assert.deepEqual(c.steps[0], { pShift: 0, oRatio: Math.fround(1 / (2 ** 9 * 1.5)) }, 'past 2^8 the unit rebases');
});

test('V descales folded into P and O units: exact arithmetic gives the reference', () => {
  // With P unrounded and float64 throughout, moving V's descales between P and O must not change
  // the result, whatever the descales: powers of two, arbitrary mantissas, ranges past 2^8, signs.
  const rng = new Rng(7);
  for (const causal of [false, true]) {
    const p = problem(withNoOutliers, 96, 2, 16);
    const blockN = 16;
    const blocks = 96 / blockN;
    // Some negative, as nothing stops a caller from passing them: the sign must survive too.
    const vBlock = Float64Array.from({ length: 2 * blocks }, (_, i) => (i % 5 === 4 ? -1 : 1) * (i % 3 === 0 ? 2 ** Math.round(rng.uniform() * 24 - 12) : Math.fround(rng.uniform() * 2 ** (rng.uniform() * 24 - 12))));
    const perKey = (h: number) => Float64Array.from({ length: 96 }, (_, s) => vBlock[h * blocks + Math.floor(s / blockN)]);
    const scaled = { ...p, v: Float64Array.from(p.v, (x, e) => x * vBlock[(Math.floor(e / 16) % 2) * blocks + Math.floor(Math.floor(e / 32) / blockN)]) };
    const windowed = causal ? { windowLeft: -1, windowRight: 0 } : {};
    const ref = referenceAttention({ ...scaled, ...windowed }).out;
    const got = attendAllHeads(
      { ...p, ...windowed },
      (b, h, kh) => ({ q: gatherHead(p.q, 96, 2, 16, b, h), k: gatherHead(p.k, 96, 2, 16, b, kh), v: gatherHead(p.v, 96, 2, 16, b, kh), vDescale: perKey(kh) }),
      { blockM: 32, blockN, fp32: false, roundP: (x) => x },
    ).out;
    for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[i] - ref[i]) <= 1e-12 * (1 + Math.abs(ref[i])), `causal ${causal}, element ${i}: ${got[i]} vs ${ref[i]}`);
  }
});
