/**
 * `flash3 check`: every usable backend against the float64 reference on random problems. A
 * half-precision result passes when its error is within 2x of what an exact emulation of the
 * same precision and tiling gets, which separates kernel bugs from unavoidable rounding.
 */
import { attention } from '../../attention.js';
import type { BackendName } from '../../backend.js';
import { cpuProblemOf, maxAbsDiffLse, relativeError } from '../../check/compare.js';
import { referenceAttention } from '../../cpu/reference.js';
import { tiledAttention } from '../../cpu/tiled.js';
import { forwardTileFor } from '../../cuda/kernels.js';
import type { DType } from '../../dtype.js';
import { resolveOptions } from '../../options.js';
import { validateAttentionInputs } from '../../problem.js';
import { Tensor } from '../../tensor.js';
import { boolFlag, choiceFlag, intFlag, shortDType, type Command } from '../args.js';
import { pickBackend, probeBackend } from '../backends.js';
import { checkCases, maskLabel, maskOptions, shapeLabel, type CheckCase } from '../checkCases.js';
import { sci } from '../format.js';
import { ProgressBar } from '../progress.js';
import { formatTable } from '../table.js';

const DTYPES: Record<BackendName, DType[]> = { cpu: ['float32', 'bfloat16', 'float16'], cuda: ['bfloat16', 'float16'] };
const FP32_TOLERANCE = 1e-5;
const LSE_TOLERANCE: Record<string, number> = { float32: 1e-4, bfloat16: 1e-3, float16: 1e-3 };

interface Row {
  backend: BackendName;
  dtype: DType;
  c: CheckCase;
  err: number;
  emuErr: number | null;
  lseErr: number;
  pass: boolean;
  failure?: string;
}

/** Backends to run and those skipped, with the reason each was skipped. */
function selectBackends(choice: string): { run: BackendName[]; skipped: [BackendName, string][] } {
  if (choice === 'cpu') return { run: ['cpu'], skipped: [] };
  if (choice === 'cuda') return { run: [pickBackend('cuda').name], skipped: [] };
  const cuda = probeBackend('cuda');
  if (!cuda.ok) return { run: ['cpu'], skipped: [['cuda', cuda.reason]] };
  return { run: choice === 'auto' ? ['cuda'] : ['cuda', 'cpu'], skipped: [] };
}

interface Truth {
  ref: { out: Float64Array; lse: Float64Array };
  emuErr: number | null;
}

function truthOf(q: Tensor, k: Tensor, v: Tensor, c: CheckCase, dtype: DType): Truth {
  const opts = resolveOptions(maskOptions(c.mask), c.headDim);
  const problem = cpuProblemOf(q, k, v, validateAttentionInputs(q, k, v), opts);
  const ref = referenceAttention(problem);
  if (dtype !== 'bfloat16' && dtype !== 'float16') return { ref, emuErr: null };
  // The tiles of the kernel that runs the case, so the yardstick rounds where the kernel does.
  const emu = tiledAttention(problem, {
    ...forwardTileFor(dtype, c.headDim, c.seqlenQ, opts),
    inputDtype: dtype,
    pDtype: dtype,
    accumulate: 'float32',
    outDtype: dtype,
  });
  return { ref, emuErr: relativeError(emu.out, ref.out) };
}

function runOne(backend: BackendName, q: Tensor, k: Tensor, v: Tensor, c: CheckCase, dtype: DType, truth: Truth): Row {
  const row: Row = { backend, dtype, c, err: NaN, emuErr: truth.emuErr, lseErr: NaN, pass: false };
  let result;
  try {
    result = attention(q, k, v, { ...maskOptions(c.mask), backend });
  } catch (e) {
    row.failure = e instanceof Error ? e.message : String(e);
    return row;
  }
  try {
    row.err = relativeError(result.out.toFloat64Array(), truth.ref.out);
    row.lseErr = maxAbsDiffLse(result.lse.toFloat64Array(), truth.ref.lse);
  } finally {
    result.out.dispose();
    result.lse.dispose();
  }
  const outOk = truth.emuErr === null ? row.err < FP32_TOLERANCE : row.err <= 2 * truth.emuErr + 1e-6;
  row.pass = outOk && row.lseErr <= LSE_TOLERANCE[dtype];
  return row;
}

