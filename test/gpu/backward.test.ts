/**
 * The CUDA backward against the float64 CPU backward, on fresh random inputs (the forward's out
 * and lse from the GPU feed both), with the CPU backward at the same precision (P and dS rounded
 * before their GEMMs, gradients rounded to the dtype) as the yardstick: each GPU gradient's error
 * must be within 2x of the emulation's. The backend poisons the gradients with NaN before the
 * launch, and NaN never passes. Skips (with the reason) without a GPU.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ShapeCase } from '../support/cases.js';
import { gpuSkip } from '../support/gpu.js';
import { cpuProblemOf } from '../../src/cpu/backend.js';
import { CudaContext } from '../../src/cuda/context.js';
import { planBackward } from '../../src/cuda/backward.js';
import { attentionBackwardCpu, type CpuGradients } from '../../src/cpu/backward.js';
import { bytesPerElement, type DType } from '../../src/dtype.js';
import { attention, attentionBackward, StrideError, Tensor, UnsupportedError } from '../../src/index.js';
import { roundTo } from '../../src/numerics/convert.js';
import { resolveOptions, type AttentionOptions } from '../../src/options.js';
import { validateAttentionInputs } from '../../src/problem.js';

const skip = gpuSkip;

interface Case extends ShapeCase {
  dtype: 'bfloat16' | 'float16';
  options: AttentionOptions;
}

const CASES: Case[] = [
  { b: 1, sq: 1, sk: 200, hq: 1, hkv: 1, d: 64, dtype: 'bfloat16', options: {} },
  { b: 2, sq: 17, sk: 17, hq: 4, hkv: 4, d: 128, dtype: 'bfloat16', options: { causal: true } },
  { b: 3, sq: 128, sk: 128, hq: 8, hkv: 2, d: 64, dtype: 'float16', options: {} },
  { b: 1, sq: 1000, sk: 1000, hq: 2, hkv: 1, d: 128, dtype: 'bfloat16', options: { causal: true } },
  { b: 1, sq: 300, sk: 1000, hq: 2, hkv: 2, d: 256, dtype: 'float16', options: { causal: true } },
  { b: 2, sq: 400, sk: 150, hq: 2, hkv: 1, d: 64, dtype: 'float16', options: { causal: true } },
  { b: 1, sq: 200, sk: 333, hq: 3, hkv: 1, d: 256, dtype: 'bfloat16', options: {} },
  { b: 1, sq: 257, sk: 300, hq: 8, hkv: 1, d: 64, dtype: 'bfloat16', options: {} },
  { b: 1, sq: 200, sk: 500, hq: 2, hkv: 1, d: 128, dtype: 'float16', options: { softmaxScale: 0.3 } },
  { b: 2, sq: 513, sk: 700, hq: 4, hkv: 2, d: 128, dtype: 'bfloat16', options: { windowSize: [100, 37] } },
  // Soft-capped scores (dS times the cap's slope 1 - tanh^2), small caps to bend N(0, 1) scores.
  { b: 1, sq: 300, sk: 400, hq: 4, hkv: 2, d: 64, dtype: 'bfloat16', options: { causal: true, softcap: 2 } },
  { b: 1, sq: 200, sk: 333, hq: 2, hkv: 1, d: 128, dtype: 'float16', options: { softcap: 5 } },
  { b: 1, sq: 150, sk: 260, hq: 2, hkv: 2, d: 256, dtype: 'bfloat16', options: { windowSize: [90, 20], softcap: 1 } },
];

function label(c: Case): string {
  return `${c.dtype} b=${c.b} sq=${c.sq} sk=${c.sk} hq=${c.hq} hkv=${c.hkv} d=${c.d} ${JSON.stringify(c.options)}`;
}

interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  dout: Tensor;
  out: Tensor;
  lse: Tensor;
}

function makeInputs(c: Case, seed: number): Inputs {
  const q = Tensor.randn([c.b, c.sq, c.hq, c.d], { dtype: c.dtype, seed });
  const k = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: c.dtype, seed: seed + 1 });
  const v = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: c.dtype, seed: seed + 2 });
  const dout = Tensor.randn([c.b, c.sq, c.hq, c.d], { dtype: c.dtype, seed: seed + 3 });
  const { out, lse } = attention(q, k, v, { ...c.options, backend: 'cuda' });
  return { q, k, v, dout, out, lse };
}

function cpuGradients(x: Inputs, c: Case, dtype: DType): CpuGradients {
  const shape = validateAttentionInputs(x.q, x.k, x.v);
  const problem = cpuProblemOf(x.q, x.k, x.v, shape, resolveOptions(c.options, c.d));
  const g = attentionBackwardCpu(
    problem,
    { dout: x.dout.toFloat64Array(), out: x.out.toFloat64Array(), lse: x.lse.toFloat64Array() },
    { dtype },
  );
  if (dtype === 'float64') return g;
  const round = (a: Float64Array) => a.map((e) => roundTo(e, dtype));
  return { dq: round(g.dq), dk: round(g.dk), dv: round(g.dv) };
}

/** ‖a − b‖ / ‖b‖, Infinity on any non-finite value of a. */
function gradError(a: Float64Array, b: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

function bytesOf(t: Tensor): Buffer {
  const host = t.cpu();
  const raw = host.raw;
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  return Buffer.from(bytes);
}

describe('CUDA backward vs float64 CPU backward', { skip }, () => {
  let seed = Date.now() % 100_000;
  for (const c of CASES) {
    it(label(c), (t) => {
      const x = makeInputs(c, (seed += 4));
      const gpu = attentionBackward(x.dout, x.q, x.k, x.v, x.out, x.lse, { ...c.options, backend: 'cuda' });
      const ref = cpuGradients(x, c, 'float64');
      const emu = cpuGradients(x, c, c.dtype);
      const lines: string[] = [];
      for (const key of ['dq', 'dk', 'dv'] as const) {
        const gpuErr = gradError(gpu[key].toFloat64Array(), ref[key]);
        const emuErr = gradError(emu[key], ref[key]);
        lines.push(`${key} ${gpuErr.toExponential(2)} (emulation ${emuErr.toExponential(2)})`);
        assert.ok(gpuErr <= 2 * emuErr + 1e-6, `${key} error ${gpuErr.toExponential(2)} > 2 x emulation ${emuErr.toExponential(2)}`);
      }
      t.diagnostic(`rel err ${lines.join(', ')}`);
      for (const g of Object.values(gpu)) g.dispose();
      for (const v of Object.values(x)) v.dispose();
    });
  }

  // Unmasked (rotated visiting order), causal (key-block order) and a window, one per head dim,
  // each with several key blocks adding into every query block's dQ.
  const deterministicCases: Case[] = [
    { b: 2, sq: 700, sk: 1500, hq: 4, hkv: 2, d: 64, dtype: 'bfloat16', options: {} },
    { b: 1, sq: 1100, sk: 1100, hq: 4, hkv: 1, d: 128, dtype: 'float16', options: { causal: true } },
    { b: 1, sq: 600, sk: 900, hq: 2, hkv: 2, d: 256, dtype: 'bfloat16', options: { windowSize: [300, 50] } },
    { b: 1, sq: 333, sk: 1200, hq: 2, hkv: 1, d: 256, dtype: 'float16', options: {} },
  ];
  for (const c of deterministicCases) {
    it(`deterministic: bitwise-identical over 3 runs and accurate, ${label(c)}`, () => {
      const x = makeInputs(c, (seed += 4));
      const runs = [0, 1, 2].map(() => {
        const g = attentionBackward(x.dout, x.q, x.k, x.v, x.out, x.lse, { ...c.options, backend: 'cuda', deterministic: true });
        const bytes = { dq: bytesOf(g.dq), dk: bytesOf(g.dk), dv: bytesOf(g.dv) };
        const values = { dq: g.dq.toFloat64Array(), dk: g.dk.toFloat64Array(), dv: g.dv.toFloat64Array() };
        for (const t of Object.values(g)) t.dispose();
        return { bytes, values };
      });
      for (const key of ['dq', 'dk', 'dv'] as const) {
        assert.ok(runs[1].bytes[key].equals(runs[0].bytes[key]) && runs[2].bytes[key].equals(runs[0].bytes[key]), `${key} differs between runs`);
      }
      const ref = cpuGradients(x, c, 'float64');
      const emu = cpuGradients(x, c, c.dtype);
      for (const key of ['dq', 'dk', 'dv'] as const) {
        const gpuErr = gradError(runs[0].values[key], ref[key]);
        const emuErr = gradError(emu[key], ref[key]);
        assert.ok(gpuErr <= 2 * emuErr + 1e-6, `${key} error ${gpuErr.toExponential(2)} > 2 x emulation ${emuErr.toExponential(2)}`);
      }
      for (const v of Object.values(x)) v.dispose();
    });
  }

  // More key blocks than SMs (head dim 256 walks 64 keys per CTA): a masked problem dispatches its
  // key blocks in descending order, the order its dQ tiles take them in, and an unmasked one
  // rotates them in groups that fit the GPU at once; either way a CTA waits only on CTAs of its
  // group or dispatched before it.
  for (const options of [{ causal: true }, {}] as AttentionOptions[]) {
    it(`deterministic with more key blocks than SMs: bitwise-stable, close to the default mode, ${JSON.stringify(options)}`, () => {
      const sk = 64 * (CudaContext.get(0).multiprocessorCount + 9);
      const c: Case = { b: 1, sq: 200, sk, hq: 2, hkv: 1, d: 256, dtype: 'bfloat16', options };
      const x = makeInputs(c, (seed += 4));
      const run = (deterministic: boolean) => {
        const g = attentionBackward(x.dout, x.q, x.k, x.v, x.out, x.lse, { ...options, backend: 'cuda', deterministic });
        const r = { dq: bytesOf(g.dq), values: g.dq.toFloat64Array() };
        for (const t of Object.values(g)) t.dispose();
        return r;
      };
      const runs = [run(true), run(true), run(true)];
      assert.ok(runs[1].dq.equals(runs[0].dq) && runs[2].dq.equals(runs[0].dq), 'dq differs between runs');
      const err = gradError(runs[0].values, run(false).values);
      assert.ok(err < 5e-3, `deterministic dq differs from the default mode's by ${err.toExponential(2)}`);
      for (const v of Object.values(x)) v.dispose();
    });
  }

  // A plan launched again must start from a zero dQ accumulator (the pre-pass zeroes it, or a main
  // kernel that converts dQ itself leaves it zeroed after the plan's first launch zeroed it): a
  // tile left over would add into the next launch's dQ, one not written would keep the NaN poison.
  for (const c of [
    { b: 2, sq: 300, sk: 700, hq: 4, hkv: 2, d: 64, dtype: 'bfloat16', options: { causal: true } },
    { b: 1, sq: 500, sk: 450, hq: 2, hkv: 1, d: 128, dtype: 'float16', options: {} },
    { b: 1, sq: 260, sk: 600, hq: 2, hkv: 2, d: 256, dtype: 'bfloat16', options: { windowSize: [120, 30] } },
  ] as Case[]) {
    it(`one plan launched 3 times: each launch's dq accurate, ${label(c)}`, () => {
      const host = makeInputs(c, (seed += 4));
      const x = Object.fromEntries(Object.entries(host).map(([name, t]) => [name, t.cuda()])) as unknown as Inputs;
      const ctx = CudaContext.get(0);
      const grads = { dq: Tensor.empty(x.q.shape, c.dtype, 'cuda'), dk: Tensor.empty(x.k.shape, c.dtype, 'cuda'), dv: Tensor.empty(x.v.shape, c.dtype, 'cuda') };
      const plan = planBackward(ctx, { ...x, ...grads }, validateAttentionInputs(x.q, x.k, x.v), resolveOptions(c.options, c.d), false);
      const ref = cpuGradients(host, c, 'float64').dq;
      const limit = 2 * gradError(cpuGradients(host, c, c.dtype).dq, ref) + 1e-6;
      try {
        for (let launch = 0; launch < 3; launch++) {
          ctx.memset8(grads.dq.devicePointer, 0xff, grads.dq.numel * bytesPerElement(c.dtype));
          plan.launch();
          ctx.synchronize();
          const err = gradError(grads.dq.toFloat64Array(), ref);
          assert.ok(err <= limit, `launch ${launch}: dq error ${err.toExponential(2)} > ${limit.toExponential(2)}`);
        }
      } finally {
        plan.dispose();
      }
      for (const t of [...Object.values(host), ...Object.values(x), ...Object.values(grads)]) t.dispose();
    });
  }

  it('rejects what the kernels cannot read, before launching', () => {
    const c: Case = { b: 1, sq: 64, sk: 64, hq: 2, hkv: 2, d: 64, dtype: 'bfloat16', options: {} };
    const host = makeInputs(c, (seed += 4));
    const x = { q: host.q.cuda(), k: host.k.cuda(), v: host.v.cuda(), out: host.out.cuda(), lse: host.lse.cuda() };
    // A device dO whose rows are 68 elements apart (136 bytes, not a multiple of TMA's 16); host
    // tensors would be packed by the upload.
    const wide = Tensor.randn([1, 64, 2, 68], { dtype: 'bfloat16', seed: (seed += 4) }).cuda();
    const strided = wide.view([1, 64, 2, 64], [64 * 2 * 68, 2 * 68, 68, 1], 0);
    assert.throws(() => attentionBackward(strided, x.q, x.k, x.v, x.out, x.lse, { backend: 'cuda' }), StrideError);
    // The same rows as out: the pre-pass reads its rows as 16-byte vectors.
    assert.throws(
      () => attentionBackward(x.out, x.q, x.k, x.v, strided, x.lse, { backend: 'cuda' }),
      (e: unknown) => e instanceof StrideError && e.param === 'out.strides',
    );
    const q96 = Tensor.randn([1, 8, 2, 96], { dtype: 'bfloat16', seed: (seed += 4) });
    const { out, lse } = attention(q96, q96, q96, { backend: 'cpu' });
    assert.throws(() => attentionBackward(out, q96, q96, q96, out, lse, { backend: 'cuda' }), UnsupportedError);
    for (const t of [...Object.values(host), ...Object.values(x), wide, strided, q96, out, lse]) t.dispose();
  });

  it('keeps device tensors on the device, reads strided q/k/v, and auto picks CUDA', () => {
    const [b, s, h, d] = [2, 333, 4, 128];
    const qkv = Tensor.randn([b, s, 3, h, d], { dtype: 'bfloat16', seed: (seed += 4) }).cuda();
    const view = (i: number) => qkv.view([b, s, h, d], [s * 3 * h * d, 3 * h * d, d, 1], i * h * d);
    const [q, k, v] = [view(0), view(1), view(2)];
    const dout = Tensor.randn([b, s, h, d], { dtype: 'bfloat16', seed: (seed += 4) }).cuda();
    const { out, lse } = attention(q, k, v, { causal: true });
    const g = attentionBackward(dout, q, k, v, out, lse, { causal: true });
    for (const t of Object.values(g)) assert.equal(t.location, 'cuda');
    const host = { q: q.cpu(), k: k.cpu(), v: v.cpu(), dout: dout.cpu(), out: out.cpu(), lse: lse.cpu() };
    const c: Case = { b, sq: s, sk: s, hq: h, hkv: h, d, dtype: 'bfloat16', options: { causal: true } };
    const ref = cpuGradients(host, c, 'float64');
    for (const key of ['dq', 'dk', 'dv'] as const) {
      const err = gradError(g[key].toFloat64Array(), ref[key]);
      assert.ok(err < 2e-2, `${key} rel err ${err}`);
    }
    for (const t of [qkv, q, k, v, dout, out, lse, ...Object.values(g), ...Object.values(host)]) t.dispose();
  });
});
