/**
 * Attention options as callers write them, and their validated, resolved form. Everything is
 * checked up front so a typo or a NaN fails before any memory is allocated or kernel launched.
 */
import { OptionError, ShapeError, suggest } from './errors.js';

export type BackendChoice = 'auto' | 'cpu' | 'cuda';

export interface AttentionOptions {
  /** Multiplies QK^T before softmax; default 1/sqrt(headDim). */
  softmaxScale?: number;
  /** Bottom-right aligned causal mask; shorthand for windowSize [left, 0]. */
  causal?: boolean;
  /** [left, right] keys visible around each query's diagonal; -1 means unbounded. */
  windowSize?: [number, number];
  /** Tanh soft-capping of the scores, cap * tanh(s / cap); 0 disables it. */
  softcap?: number;
  backend?: BackendChoice;
}

export interface ResolvedOptions {
  softmaxScale: number;
  /** -1 unbounded. */
  windowLeft: number;
  /** -1 unbounded; 0 when causal. */
  windowRight: number;
  softcap: number;
  backend: BackendChoice;
  /** The mask is exactly causal: unbounded on the left, nothing to the right of the diagonal. */
  causal: boolean;
}

const OPTION_NAMES = ['softmaxScale', 'causal', 'windowSize', 'softcap', 'backend'] as const;
const BACKENDS: readonly BackendChoice[] = ['auto', 'cpu', 'cuda'];

function fail(param: string, value: unknown, problem: string, fix: string): never {
  throw new OptionError(problem, { param: `options.${param}`, value, fix });
}

/** `extraNames`: options the caller handles itself (e.g. the backward's `deterministic`), accepted here. */
export function resolveOptions(options: unknown, headDim: number, extraNames: readonly string[] = []): ResolvedOptions {
  if (!Number.isSafeInteger(headDim) || headDim < 1) {
    throw new ShapeError('head dim must be a positive integer', { param: 'headDim', value: headDim, fix: 'pass q.shape[3]' });
  }
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new OptionError('options must be a plain object', { param: 'options', value: options, fix: 'pass e.g. { causal: true } or omit it' });
  }
  const o = options as Record<string, unknown>;
  const known = [...OPTION_NAMES, ...extraNames];
  for (const name of Object.keys(o)) {
    if (known.includes(name)) continue;
    const guess = suggest(name, known);
    const hint = guess ? `did you mean "${guess}"? ` : '';
    fail(name, o[name], `unknown option "${name}"`, `${hint}known options are ${known.join(', ')}`);
  }

  const defaultScale = 1 / Math.sqrt(headDim);
  const softmaxScale = o.softmaxScale ?? defaultScale;
  if (typeof softmaxScale !== 'number' || !Number.isFinite(softmaxScale) || softmaxScale <= 0) {
    fail('softmaxScale', softmaxScale, 'softmaxScale must be a finite number > 0', `pass e.g. 1/sqrt(headDim) = ${defaultScale}, or omit it for that default`);
  }

  const causal = o.causal ?? false;
  if (typeof causal !== 'boolean') fail('causal', causal, 'causal must be a boolean', 'pass true or false');

  const windowSize = o.windowSize ?? [-1, -1];
  if (!Array.isArray(windowSize) || windowSize.length !== 2 || !windowSize.every((w) => Number.isSafeInteger(w) && w >= -1)) {
    fail('windowSize', windowSize, 'windowSize must be two integers >= -1', 'pass [left, right], e.g. [128, 0] for a causal sliding window; -1 means unbounded');
  }

  const softcap = o.softcap ?? 0;
  if (typeof softcap !== 'number' || !Number.isFinite(softcap) || softcap < 0) {
    fail('softcap', softcap, 'softcap must be a finite number >= 0', 'pass e.g. 30 (Gemma 2 style), or 0 to disable soft-capping');
  }

  const backend = o.backend ?? 'auto';
  if (!BACKENDS.includes(backend as BackendChoice)) {
    const guess = typeof backend === 'string' ? suggest(backend, BACKENDS) : undefined;
    fail('backend', backend, 'unknown backend', `${guess ? `did you mean "${guess}"? ` : ''}use one of ${BACKENDS.join(', ')}`);
  }

  const windowLeft = windowSize[0] as number;
  // Causal means "nothing right of the diagonal", which any right window would widen.
  const windowRight = causal ? 0 : (windowSize[1] as number);
  return {
    softmaxScale,
    windowLeft,
    windowRight,
    softcap,
    backend: backend as BackendChoice,
    causal: windowLeft === -1 && windowRight === 0,
  };
}
