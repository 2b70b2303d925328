// Times kernel builds side by side in one process on one card: the FA3-style ablation by default
// (bf16, d=128, s=8k, non-causal), or any tuning builds (scripts/build-kernels.mjs --extra).
//   node scripts/tune.mjs [--dtype bf16|fp16|fp8] [--variants a,b,...] [--points d:seqlen:causal|full,...]
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
  },
});
const dtype = { fp16: 'float16', fp8: 'float8_e4m3' }[values.dtype] ?? 'bfloat16';
const variants = values.variants.split(',');
const points = values.points.split(',').map((spec) => {
  const [d, s, mask] = spec.split(':');
  return paperGrid([Number(d)], [Number(s)], [mask === 'causal'])[0];
});
const timing = { warmup: 5, iterations: 20, repetitions: 7 };
const buffers = new BenchBuffers(dtype, Math.max(...points.map((p) => p.batch * p.seqlen * p.heads * p.headDim)), 1);
console.log(`tune on ${CudaContext.get(0).name}, ${dtype}, TFLOPS (two timings each)`);
for (const p of points) {
  const label = `d=${p.headDim} s=${p.seqlen} b=${p.batch} h=${p.heads} ${p.causal ? 'causal' : 'full'}`;
  for (const variant of variants) {
    try {
      const runs = [0, 1].map(() => tflops(p, timeCudaForward(buffers, p, timing, variant)).toFixed(1));
      console.log(`${label.padEnd(34)} ${variant.padEnd(16)} ${runs.join('  ')}`);
    } catch (e) {
      console.log(`${label.padEnd(34)} ${variant.padEnd(16)} n/a (${e.message.split('\n')[0].slice(0, 80)})`);
    }
  }
}
buffers.dispose();
