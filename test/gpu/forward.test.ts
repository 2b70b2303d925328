/**
 * The CUDA forward kernels against the float64 reference, on fresh random inputs, with the
 * CPU backend's emulation of the same computation at the same precision as the yardstick:
 * the GPU error must be within 2x of the emulation's. Skips (with the reason) without a GPU.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ShapeCase } from '../support/cases.js';
import { gpuSkip } from '../support/gpu.js';
import { CudaContext } from '../../src/cuda/context.js';
import { planForward } from '../../src/cuda/forward.js';
import {
  ABLATION_SCHEDULES,
  FORWARD_HEAD_DIMS,
  FORWARD_TILES,
  forwardKernel,
  forwardTileFor,
  forwardInputsFor,
  SEQUENCE_TILES,
} from '../../src/cuda/kernels.js';
import { referenceAttention } from '../../src/cpu/reference.js';
import { tiledAttention } from '../../src/cpu/tiled.js';
import { attention, Tensor, UnsupportedError, StrideError } from '../../src/index.js';
import { resolveOptions } from '../../src/options.js';
import { validateAttentionInputs } from '../../src/problem.js';
import { cpuProblemOf, maxAbsDiffLse, relativeError } from '../support/compare.js';

const skip = gpuSkip;


interface Case extends ShapeCase {
  causal: boolean;
  dtype: 'bfloat16' | 'float16';
  window?: [number, number];
  softcap?: number;
}

const CASES: Case[] = [
  { b: 1, sq: 1, sk: 1, hq: 1, hkv: 1, d: 64, causal: false, dtype: 'bfloat16' },
  { b: 2, sq: 17, sk: 17, hq: 4, hkv: 4, d: 128, causal: true, dtype: 'bfloat16' },
  { b: 3, sq: 128, sk: 128, hq: 8, hkv: 2, d: 64, causal: false, dtype: 'float16' },
  { b: 1, sq: 1000, sk: 1000, hq: 4, hkv: 1, d: 128, causal: true, dtype: 'bfloat16' },
  { b: 2, sq: 1000, sk: 300, hq: 2, hkv: 2, d: 256, causal: true, dtype: 'float16' },
  { b: 2, sq: 300, sk: 1000, hq: 2, hkv: 1, d: 256, causal: true, dtype: 'bfloat16' },
  { b: 4, sq: 17, sk: 1000, hq: 16, hkv: 4, d: 64, causal: false, dtype: 'bfloat16' },
  { b: 1, sq: 4097, sk: 4097, hq: 1, hkv: 1, d: 128, causal: true, dtype: 'float16' },
  { b: 1, sq: 1, sk: 4097, hq: 2, hkv: 1, d: 256, causal: false, dtype: 'bfloat16' },
  { b: 1, sq: 128, sk: 1, hq: 3, hkv: 3, d: 128, causal: true, dtype: 'float16' },
  { b: 2, sq: 513, sk: 700, hq: 4, hkv: 2, d: 128, causal: false, dtype: 'bfloat16', window: [100, 37] },
  // The sequence tiles (SEQUENCE_TILES): at head dim 64 2100 rows end 180 rows into a 192-row block;
  // 1000 keys end 40 keys into an 80-key block at head dim 256, 300 keys 124 into a 176-key block.
  { b: 1, sq: 2100, sk: 2100, hq: 2, hkv: 1, d: 64, causal: true, dtype: 'float16' },
  { b: 1, sq: 2048, sk: 2500, hq: 2, hkv: 2, d: 64, causal: false, dtype: 'bfloat16', window: [300, 50] },
  { b: 1, sq: 2100, sk: 1000, hq: 2, hkv: 1, d: 256, causal: true, dtype: 'bfloat16' },
  { b: 1, sq: 8200, sk: 300, hq: 1, hkv: 1, d: 128, causal: true, dtype: 'float16' },
  // The three-warpgroup tiles of unmasked problems (d=64 from 512 rows, d=128 from 2048): 700 rows
  // end 124 into a 192-row block, 2100 rows 180.
  { b: 2, sq: 700, sk: 900, hq: 4, hkv: 2, d: 64, causal: false, dtype: 'float16' },
  { b: 1, sq: 2100, sk: 1000, hq: 2, hkv: 1, d: 128, causal: false, dtype: 'bfloat16' },
  { b: 2, sq: 8200, sk: 300, hq: 1, hkv: 1, d: 128, causal: false, dtype: 'float16' },
  // Last 192-row blocks with one warpgroup of three inside seqlen_q (d=64's tall and long tiles:
  // 1000 rows end 40 into a block, 2340 rows 36), with more tiles than CTAs and 6 and 19 key blocks.
  { b: 4, sq: 1000, sk: 700, hq: 8, hkv: 2, d: 64, causal: false, dtype: 'bfloat16' },
  { b: 1, sq: 2340, sk: 2340, hq: 12, hkv: 4, d: 64, causal: true, dtype: 'float16' },
  // Three CTAs per SM for masked problems at d=64 from 512 rows: more tiles than the three CTAs of
  // every SM, a causal mask and a window.
  { b: 2, sq: 1100, sk: 1100, hq: 16, hkv: 4, d: 64, causal: true, dtype: 'bfloat16' },
  { b: 1, sq: 600, sk: 800, hq: 4, hkv: 2, d: 64, causal: false, dtype: 'float16', window: [200, 20] },
  // Soft-capped scores: small caps bend scores of N(0, 1) inputs well into tanh's curve; each head
  // dim, the tall and long tiles, a mask and GQA.
  { b: 2, sq: 300, sk: 500, hq: 4, hkv: 2, d: 128, causal: true, dtype: 'bfloat16', softcap: 2 },
  { b: 1, sq: 700, sk: 700, hq: 2, hkv: 1, d: 64, causal: false, dtype: 'float16', softcap: 5 },
  { b: 1, sq: 2100, sk: 300, hq: 2, hkv: 2, d: 256, causal: false, dtype: 'bfloat16', softcap: 1 },
  { b: 1, sq: 513, sk: 700, hq: 2, hkv: 1, d: 64, causal: false, dtype: 'bfloat16', window: [100, 37], softcap: 30 },
];

function label(c: Case): string {
  const mask = c.window ? `window ${c.window}` : c.causal ? 'causal' : 'full';
  return `${c.dtype} b=${c.b} sq=${c.sq} sk=${c.sk} hq=${c.hq} hkv=${c.hkv} d=${c.d} ${mask}${c.softcap ? ` softcap ${c.softcap}` : ''}`;
}

describe('CUDA forward vs float64 reference', { skip }, () => {
  let seed = Date.now() % 100_000;
  for (const c of CASES) {
    it(label(c), (t) => {
      const q = Tensor.randn([c.b, c.sq, c.hq, c.d], { dtype: c.dtype, seed: seed++ });
      const k = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: c.dtype, seed: seed++ });
      const v = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: c.dtype, seed: seed++ });
      const options = { ...(c.window ? { windowSize: c.window } : { causal: c.causal }), softcap: c.softcap ?? 0 };
      const { out, lse } = attention(q, k, v, { ...options, backend: 'cuda' });

      const opts = resolveOptions(options, c.d);
      const problem = cpuProblemOf(q, k, v, validateAttentionInputs(q, k, v), opts);
      const ref = referenceAttention(problem);
      const emu = tiledAttention(problem, {
        ...forwardTileFor(c.dtype, c.d, c.sq, opts),
        inputDtype: c.dtype,
        pDtype: c.dtype,
        accumulate: 'float32',
        outDtype: c.dtype,
      });
      const gpuErr = relativeError(out.toFloat64Array(), ref.out);
      const emuErr = relativeError(emu.out, ref.out);
      const lseErr = maxAbsDiffLse(lse.toFloat64Array(), ref.lse);
      t.diagnostic(`out rel err ${gpuErr.toExponential(2)} (emulation ${emuErr.toExponential(2)}), lse max abs err ${lseErr.toExponential(2)}`);
      assert.ok(gpuErr <= 2 * emuErr + 1e-6, `out error ${gpuErr.toExponential(2)} > 2 x emulation ${emuErr.toExponential(2)}`);
      assert.ok(lseErr <= 1e-3, `lse max abs error ${lseErr}`);
      for (const t of [q, k, v, out, lse]) t.dispose();
    });
  }

  for (const variant of ABLATION_SCHEDULES) {
    it(`ablation build ${variant} computes the same attention`, () => {
      const [b, sq, sk, h, d] = [2, 700, 900, 4, 128];
      const q = Tensor.randn([b, sq, h, d], { dtype: 'bfloat16', seed: seed++ }).cuda();
      const k = Tensor.randn([b, sk, h, d], { dtype: 'bfloat16', seed: seed++ }).cuda();
      const v = Tensor.randn([b, sk, h, d], { dtype: 'bfloat16', seed: seed++ }).cuda();
      const out = Tensor.empty([b, sq, h, d], 'bfloat16', 'cuda');
      const lse = Tensor.empty([b, h, sq], 'float32', 'cuda');
      const opts = resolveOptions({ causal: true }, d);
      const ctx = CudaContext.get(0);
      const plan = planForward(ctx, { q, k, v, out, lse }, validateAttentionInputs(q, k, v), opts, variant);
      plan.launch();
      ctx.synchronize();
      plan.dispose();
      const ref = referenceAttention(cpuProblemOf(q, k, v, validateAttentionInputs(q, k, v), opts));
      const err = relativeError(out.toFloat64Array(), ref.out);
      assert.ok(err < 1e-2, `${variant}: rel err ${err}`);
      for (const x of [q, k, v, out, lse]) x.dispose();
    });
  }

  it("the host's tile table matches the cubins", () => {
    for (const element of ['bfloat16', 'float16'] as const) {
      for (const d of FORWARD_HEAD_DIMS) {
        const kernel = forwardKernel(CudaContext.get(0), element, d);
        assert.deepEqual({ blockM: kernel.blockM, blockN: kernel.blockN }, FORWARD_TILES[d], `${element} d=${d}`);
      }
    }
    for (const t of SEQUENCE_TILES) {
      for (const out of ['bfloat16', 'float16'] as const) {
        for (const inputs of forwardInputsFor(t.fp8, out)) {
          const kernel = forwardKernel(CudaContext.get(0), inputs, t.headDim, t.variant);
          assert.deepEqual({ blockM: kernel.blockM, blockN: kernel.blockN }, { blockM: t.blockM, blockN: t.blockN }, `${t.variant} ${JSON.stringify(inputs)} d=${t.headDim}`);
        }
      }
    }
  });

  it('keeps device tensors on the device and honours packed-QKV strides', () => {
    const [b, s, h, d] = [2, 333, 4, 128];
    const qkv = Tensor.randn([b, s, 3, h, d], { dtype: 'bfloat16', seed: seed++ }).cuda();
    const view = (i: number) => qkv.view([b, s, h, d], [s * 3 * h * d, 3 * h * d, d, 1], i * h * d);
    const [q, k, v] = [view(0), view(1), view(2)];
    const { out, lse } = attention(q, k, v, { causal: true });
    assert.equal(out.location, 'cuda');
    assert.equal(lse.location, 'cuda');
    const [hq, hk, hv] = [q.cpu(), k.cpu(), v.cpu()];
    const ref = attention(hq, hk, hv, { causal: true, backend: 'cpu' });
    const err = relativeError(out.toFloat64Array(), ref.out.toFloat64Array());
    assert.ok(err < 2e-2, `packed view error ${err}`);
    for (const t of [qkv, q, k, v, out, lse, hq, hk, hv, ref.out, ref.lse]) t.dispose();
  });

  it('rejects what the kernels cannot address, before launching', () => {
    const q = Tensor.randn([1, 8, 2, 96], { dtype: 'bfloat16' });
    assert.throws(() => attention(q, q, q, { backend: 'cuda' }), UnsupportedError);
    const wide = Tensor.randn([1, 16, 3, 68], { dtype: 'bfloat16' }).cuda();
    const odd = wide.view([1, 16, 3, 64], [16 * 3 * 68, 3 * 68, 68, 1], 0);
    assert.throws(() => attention(odd, odd, odd, { backend: 'cuda' }), StrideError);
    const fp32 = Tensor.randn([1, 8, 2, 64], { dtype: 'float32' });
    assert.throws(() => attention(fp32, fp32, fp32, { backend: 'cuda' }), UnsupportedError);
    for (const t of [q, wide, odd, fp32]) t.dispose();
  });

  it('refuses memory the driver does not know', () => {
    const fake = Tensor.fromDevicePointer(0x1000n, [1, 8, 2, 64], 'bfloat16');
    assert.throws(() => attention(fake, fake, fake, { backend: 'cuda' }), UnsupportedError);
    fake.dispose();
  });
});
