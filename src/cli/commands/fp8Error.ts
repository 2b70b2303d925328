/**
 * `flash3 fp8-error`: FlashAttention-3's FP8 numerics study on the CPU emulation. Inputs with
 * outliers; RMSE against float64 attention for fp16, bf16, FP8 with one scale per tensor, FP8
 * with block scaling, and FP8 with block scaling after a random Hadamard rotation.
 */
import { fp8AttentionEmulated } from '../../cpu/fp8.js';
import type { CpuProblem } from '../../cpu/problem.js';
import { referenceAttention } from '../../cpu/reference.js';
import { tiledAttention } from '../../cpu/tiled.js';
import { forwardTileFor } from '../../cuda/kernels.js';
import { attention } from '../../attention.js';
import type { QuantizeOptions } from '../../fp8.js';
import { Tensor } from '../../tensor.js';
import { choiceFlag, intFlag, intListFlag, UsageError, type Command } from '../args.js';
import { pickBackend } from '../backends.js';
import { sci } from '../format.js';
import { outlierNormals } from '../outliers.js';
import { formatTable } from '../table.js';

/** FP8 tiles (FA3's FP8 forward: 128 x 128); the 16-bit rows use flash3's own kernel tiles. */
const FP8_BLOCK = 128;

function rmse(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s / a.length);
}

interface Setup {
  batch: number;
  seqlen: number;
  heads: number;
  seed: number;
}

function problemOf(s: Setup, headDim: number): CpuProblem {
  const n = s.batch * s.seqlen * s.heads * headDim;
  // Distinct seeds per tensor and head dim, so no two inputs share their outliers.
  const base = s.seed * 1000 + headDim;
  return {
    batch: s.batch,
    seqlenQ: s.seqlen,
    seqlenK: s.seqlen,
    headsQ: s.heads,
    headsKv: s.heads,
    headDim,
    headDimV: headDim,
    q: outlierNormals(n, base),
    k: outlierNormals(n, base + 1),
    v: outlierNormals(n, base + 2),
    softmaxScale: 1 / Math.sqrt(headDim),
    windowLeft: -1,
    windowRight: -1,
    softcap: 0,
  };
}

export interface Fp8ErrorRow {
  method: string;
  rmse: number;
}

export function fp8ErrorRows(s: Setup, headDim: number): Fp8ErrorRow[] {
  const p = problemOf(s, headDim);
  const ref = referenceAttention(p).out;
  const fp8 = (scaling: 'tensor' | 'block', hadamard: boolean, qSplit = false) =>
    fp8AttentionEmulated(p, { scaling, hadamard, seed: s.seed, blockM: FP8_BLOCK, blockN: FP8_BLOCK, qSplit }).out;
  return [
    { method: 'fp16', rmse: rmse(sixteenBitEmulated(p, 'float16'), ref) },
    { method: 'bf16', rmse: rmse(sixteenBitEmulated(p, 'bfloat16'), ref) },
    { method: 'fp8 per-tensor scaling (baseline)', rmse: rmse(fp8('tensor', false), ref) },
    { method: 'fp8 block scaling', rmse: rmse(fp8('block', false), ref) },
    { method: 'fp8 block scaling + Hadamard', rmse: rmse(fp8('block', true), ref) },
    { method: 'fp8 block + Hadamard + two-term Q (accuracy mode)', rmse: rmse(fp8('block', true, true), ref) },
  ];
}

const GPU_VARIANTS: { method: string; fp8: QuantizeOptions | null }[] = [
  { method: 'bf16', fp8: null },
  { method: 'fp8 per-tensor scaling (baseline)', fp8: { scaling: 'tensor' } },
  { method: 'fp8 block scaling', fp8: { scaling: 'block' } },
  { method: 'fp8 block scaling + Hadamard', fp8: { scaling: 'block', hadamard: true } },
  { method: 'fp8 block + Hadamard + two-term Q (accuracy mode)', fp8: { scaling: 'block', hadamard: true, terms: 2 } },
];

export interface Fp8GpuRow {
  method: string;
  gpu: number;
  emulation: number;
}

/**
 * The same study through the kernels: inputs rounded to bf16 (what the kernels take), quantized
 * and run on the GPU, and the same bf16 inputs through the CPU emulation of those kernels, both
 * against float64 attention of the bf16 inputs.
 */
export function fp8GpuRows(s: Setup, headDim: number): Fp8GpuRow[] {
  const p = problemOf(s, headDim);
  const shape = [s.batch, s.seqlen, s.heads, headDim];
  const host = [p.q, p.k, p.v].map((x) => Tensor.fromArray(x, shape, 'bfloat16'));
  const device = host.map((t) => t.cuda());
  try {
    const rounded = { ...p, q: host[0].toFloat64Array(), k: host[1].toFloat64Array(), v: host[2].toFloat64Array() };
    const ref = referenceAttention(rounded).out;
    const run = (ts: Tensor[], backend: 'cuda' | 'cpu', fp8: QuantizeOptions | null) => {
      const { out, lse } = attention(ts[0], ts[1], ts[2], { backend, ...(fp8 ? { fp8: { ...fp8, seed: s.seed } } : {}) });
      try {
        return rmse(out.toFloat64Array(), ref);
      } finally {
        out.dispose();
        lse.dispose();
      }
    };
    return GPU_VARIANTS.map((v) => ({
      method: v.method,
      gpu: run(device, 'cuda', v.fp8),
      emulation: v.fp8 ? run(host, 'cpu', v.fp8) : rmse(sixteenBitEmulated(rounded, 'bfloat16'), ref),
    }));
  } finally {
    for (const t of [...host, ...device]) t.dispose();
  }
}

