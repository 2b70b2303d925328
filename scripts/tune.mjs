// Times kernel builds side by side in one process on one card: the FA3-style ablation by default
// (bf16, d=128, s=8k, non-causal), or any tuning builds (scripts/build-kernels.mjs --extra, or
// --extra-bwd with --backward: each backward build in the default mode and, through its _det twin,
// the deterministic mode).
//   node scripts/tune.mjs [--backward [--modes default,det]] [--dtype bf16|fp16|fp8|fp8x2 (the accuracy mode)] [--variants a,b,...] [--points d:seqlen:causal|full,...] [--rounds N] [--check]
// --check (one-term Q) first runs every build at each point's head dim on three small problems
// (causal, causal and full with more tiles than SMs) and compares its output (backward: dQ, dK and dV, in
// both modes) with the default build's (fp8: its error against float64 attention with the default
// build's, sampled rows): a tuning build is not in the test suite, so this is what
// says it computes attention at all. --check-only stops after the checks: small enough to run
// under compute-sanitizer.
import '../dist/src/index.js';
import { parseArgs } from 'node:util';
import { BenchBuffers, medianLaunchMs, timeCudaForward } from '../dist/src/bench/cudaTiming.js';
import { backwardTflops, prepareCudaBackward } from '../dist/src/bench/backwardTiming.js';
import { planBackward } from '../dist/src/cuda/backward.js';
import { median, paperGrid, tflops } from '../dist/src/bench/grid.js';
import { timeInterleaved } from '../dist/src/bench/interleave.js';
import { CudaContext } from '../dist/src/cuda/context.js';
import { ABLATION_SCHEDULES } from '../dist/src/cuda/kernels.js';
import { forwardKernelFor, planForward } from '../dist/src/cuda/forward.js';
import { forwardFp8 } from '../dist/src/cuda/backend.js';
import { quantizeFp8 } from '../dist/src/fp8.js';
import { resolveOptions } from '../dist/src/options.js';
import { validateAttentionInputs } from '../dist/src/problem.js';
import { Tensor } from '../dist/src/tensor.js';

const { values } = parseArgs({
  options: {
    dtype: { type: 'string', default: 'bf16' },
    backward: { type: 'boolean', default: false },
    modes: { type: 'string', default: 'default,det' },
    variants: { type: 'string', default: [...ABLATION_SCHEDULES, 'default'].join(',') },
    points: { type: 'string', default: '128:8192:full' },
    rounds: { type: 'string', default: '5' },
    check: { type: 'boolean', default: false },
    'check-only': { type: 'boolean', default: false },
  },
});
const dtype = { fp16: 'float16', fp8: 'float8_e4m3', fp8x2: 'float8_e4m3' }[values.dtype] ?? 'bfloat16';
const qTerms = values.dtype === 'fp8x2' ? 2 : 1;
const variants = values.variants.split(',');
const points = values.points.split(',').map((spec) => {
  const [d, s, mask] = spec.split(':');
  return paperGrid([Number(d)], [Number(s)], [mask === 'causal'])[0];
});
const timing = { warmup: 5, iterations: 20, repetitions: 7 };
const backward = values.backward;
const backwardModes = values.modes.split(',');
if (backward && !['bf16', 'fp16'].includes(values.dtype)) throw new Error('--backward times 16-bit builds only');

function relativeDistance(ref, got) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / den);
}

// Output of one build on (b, s, h, d): relative L2 distance to the default build's, and whether
// every element is finite (outputs start as NaN, so an element the kernel never wrote shows).
function compareWithDefault(variant, [b, s, h, d], causal) {
  const ctx = CudaContext.get(0);
  const x = (seed) => Tensor.randn([b, s, h, d], { dtype, seed }).cuda();
  const [q, k, v] = [x(11), x(12), x(13)];
  const opts = resolveOptions({ causal }, d);
  const shape = validateAttentionInputs(q, k, v);
  const run = (name) => {
    const out = Tensor.fromArray(new Float64Array(b * s * h * d).fill(NaN), [b, s, h, d], dtype).cuda();
    const lse = Tensor.empty([b, h, s], 'float32', 'cuda');
    const plan = planForward(ctx, { q, k, v, out, lse }, shape, opts, name);
    plan.launch();
    ctx.synchronize();
    plan.dispose();
    const o = out.toFloat64Array();
    for (const t of [out, lse]) t.dispose();
    return o;
  };
  const [ref, got] = [run('default'), run(variant)];
  for (const t of [q, k, v]) t.dispose();
  return { err: relativeDistance(ref, got), finite: got.every(Number.isFinite) };
}

