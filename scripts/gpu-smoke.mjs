// A few small forward problems on the CUDA backend (16-bit and FP8, quantization included),
// checked against the float64 reference: short enough to run under compute-sanitizer
// (memcheck, racecheck, synccheck).
import { attention, Tensor } from '../dist/src/index.js';
import { relativeError } from '../dist/test/support/compare.js';

const cases = [
  { b: 1, sq: 200, sk: 333, hq: 4, hkv: 2, d: 64, causal: true, dtype: 'bfloat16' },
  { b: 2, sq: 130, sk: 130, hq: 2, hkv: 1, d: 128, causal: false, dtype: 'float16' },
  { b: 1, sq: 97, sk: 250, hq: 2, hkv: 2, d: 256, causal: true, dtype: 'bfloat16' },
  { b: 1, sq: 200, sk: 333, hq: 4, hkv: 2, d: 64, causal: true, dtype: 'bfloat16', fp8: { hadamard: true } },
  { b: 2, sq: 130, sk: 130, hq: 2, hkv: 1, d: 128, causal: false, dtype: 'float16', fp8: { scaling: 'tensor' } },
  { b: 1, sq: 97, sk: 250, hq: 2, hkv: 2, d: 256, causal: true, dtype: 'bfloat16', fp8: { hadamard: true } },
  { b: 1, sq: 150, sk: 150, hq: 2, hkv: 1, d: 128, causal: true, dtype: 'bfloat16', fp8: { hadamard: true, terms: 2 } },
  { b: 1, sq: 150, sk: 200, hq: 2, hkv: 1, d: 256, causal: false, dtype: 'float16', fp8: { hadamard: true, terms: 2 } },
  // The sequence tiles (SEQUENCE_TILES in src/cuda/kernels.ts), few keys to stay quick under the tools.
  { b: 1, sq: 2050, sk: 600, hq: 1, hkv: 1, d: 64, causal: false, dtype: 'float16' },
  { b: 1, sq: 8200, sk: 200, hq: 3, hkv: 1, d: 128, causal: true, dtype: 'bfloat16' },
  // The three-warpgroup tiles of unmasked problems, more tiles than CTAs.
  { b: 2, sq: 1000, sk: 300, hq: 16, hkv: 4, d: 64, causal: false, dtype: 'bfloat16' },
  { b: 2, sq: 2100, sk: 300, hq: 8, hkv: 2, d: 128, causal: false, dtype: 'float16' },
  // More tiles than CTAs at head dim 256: O's staging buffer is reused from tile to tile.
  { b: 2, sq: 1500, sk: 300, hq: 8, hkv: 4, d: 256, causal: false, dtype: 'bfloat16' },
  { b: 1, sq: 2050, sk: 200, hq: 1, hkv: 1, d: 256, causal: true, dtype: 'float16' },
  // d=256's long tile stages O in the last V stage; more tiles than CTAs reuse the stages.
  { b: 1, sq: 2100, sk: 300, hq: 9, hkv: 3, d: 256, causal: false, dtype: 'bfloat16' },
  { b: 1, sq: 2050, sk: 600, hq: 1, hkv: 1, d: 64, causal: false, dtype: 'bfloat16', fp8: { hadamard: true } },
  // More tiles than CTAs at d=64 and d=128 (short and long tiles, FP8): each CTA reuses its Q, O
  // and K/V buffers from tile to tile.
  { b: 2, sq: 1100, sk: 300, hq: 9, hkv: 3, d: 128, causal: true, dtype: 'bfloat16' },
  { b: 2, sq: 1100, sk: 300, hq: 9, hkv: 3, d: 64, causal: false, dtype: 'float16' },
  { b: 1, sq: 4100, sk: 300, hq: 8, hkv: 2, d: 64, causal: true, dtype: 'bfloat16' },
  { b: 2, sq: 1100, sk: 300, hq: 9, hkv: 3, d: 128, causal: false, dtype: 'bfloat16', fp8: { hadamard: true } },
  // FP8 d=128's long tile (three warpgroups), more tiles than CTAs, and its accuracy mode.
  { b: 1, sq: 2100, sk: 300, hq: 15, hkv: 3, d: 128, causal: true, dtype: 'bfloat16', fp8: { hadamard: true } },
  { b: 1, sq: 2100, sk: 300, hq: 3, hkv: 1, d: 128, causal: false, dtype: 'float16', fp8: { hadamard: true, terms: 2 } },
  // A last 192-row block with one warpgroup of three inside seqlen_q, more tiles than CTAs: d=64's
  // long tile and FP8 d=128's.
  { b: 1, sq: 2340, sk: 600, hq: 12, hkv: 4, d: 64, causal: true, dtype: 'bfloat16' },
  { b: 1, sq: 2150, sk: 300, hq: 15, hkv: 3, d: 128, causal: false, dtype: 'bfloat16', fp8: { hadamard: true } },
  // FP8 d=64's 160-key tile (from 16384 rows; on-the-fly quantization blocks K/V by 160), causal
  // with sq > sk (the first rows see no key), and more tiles than CTAs.
  { b: 1, sq: 16384, sk: 350, hq: 2, hkv: 1, d: 64, causal: true, dtype: 'bfloat16', fp8: { hadamard: true } },
  // Three CTAs per SM (d=64, masked, 512-2047 rows), more tiles than the three CTAs of every SM; with
  // sq > sk the first query rows see no key.
  { b: 2, sq: 1100, sk: 300, hq: 16, hkv: 4, d: 64, causal: true, dtype: 'bfloat16' },
  // Soft-capped scores.
  { b: 1, sq: 200, sk: 333, hq: 4, hkv: 2, d: 128, causal: true, dtype: 'bfloat16', softcap: 2 },
];
let failed = 0;
for (const [i, c] of cases.entries()) {
  const q = Tensor.randn([c.b, c.sq, c.hq, c.d], { dtype: c.dtype, seed: 3 * i });
  const k = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: c.dtype, seed: 3 * i + 1 });
  const v = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: c.dtype, seed: 3 * i + 2 });
  // FP8 runs on device tensors so the quantization kernels run too.
  const gpu = c.fp8
    ? attention(q.cuda(), k.cuda(), v.cuda(), { causal: c.causal, backend: 'cuda', fp8: c.fp8 })
    : attention(q, k, v, { causal: c.causal, softcap: c.softcap ?? 0, backend: 'cuda' });
  const ref = attention(q, k, v, { causal: c.causal, softcap: c.softcap ?? 0, backend: 'cpu' });
  const err = relativeError(gpu.out.cpu().toFloat64Array(), ref.out.toFloat64Array());
  const ok = err < (c.fp8 ? 8e-2 : 2e-2);
  if (!ok) failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${c.dtype}${c.fp8 ? ' fp8' : ''} d=${c.d} sq=${c.sq} sk=${c.sk} causal=${c.causal}${c.softcap ? ` softcap ${c.softcap}` : ''} rel err ${err.toExponential(2)}`);
}
process.exit(failed ? 1 : 0);
