import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceAttention } from '../../src/cpu/reference.js';
import { type Emulation, tiledAttention } from '../../src/cpu/tiled.js';
import type { CpuProblem, CpuResult } from '../../src/cpu/problem.js';
import { randn } from '../../src/numerics/random.js';
import type { DType } from '../../src/dtype.js';
import { OptionError, ShapeError } from '../../src/errors.js';

interface Shape {
  batch?: number;
  seqlenQ: number;
  seqlenK: number;
  headsQ?: number;
  headsKv?: number;
  headDim?: number;
  headDimV?: number;
  windowLeft?: number;
  windowRight?: number;
  softcap?: number;
  seed?: number;
}

function problem(s: Shape): CpuProblem {
  const batch = s.batch ?? 1;
  const headsQ = s.headsQ ?? 2;
  const headsKv = s.headsKv ?? headsQ;
  const headDim = s.headDim ?? 64;
  const headDimV = s.headDimV ?? headDim;
  const seed = s.seed ?? 0;
  return {
    batch,
    seqlenQ: s.seqlenQ,
    seqlenK: s.seqlenK,
    headsQ,
    headsKv,
    headDim,
    headDimV,
    q: randn(batch * s.seqlenQ * headsQ * headDim, seed),
    k: randn(batch * s.seqlenK * headsKv * headDim, seed + 1),
    v: randn(batch * s.seqlenK * headsKv * headDimV, seed + 2),
    softmaxScale: 1 / Math.sqrt(headDim),
    windowLeft: s.windowLeft ?? -1,
    windowRight: s.windowRight ?? -1,
    softcap: s.softcap ?? 0,
  };
}

const F64: Emulation = { blockM: 16, blockN: 8, inputDtype: 'float64', pDtype: 'float64', accumulate: 'float64', outDtype: 'float64' };

function emulate(dtype: DType): Emulation {
  return { blockM: 128, blockN: 128, inputDtype: dtype, pDtype: dtype, accumulate: 'float32', outDtype: dtype };
}

/** ‖a − b‖ / ‖b‖ over finite entries; non-finite entries must match exactly. */
function relErr(a: Float64Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(b[i]) || !Number.isFinite(a[i])) {
      assert.equal(a[i], b[i], `entry ${i}`);
      continue;
    }
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

function assertNoNaN(r: CpuResult): void {
  assert.ok(!r.out.some(Number.isNaN), 'NaN in out');
  assert.ok(!r.lse.some(Number.isNaN), 'NaN in lse');
}

const CASES: [string, Shape][] = [
  ['square, odd length', { seqlenQ: 37, seqlenK: 37 }],
  ['seqlenQ < seqlenK', { seqlenQ: 13, seqlenK: 70 }],
  ['seqlenQ > seqlenK', { seqlenQ: 70, seqlenK: 13 }],
  ['seqlen 1', { seqlenQ: 1, seqlenK: 1 }],
  ['one query, many keys', { seqlenQ: 1, seqlenK: 41 }],
  ['batch 2, GQA 4:1', { batch: 2, seqlenQ: 21, seqlenK: 33, headsQ: 8, headsKv: 2 }],
  ['MQA', { seqlenQ: 19, seqlenK: 25, headsQ: 4, headsKv: 1 }],
  ['causal, square', { seqlenQ: 45, seqlenK: 45, windowLeft: -1, windowRight: 0 }],
  ['causal, seqlenQ < seqlenK', { seqlenQ: 17, seqlenK: 50, windowLeft: -1, windowRight: 0 }],
  ['causal, seqlenQ > seqlenK', { seqlenQ: 50, seqlenK: 17, windowLeft: -1, windowRight: 0 }],
  ['window (3, 5)', { seqlenQ: 40, seqlenK: 40, windowLeft: 3, windowRight: 5 }],
  ['window (3, 5), seqlenQ > seqlenK', { seqlenQ: 40, seqlenK: 23, windowLeft: 3, windowRight: 5 }],
  ['softcap 30', { seqlenQ: 29, seqlenK: 31, softcap: 30 }],
  ['softcap 30, causal, GQA', { seqlenQ: 29, seqlenK: 31, softcap: 30, headsQ: 4, headsKv: 2, windowRight: 0 }],
  ['headDim 32, headDimV 48', { seqlenQ: 23, seqlenK: 27, headDim: 32, headDimV: 48 }],
  ['headDim 64, headDimV 128, odd dims', { seqlenQ: 9, seqlenK: 11, headDim: 63, headDimV: 129 }],
];

