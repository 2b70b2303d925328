/**
 * `flash3 run`: attention over .npy files, the contract outside tools (Python scripts, other
 * languages) use to drive flash3 without binding to it. Errors name the flag and the file.
 */
import { existsSync } from 'node:fs';
import { selectBackend } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { Flash3Error, FormatError, ShapeError } from '../../errors.js';
import { readNpy } from '../../io/npy.js';
import { resolveOptions, type AttentionOptions } from '../../options.js';
import { validateAttentionInputs } from '../../problem.js';
import { Tensor } from '../../tensor.js';
import { UsageError, boolFlag, choiceFlag, dtypeFlag, numberFlag, requiredString, shortDType, stringFlag, type Command, type FlagValues } from '../args.js';
import '../backends.js';
import { duration, tuple } from '../format.js';

/** Prefixes a flash3 error with the flag it came from, keeping its class and code. */
function blame(e: unknown, prefix: string): unknown {
  if (e instanceof Flash3Error) e.message = `${prefix}: ${e.message}`;
  return e;
}

function loadInput(flag: 'q' | 'k' | 'v', path: string, dtype: DType): Tensor {
  if (!existsSync(path)) {
    throw new FormatError(`--${flag}: no such file ${JSON.stringify(path)}`, { fix: `pass the path of the ${flag} .npy file` });
  }
  let npy;
  try {
    npy = readNpy(path);
  } catch (e) {
    if (e instanceof Flash3Error) throw blame(e, `--${flag}`);
    throw new FormatError(`--${flag}: cannot read ${JSON.stringify(path)}: ${(e as Error).message}`, { cause: e });
  }
  if (npy.shape.length !== 4) {
    throw new ShapeError(`--${flag}: ${path} has shape ${tuple(npy.shape)}, rank ${npy.shape.length}`, {
      fix: 'save it as (batch, seqlen, heads, headdim); add a leading batch axis of 1 for one sequence',
    });
  }
  return Tensor.fromArray(npy.data, npy.shape, dtype);
}

function parseWindow(text: string | undefined): [number, number] | undefined {
  if (text === undefined) return undefined;
  const m = /^\s*(-?\d+)\s*,\s*(-?\d+)\s*$/.exec(text);
  if (!m) throw new UsageError(`--window takes L,R (two integers, -1 = unbounded), got '${text}'`);
  return [Number(m[1]), Number(m[2])];
}

function optionsOf(values: FlagValues): AttentionOptions {
  const opts: AttentionOptions = {};
  if (boolFlag(values, 'causal')) opts.causal = true;
  const scale = numberFlag(values, 'scale');
  if (scale !== undefined) opts.softmaxScale = scale;
  const windowSize = parseWindow(stringFlag(values, 'window'));
  if (windowSize) opts.windowSize = windowSize;
  const softcap = numberFlag(values, 'softcap');
  if (softcap !== undefined) opts.softcap = softcap;
  opts.backend = choiceFlag(values, 'backend', ['auto', 'cpu', 'cuda'] as const, 'auto');
  return opts;
}

/** Option names as attention() reports them, mapped to the flags a CLI user typed. */
const FLAG_OF: Record<string, string> = {
  'options.softmaxScale': '--scale',
  'options.windowSize': '--window',
  'options.softcap': '--softcap',
  'options.backend': '--backend',
};

function describeMask(o: AttentionOptions): string {
  const parts = [o.causal ? 'causal' : o.windowSize ? `window (${o.windowSize.join(', ')})` : 'full'];
  if (o.softcap) parts.push(`softcap ${o.softcap}`);
  return parts.join(', ');
}

