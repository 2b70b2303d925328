/**
 * Command-line flags on top of node:util parseArgs. parseArgs runs non-strict so that every
 * mistake can be reported here as one line naming the flag, with a did-you-mean, instead of
 * Node's generic messages; mistakes are UsageErrors, which exit with status 2.
 */
import { parseArgs } from 'node:util';
import { DTYPE_ALIASES, isDType, type DType } from '../dtype.js';
import { suggest } from '../errors.js';

/** A mistake in how the command was typed (exit status 2), as opposed to a failure running it. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** Placeholder shown in help, e.g. FILE or N. */
  value?: string;
  description: string;
  /** Shown in help only; commands apply their defaults themselves. */
  default?: string;
}

export type Flags = Record<string, FlagSpec>;
export type FlagValues = Record<string, string | boolean | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** e.g. "flash3 run --q FILE --k FILE --v FILE --out FILE [options]" */
  usage: string;
  /** Paragraphs printed between the usage line and the flags. */
  details?: string;
  flags: Flags;
  run(values: FlagValues): number | Promise<number>;
}

const HELP: FlagSpec = { type: 'boolean', description: 'show this help' };

/** The flags a command accepts, --help included. */
export function allFlags(cmd: Command): Flags {
  return { ...cmd.flags, help: HELP };
}

/**
 * Parses `argv` for `cmd`. Returns null when --help was asked for (the caller prints help);
 * throws UsageError for unknown flags, stray arguments and missing or unexpected values.
 */
export function parseFlags(cmd: Command, argv: string[]): FlagValues | null {
  const flags = allFlags(cmd);
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, spec] of Object.entries(flags)) options[name] = { type: spec.type };
  options.help.short = 'h';
  const { values, tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  if (values.help === true) return null;

  const known = Object.keys(flags).map((n) => `--${n}`);
  for (const token of tokens) {
    if (token.kind === 'positional') {
      throw new UsageError(`unexpected argument '${token.value}' (flash3 ${cmd.name} takes only flags)`);
    }
    if (token.kind !== 'option') continue;
    const spec = flags[token.name];
    if (!spec) {
      const raw = token.rawName.startsWith('--') ? token.rawName : `--${token.name}`;
      const guess = suggest(raw, known);
      throw new UsageError(`unknown flag ${token.rawName}${guess ? ` (did you mean ${guess}?)` : ''}`);
    }
    if (spec.type === 'boolean' && token.value !== undefined) {
      throw new UsageError(`${token.rawName} takes no value, got '${token.value}'`);
    }
    // Non-strict parseArgs lets "--out --causal" make "--causal" the file name; that is never meant.
    const swallowed = token.value !== undefined && !token.inlineValue && known.includes(token.value.split('=')[0]);
    if (spec.type === 'string' && (token.value === undefined || swallowed)) {
      throw new UsageError(`${token.rawName} needs a value (${token.rawName} ${spec.value ?? 'VALUE'})`);
    }
  }
  return values;
}

/** The help text of one command. */
export function commandHelp(cmd: Command): string {
  const flags = allFlags(cmd);
  const left = Object.entries(flags).map(([name, spec]) => `  --${name}${spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''}`);
  const width = Math.max(...left.map((s) => s.length)) + 2;
  const lines = Object.values(flags).map((spec, i) => {
    const dflt = spec.default !== undefined ? ` (default ${spec.default})` : '';
    return `${left[i].padEnd(width)}${spec.description}${dflt}`;
  });
  const parts = [`usage: ${cmd.usage}`, '', cmd.summary];
  if (cmd.details) parts.push('', cmd.details.trimEnd());
  parts.push('', 'flags:', ...lines);
  return parts.join('\n');
}

// ---- typed values ----

function str(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function stringFlag(values: FlagValues, name: string): string | undefined {
  return str(values, name);
}

export function requiredString(values: FlagValues, name: string, placeholder = 'FILE'): string {
  const v = str(values, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required (--${name} ${placeholder})`);
  return v;
}

export function boolFlag(values: FlagValues, name: string): boolean {
  return values[name] === true;
}

function parseInteger(name: string, text: string, min: number): number {
  const n = /^[-+]?\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got '${text}'`);
  }
  return n;
}

export function intFlag(values: FlagValues, name: string, fallback: number, min = 0): number {
  const v = str(values, name);
  return v === undefined ? fallback : parseInteger(name, v, min);
}

/** "64,128,256" -> [64, 128, 256]. */
export function intListFlag(values: FlagValues, name: string, fallback: number[], min = 1): number[] {
  const v = str(values, name);
  if (v === undefined) return fallback;
  const parts = v.split(',').map((s) => s.trim());
  if (parts.some((s) => s === '')) throw new UsageError(`--${name} takes a comma-separated list of integers, got '${v}'`);
  return parts.map((s) => parseInteger(name, s, min));
}

export function numberFlag(values: FlagValues, name: string): number | undefined {
  const v = str(values, name);
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
}

export function choiceFlag<T extends string>(values: FlagValues, name: string, choices: readonly T[], fallback: T): T {
  const v = str(values, name);
  if (v === undefined) return fallback;
  if ((choices as readonly string[]).includes(v)) return v as T;
  const guess = suggest(v, choices);
  throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${v}'${guess ? ` (did you mean ${guess}?)` : ''}`);
}

/** A dtype by its short name (bf16) or full name (bfloat16), limited to `allowed`. */
export function dtypeFlag<T extends DType>(values: FlagValues, name: string, allowed: readonly T[], fallback: T): T {
  const v = str(values, name);
  if (v === undefined) return fallback;
  const full = DTYPE_ALIASES[v.toLowerCase()] ?? (isDType(v) ? v : undefined);
  if (full !== undefined && (allowed as readonly DType[]).includes(full)) return full as T;
  const names = allowed.map(shortDType);
  const guess = suggest(v, names);
  throw new UsageError(`--${name} must be one of ${names.join(', ')}, got '${v}'${guess ? ` (did you mean ${guess}?)` : ''}`);
}

const SHORT: Partial<Record<DType, string>> = { float32: 'fp32', float16: 'fp16', bfloat16: 'bf16', float64: 'fp64' };

export function shortDType(d: DType): string {
  return SHORT[d] ?? d;
}
