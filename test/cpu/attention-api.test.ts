import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CudaUnavailableError, OptionError, Tensor, UnsupportedError, attention, listBackends, referenceAttention } from '../../src/index.js';
import { getBackend, registerBackend, selectBackend, type Backend } from '../../src/backend.js';
import { resolveOptions } from '../../src/options.js';
import { validateAttentionInputs } from '../../src/problem.js';
import { roundArrayTo } from '../../src/numerics/convert.js';
import type { CpuProblem } from '../../src/cpu/problem.js';

function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}

function problem(q: Tensor, k: Tensor, v: Tensor, over: Partial<CpuProblem> = {}): CpuProblem {
  const [batch, seqlenQ, headsQ, headDim] = q.shape;
  return {
    batch,
    seqlenQ,
    seqlenK: k.shape[1],
    headsQ,
    headsKv: k.shape[2],
    headDim,
    headDimV: v.shape[3],
    q: q.toFloat64Array(),
    k: k.toFloat64Array(),
    v: v.toFloat64Array(),
    softmaxScale: 1 / Math.sqrt(headDim),
    windowLeft: -1,
    windowRight: -1,
    softcap: 0,
    ...over,
  };
}

const cudaUsable = getBackend('cuda')?.probe().ok === true;

test('fp32 attention through the API matches referenceAttention within 1e-6', () => {
  const q = Tensor.randn([2, 33, 4, 64], { seed: 1 });
  const k = Tensor.randn([2, 47, 2, 64], { seed: 2 });
  const v = Tensor.randn([2, 47, 2, 48], { seed: 3 });
  const { out, lse } = attention(q, k, v, { backend: 'cpu' });
  assert.equal(out.dtype, 'float32');
  assert.deepEqual(out.shape, [2, 33, 4, 48]);
  assert.equal(lse.dtype, 'float32');
  assert.deepEqual(lse.shape, [2, 4, 33]);
  const want = referenceAttention(problem(q, k, v));
  assert.ok(relError(out.toFloat64Array(), want.out) < 1e-6);
  assert.ok(relError(lse.toFloat64Array(), want.lse) < 1e-6);
});

test('options reach the backend: causal, window, softcap and scale', () => {
  const q = Tensor.randn([1, 20, 2, 32], { seed: 4 });
  const k = Tensor.randn([1, 29, 2, 32], { seed: 5 });
  const v = Tensor.randn([1, 29, 2, 32], { seed: 6 });
  const causal = attention(q, k, v, { causal: true, softcap: 5, softmaxScale: 0.3, backend: 'cpu' });
  const wantCausal = referenceAttention(problem(q, k, v, { windowRight: 0, softcap: 5, softmaxScale: 0.3 }));
  assert.ok(relError(causal.out.toFloat64Array(), wantCausal.out) < 1e-6);
  const local = attention(q, k, v, { windowSize: [3, 2] });
  const wantLocal = referenceAttention(problem(q, k, v, { windowLeft: 3, windowRight: 2 }));
  assert.ok(relError(local.out.toFloat64Array(), wantLocal.out) < 1e-6);
});

test('a packed (b, s, 3, h, d) QKV buffer viewed as q, k, v gives the result of contiguous copies', () => {
  const [b, s, h, d] = [2, 17, 3, 16];
  const qkv = Tensor.randn([b, s, 3, h, d], { dtype: 'bfloat16', seed: 9 });
  const strides = [s * 3 * h * d, 3 * h * d, d, 1];
  const [q, k, v] = [0, 1, 2].map((i) => qkv.view([b, s, h, d], strides, i * h * d));
  assert.equal(q.isContiguous(), false);
  const viewed = attention(q, k, v, { causal: true });
  const copies = [q, k, v].map((t) => t.contiguous());
  const copied = attention(copies[0], copies[1], copies[2], { causal: true });
  assert.equal(viewed.out.dtype, 'bfloat16');
  assert.deepEqual(viewed.out.toFloat64Array(), copied.out.toFloat64Array());
  assert.deepEqual(viewed.lse.toFloat64Array(), copied.lse.toFloat64Array());
  const want = referenceAttention(problem(copies[0], copies[1], copies[2], { windowRight: 0 }));
  assert.deepEqual(viewed.out.toFloat64Array(), roundArrayTo(want.out, 'bfloat16'));
});