/** flash3's 16-bit kernel emulated with the tiles of the build that runs the problem. */
function sixteenBitEmulated(p: CpuProblem, dtype: 'float16' | 'bfloat16'): Float64Array {
  const tiles = forwardTileFor(dtype, p.headDim, p.seqlenQ, p);
  return tiledAttention(p, { ...tiles, inputDtype: dtype, pDtype: dtype, accumulate: 'float32', outDtype: dtype }).out;
}

export const fp8ErrorCommand: Command = {
  name: 'fp8-error',
  summary: "Reproduce FlashAttention-3's FP8 error study on the CPU emulation (RMSE vs float64 attention).",
  usage: 'flash3 fp8-error [--backend cpu|cuda] [--seqlen N] [--heads N] [--headdim 64,128,256] [--batch N] [--seed N]',
  details: [
    'Q, K, V ~ N(0,1) + N(0,100)·Bernoulli(0.001): mostly unit normals with rare outliers, as in',
    'the paper (section 4.3). FP8 is e4m3 with float32 softmax and accumulation; block scaling uses',
    'one scale per 128 rows (128 queries or keys of one head; V\'s rounded up to powers of two, as',
    'attention()\'s fp8 option makes them; per-tensor scaling keeps amax scales for all three);',
    'Hadamard rotates Q and K over the head dim with random signs first, spreading outliers across',
    'the row. Non-causal attention.',
    'The default table is a bit-faithful CPU emulation of the rounding; --backend cuda runs the FP8',
    'kernels (GPU quantization included) on bf16 copies of the inputs next to their emulation.',
  ].join('\n'),
  flags: {
    seqlen: { type: 'string', value: 'N', description: 'sequence length', default: '512' },
    heads: { type: 'string', value: 'N', description: 'heads', default: '4' },
    headdim: { type: 'string', value: 'LIST', description: 'head dims (powers of two, for the Hadamard transform)', default: '64,128,256' },
    batch: { type: 'string', value: 'N', description: 'batch size', default: '1' },
    seed: { type: 'string', value: 'N', description: 'seed for inputs and Hadamard signs', default: '0' },
    backend: { type: 'string', value: 'NAME', description: 'cpu (emulation table), cuda (GPU kernels next to their emulation) or auto', default: 'cpu' },
  },
  run(values) {
    const setup: Setup = {
      batch: intFlag(values, 'batch', 1, 1),
      seqlen: intFlag(values, 'seqlen', 512, 1),
      heads: intFlag(values, 'heads', 4, 1),
      seed: intFlag(values, 'seed', 0),
    };
    const headDims = intListFlag(values, 'headdim', [64, 128, 256]);
    const bad = headDims.find((d) => (d & (d - 1)) !== 0);
    if (bad !== undefined) throw new UsageError(`--headdim ${bad} is not a power of two, which the Hadamard transform needs`);

    const pick = pickBackend(choiceFlag(values, 'backend', ['auto', 'cuda', 'cpu'] as const, 'cpu'));
    if (pick.name === 'cuda') {
      console.log(
        `flash3 fp8-error (GPU kernels and their CPU emulation, bf16 inputs): batch ${setup.batch}, seqlen ${setup.seqlen}, ` +
          `heads ${setup.heads}, head dims ${headDims.join(', ')}, seed ${setup.seed}; inputs N(0,1) + N(0,100)·Bernoulli(0.001)`,
      );
      for (const d of headDims) {
        const rows = fp8GpuRows(setup, d);
        console.log('');
        console.log(`head dim ${d}:`);
        const cells = (r: Fp8GpuRow) => [r.method, sci(r.gpu), sci(r.emulation), (r.gpu / r.emulation).toFixed(3)];
        console.log(formatTable(['method', 'GPU RMSE', 'emulation RMSE', 'GPU / emulation'], rows.map(cells)));
        console.log(`per-tensor / block + Hadamard on the GPU: ${(rows[1].gpu / rows[3].gpu).toFixed(2)}x`);
      }
      return 0;
    }
    console.log(
      `flash3 fp8-error (CPU emulation): batch ${setup.batch}, seqlen ${setup.seqlen}, heads ${setup.heads}, ` +
        `head dims ${headDims.join(', ')}, seed ${setup.seed}; inputs N(0,1) + N(0,100)·Bernoulli(0.001)`,
    );
    for (const d of headDims) {
      const rows = fp8ErrorRows(setup, d);
      const fp16 = rows[0].rmse;
      console.log('');
      console.log(`head dim ${d}:`);
      console.log(formatTable(['method', 'RMSE', 'x fp16'], rows.map((r) => [r.method, sci(r.rmse), fp16 > 0 ? `${(r.rmse / fp16).toFixed(1)}x` : 'n/a'])));
      const perTensor = rows[2].rmse;
      const best = rows[4].rmse;
      console.log(`per-tensor / block + Hadamard: ${best > 0 ? `${(perTensor / best).toFixed(2)}x` : 'n/a'}`);
    }
    return 0;
  },
};