export const checkCommand: Command = {
  name: 'check',
  summary: 'Check every available backend against the float64 reference on random problems; exits 1 on any failure.',
  usage: 'flash3 check [--backend all|auto|cpu|cuda] [--seed N] [--quick]',
  details: [
    'Shapes cover odd lengths, seqlenQ < seqlenK and > seqlenK, GQA, MQA, causal and sliding-window',
    'masks and head dims 64/128/256, in float32 (CPU only), bfloat16 and float16. Inputs are',
    'rounded to the dtype first, so the reference sees exactly what the backend sees.',
    '',
    'Pass criteria: float32 relative error < 1e-5. bf16/fp16: relative error <= 2 x the error of',
    'the CPU emulation of the same precision and tiling (tiledAttention with the CUDA kernel\'s tile',
    'sizes, read from its cubin, or the same table kept on the host when no kernel is loaded;',
    'float32 accumulation) + 1e-6. lse: max abs error <= 1e-3 (1e-4 for float32).',
    '',
    'Backends: all = every available one; auto = the one attention() would pick (CUDA if usable,',
    'else CPU); cuda fails with the reason when CUDA is unusable here.',
  ].join('\n'),
  flags: {
    backend: { type: 'string', value: 'NAME', description: 'all, auto, cpu or cuda', default: 'all' },
    seed: { type: 'string', value: 'N', description: 'seed for shapes and inputs', default: 'time-based, printed' },
    quick: { type: 'boolean', description: 'three shapes instead of eight' },
  },
  run(values) {
    const choice = choiceFlag(values, 'backend', ['all', 'auto', 'cpu', 'cuda'] as const, 'all');
    const seed = intFlag(values, 'seed', Date.now() % 1_000_000);
    const quick = boolFlag(values, 'quick');
    const { run, skipped } = selectBackends(choice);
    const cases = checkCases(seed, quick);
    const dtypes = [...new Set(run.flatMap((b) => DTYPES[b]))];

    console.log(`flash3 check: seed ${seed} (--seed ${seed} repeats it), ${cases.length} shapes on ${run.join(', ')}`);
    for (const [name, reason] of skipped) console.log(`${name}: skipped: ${reason}`);

    const rows: Row[] = [];
    const bar = new ProgressBar(cases.length * dtypes.length, { label: 'check' });
    let inputSeed = seed * 16;
    try {
      for (const c of cases) {
        for (const dtype of dtypes) {
          const q = Tensor.randn([c.batch, c.seqlenQ, c.headsQ, c.headDim], { dtype, seed: inputSeed++ });
          const k = Tensor.randn([c.batch, c.seqlenK, c.headsKv, c.headDim], { dtype, seed: inputSeed++ });
          const v = Tensor.randn([c.batch, c.seqlenK, c.headsKv, c.headDim], { dtype, seed: inputSeed++ });
          try {
            const truth = truthOf(q, k, v, c, dtype);
            for (const b of run) if (DTYPES[b].includes(dtype)) rows.push(runOne(b, q, k, v, c, dtype, truth));
          } finally {
            for (const t of [q, k, v]) t.dispose();
          }
          bar.tick(`${shortDType(dtype)} ${shapeLabel(c)}`);
        }
      }
    } finally {
      bar.done();
    }

    rows.sort((a, b) => run.indexOf(a.backend) - run.indexOf(b.backend));
    const table = rows.map((r) => [
      r.backend,
      shortDType(r.dtype),
      shapeLabel(r.c),
      maskLabel(r.c.mask),
      sci(r.err),
      r.emuErr === null ? '-' : sci(r.emuErr),
      sci(r.lseErr),
      r.pass ? 'PASS' : 'FAIL',
    ]);
    console.log(formatTable(['backend', 'dtype', 'shape', 'mask', 'rel error', 'emulation error', 'lse max error', 'result'], table));
    for (const r of rows) if (r.failure) console.log(`${r.backend} ${shortDType(r.dtype)} ${shapeLabel(r.c)}: ${r.failure}`);
    const failed = rows.filter((r) => !r.pass).length;
    console.log(`${rows.length - failed} passed, ${failed} failed${skipped.length ? `, ${skipped.length} backend(s) skipped` : ''}`);
    return failed > 0 ? 1 : 0;
  },
};