test('fp8 inputs run on the CPU backend from their decoded values', () => {
  const q = Tensor.randn([1, 8, 2, 24], { dtype: 'float8_e4m3', seed: 11 });
  const k = Tensor.randn([1, 8, 1, 24], { dtype: 'float8_e4m3', seed: 12 });
  const v = Tensor.randn([1, 8, 1, 24], { dtype: 'float8_e4m3', seed: 13 });
  const { out } = attention(q, k, v);
  assert.equal(out.dtype, 'float8_e4m3');
  assert.deepEqual(out.toFloat64Array(), roundArrayTo(referenceAttention(problem(q, k, v)).out, 'float8_e4m3'));
});

test('options are validated before the inputs', () => {
  assert.throws(() => attention(null as never, null as never, null as never, { casual: true } as never), { name: 'OptionError', message: /did you mean "causal"/ });
  const t = Tensor.randn([1, 4, 1, 8]);
  assert.throws(() => attention(t, t, t, { softmaxScale: NaN }), (e: unknown) => e instanceof OptionError && /options\.softmaxScale = NaN/.test(e.message));
});

test("backend 'cuda' without a usable GPU throws CudaUnavailableError while 'auto' falls back to cpu", { skip: cudaUsable && 'a CUDA GPU is usable here' }, () => {
  const q = Tensor.randn([1, 6, 2, 16], { seed: 1 });
  assert.throws(() => attention(q, q, q, { backend: 'cuda' }), { name: 'CudaUnavailableError', message: /Fix:/ });
  const auto = attention(q, q, q);
  const cpu = attention(q, q, q, { backend: 'cpu' });
  assert.deepEqual(auto.out.toFloat64Array(), cpu.out.toFloat64Array());
  assert.ok(listBackends().some((b) => b.name === 'cpu' && b.available));
});

test('selection with a stand-in cuda backend: probe failure, unsupported problems, and preference', () => {
  const q = Tensor.randn([1, 6, 2, 16], { seed: 2 });
  const shape = validateAttentionInputs(q, q, q);
  const opts = resolveOptions({}, 16);
  const calls: string[] = [];
  const stub = (probeOk: boolean, why: string | null): Backend => ({
    name: 'cuda',
    probe: () => (probeOk ? { ok: true, detail: 'stub GPU' } : { ok: false, reason: 'no NVIDIA driver found' }),
    supports: () => why,
    forward: (...args) => {
      calls.push('cuda');
      return getBackend('cpu')!.forward(...args);
    },
  });

  let undo = registerBackend(stub(false, null));
  try {
    assert.throws(() => attention(q, q, q, { backend: 'cuda' }), (e: unknown) => e instanceof CudaUnavailableError && /no NVIDIA driver found/.test(e.message));
    assert.equal(selectBackend('auto', shape, opts).name, 'cpu');
    assert.deepEqual(
      listBackends().find((b) => b.name === 'cuda'),
      { name: 'cuda', available: false, detail: 'no NVIDIA driver found' },
    );
  } finally {
    undo();
  }

  undo = registerBackend(stub(true, 'head dim 16 is not compiled'));
  try {
    assert.throws(() => attention(q, q, q, { backend: 'cuda' }), (e: unknown) => e instanceof UnsupportedError && /cannot run this problem: head dim 16 is not compiled.*Fix:/.test(e.message));
    assert.equal(selectBackend('auto', shape, opts).name, 'cpu');
  } finally {
    undo();
  }

  undo = registerBackend(stub(true, null));
  try {
    attention(q, q, q);
    assert.deepEqual(calls, ['cuda']);
  } finally {
    undo();
  }
  assert.equal(getBackend('cuda')?.probe().ok === true, cudaUsable, 'registration restored');
});
