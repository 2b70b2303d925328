// A few small backward problems on the CUDA backend, checked against the float64 CPU backward:
// short enough to run under compute-sanitizer (memcheck, racecheck, synccheck). Both dQ modes.
import { attention, attentionBackward, attentionBackwardCpu, Tensor } from '../dist/src/index.js';
import { cpuProblemOf } from '../dist/src/cpu/backend.js';
import { relativeError } from '../dist/test/support/compare.js';
import { resolveOptions } from '../dist/src/options.js';
import { validateAttentionInputs } from '../dist/src/problem.js';

const cases = [
  { b: 1, sq: 200, sk: 333, hq: 4, hkv: 2, d: 64, causal: true, dtype: 'bfloat16', deterministic: false },
  { b: 2, sq: 130, sk: 130, hq: 2, hkv: 1, d: 128, causal: false, dtype: 'float16', deterministic: true },
  { b: 1, sq: 97, sk: 250, hq: 2, hkv: 2, d: 256, causal: true, dtype: 'bfloat16', deterministic: true },
  { b: 1, sq: 150, sk: 200, hq: 2, hkv: 1, d: 128, causal: true, dtype: 'bfloat16', deterministic: false, softcap: 2 },
  { b: 1, sq: 140, sk: 190, hq: 2, hkv: 1, d: 256, causal: false, dtype: 'float16', deterministic: false },
];
let failed = 0;
for (const [i, c] of cases.entries()) {
  const q = Tensor.randn([c.b, c.sq, c.hq, c.d], { dtype: c.dtype, seed: 4 * i });
  const k = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: c.dtype, seed: 4 * i + 1 });
  const v = Tensor.randn([c.b, c.sk, c.hkv, c.d], { dtype: c.dtype, seed: 4 * i + 2 });
  const dout = Tensor.randn([c.b, c.sq, c.hq, c.d], { dtype: c.dtype, seed: 4 * i + 3 });
  const opts = { causal: c.causal, softcap: c.softcap ?? 0 };
  const { out, lse } = attention(q, k, v, { ...opts, backend: 'cuda' });
  const gpu = attentionBackward(dout, q, k, v, out, lse, { ...opts, backend: 'cuda', deterministic: c.deterministic });
  const problem = cpuProblemOf(q, k, v, validateAttentionInputs(q, k, v), resolveOptions(opts, c.d));
  const ref = attentionBackwardCpu(problem, { dout: dout.toFloat64Array(), out: out.toFloat64Array(), lse: lse.toFloat64Array() });
  const errs = ['dq', 'dk', 'dv'].map((key) => relativeError(gpu[key].toFloat64Array(), ref[key]));
  const ok = errs.every((e) => e < 2e-2);
  if (!ok) failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} backward ${c.dtype} d=${c.d} sq=${c.sq} sk=${c.sk} causal=${c.causal} deterministic=${c.deterministic} rel err dq/dk/dv ${errs.map((e) => e.toExponential(2)).join(' ')}`);
}
process.exit(failed ? 1 : 0);
