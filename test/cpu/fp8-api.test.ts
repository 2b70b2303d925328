/**
 * The public FP8 API on the CPU backend: quantizeFp8 on host tensors, attention() over
 * QuantizedTensors (an emulation of the CUDA FP8 kernel), the on-the-fly option, and the errors
 * that guard against silently wrong FP8 results.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attention, quantizeFp8, QuantizedTensor, Tensor, UnsupportedError, OptionError } from '../../src/index.js';
import { relativeError } from '../support/compare.js';

const randn = (shape: number[], seed: number) => Tensor.randn(shape, { dtype: 'bfloat16', seed });

describe('FP8 API (CPU)', () => {
  it('rounds block scales up to powers of two on request, with every value in e4m3 range', () => {
    const x = randn([1, 256, 2, 64], 12);
    const amaxScaled = quantizeFp8(x).descale.toFloat64Array();
    const q8 = quantizeFp8(x, { powerOfTwoScales: true });
    const descale = q8.descale.toFloat64Array();
    descale.forEach((d, i) => {
      assert.equal(2 ** Math.round(Math.log2(d)), d, `descale ${i} = ${d}`);
      assert.ok(d >= amaxScaled[i] && d < 2 * amaxScaled[i], `descale ${i}: ${d} for amax scale ${amaxScaled[i]}`);
    });
    const data = q8.data.toFloat64Array();
    assert.ok(Math.max(...data.map(Math.abs)) <= 448);
  });

  it('quantizes to e4m3 with one descale per block and reconstructs within e4m3 precision', () => {
    const x = randn([2, 300, 3, 64], 11);
    const q8 = quantizeFp8(x, { blockRows: 128 });
    assert.equal(q8.data.dtype, 'float8_e4m3');
    assert.deepEqual([...q8.descale.shape], [2, 3, 3]);
    const data = q8.data.toFloat64Array();
    const descale = q8.descale.toFloat64Array();
    const back = new Float64Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const [h, s, b] = [Math.floor(i / 64) % 3, Math.floor(i / 192) % 300, Math.floor(i / (192 * 300))];
      back[i] = data[i] * descale[(b * 3 + h) * 3 + Math.floor(s / 128)];
    }
    const err = relativeError(back, x.toFloat64Array());
    assert.ok(err > 0 && err < 0.04, `reconstruction error ${err}`);
    assert.ok(Math.max(...data.map(Math.abs)) <= 448);
  });

  it('runs attention on QuantizedTensors close to float64, and better with Hadamard on outliers', () => {
    const [b, s, h, d] = [1, 256, 2, 128];
    const q = randn([b, s, h, d], 1);
    const k = randn([b, s, h, d], 2);
    const v = randn([b, s, h, d], 3);
    const ref = attention(q, k, v, { backend: 'cpu' });
    const fp8 = attention(q, k, v, { backend: 'cpu', fp8: true });
    assert.equal(fp8.out.dtype, 'bfloat16');
    const err = relativeError(fp8.out.toFloat64Array(), ref.out.toFloat64Array());
    assert.ok(err > 1e-3 && err < 0.08, `fp8 rel err ${err}`);
    const f16 = attention(q, k, v, { backend: 'cpu', fp8: { hadamard: true, seed: 3 } });
    assert.ok(f16.out.toFloat64Array().every(Number.isFinite));
  });

  it('two-term q (accuracy mode) reconstructs q more closely and lowers the attention error', () => {
    const [b, s, h, d] = [1, 256, 2, 64];
    const q = randn([b, s, h, d], 21);
    const k = randn([b, s, h, d], 22);
    const v = randn([b, s, h, d], 23);
    const q2 = quantizeFp8(q, { terms: 2 });
    assert.deepEqual([...q2.data.shape], [b, s, h, 2 * d]);
    assert.deepEqual([...q2.shape], [b, s, h, d]);
    const one = quantizeFp8(q);
    const back = (x: QuantizedTensor) => {
      const v64 = x.summedValues();
      const ds = x.descale.toFloat64Array();
      return v64.map((val, i) => val * ds[(Math.floor(i / d) % h) * Math.ceil(s / 128) + Math.floor(Math.floor(i / (d * h)) / 128)]);
    };
    const exact = q.toFloat64Array();
    assert.ok(relativeError(back(q2), exact) < relativeError(back(one), exact) / 4, 'second term refines q');
    const ref = attention(q, k, v, { backend: 'cpu' });
    const plain = attention(q, k, v, { backend: 'cpu', fp8: true });
    const accurate = attention(q, k, v, { backend: 'cpu', fp8: { terms: 2 } });
    const e1 = relativeError(plain.out.toFloat64Array(), ref.out.toFloat64Array());
    const e2 = relativeError(accurate.out.toFloat64Array(), ref.out.toFloat64Array());
    assert.ok(e2 < e1, `accuracy mode ${e2} vs plain ${e1}`);
    const k2 = quantizeFp8(k, { terms: 2 });
    assert.throws(() => attention(q2, k2, quantizeFp8(v), { backend: 'cpu' }), /splits q alone/);
  });

  it("quantizes k and v on the fly in blocks of the key block of the kernel that runs, or the caller's", () => {
    // Head dim 64 from 16384 query rows runs a 160-key tile, which 128-key blocks would not allow.
    const [q, k, v] = [randn([1, 16384, 1, 64], 21), randn([1, 200, 1, 64], 22), randn([1, 200, 1, 64], 23)];
    const quantized = (rows: number) =>
      attention(quantizeFp8(q), quantizeFp8(k, { blockRows: rows }), quantizeFp8(v, { blockRows: rows, powerOfTwoScales: true }), { backend: 'cpu' });
    const onTheFly = attention(q, k, v, { fp8: true, backend: 'cpu' });
    const chosen = attention(q, k, v, { fp8: { blockRows: 128 }, backend: 'cpu' });
    const [wide, long] = [quantized(160), quantized(128)];
    assert.deepEqual(onTheFly.out.toFloat64Array(), wide.out.toFloat64Array());
    assert.deepEqual(chosen.out.toFloat64Array(), long.out.toFloat64Array());
    assert.ok(relativeError(wide.out.toFloat64Array(), long.out.toFloat64Array()) > 0, 'the two blockings should round differently');
  });

  it('refuses inputs that would give a silently wrong answer', () => {
    const x = randn([1, 128, 1, 64], 5);
    const rotated = quantizeFp8(x, { hadamard: true, seed: 1 });
    const other = quantizeFp8(x, { hadamard: true, seed: 2 });
    const plain = quantizeFp8(x);
    assert.throws(() => attention(rotated, other, plain, { backend: 'cpu' }), UnsupportedError);
    assert.throws(() => attention(rotated, rotated, rotated, { backend: 'cpu' }), /v is Hadamard-rotated/);
    assert.throws(() => attention(plain, plain, x, { backend: 'cpu' }), /v is not a QuantizedTensor/);
    const coarse = quantizeFp8(x, { blockRows: 96 });
    assert.throws(() => attention(plain, coarse, coarse, { backend: 'cpu' }), /multiple of/);
    assert.throws(() => quantizeFp8(x, { scaling: 'row' as 'block' }), OptionError);
    assert.throws(() => quantizeFp8(x, { scaling: 'tensor', powerOfTwoScales: true }), /powerOfTwoScales rounds block scales/);
    assert.throws(() => quantizeFp8(x, { powerOfTwoScales: 1 as unknown as boolean }), OptionError);
    assert.throws(() => new QuantizedTensor(plain.data, x, 128), /descale must be float32/);
  });
});
