/**
 * The FP8 path on the GPU: quantization against the host's, and the e4m3 forward against the CPU
 * emulation of the same kernel on the same quantized inputs (tight) and against float64 attention
 * of the unquantized inputs (the error must match the emulation's within 10%). Skips without a GPU.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ShapeCase } from '../support/cases.js';
import { gpuSkip } from '../support/gpu.js';
import { CudaContext } from '../../src/cuda/context.js';
import { FORWARD_HEAD_DIMS, FP8_FORWARD_TILES, forwardKernel } from '../../src/cuda/kernels.js';
import { referenceAttention } from '../../src/cpu/reference.js';
import { attention, quantizeFp8, QuantizedTensor, Tensor } from '../../src/index.js';
import { resolveOptions } from '../../src/options.js';
import { validateAttentionInputs } from '../../src/problem.js';
import { cpuProblemOf, maxAbsDiffLse, relativeError } from '../support/compare.js';

const skip = gpuSkip;

interface Case extends ShapeCase {
  causal: boolean;
  scaling: 'block' | 'tensor';
  hadamard: boolean;
  /** 2: accuracy mode (two-term q). */
  terms?: 1 | 2;
  window?: [number, number];
  /** q's descale block (default 128). */
  qBlockRows?: number;
  /** k's and v's descale block (default 128). */
  kBlockRows?: number;
  /**
   * V's block scales: amax (default: O rescaled by mantissa ratios every block), powers of two
   * (as attention()'s fp8 option: O not rescaled), or powers of two over V blocks whose
   * magnitudes span 2^18 (the kernel rebases O's unit past 2^8).
   */
  v?: 'pow2' | 'pow2-spread';
}

const CASES: Case[] = [
  { b: 1, sq: 1, sk: 1, hq: 1, hkv: 1, d: 64, causal: false, scaling: 'block', hadamard: false },
  { b: 2, sq: 200, sk: 200, hq: 2, hkv: 2, d: 64, causal: true, scaling: 'block', hadamard: true, v: 'pow2' },
  { b: 1, sq: 513, sk: 700, hq: 4, hkv: 2, d: 128, causal: false, scaling: 'block', hadamard: true, v: 'pow2' },
  { b: 1, sq: 513, sk: 700, hq: 4, hkv: 2, d: 128, causal: true, scaling: 'block', hadamard: false, v: 'pow2-spread' },
  { b: 2, sq: 1000, sk: 1000, hq: 2, hkv: 1, d: 128, causal: true, scaling: 'tensor', hadamard: false },
  { b: 1, sq: 300, sk: 1000, hq: 2, hkv: 2, d: 256, causal: true, scaling: 'block', hadamard: true },
  { b: 1, sq: 17, sk: 333, hq: 4, hkv: 1, d: 256, causal: false, scaling: 'tensor', hadamard: true },
  { b: 2, sq: 700, sk: 513, hq: 4, hkv: 2, d: 128, causal: true, scaling: 'block', hadamard: true, terms: 2, v: 'pow2' },
  { b: 1, sq: 300, sk: 300, hq: 2, hkv: 1, d: 64, causal: false, scaling: 'tensor', hadamard: false, terms: 2 },
  { b: 2, sq: 513, sk: 700, hq: 4, hkv: 2, d: 256, causal: false, scaling: 'block', hadamard: true, window: [100, 37], v: 'pow2-spread' },
  // q descales every 48 rows: a new one every three 16-row groups, inside the 192-row blocks of the
  // long-sequence tile (head dim 64 from 2048 query rows).
  { b: 1, sq: 2100, sk: 2000, hq: 2, hkv: 1, d: 64, causal: true, scaling: 'block', hadamard: false, qBlockRows: 48 },
  { b: 1, sq: 2048, sk: 2048, hq: 2, hkv: 2, d: 64, causal: false, scaling: 'block', hadamard: true, terms: 2, v: 'pow2-spread' },
  { b: 1, sq: 400, sk: 700, hq: 4, hkv: 2, d: 256, causal: true, scaling: 'block', hadamard: true, terms: 2, v: 'pow2' },
  // The long tiles' last 192-row blocks with one warpgroup of three inside seqlen_q (2150 rows end
  // 38 into a block, 2340 rows 36), with more tiles than CTAs and odd key-block counts.
  { b: 1, sq: 2150, sk: 1100, hq: 12, hkv: 3, d: 128, causal: false, scaling: 'block', hadamard: true, v: 'pow2' },
  { b: 1, sq: 2340, sk: 2340, hq: 12, hkv: 4, d: 64, causal: true, scaling: 'block', hadamard: false },
  // The 160-key tile (head dim 64 from 16384 query rows, K/V blocked by 160): 500 keys end 20 keys
  // into a block, whose second V^T panel is then part-filled; causal, most rows see no key at all.
  { b: 1, sq: 16384, sk: 500, hq: 1, hkv: 1, d: 64, causal: false, scaling: 'block', hadamard: true, kBlockRows: 160, v: 'pow2-spread' },
  { b: 1, sq: 16384, sk: 500, hq: 2, hkv: 1, d: 64, causal: true, scaling: 'block', hadamard: true, kBlockRows: 160, terms: 2, v: 'pow2' },
];

