/**
 * Every error flash3 throws on purpose derives from Flash3Error and says which parameter was
 * wrong, what it was, and how to fix it, so callers can branch on the class or on `code`.
 */
export interface ErrorDetails {
  /** The parameter at fault, as the caller wrote it (`q`, `options.softmaxScale`, ...). */
  param?: string;
  /** The offending value, rendered for the message. */
  value?: unknown;
  /** What to do about it. */
  fix?: string;
  cause?: unknown;
}

function render(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return `[${value.map(render).join(', ')}]`;
  return String(value);
}

export class Flash3Error extends Error {
  readonly code: string = 'FLASH3_ERROR';
  readonly param?: string;
  readonly value?: unknown;
  readonly fix?: string;

  constructor(message: string, details: ErrorDetails = {}) {
    const parts = [message];
    if (details.param !== undefined && 'value' in details) parts.push(`(${details.param} = ${render(details.value)})`);
    else if (details.param !== undefined) parts.push(`(${details.param})`);
    let text = parts.join(' ');
    if (details.fix) text += `. Fix: ${details.fix}`;
    super(text, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.param = details.param;
    this.value = details.value;
    this.fix = details.fix;
  }
}

/** A tensor has a dtype this operation or backend does not accept. */
export class DTypeError extends Flash3Error {
  override readonly code = 'FLASH3_DTYPE';
}

/** Shapes disagree or have the wrong rank. */
export class ShapeError extends Flash3Error {
  override readonly code = 'FLASH3_SHAPE';
}

/** Strides a kernel cannot address (non-contiguous last dim, misaligned rows). */
export class StrideError extends Flash3Error {
  override readonly code = 'FLASH3_STRIDE';
}

/** An option is unknown, of the wrong type, or out of range. */
export class OptionError extends Flash3Error {
  override readonly code = 'FLASH3_OPTION';
}

/** The input is valid but the chosen backend cannot run it (head dim, dtype, device). */
export class UnsupportedError extends Flash3Error {
  override readonly code = 'FLASH3_UNSUPPORTED';
}

/** A tensor was used after dispose(). */
export class DisposedError extends Flash3Error {
  override readonly code = 'FLASH3_DISPOSED';
}

/** A file could not be read or written in the expected format (.npy). */
export class FormatError extends Flash3Error {
  override readonly code = 'FLASH3_FORMAT';
}

/** The CUDA backend cannot be used on this machine (no driver, no Hopper GPU, kernels not built). */
export class CudaUnavailableError extends Flash3Error {
  override readonly code = 'FLASH3_CUDA_UNAVAILABLE';
}

/** A CUDA driver call returned an error; `call` and `result` say which and what. */
export class CudaError extends Flash3Error {
  override readonly code: string = 'FLASH3_CUDA';
  readonly call: string;
  readonly result: number;
  readonly resultName: string;

  constructor(call: string, result: number, resultName: string, description: string, fix?: string) {
    super(`${call} failed with ${resultName} (${result}): ${description}`, { fix });
    this.call = call;
    this.result = result;
    this.resultName = resultName;
  }
}

/** The device ran out of memory; nothing was computed, inputs are intact. */
export class OutOfMemoryError extends CudaError {
  override readonly code = 'FLASH3_CUDA_OOM';
}

/** Levenshtein distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** The closest known name to `name`, if it is close enough to be a typo. */
export function suggest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}