export const runCommand: Command = {
  name: 'run',
  summary: 'Compute attention on q, k, v read from .npy files and write the output (and lse) as .npy.',
  usage: 'flash3 run --q FILE --k FILE --v FILE --out FILE [--lse FILE] [options]',
  details: [
    'File contract (stable; used by outside tools):',
    '  inputs   q (batch, seqlen_q, heads_q, headdim), k (batch, seqlen_k, heads_kv, headdim),',
    '           v (batch, seqlen_k, heads_kv, headdim_v); C-order .npy of float16, float32 or',
    '           float64 (as np.save writes). heads_q must be a multiple of heads_kv (GQA/MQA).',
    '           Values are rounded to --dtype before computing.',
    '  --out    float32 .npy (batch, seqlen_q, heads_q, headdim_v), values as computed in --dtype',
    '  --lse    float32 .npy (batch, heads_q, seqlen_q): natural-log log-sum-exp of the scaled',
    '           (soft-capped) scores; -inf for a query that sees no key (its output row is 0).',
    '  Masks are bottom-right aligned (FlashAttention 2/3): query i sees key j when',
    '  i + seqlen_k - seqlen_q - L <= j <= i + seqlen_k - seqlen_q + R.',
    '  On success it prints one line (backend, shapes, time) and exits 0; on bad input it',
    '  prints "flash3: <message naming the flag>" to stderr and exits 1 (2 for a mistyped flag).',
  ].join('\n'),
  flags: {
    q: { type: 'string', value: 'FILE', description: 'queries .npy (batch, seqlen_q, heads_q, headdim)' },
    k: { type: 'string', value: 'FILE', description: 'keys .npy (batch, seqlen_k, heads_kv, headdim)' },
    v: { type: 'string', value: 'FILE', description: 'values .npy (batch, seqlen_k, heads_kv, headdim_v)' },
    out: { type: 'string', value: 'FILE', description: 'output .npy to write, float32' },
    lse: { type: 'string', value: 'FILE', description: 'also write the log-sum-exp, float32' },
    causal: { type: 'boolean', description: 'causal mask (bottom-right aligned)' },
    scale: { type: 'string', value: 'S', description: 'softmax scale', default: '1/sqrt(headdim)' },
    window: { type: 'string', value: 'L,R', description: 'sliding window: L keys left, R right of the diagonal; -1 = unbounded' },
    softcap: { type: 'string', value: 'C', description: 'soft-cap scores to C*tanh(s/C); 0 = off', default: '0' },
    dtype: { type: 'string', value: 'T', description: 'compute dtype: fp32, bf16 or fp16', default: 'fp32' },
    backend: { type: 'string', value: 'NAME', description: 'auto, cpu or cuda (auto: CUDA when it can run the problem)', default: 'auto' },
  },
  run(values) {
    const paths = {
      q: requiredString(values, 'q'),
      k: requiredString(values, 'k'),
      v: requiredString(values, 'v'),
      out: requiredString(values, 'out'),
    };
    const lsePath = stringFlag(values, 'lse');
    const dtype = dtypeFlag(values, 'dtype', ['float32', 'bfloat16', 'float16'] as const, 'float32');
    const attnOptions = optionsOf(values);

    const inputs: Tensor[] = [];
    const outputs: Tensor[] = [];
    try {
      for (const name of ['q', 'k', 'v'] as const) inputs.push(loadInput(name, paths[name], dtype));
      const [q, k, v] = inputs;
      let shape;
      try {
        shape = validateAttentionInputs(q, k, v);
      } catch (e) {
        const param = e instanceof Flash3Error ? e.param ?? '' : '';
        const flag = (['q', 'k', 'v'] as const).find((n) => param.startsWith(`${n}.`) || param === n);
        throw flag ? blame(e, `--${flag} (${paths[flag]})`) : e;
      }
      let opts;
      let backend;
      try {
        opts = resolveOptions(attnOptions, shape.headDim);
        backend = selectBackend(opts.backend, shape, opts);
      } catch (e) {
        const flag = e instanceof Flash3Error && e.param ? FLAG_OF[e.param] : undefined;
        throw flag ? blame(e, flag) : e;
      }
      const t0 = performance.now();
      const result = backend.forward(q, k, v, shape, opts);
      const elapsed = performance.now() - t0;
      outputs.push(result.out, result.lse);
      for (const [flag, t, path] of [['--out', result.out, paths.out], ['--lse', result.lse, lsePath]] as const) {
        if (path === undefined) continue;
        try {
          t.toNpy(path, 'float32');
        } catch (e) {
          if (e instanceof Flash3Error) throw blame(e, flag);
          throw new FormatError(`${flag}: cannot write ${JSON.stringify(path)}: ${(e as Error).message}`, { cause: e });
        }
      }
      console.log(
        `flash3 run: ${backend.name}, ${shortDType(dtype)}, q ${tuple(q.shape)} k ${tuple(k.shape)} v ${tuple(v.shape)}, ${describeMask(attnOptions)}, ` +
          `${duration(elapsed)} -> ${paths.out}${lsePath ? `, ${lsePath}` : ''}`,
      );
      return 0;
    } finally {
      for (const t of [...inputs, ...outputs]) t.dispose();
    }
  },
};
