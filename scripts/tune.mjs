// Times kernel builds side by side in one process on one card: the FA3-style ablation by default
// (bf16, d=128, s=8k, non-causal), or any tuning builds (scripts/build-kernels.mjs --extra).
//   node scripts/tune.mjs [--dtype bf16|fp16|fp8|fp8x2 (the accuracy mode)] [--variants a,b,...] [--points d:seqlen:causal|full,...] [--rounds N]
import '../dist/src/index.js';
import { parseArgs } from 'node:util';
import { BenchBuffers, timeCudaForward } from '../dist/src/bench/cudaTiming.js';
import { paperGrid, tflops } from '../dist/src/bench/grid.js';
import { CudaContext } from '../dist/src/cuda/context.js';
import { ABLATION_SCHEDULES } from '../dist/src/cuda/kernels.js';

const { values } = parseArgs({
  options: {
    dtype: { type: 'string', default: 'bf16' },
    variants: { type: 'string', default: [...ABLATION_SCHEDULES, 'default'].join(',') },
    points: { type: 'string', default: '128:8192:full' },
    rounds: { type: 'string', default: '5' },
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
const rounds = Number(values.rounds);
const buffers = new BenchBuffers(dtype, qTerms * Math.max(...points.map((p) => p.batch * p.seqlen * p.heads * p.headDim)), 1);
console.log(`tune on ${CudaContext.get(0).name}, ${values.dtype === 'fp8x2' ? 'e4m3, two-term q' : dtype}, TFLOPS: median [min-max] of ${rounds} interleaved rounds`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const p of points) {
  const label = `d=${p.headDim} s=${p.seqlen} b=${p.batch} h=${p.heads} ${p.causal ? 'causal' : 'full'}`;
  // Builds alternate, starting one later each round, so that drifts of the card's clock or
  // temperature within a point fall on every build alike.
  const runs = new Map(variants.map((v) => [v, []]));
  const failed = new Map();
  for (let r = 0; r < rounds; ++r) {
    for (let j = 0; j < variants.length; ++j) {
      const variant = variants[(j + r) % variants.length];
      if (failed.has(variant)) continue;
      try {
        runs.get(variant).push(tflops(p, timeCudaForward(buffers, p, timing, variant, qTerms)));
      } catch (e) {
        failed.set(variant, e.message.split('\n')[0].slice(0, 80));
      }
    }
  }
  for (const variant of variants) {
    const xs = runs.get(variant);
    const cell = failed.has(variant)
      ? `n/a (${failed.get(variant)})`
      : `${median(xs).toFixed(1).padStart(7)} [${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}]`;
    console.log(`${label.padEnd(34)} ${variant.padEnd(16)} ${cell}`);
  }
}
buffers.dispose();