for (const [name, shape] of CASES) {
  test(`tiled float64 equals reference: ${name}`, () => {
    const p = problem(shape);
    const ref = referenceAttention(p);
    for (const [bm, bn] of [
      [16, 8],
      [128, 128],
      [1, 1],
      [7, 5],
    ]) {
      const tiled = tiledAttention(p, { ...F64, blockM: bm, blockN: bn });
      assertNoNaN(tiled);
      assert.ok(relErr(tiled.out, ref.out) < 1e-10, `out, blocks ${bm}x${bn}: ${relErr(tiled.out, ref.out)}`);
      assert.ok(relErr(tiled.lse, ref.lse) < 1e-10, `lse, blocks ${bm}x${bn}`);
    }
    assertNoNaN(ref);
  });
}

test('fully masked rows (causal, seqlenQ > seqlenK): out 0, lse -inf', () => {
  const p = problem({ seqlenQ: 10, seqlenK: 4, windowLeft: -1, windowRight: 0, headsQ: 1 });
  for (const r of [referenceAttention(p), tiledAttention(p, F64), tiledAttention(p, emulate('bfloat16'))]) {
    assertNoNaN(r);
    // Bottom-right alignment: row i sees keys j <= i - 6, so rows 0..5 see none.
    for (let i = 0; i < 10; i++) {
      const row = r.out.subarray(i * 64, (i + 1) * 64);
      if (i < 6) {
        assert.equal(r.lse[i], -Infinity, `lse[${i}]`);
        assert.ok(row.every((x) => x === 0), `out row ${i}`);
      } else {
        assert.ok(Number.isFinite(r.lse[i]), `lse[${i}]`);
        assert.ok(row.some((x) => x !== 0));
      }
    }
  }
});

test('tiny shape against a hand-computed softmax', () => {
  // d = 2, scale 1: q = [1, 0]; keys give scores 0, 1, 2.
  const p: CpuProblem = {
    batch: 1,
    seqlenQ: 2,
    seqlenK: 3,
    headsQ: 1,
    headsKv: 1,
    headDim: 2,
    headDimV: 1,
    q: Float64Array.from([1, 0, 0, 1]),
    k: Float64Array.from([0, 0, 1, 0, 2, 5]),
    v: Float64Array.from([10, 20, 30]),
    softmaxScale: 1,
    windowLeft: -1,
    windowRight: 0, // causal, bottom-right: row 0 sees keys 0..1, row 1 sees 0..2
    softcap: 0,
  };
  const e = Math.E;
  // Row 0: scores [0, 1]: out = (10 + 20e) / (1 + e), lse = log(1 + e).
  // Row 1: q = [0, 1], scores [0, 0, 5]: out = (10 + 20 + 30e^5) / (2 + e^5), lse = log(2 + e^5).
  const want = [(10 + 20 * e) / (1 + e), (30 + 30 * e ** 5) / (2 + e ** 5)];
  const wantLse = [Math.log(1 + e), Math.log(2 + e ** 5)];
  for (const r of [referenceAttention(p), tiledAttention(p, { ...F64, blockM: 1, blockN: 2 })]) {
    for (let i = 0; i < 2; i++) {
      assert.ok(Math.abs(r.out[i] - want[i]) < 1e-12, `out[${i}] ${r.out[i]} vs ${want[i]}`);
      assert.ok(Math.abs(r.lse[i] - wantLse[i]) < 1e-12, `lse[${i}]`);
    }
  }
});