const label = (c: Case) =>
  `b=${c.b} sq=${c.sq} sk=${c.sk} hq=${c.hq} hkv=${c.hkv} d=${c.d} ${c.window ? `window ${c.window}` : c.causal ? 'causal' : 'full'} ${c.scaling}${c.hadamard ? '+hadamard' : ''}${c.terms === 2 ? ' two-term q' : ''}${c.v ? ` v ${c.v}` : ''}`;

/** V with key block i scaled by 2^(3·(5i mod 7) - 9): neighbouring blocks up to 2^18 apart. */
function spreadBlocks(v: Tensor, blockRows: number): Tensor {
  const [b, s, h, d] = v.shape;
  const x = v.toFloat64Array();
  for (let i = 0; i < x.length; i++) x[i] *= 2 ** (3 * ((5 * Math.floor(Math.floor(i / (h * d)) % s / blockRows)) % 7) - 9);
  return Tensor.fromArray(x, [b, s, h, d], v.dtype);
}

/** A device QuantizedTensor's contents on the host. */
const toHost = (x: QuantizedTensor) => new QuantizedTensor(x.data.cpu(), x.descale.cpu(), x.blockRows, x.hadamardSeed, x.terms);

describe('CUDA FP8 forward', { skip }, () => {
  let seed = Date.now() % 100_000;
  for (const c of CASES) {
    it(label(c), (t) => {
      const q = Tensor.randn([c.b, c.sq, c.hq, c.d], { dtype: 'bfloat16', seed: seed++ });
      const k = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: 'bfloat16', seed: seed++ });
      const v0 = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: 'bfloat16', seed: seed++ });
      const v = c.v === 'pow2-spread' ? spreadBlocks(v0, c.kBlockRows ?? 128) : v0;
      const qk = { scaling: c.scaling, hadamard: c.hadamard, seed: 7 };
      const kv = { ...qk, blockRows: c.kBlockRows };
      const [qd, kd, vd] = [q.cuda(), k.cuda(), v.cuda()];
      const q8 = quantizeFp8(qd, { ...qk, terms: c.terms ?? 1, blockRows: c.qBlockRows });
      const k8 = quantizeFp8(kd, kv);
      const v8 = quantizeFp8(vd, { ...kv, hadamard: false, powerOfTwoScales: c.v !== undefined });
      if (c.v) {
        // Powers of two from exact bf16 amaxes: the device's and the host's scales agree exactly.
        const hostV8 = quantizeFp8(v, { ...kv, hadamard: false, powerOfTwoScales: true });
        const [dv, hv] = [v8.descale.cpu(), hostV8.descale];
        assert.deepEqual(Array.from(dv.toFloat64Array()), Array.from(hv.toFloat64Array()), 'power-of-two V descales');
        for (const x of [dv, hostV8]) x.dispose();
      }

      // Quantization: the host's in float64 may round a handful of elements the other way.
      const hostQ8 = quantizeFp8(q, { ...qk, terms: c.terms ?? 1, blockRows: c.qBlockRows });
      const deviceQ8 = toHost(q8);
      const dq = deviceQ8.data.toFloat64Array();
      const hq = hostQ8.data.toFloat64Array();
      let differ = 0;
      for (let i = 0; i < dq.length; i++) if (dq[i] !== hq[i]) differ++;
      const descaleErr = relativeError(deviceQ8.descale.toFloat64Array(), hostQ8.descale.toFloat64Array());
      t.diagnostic(`quantized q: ${differ}/${dq.length} elements differ from the host's, descale rel err ${descaleErr.toExponential(2)}`);
      assert.ok(differ <= Math.max(2, dq.length * 1e-3), `${differ} of ${dq.length} quantized elements differ`);
      assert.ok(descaleErr < 1e-5, `descale rel err ${descaleErr}`);

      const options = c.window ? { windowSize: c.window } : { causal: c.causal };
      const { out, lse } = attention(q8, k8, v8, { ...options, backend: 'cuda' });
      const emu = attention(toHost(q8), toHost(k8), toHost(v8), { ...options, backend: 'cpu' });
      const ref = referenceAttention(cpuProblemOf(q, k, v, validateAttentionInputs(q, k, v), resolveOptions(options, c.d)));

      const o = out.cpu().toFloat64Array();
      assert.ok(o.every(Number.isFinite), 'non-finite output');
      const vsEmu = relativeError(o, emu.out.toFloat64Array());
      const gpuErr = relativeError(o, ref.out);
      const emuErr = relativeError(emu.out.toFloat64Array(), ref.out);
      const lseErr = maxAbsDiffLse(lse.cpu().toFloat64Array(), emu.lse.toFloat64Array());
      t.diagnostic(`vs emulation ${vsEmu.toExponential(2)}; vs float64 ${gpuErr.toExponential(2)} (emulation ${emuErr.toExponential(2)}); lse vs emulation ${lseErr.toExponential(2)}`);
      assert.ok(vsEmu <= 0.25 * emuErr + 1e-3, `GPU differs from the emulation by ${vsEmu.toExponential(2)}`);
      assert.ok(Math.abs(gpuErr - emuErr) <= 0.1 * emuErr, `GPU error ${gpuErr.toExponential(2)} not within 10% of the emulation's ${emuErr.toExponential(2)}`);
      // FP8 wgmma accumulates with fewer mantissa bits than fp32, and the emulation does not model
      // that; the error grows with the k-chain, which a two-term q doubles. Measured on an H100,
      // worst row: up to 1.2e-3 with one term; with two terms 1.2e-3, once in six runs 4.6e-3.
      const lseTol = c.terms === 2 ? 8e-3 : 3e-3;
      assert.ok(lseErr <= lseTol, `lse differs from the emulation by ${lseErr}`);
      for (const x of new Set([q, k, v0, v, qd, kd, vd, q8, k8, v8, hostQ8, deviceQ8, out, lse, emu.out, emu.lse])) x.dispose();
    });
  }

  it("the host's FP8 tile table (used by the CPU emulation) matches the cubins", () => {
    for (const out of ['bfloat16', 'float16'] as const) {
      for (const d of FORWARD_HEAD_DIMS) {
        const kernel = forwardKernel(CudaContext.get(0), { fp8: true, out }, d);
        assert.deepEqual({ blockM: kernel.blockM, blockN: kernel.blockN }, FP8_FORWARD_TILES[d], `${out} d=${d}`);
      }
    }
  });

  it('gives the same output, bit for bit, with V and its descales negated', () => {
    // The kernel moves V's descales between P and O by exponent and mantissa: a sign must travel too.
    const [b, s, h, d] = [1, 700, 2, 128];
    const x = (seed: number) => Tensor.randn([b, s, h, d], { dtype: 'bfloat16', seed }).cuda();
    const [q, k, v] = [x(seed++), x(seed++), x(seed++)];
    const [q8, k8] = [quantizeFp8(q), quantizeFp8(k)];
    const v8 = quantizeFp8(v, { powerOfTwoScales: true });
    const negated = (t: Tensor) => Tensor.fromArray(t.toFloat64Array().map((e) => -e), [...t.shape], t.dtype).cuda();
    const vNeg = new QuantizedTensor(negated(v8.data), negated(v8.descale), v8.blockRows);
    const a = attention(q8, k8, v8, { causal: true, backend: 'cuda' });
    const n = attention(q8, k8, vNeg, { causal: true, backend: 'cuda' });
    const [ao, no] = [a.out.cpu().toFloat64Array(), n.out.cpu().toFloat64Array()];
    assert.ok(ao.every(Number.isFinite) && ao.some((e) => e !== 0), 'output is finite and not all zero');
    const differ = ao.filter((e, i) => e !== no[i]).length;  // === : a 0 may come out as -0
    assert.equal(differ, 0, `${differ} of ${ao.length} outputs differ`);
    for (const t of [q, k, v, q8, k8, v8, vNeg, a.out, a.lse, n.out, n.lse]) t.dispose();
  });

  it('refuses q descale blocks that split a 16-row group, naming q.blockRows', () => {
    const x = Tensor.randn([1, 64, 1, 64], { dtype: 'bfloat16', seed: seed++ }).cuda();
    const [q8, k8, v8] = [quantizeFp8(x, { blockRows: 24 }), quantizeFp8(x), quantizeFp8(x)];
    assert.throws(() => attention(q8, k8, v8, { backend: 'cuda' }), (e: Error & { param?: string }) => e.param === 'q.blockRows' && /multiple of 16/.test(e.message));
    for (const t of [x, q8, k8, v8]) t.dispose();
  });

  it('quantizes on the fly with the fp8 option, output in the inputs dtype', () => {
    const [b, s, h, d] = [1, 256, 2, 128];
    const q = Tensor.randn([b, s, h, d], { dtype: 'float16', seed: seed++ }).cuda();
    const { out, lse } = attention(q, q, q, { fp8: { hadamard: true }, backend: 'cuda' });
    assert.equal(out.dtype, 'float16');
    const ref = attention(q.cpu(), q.cpu(), q.cpu(), { backend: 'cpu' });
    const err = relativeError(out.cpu().toFloat64Array(), ref.out.toFloat64Array());
    assert.ok(err < 0.08, `fp8 on-the-fly rel err ${err}`);
    for (const x of [q, out, lse, ref.out, ref.lse]) x.dispose();
  });
});
