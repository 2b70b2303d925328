/**
 * The one entry point most callers need: exact scaled-dot-product attention over
 * (batch, seqlen, heads, headDim) tensors, on whichever backend can run it.
 */
import { selectBackend, type ForwardResult } from './backend.js';
import { resolveOptions, type AttentionOptions } from './options.js';
import { validateAttentionInputs } from './problem.js';
import { Tensor } from './tensor.js';

export type AttentionResult = ForwardResult;

/** q's head dim when q looks usable, so options can be resolved before the inputs are checked. */
function headDimHint(q: unknown): number {
  if (q instanceof Tensor && q.shape.length === 4 && q.shape[3] >= 1) return q.shape[3];
  // Placeholder only: validateAttentionInputs rejects such a q right after, before the scale is used.
  return 1;
}

/**
 * softmax(scale * q k^T [masked, soft-capped]) v per head, with GQA/MQA when k/v have fewer
 * heads than q. Returns `out` (batch, seqlenQ, headsQ, headDimV) in q's dtype and `lse`
 * (batch, headsQ, seqlenQ) float32, both on q's device; the caller disposes them.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions): AttentionResult {
  const opts = resolveOptions(options, headDimHint(q));
  const shape = validateAttentionInputs(q, k, v);
  return selectBackend(opts.backend, shape, opts).forward(q, k, v, shape, opts);
}
