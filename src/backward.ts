/**
 * Gradients of attention(): dq, dk, dv from the forward's inputs, its output, the output's
 * gradient and the log-sum-exp, in FlashAttention's layout and with the forward's options.
 */
import { getBackend, listBackends, selectBackend, type BackwardResult } from './backend.js';
import { DTypeError, OptionError, ShapeError, UnsupportedError } from './errors.js';
import { resolveOptions, type AttentionOptions } from './options.js';
import { validateAttentionInputs, type ProblemShape } from './problem.js';
import { Tensor } from './tensor.js';

export interface BackwardOptions extends AttentionOptions {
  /**
   * Bitwise-identical gradients from run to run. The CPU backend always is; GPU kernels that
   * accumulate dQ with atomics need this to switch to an ordered reduction.
   */
  deterministic?: boolean;
}

function checkLike(t: unknown, name: 'dout' | 'out' | 'lse', shape: readonly number[], dtype: string, ref: Tensor): asserts t is Tensor {
  if (!(t instanceof Tensor)) {
    throw new ShapeError(`${name} must be a Tensor`, { param: name, fix: `pass the forward's ${name === 'dout' ? 'output gradient' : name} as a Tensor` });
  }
  if (t.shape.length !== shape.length || t.shape.some((n, i) => n !== shape[i])) {
    throw new ShapeError(`${name} has shape [${t.shape.join(', ')}] but this problem needs [${shape.join(', ')}]`, {
      param: `${name}.shape`,
      value: [...t.shape],
      fix: name === 'lse' ? "pass the lse attention() returned: (batch, heads_q, seqlen_q)" : `pass a tensor shaped like attention()'s out: (batch, seqlen_q, heads_q, headdim_v)`,
    });
  }
  if (t.dtype !== dtype) {
    throw new DTypeError(`${name} has dtype ${t.dtype} but needs ${dtype}`, { param: `${name}.dtype`, value: t.dtype, fix: `convert ${name} to ${dtype}` });
  }
  if (t.location !== ref.location || t.device !== ref.device) {
    throw new UnsupportedError(`${name} is ${t} but q is ${ref}`, { param: `${name}.location`, value: t.location, fix: 'keep every tensor of one call on one device' });
  }
}

/**
 * Returns { dq, dk, dv } (shaped and typed like q, k, v; on q's device; the caller disposes them).
 * With GQA/MQA, dk and dv are summed over the query heads that share each k/v head.
 */
export function attentionBackward(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, options?: BackwardOptions): BackwardResult {
  const shape: ProblemShape = validateAttentionInputs(q, k, v);
  const opts = resolveOptions(options, shape.headDim, ['deterministic']);
  const deterministic = options?.deterministic ?? false;
  if (typeof deterministic !== 'boolean') {
    throw new OptionError('deterministic must be a boolean', { param: 'options.deterministic', value: deterministic, fix: 'pass true or false' });
  }
  const outShape = [shape.batch, shape.seqlenQ, shape.headsQ, shape.headDimV];
  checkLike(dout, 'dout', outShape, shape.dtype, q);
  checkLike(out, 'out', outShape, shape.dtype, q);
  checkLike(lse, 'lse', [shape.batch, shape.headsQ, shape.seqlenQ], 'float32', q);

  // Selected as for the forward: 'auto' takes CUDA where it can run the problem (host tensors
  // round-trip through the device), else the CPU.
  const backend = selectBackend(opts.backend, shape, opts);
  if (!backend.backward) {
    const have = listBackends().filter((b) => getBackend(b.name)?.backward).map((b) => b.name);
    throw new UnsupportedError(`the ${backend.name} backend has no backward pass`, {
      param: 'options.backend',
      value: opts.backend,
      fix: `pass backend: ${have.map((n) => `'${n}'`).join(' or ')} (or 'auto')`,
    });
  }
  return backend.backward(q, k, v, { dout, out, lse, deterministic }, shape, opts);
}
