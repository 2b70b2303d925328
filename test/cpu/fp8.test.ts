import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fp8AttentionEmulated, quantizeFp8 } from '../../src/cpu/fp8.js';
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
  assert.deepEqual(Array.from(t.descale), [4 / 448]);
  assert.equal(t.values[3], 448);
  const b = quantizeFp8(x, 4, 2, { scaling: 'block', blockRows: 2, hadamard: false, seed: 0 });
  assert.deepEqual(Array.from(b.descale), [4 / 448, 0.25 / 448]);
  assert.equal(b.values[1], -224);
  assert.equal(b.values[6], 448);
  for (const v of b.values) assert.equal(roundTo(v, 'float8_e4m3'), v);
  const e5 = quantizeFp8(x, 4, 2, { scaling: 'tensor', blockRows: 1, hadamard: false, seed: 0, dtype: 'float8_e5m2' });
  assert.equal(e5.descale[0], 4 / 57344);
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
