/**
 * Backends register themselves here; attention() asks the registry which one runs a problem.
 * 'auto' prefers CUDA and falls back to the CPU quietly, while an explicit request that cannot
 * be honoured fails loudly with the reason, so nobody benchmarks the CPU by accident.
 */
import { CudaUnavailableError, UnsupportedError } from './errors.js';
import type { BackendChoice, ResolvedOptions } from './options.js';
import type { ProblemShape } from './problem.js';
import type { Tensor } from './tensor.js';
import type { QuantizedTensor } from './fp8.js';

export type BackendName = 'cpu' | 'cuda';

export type ProbeResult = { ok: true; detail: string } | { ok: false; reason: string };

export interface ForwardResult {
  /** (batch, seqlenQ, headsQ, headDimV) in the inputs' dtype. */
  out: Tensor;
  /** (batch, headsQ, seqlenQ) float32 log-sum-exp of the scaled scores. */
  lse: Tensor;
}

export interface BackwardResult {
  /** Shaped and typed like q. */
  dq: Tensor;
  /** Shaped and typed like k and v: gradients summed over the query heads of each GQA group. */
  dk: Tensor;
  dv: Tensor;
}

/** What the backward needs from the forward: its output, the output's gradient, and the lse. */
export interface BackwardInputs {
  dout: Tensor;
  out: Tensor;
  lse: Tensor;
  /** Bitwise-identical gradients run to run (an ordered dQ reduction on the GPU). */
  deterministic?: boolean;
}

export interface Backend {
  name: BackendName;
  /** Called on every selection; backends with costly probes should memoize. */
  probe(): ProbeResult;
  /** Why this backend cannot run the problem, or null when it can. */
  supports(shape: ProblemShape, opts: ResolvedOptions): string | null;
  forward(q: Tensor, k: Tensor, v: Tensor, shape: ProblemShape, opts: ResolvedOptions): ForwardResult;
  /** Why this backend cannot run FP8 inputs of this shape, or null; absent: no FP8 path. */
  supportsFp8?(shape: ProblemShape, opts: ResolvedOptions): string | null;
  /** Attention over e4m3 inputs with their descales; `out` in `outDtype`. */
  forwardFp8?(inputs: Fp8Inputs, shape: ProblemShape, opts: ResolvedOptions, outDtype: Fp8OutDType): ForwardResult;
  /** Gradients of the forward; absent where the backend has no backward yet. */
  backward?(q: Tensor, k: Tensor, v: Tensor, grads: BackwardInputs, shape: ProblemShape, opts: ResolvedOptions): BackwardResult;
}

export type Fp8OutDType = 'bfloat16' | 'float16';

export interface Fp8Inputs {
  q: QuantizedTensor;
  k: QuantizedTensor;
  v: QuantizedTensor;
}

export interface BackendStatus {
  name: BackendName;
  available: boolean;
  /** The probe's detail when available, its reason otherwise. */
  detail: string;
}

const registry = new Map<BackendName, Backend>();

/** Registers `b` under its name, replacing any earlier one; returns a function that undoes it. */
export function registerBackend(b: Backend): () => void {
  const previous = registry.get(b.name);
  registry.set(b.name, b);
  return () => {
    if (registry.get(b.name) !== b) return;
    if (previous) registry.set(b.name, previous);
    else registry.delete(b.name);
  };
}

export function getBackend(name: BackendName): Backend | undefined {
  return registry.get(name);
}

function safeProbe(b: Backend): ProbeResult {
  try {
    return b.probe();
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

export function listBackends(): BackendStatus[] {
  return [...registry.values()].map((b) => {
    const p = safeProbe(b);
    return { name: b.name, available: p.ok, detail: p.ok ? p.detail : p.reason };
  });
}

function explicit(name: BackendName, shape: ProblemShape, opts: ResolvedOptions): Backend {
  const b = registry.get(name);
  if (!b) {
    const reason = `the ${name} backend is not registered`;
    const fix = name === 'cuda' ? "import flash3 from its package entry (which loads the CUDA backend) on a CUDA machine, or pass backend: 'auto'" : "import flash3 from its package entry, or pass backend: 'auto'";
    if (name === 'cuda') throw new CudaUnavailableError(reason, { param: 'options.backend', value: name, fix });
    throw new UnsupportedError(reason, { param: 'options.backend', value: name, fix });
  }
  const p = safeProbe(b);
  if (!p.ok) {
    const fix = "pass backend: 'auto' to fall back to the CPU, or fix the cause above";
    if (name === 'cuda') throw new CudaUnavailableError(`the CUDA backend is unavailable: ${p.reason}`, { param: 'options.backend', value: name, fix });
    throw new UnsupportedError(`the ${name} backend is unavailable: ${p.reason}`, { param: 'options.backend', value: name, fix });
  }
  const why = b.supports(shape, opts);
  if (why !== null) {
    throw new UnsupportedError(`the ${name} backend cannot run this problem: ${why}`, {
      param: 'options.backend',
      value: name,
      fix: "pass backend: 'auto' to let flash3 pick one that can, or change the problem as the reason says",
    });
  }
  return b;
}

export function selectBackend(requested: BackendChoice, shape: ProblemShape, opts: ResolvedOptions): Backend {
  if (requested !== 'auto') return explicit(requested, shape, opts);
  const reasons: string[] = [];
  for (const name of ['cuda', 'cpu'] as const) {
    const b = registry.get(name);
    if (!b) {
      reasons.push(`${name}: not registered`);
      continue;
    }
    const p = safeProbe(b);
    const why = p.ok ? b.supports(shape, opts) : p.reason;
    if (why === null) return b;
    reasons.push(`${name}: ${why}`);
  }
  throw new UnsupportedError(`no backend can run this problem (${reasons.join('; ')})`, {
    param: 'options.backend',
    value: requested,
    fix: 'import flash3 from its package entry so the CPU backend is registered',
  });
}

/** Like selectBackend, for FP8 inputs: the backends that have an FP8 path. */
export function selectFp8Backend(requested: BackendChoice, shape: ProblemShape, opts: ResolvedOptions): Backend {
  const order: BackendName[] = requested === 'auto' ? ['cuda', 'cpu'] : [requested];
  const reasons: string[] = [];
  for (const name of order) {
    const b = registry.get(name);
    const p = b ? safeProbe(b) : { ok: false as const, reason: 'not registered' };
    const why = !b ? 'not registered' : !p.ok ? p.reason : !b.forwardFp8 || !b.supportsFp8 ? 'no FP8 path' : b.supportsFp8(shape, opts);
    if (b && why === null) return b;
    reasons.push(`${name}: ${why}`);
  }
  const reason = `no backend can run this FP8 problem (${reasons.join('; ')})`;
  if (requested === 'cuda') throw new CudaUnavailableError(reason, { param: 'options.backend', value: requested, fix: "pass backend: 'auto' to fall back to the CPU emulation" });
  throw new UnsupportedError(reason, { param: 'options.backend', value: requested, fix: "pass backend: 'auto', or change the problem as the reason says" });
}
