/**
 * Times the CUDA backward (pre-pass, main kernel, dQ conversion) with CUDA events, as
 * timeCudaForward does the forward: out and lse come from one forward launch on the same inputs.
 */
import { CudaContext } from '../cuda/context.js';
import { planBackward } from '../cuda/backward.js';
import { planForward } from '../cuda/forward.js';
import { resolveOptions } from '../options.js';
import { validateAttentionInputs } from '../problem.js';
import { Tensor } from '../tensor.js';
import { medianLaunchMs, type BenchBuffers, type TimingOptions } from './cudaTiming.js';
import { forwardFlops, type BenchPoint } from './grid.js';

/** FlashAttention's convention: the backward's five GEMMs count as 2.5 forwards. */
export function backwardFlops(p: BenchPoint): number {
  return 2.5 * forwardFlops(p);
}

export function backwardTflops(p: BenchPoint, ms: number | null): number | null {
  return ms === null || !(ms > 0) ? null : backwardFlops(p) / (ms * 1e-3) / 1e12;
}

/** Milliseconds per backward in the default and in the deterministic mode. */
export function timeCudaBackward(buffers: BenchBuffers, p: BenchPoint, timing: TimingOptions): { ms: number; deterministicMs: number } {
  const shape = [p.batch, p.seqlen, p.heads, p.headDim];
  const strides = [p.seqlen * p.heads * p.headDim, p.heads * p.headDim, p.headDim, 1];
  // dO shares q's random buffer: its values only need to be random, not independent.
  const [q, k, v] = buffers.tensors.map((t) => t.view(shape, strides, 0));
  const dout = buffers.tensors[0].view(shape, strides, 0);
  const made = [shape, shape, shape, shape].map((s) => Tensor.empty(s, buffers.dtype, 'cuda'));
  const [out, dq, dk, dv] = made;
  const lse = Tensor.empty([p.batch, p.heads, p.seqlen], 'float32', 'cuda');
  const ctx = CudaContext.get(q.device);
  try {
    const opts = resolveOptions({ causal: p.causal }, p.headDim);
    const problem = validateAttentionInputs(q, k, v);
    const forward = planForward(ctx, { q, k, v, out, lse }, problem, opts);
    forward.launch();
    ctx.synchronize();
    forward.dispose();
    const time = (deterministic: boolean) => {
      const plan = planBackward(ctx, { q, k, v, out, dout, lse, dq, dk, dv }, problem, opts, deterministic);
      try {
        return medianLaunchMs(ctx, () => plan.launch(), timing);
      } finally {
        plan.dispose();
      }
    };
    return { ms: time(false), deterministicMs: time(true) };
  } finally {
    for (const t of [q, k, v, dout, lse, ...made]) t.dispose();
  }
}
