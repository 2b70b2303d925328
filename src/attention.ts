/**
 * The one entry point most callers need: exact scaled-dot-product attention over
 * (batch, seqlen, heads, headDim) tensors, on whichever backend can run it.
 */
import { selectBackend, selectFp8Backend, type ForwardResult, type Fp8OutDType } from './backend.js';
import { OptionError, UnsupportedError } from './errors.js';
import { forwardTileFor } from './cuda/kernels.js';
import { keyBlockRows, QuantizedTensor, quantizeFp8, resolveQuantize, type QuantizeOptions } from './fp8.js';
import { resolveOptions, type AttentionOptions, type ResolvedOptions } from './options.js';
import { validateAttentionInputs } from './problem.js';
import { Tensor } from './tensor.js';

export type AttentionResult = ForwardResult;

export interface Fp8AttentionOptions extends AttentionOptions {
  /**
   * Quantize 16-bit q, k, v to e4m3 on the fly and run the FP8 kernel (q and k rotated alike when
   * `hadamard` is set, v never); the output keeps the inputs' dtype. `true` means block scaling.
   */
  fp8?: QuantizeOptions | boolean;
  /** Output dtype when q, k, v are QuantizedTensors (default bfloat16). */
  outDtype?: Fp8OutDType;
}

const FP8_OPTION_NAMES = ['fp8', 'outDtype'];

/** q's head dim when q looks usable, so options can be resolved before the inputs are checked. */
function headDimHint(q: unknown): number {
  // A QuantizedTensor's logical head dim (its data holds `terms` of them side by side).
  const shape = q instanceof QuantizedTensor ? q.shape : q instanceof Tensor ? q.shape : null;
  if (shape && shape.length === 4 && shape[3] >= 1) return shape[3];
  // Placeholder only: validateAttentionInputs rejects such a q right after, before the scale is used.
  return 1;
}

/**
 * softmax(scale * q k^T [masked, soft-capped]) v per head, with GQA/MQA when k/v have fewer
 * heads than q. Returns `out` (batch, seqlenQ, headsQ, headDimV) in q's dtype (FP8 inputs:
 * options.outDtype) and `lse` (batch, headsQ, seqlenQ) float32, both on q's device; the caller
 * disposes them. q, k, v may be QuantizedTensors (quantizeFp8), all three or none.
 */
export function attention(
  q: Tensor | QuantizedTensor,
  k: Tensor | QuantizedTensor,
  v: Tensor | QuantizedTensor,
  options?: Fp8AttentionOptions,
): AttentionResult {
  const opts = resolveOptions(options, headDimHint(q), FP8_OPTION_NAMES);
  const quantized = [q, k, v].filter((t) => t instanceof QuantizedTensor).length;
  if (quantized > 0) return attentionFp8(q, k, v, opts, options?.outDtype ?? 'bfloat16');
  const fp8 = options?.fp8 ?? false;
  if (fp8 !== false) {
    if (fp8 !== true && (typeof fp8 !== 'object' || fp8 === null)) {
      throw new OptionError('fp8 must be a boolean or quantization options', { param: 'options.fp8', value: fp8, fix: "pass true, or e.g. { hadamard: true }" });
    }
    const qk = resolveQuantize(fp8 === true ? {} : fp8, 'options.fp8');
    const made: QuantizedTensor[] = [];
    try {
      const shape = validateAttentionInputs(q, k, v);
      const outDtype = (q as Tensor).dtype as Fp8OutDType;
      // K and V in blocks of the key block of the kernel that will run, unless the caller chose.
      const inputs = { fp8: true as const, out: outDtype, qTerms: qk.terms };
      const kvRows = fp8 !== true && fp8.blockRows !== undefined ? qk.blockRows : keyBlockRows(forwardTileFor(inputs, shape.headDim, shape.seqlenQ, opts).blockN);
      made.push(
        quantizeFp8(q as Tensor, qk),
        quantizeFp8(k as Tensor, { ...qk, terms: 1, blockRows: kvRows }),
        quantizeFp8(v as Tensor, { ...qk, hadamard: false, terms: 1, powerOfTwoScales: qk.scaling === 'block', blockRows: kvRows }),
      );
      return attentionFp8(made[0], made[1], made[2], opts, outDtype);
    } finally {
      for (const t of made) t.dispose();
    }
  }
  const shape = validateAttentionInputs(q, k, v);
  return selectBackend(opts.backend, shape, opts).forward(q as Tensor, k as Tensor, v as Tensor, shape, opts);
}

function attentionFp8(q: unknown, k: unknown, v: unknown, opts: ResolvedOptions, outDtype: unknown): AttentionResult {
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (!(t instanceof QuantizedTensor)) {
      throw new UnsupportedError(`${name} is not a QuantizedTensor but another input is`, { param: name, fix: `quantize ${name} too: quantizeFp8(${name}, options)` });
    }
  }
  const [q8, k8, v8] = [q, k, v] as QuantizedTensor[];
  const views = [q8, k8, v8].map((t) => t.firstTerm());
  let shape;
  try {
    shape = validateAttentionInputs(views[0], views[1], views[2]);
  } finally {
    for (const t of views) t.dispose();
  }
  for (const [name, t] of [['k', k8], ['v', v8]] as const) {
    if (t.terms !== 1) {
      throw new UnsupportedError(`${name} has two terms; the accuracy mode splits q alone`, { param: `${name}.terms`, value: t.terms, fix: `quantize ${name} with terms: 1` });
    }
  }
  if (q8.hadamardSeed !== k8.hadamardSeed) {
    throw new UnsupportedError('q and k are rotated differently, which changes q·kᵀ', {
      param: 'k.hadamardSeed',
      value: k8.hadamardSeed,
      fix: 'quantize q and k with the same hadamard and seed options',
    });
  }
  if (v8.hadamardSeed !== null) {
    throw new UnsupportedError('v is Hadamard-rotated, which would rotate the output', { param: 'v.hadamardSeed', value: v8.hadamardSeed, fix: 'quantize v with hadamard: false' });
  }
  if (v8.blockRows !== k8.blockRows) {
    throw new UnsupportedError(`k and v are scaled per ${k8.blockRows} and ${v8.blockRows} keys; the FP8 kernel takes one key blocking`, {
      param: 'v.blockRows',
      value: v8.blockRows,
      fix: 'quantize k and v with the same blockRows',
    });
  }
  if (outDtype !== 'bfloat16' && outDtype !== 'float16') {
    throw new OptionError("outDtype must be 'bfloat16' or 'float16'", { param: 'options.outDtype', value: outDtype });
  }
  const backend = selectFp8Backend(opts.backend, shape, opts);
  return backend.forwardFp8!({ q: q8, k: k8, v: v8 }, shape, opts, outDtype);
}
