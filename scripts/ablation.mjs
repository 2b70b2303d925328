// FA3-style ablation at bf16, head dim 128, seqlen 8k, non-causal (batch 2, 16 heads): the same
// kernel built with each scheduling idea switched off, timed in one process on one card.
import '../dist/src/index.js';
import { BenchBuffers, timeCudaForward } from '../dist/src/bench/cudaTiming.js';
import { tflops } from '../dist/src/bench/grid.js';
import { CudaContext } from '../dist/src/cuda/context.js';
import { ABLATION_SCHEDULES } from '../dist/src/cuda/kernels.js';

const point = { headDim: 128, causal: false, seqlen: 8192, batch: 2, heads: 16 };
const timing = { warmup: 5, iterations: 20, repetitions: 7 };
const buffers = new BenchBuffers('bfloat16', point.batch * point.seqlen * point.heads * point.headDim, 1);
console.log(`ablation on ${CudaContext.get(0).name}: bf16 d=128 s=8192 b=2 h=16 non-causal`);
for (const schedule of [...ABLATION_SCHEDULES, 'default']) {
  const label = schedule === 'default' ? 'ws + pingpong + overlap' : schedule;
  const runs = [0, 1].map(() => timeCudaForward(buffers, point, timing, schedule));
  console.log(`${label.padEnd(24)} ${runs.map((ms) => `${tflops(point, ms).toFixed(1)} TFLOPS (${ms.toFixed(3)} ms)`).join('   ')}`);
}
buffers.dispose();
