/**
 * The CUDA backward (pre-pass, main kernel, dQ conversion) planned at one bench point for timing,
 * as prepareCudaForward plans the forward: out and lse come from one forward launch on the same inputs.
 */
import { CudaContext } from '../cuda/context.js';
import { planBackward } from '../cuda/backward.js';
import { planForward } from '../cuda/forward.js';
import { resolveOptions } from '../options.js';
import { validateAttentionInputs } from '../problem.js';
import { Tensor } from '../tensor.js';
import type { BenchBuffers } from './cudaTiming.js';
import { forwardFlops, type BenchPoint } from './grid.js';

/** FlashAttention's convention: the backward's five GEMMs count as 2.5 forwards. */
export function backwardFlops(p: BenchPoint): number {
  return 2.5 * forwardFlops(p);
}

export function backwardTflops(p: BenchPoint, ms: number | null): number | null {
  return ms === null || !(ms > 0) ? null : backwardFlops(p) / (ms * 1e-3) / 1e12;
}

/** The backward at one point, planned in the default and in the deterministic mode. */
export interface PreparedBackward {
  launchDefault(): void;
  launchDeterministic(): void;
  dispose(): void;
}

export function prepareCudaBackward(buffers: BenchBuffers, p: BenchPoint, variant = 'default'): PreparedBackward {
  const shape = [p.batch, p.seqlen, p.heads, p.headDim];
  const strides = [p.seqlen * p.heads * p.headDim, p.heads * p.headDim, p.headDim, 1];
  // dO shares q's random buffer: its values only need to be random, not independent.
  const [q, k, v] = buffers.tensors.map((t) => t.view(shape, strides, 0));
  const dout = buffers.tensors[0].view(shape, strides, 0);
  const made = [shape, shape, shape, shape].map((s) => Tensor.empty(s, buffers.dtype, 'cuda'));
  const [out, dq, dk, dv] = made;
  const lse = Tensor.empty([p.batch, p.heads, p.seqlen], 'float32', 'cuda');
  const ctx = CudaContext.get(q.device);
  const plans: { launch(): void; dispose(): void }[] = [];
  const release = () => {
    for (const plan of plans) plan.dispose();
    for (const t of [q, k, v, dout, lse, ...made]) t.dispose();
  };
  try {
    const opts = resolveOptions({ causal: p.causal }, p.headDim);
    const problem = validateAttentionInputs(q, k, v);
    const forward = planForward(ctx, { q, k, v, out, lse }, problem, opts);
    forward.launch();
    ctx.synchronize();
    forward.dispose();
    for (const deterministic of [false, true]) plans.push(planBackward(ctx, { q, k, v, out, dout, lse, dq, dk, dv }, problem, opts, deterministic, variant));
    return { launchDefault: () => plans[0].launch(), launchDeterministic: () => plans[1].launch(), dispose: release };
  } catch (e) {
    release();
    throw e;
  }
}