test('reference agrees with a naive triple loop (window, softcap, GQA)', () => {
  const p = problem({ seqlenQ: 6, seqlenK: 9, headsQ: 4, headsKv: 2, headDim: 5, headDimV: 3, windowLeft: 2, windowRight: 1, softcap: 2 });
  const ref = referenceAttention(p);
  const { seqlenQ: sq, seqlenK: sk, headsQ: hq, headsKv: hk, headDim: d, headDimV: dv } = p;
  for (let h = 0; h < hq; h++) {
    const kh = Math.floor(h / (hq / hk));
    for (let i = 0; i < sq; i++) {
      const w: number[] = [];
      for (let j = 0; j < sk; j++) {
        const shift = i + sk - sq;
        if (j < shift - p.windowLeft || j > shift + p.windowRight) continue;
        let s = 0;
        for (let c = 0; c < d; c++) s += p.q[(i * hq + h) * d + c] * p.k[(j * hk + kh) * d + c];
        s = p.softcap * Math.tanh((s * p.softmaxScale) / p.softcap);
        w[j] = Math.exp(s);
      }
      const z = w.reduce((a, x) => a + (x ?? 0), 0);
      assert.ok(Math.abs(ref.lse[h * sq + i] - Math.log(z)) < 1e-12);
      for (let c = 0; c < dv; c++) {
        let o = 0;
        w.forEach((x, j) => (o += (x / z) * p.v[(j * hk + kh) * dv + c]));
        assert.ok(Math.abs(ref.out[(i * hq + h) * dv + c] - o) < 1e-12);
      }
    }
  }
});

test('emulated bf16 error vs reference in [1e-4, 2e-2]; fp16 lower; no NaN', (t) => {
  const p = problem({ seqlenQ: 200, seqlenK: 300, headsQ: 2, headDim: 64, windowRight: 0 });
  const ref = referenceAttention(p);
  const bf16 = tiledAttention(p, emulate('bfloat16'));
  const fp16 = tiledAttention(p, emulate('float16'));
  const fp32 = tiledAttention(p, emulate('float32'));
  for (const r of [bf16, fp16, fp32]) assertNoNaN(r);
  const eB = relErr(bf16.out, ref.out);
  const eH = relErr(fp16.out, ref.out);
  const e32 = relErr(fp32.out, ref.out);
  t.diagnostic(`relative error: bf16 ${eB.toExponential(2)}, fp16 ${eH.toExponential(2)}, fp32 ${e32.toExponential(2)}`);
  assert.ok(eB > 1e-4 && eB < 2e-2, `bf16 ${eB}`);
  assert.ok(eH < eB, `fp16 ${eH} vs bf16 ${eB}`);
  assert.ok(e32 < eH && e32 < 1e-5, `fp32 ${e32}`);
  assert.ok(relErr(bf16.lse, ref.lse) < 1e-2);
});

test('invalid problems and emulations are rejected', () => {
  const p = problem({ seqlenQ: 4, seqlenK: 4 });
  assert.throws(() => referenceAttention({ ...p, headsKv: 3 }), ShapeError);
  assert.throws(() => referenceAttention({ ...p, q: new Float64Array(3) }), ShapeError);
  assert.throws(() => referenceAttention({ ...p, windowLeft: -2 }), OptionError);
  assert.throws(() => tiledAttention(p, { ...F64, blockN: 0 }), OptionError);
  assert.throws(() => tiledAttention(p, { ...F64, pDtype: 'fp17' as DType }), OptionError);
});

test('reference speed: b=1, h=8, s=2048, d=128', (t) => {
  const p = problem({ seqlenQ: 2048, seqlenK: 2048, headsQ: 8, headDim: 128 });
  const start = performance.now();
  const r = referenceAttention(p);
  const seconds = (performance.now() - start) / 1000;
  t.diagnostic(`referenceAttention b=1 h=8 s=2048 d=128: ${seconds.toFixed(2)} s`);
  assertNoNaN(r);
  assert.ok(seconds < 30, `${seconds} s`);
});