// Attention in float64 of contiguous (b, s, h, d) inputs at every `step`-th query row of every
// head (sq = sk), as [row index, output row] pairs: the fp8 builds' yardstick, sampled to stay cheap.
function sampledReference(q, k, v, [b, s, h, d], causal, scale, step) {
  const rows = [];
  const p = new Float64Array(s);
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++)
      for (let i = (bi + hi) % step; i < s; i += step) {
        const at = (t, j) => ((bi * s + t) * h + hi) * d + j;
        const keys = causal ? i + 1 : s;
        let max = -Infinity;
        for (let t = 0; t < keys; t++) {
          let dot = 0;
          for (let j = 0; j < d; j++) dot += q[at(i, j)] * k[at(t, j)];
          p[t] = dot * scale;
          max = Math.max(max, p[t]);
        }
        let sum = 0;
        for (let t = 0; t < keys; t++) sum += p[t] = Math.exp(p[t] - max);
        const o = new Float64Array(d);
        for (let t = 0; t < keys; t++) for (let j = 0; j < d; j++) o[j] += (p[t] / sum) * v[at(t, j)];
        rows.push([at(i, 0), o]);
      }
  return rows;
}

// FP8 builds on one block quantization of bf16 inputs that every build compared takes (K/V descale
// blocks a multiple of both builds' key blocks). Two fp8 builds round P differently, so each is
// measured against float64 attention of the unquantized inputs: the variant's relative error may
// exceed the default build's by 20% at most.
function compareFp8WithDefault(variant, [b, s, h, d], causal) {
  const ctx = CudaContext.get(0);
  const raw = [11, 12, 13].map((seed) => Tensor.randn([b, s, h, d], { dtype: 'bfloat16', seed }));
  const device = raw.map((t) => t.cuda());
  const opts = resolveOptions({ causal }, d);
  const shape = validateAttentionInputs(...device);
  const inputs = { fp8: true, out: 'bfloat16' };
  const gcd = (a, c) => (c === 0 ? a : gcd(c, a % c));
  const blockRows = [variant, 'default'].map((name) => forwardKernelFor(ctx, inputs, shape, opts, name).blockN).reduce((a, c) => (a * c) / gcd(a, c), 128);
  const [q, k, v] = device.map((t, i) => quantizeFp8(t, { blockRows, ...(i === 2 ? {} : { hadamard: true, seed: 5 }) }));
  const reference = sampledReference(...raw.map((t) => t.toFloat64Array()), [b, s, h, d], causal, opts.softmaxScale, 17);
  const errorOf = (name) => {
    const { out, lse } = forwardFp8({ q, k, v }, shape, opts, 'bfloat16', name);
    const o = out.toFloat64Array();
    for (const t of [out, lse]) t.dispose();
    let num = 0;
    let den = 0;
    for (const [at, row] of reference)
      for (let j = 0; j < d; j++) {
        num += (o[at + j] - row[j]) ** 2;
        den += row[j] ** 2;
      }
    return { err: Math.sqrt(num / den), finite: o.every(Number.isFinite) };
  };
  const [base, got] = [errorOf('default'), errorOf(variant)];
  for (const t of [...device, q, k, v]) t.dispose();
  return { ...got, limit: 1.2 * base.err, what: `rel error ${got.err.toExponential(2)} (default ${base.err.toExponential(2)})` };
}

// The backward's counterpart: dQ, dK and dV of one build in one mode against the default build's
// in the default mode; the largest relative distance of the three. Gradients start as NaN.
function compareBackwardWithDefault(variant, [b, s, h, d], causal, deterministic) {
  const ctx = CudaContext.get(0);
  const x = (seed) => Tensor.randn([b, s, h, d], { dtype, seed }).cuda();
  const [q, k, v, dout] = [x(11), x(12), x(13), x(14)];
  const opts = resolveOptions({ causal }, d);
  const shape = validateAttentionInputs(q, k, v);
  const out = Tensor.empty([b, s, h, d], dtype, 'cuda');
  const lse = Tensor.empty([b, h, s], 'float32', 'cuda');
  const forward = planForward(ctx, { q, k, v, out, lse }, shape, opts);
  forward.launch();
  ctx.synchronize();
  forward.dispose();
  const run = (name, det) => {
    const grads = [0, 1, 2].map(() => Tensor.fromArray(new Float64Array(b * s * h * d).fill(NaN), [b, s, h, d], dtype).cuda());
    const [dq, dk, dv] = grads;
    const plan = planBackward(ctx, { q, k, v, out, dout, lse, dq, dk, dv }, shape, opts, det, name);
    plan.launch();
    ctx.synchronize();
    plan.dispose();
    const values = grads.map((g) => g.toFloat64Array());
    for (const g of grads) g.dispose();
    return values;
  };
  const [ref, got] = [run('default', false), run(variant, deterministic)];
  for (const t of [q, k, v, dout, out, lse]) t.dispose();
  return { err: Math.max(...ref.map((r, i) => relativeDistance(r, got[i]))), finite: got.every((g) => g.every(Number.isFinite)) };
}

