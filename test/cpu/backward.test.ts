import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ShapeCase } from '../support/cases.js';
import { attention, attentionBackward, CudaUnavailableError, DTypeError, OptionError, ShapeError, Tensor, UnsupportedError } from '../../src/index.js';
import { attentionBackwardCpu } from '../../src/cpu/backward.js';
import { cpuProblemOf } from '../../src/cpu/backend.js';
import { relativeError } from '../../src/check/compare.js';
import type { AttentionOptions } from '../../src/options.js';
import { resolveOptions } from '../../src/options.js';
import { validateAttentionInputs } from '../../src/problem.js';

interface Case extends ShapeCase {
  name: string;
  options: AttentionOptions;
}

const CASES: Case[] = [
  { name: 'full, GQA 2:1', b: 1, sq: 3, sk: 5, hq: 2, hkv: 1, d: 4, options: {} },
  { name: 'causal, seqlenQ > seqlenK (empty rows)', b: 2, sq: 5, sk: 3, hq: 1, hkv: 1, d: 3, options: { causal: true } },
  { name: 'window (1, 1), custom scale', b: 1, sq: 4, sk: 4, hq: 2, hkv: 2, d: 4, options: { windowSize: [1, 1], softmaxScale: 0.7 } },
  { name: 'softcap 2', b: 1, sq: 3, sk: 4, hq: 2, hkv: 1, d: 4, options: { softcap: 2 } },
];

/** L = Σ dout ∘ out(q, k, v), in float64 on the CPU backend. */
function loss(q: Tensor, k: Tensor, v: Tensor, dout: Float64Array, options: AttentionOptions): number {
  const { out, lse } = attention(q, k, v, { ...options, backend: 'cpu' });
  const o = out.toFloat64Array();
  out.dispose();
  lse.dispose();
  let sum = 0;
  for (let i = 0; i < o.length; i++) sum += o[i] * dout[i];
  return sum;
}

function numericGradient(which: number, inputs: Float64Array[], shapes: number[][], dout: Float64Array, options: AttentionOptions): Float64Array {
  const eps = 1e-6;
  const x = inputs[which];
  const grad = new Float64Array(x.length);
  const tensors = (values: Float64Array[]) => values.map((a, i) => Tensor.fromArray(a, shapes[i], 'float64'));
  for (let e = 0; e < x.length; e++) {
    const saved = x[e];
    x[e] = saved + eps;
    const [q1, k1, v1] = tensors(inputs);
    const plus = loss(q1, k1, v1, dout, options);
    x[e] = saved - eps;
    const [q2, k2, v2] = tensors(inputs);
    const minus = loss(q2, k2, v2, dout, options);
    x[e] = saved;
    grad[e] = (plus - minus) / (2 * eps);
  }
  return grad;
}

describe('attentionBackward', () => {
  let seed = 4242;
  for (const c of CASES) {
    it(`matches central differences: ${c.name}`, () => {
      const shapes = [
        [c.b, c.sq, c.hq, c.d],
        [c.b, c.sk, c.hkv, c.d],
        [c.b, c.sk, c.hkv, c.d],
      ];
      const [q, k, v] = shapes.map((s) => Tensor.randn(s, { dtype: 'float64', seed: seed++ }));
      const dout = Tensor.randn([c.b, c.sq, c.hq, c.d], { dtype: 'float64', seed: seed++ });
      const { out, lse } = attention(q, k, v, { ...c.options, backend: 'cpu' });
      const grads = attentionBackward(dout, q, k, v, out, lse, c.options);
      const inputs = [q, k, v].map((t) => t.toFloat64Array());
      const analytic = [grads.dq, grads.dk, grads.dv].map((t) => t.toFloat64Array());
      for (let w = 0; w < 3; w++) {
        const numeric = numericGradient(w, inputs, shapes, dout.toFloat64Array(), c.options);
        const err = relativeError(analytic[w], numeric);
        assert.ok(err < 1e-6, `${['dq', 'dk', 'dv'][w]} rel err ${err}`);
      }
      assert.deepEqual(grads.dk.shape, k.shape);
      assert.deepEqual(grads.dv.shape, v.shape);
    });
  }

  it('emulated bf16 gradients stay within bf16 error of float64 and never NaN', (t) => {
    const [b, s, h, d] = [1, 96, 2, 32];
    const q = Tensor.randn([b, s, h, d], { dtype: 'bfloat16', seed: 1 });
    const k = Tensor.randn([b, s, h, d], { dtype: 'bfloat16', seed: 2 });
    const v = Tensor.randn([b, s, h, d], { dtype: 'bfloat16', seed: 3 });
    const dout = Tensor.randn([b, s, h, d], { dtype: 'bfloat16', seed: 4 });
    const opts = resolveOptions({ causal: true }, d);
    const { out, lse } = attention(q, k, v, { causal: true, backend: 'cpu' });
    const problem = cpuProblemOf(q, k, v, validateAttentionInputs(q, k, v), opts);
    const inputs = { dout: dout.toFloat64Array(), out: out.toFloat64Array(), lse: lse.toFloat64Array() };
    const exact = attentionBackwardCpu(problem, inputs);
    const emulated = attentionBackwardCpu(problem, inputs, { dtype: 'bfloat16' });
    for (const key of ['dq', 'dk', 'dv'] as const) {
      const err = relativeError(emulated[key], exact[key]);
      t.diagnostic(`${key}: bf16 emulation rel err ${err.toExponential(2)}`);
      assert.ok(err > 1e-5 && err < 5e-2, `${key} rel err ${err}`);
    }
  });

  it('validates dout, out, lse and options before computing', () => {
    const q = Tensor.randn([1, 4, 2, 8], { seed: 1 });
    const { out, lse } = attention(q, q, q, { backend: 'cpu' });
    const wrong = Tensor.randn([1, 4, 2, 4], { seed: 2 });
    assert.throws(() => attentionBackward(wrong, q, q, q, out, lse), (e: unknown) => e instanceof ShapeError && /dout/.test((e as Error).message));
    const lse64 = Tensor.randn([1, 2, 4], { dtype: 'float64', seed: 3 });
    assert.throws(() => attentionBackward(out, q, q, q, out, lse64), DTypeError);
    assert.throws(() => attentionBackward(out, q, q, q, out, lse, { determinstic: true } as never), (e: unknown) => e instanceof OptionError && /did you mean "deterministic"/.test((e as Error).message));
    // float32 is CPU-only: refused by the CUDA backend, or CUDA is not usable here at all.
    assert.throws(() => attentionBackward(out, q, q, q, out, lse, { backend: 'cuda' }), (e: unknown) => e instanceof UnsupportedError || e instanceof CudaUnavailableError);
    const g = attentionBackward(out, q, q, q, out, lse, { deterministic: true });
    assert.deepEqual(g.dq.shape, q.shape);
  });
});