if (values.check || values['check-only']) {
  if (qTerms !== 1) throw new Error('--check compares one-term builds only');
  let failed = 0;
  for (const d of new Set(points.map((p) => p.headDim))) {
    // The backward's default build is checked too in its deterministic mode.
    const checked = variants.filter((v) => backward || v !== 'default');
    const modes = backward ? [false, true].filter((det) => backwardModes.includes(det ? 'det' : 'default')) : [false];
    for (const [variant, deterministic] of checked.flatMap((v) => modes.map((m) => [v, m])).filter(([v, m]) => v !== 'default' || m)) {
      // Causal, and causal and full with more tiles than SMs (a CTA then runs several tiles in a row).
      for (const [dims, causal] of [[[2, 700, 4, d], true], [[8, 1000, 8, d], true], [[4, 1500, 2048 / d / 2, d], false]]) {
        let line;
        try {
          const compare = backward ? compareBackwardWithDefault : dtype === 'float8_e4m3' ? compareFp8WithDefault : compareWithDefault;
          const { err, finite, limit = 1e-2, what = `rel diff ${err.toExponential(2)}` } = compare(variant, dims, causal, deterministic);
          const ok = finite && err < limit;
          failed += ok ? 0 : 1;
          line = `${ok ? 'ok  ' : 'FAIL'} ${what}${finite ? '' : ', non-finite output'}`;
        } catch (e) {
          failed += 1;
          line = `FAIL ${e.message.split('\n')[0].slice(0, 100)}`;
        }
        const name = deterministic ? `${variant} det` : variant;
        console.log(`check d=${d} ${name.padEnd(16)} ${dims.join('x')} ${causal ? 'causal' : 'full'}: ${line}`);
      }
    }
  }
  if (failed > 0) {
    console.log(`check: ${failed} failed; not timing`);
    process.exit(1);
  }
  if (values['check-only']) process.exit(0);
}
const rounds = Number(values.rounds);
const buffers = new BenchBuffers(dtype, qTerms * Math.max(...points.map((p) => p.batch * p.seqlen * p.heads * p.headDim)), 1);
const what = `${values.dtype === 'fp8x2' ? 'e4m3, two-term q' : dtype}${backward ? ' backward (2.5 forwards of FLOPs)' : ''}`;
console.log(`tune on ${CudaContext.get(0).name}, ${what}, TFLOPS: median [min-max] of ${rounds} interleaved rounds`);

// A backward build in both modes, planned once per point (the plans hold their workspace).
function backwardContenders(p) {
  const ctx = CudaContext.get(0);
  const prepared = variants.map((variant) => prepareCudaBackward(buffers, p, variant));
  const contenders = variants.flatMap((variant, i) => [
    ...(backwardModes.includes('default') ? [{ name: variant, time: (t) => medianLaunchMs(ctx, prepared[i].launchDefault, t) }] : []),
    ...(backwardModes.includes('det') ? [{ name: `${variant} det`, time: (t) => medianLaunchMs(ctx, prepared[i].launchDeterministic, t) }] : []),
  ]);
  return { contenders, dispose: () => prepared.forEach((x) => x.dispose()) };
}

for (const p of points) {
  const label = `d=${p.headDim} s=${p.seqlen} b=${p.batch} h=${p.heads} ${p.causal ? 'causal' : 'full'}`;
  // Builds alternate in rounds (timeInterleaved), so that drifts of the card's clock or
  // temperature within a point fall on every build alike; each build's time in a round is the
  // median of `timing.repetitions`, and a build that fails sits out the remaining rounds.
  const bwd = backward ? backwardContenders(p) : null;
  const contenders =
    bwd?.contenders ??
    variants.map((variant) => ({
      name: variant,
      mayRefuse: true,
      time: () => timeCudaForward(buffers, p, timing, variant, qTerms),
    }));
  const results = await timeInterleaved(contenders, { ...timing, repetitions: rounds });
  bwd?.dispose();
  for (const { name } of contenders) {
    const r = results.get(name);
    let cell;
    if ('error' in r) {
      cell = `n/a (${r.error.split('\n')[0].slice(0, 80)})`;
    } else {
      const xs = r.samples.map((ms) => (backward ? backwardTflops(p, ms) : tflops(p, ms)));
      cell = `${median(xs).toFixed(1).padStart(7)} [${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}]`;
    }
    console.log(`${label.padEnd(34)} ${name.padEnd(16)} ${cell}`);
  }
}
buffers.dispose();
