/**
 * `flash3 bench`: the FlashAttention-3 paper's forward grid on the GPU (optionally next to
 * PyTorch's cuDNN and FA2 on the same card), or a small grid on the CPU reference backend,
 * labelled as such so it is never mistaken for GPU numbers.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { attention } from '../../attention.js';
import { BenchBuffers, DEFAULT_TIMING, medianLaunchMs, prepareCudaForward, type TimingOptions } from '../../bench/cudaTiming.js';
import { median, type BenchPoint } from '../../bench/grid.js';
import { CudaContext } from '../../cuda/context.js';
import type { DType } from '../../dtype.js';
import { Flash3Error } from '../../errors.js';
import { Tensor } from '../../tensor.js';
import { UsageError, boolFlag, choiceFlag, dtypeFlag, intFlag, intListFlag, stringFlag, type Command, type FlagValues } from '../args.js';
import { pickBackend } from '../backends.js';
import { buildRows, peersInfoOf, headerLine, reportJson, reportSvg, reportTable, type BenchReport } from '../benchReport.js';
import { backwardHeader, backwardTable, benchBackward } from '../backwardBench.js';
import { cudaGridPoints, timeEachPoint, timeGridWithPeers } from '../benchGrid.js';

/** The CPU reference is ~1000x slower than the GPU: a few timed calls are plenty. */
const CPU_TIMING: TimingOptions = { warmup: 2, iterations: 2, repetitions: 3 };
const CPU_SEQLENS = [128, 256, 512];
const CPU_HEAD_DIMS = [64];
const CPU_BATCH = 1;
const CPU_HEADS = 2;
const BUFFER_SEED = 1234;

function timingOf(values: FlagValues, defaults: TimingOptions): TimingOptions {
  return {
    warmup: intFlag(values, 'warmup', defaults.warmup, 0),
    iterations: intFlag(values, 'iters', defaults.iterations, 1),
    repetitions: intFlag(values, 'reps', defaults.repetitions, 1),
  };
}

function causalsOf(values: FlagValues): boolean[] {
  const c = choiceFlag(values, 'causal', ['both', 'yes', 'no'] as const, 'both');
  return c === 'both' ? [false, true] : [c === 'yes'];
}

type BenchDType = 'bfloat16' | 'float16' | 'float8_e4m3';

async function benchCuda(values: FlagValues, dtype: BenchDType): Promise<{ report: BenchReport; notes: string[] }> {
  const points = cudaGridPoints(values, causalsOf(values));
  const timing = timingOf(values, DEFAULT_TIMING);
  const ctx = CudaContext.get(0);
  const accuracy = boolFlag(values, 'accuracy');
  if (accuracy && dtype !== 'float8_e4m3') throw new UsageError('--accuracy is the FP8 accuracy mode: pass it with --dtype fp8');
  const fp8 = dtype === 'float8_e4m3';
  const elements = (accuracy ? 2 : 1) * Math.max(...points.map((p) => p.batch * p.seqlen * p.heads * p.headDim));
  const withPeers = boolFlag(values, 'peers');
  process.stderr.write(`flash3 bench: ${points.length} points on ${ctx.name}${withPeers ? ', interleaved with PyTorch SDPA cuDNN and FA2 (bench/peers.py)' : ''}\n`);

  const buffers = new BenchBuffers(dtype, elements, BUFFER_SEED);
  let timed: Awaited<ReturnType<typeof timeGridWithPeers>>;
  try {
    // torch's SDPA has no FP8 path: FP8 is compared with the 16-bit peers, and with torch's FP8 GEMM as the ceiling.
    const peerRequest = withPeers ? { dtype: fp8 ? ('bfloat16' as const) : dtype, backward: false, scaledMm: fp8 } : null;
    timed = await timeGridWithPeers(
      points,
      'flash3',
      timing,
      (p) => {
        const prepared = prepareCudaForward(buffers, p, 'default', accuracy ? 2 : 1);
        return { contenders: [{ name: 'flash3', time: (t) => medianLaunchMs(ctx, prepared.launch, t) }], dispose: prepared.dispose };
      },
      peerRequest,
    );
  } finally {
    buffers.dispose();
  }

  const notes: string[] = [];
  const peers = timed.peers;
  if (peers && !peers.ok) notes.push(`peers unavailable: ${peers.reason}`);
  else if (peers?.ok && fp8) {
    notes.push('peers ran in bf16 (torch SDPA has no FP8 attention)');
    if (peers.scaledMmTflops) notes.push(`torch._scaled_mm e4m3 8192³: ${peers.scaledMmTflops.toFixed(0)} TFLOPS (the FP8 ceiling)`);
  }
  const { rows, peerErrors } = buildRows(points, timed.flash3.map((m) => m.get('flash3')!), peers);
  return { report: { backend: 'cuda', device: ctx.name, dtype, timing, peers: peersInfoOf(peers), rows, peerErrors }, notes };
}

function timeCpu(p: BenchPoint, dtype: DType, timing: TimingOptions, seed: number): number {
  const q = Tensor.randn([p.batch, p.seqlen, p.heads, p.headDim], { dtype, seed });
  const k = Tensor.randn([p.batch, p.seqlen, p.heads, p.headDim], { dtype, seed: seed + 1 });
  const v = Tensor.randn([p.batch, p.seqlen, p.heads, p.headDim], { dtype, seed: seed + 2 });
  const call = () => {
    const r = attention(q, k, v, { causal: p.causal, backend: 'cpu' });
    r.out.dispose();
    r.lse.dispose();
  };
  try {
    for (let i = 0; i < timing.warmup; i++) call();
    const samples: number[] = [];
    for (let r = 0; r < timing.repetitions; r++) {
      const t0 = performance.now();
      for (let i = 0; i < timing.iterations; i++) call();
      samples.push((performance.now() - t0) / timing.iterations);
    }
    return median(samples);
  } finally {
    for (const t of [q, k, v]) t.dispose();
  }
}

async function benchCpu(values: FlagValues, dtype: DType): Promise<{ report: BenchReport; notes: string[] }> {
  const headDims = intListFlag(values, 'headdim', CPU_HEAD_DIMS);
  const seqlens = intListFlag(values, 'seqlen', CPU_SEQLENS);
  const causals = causalsOf(values);
  const points: BenchPoint[] = [];
  for (const headDim of headDims) {
    for (const causal of causals) for (const seqlen of seqlens) points.push({ headDim, causal, seqlen, batch: CPU_BATCH, heads: CPU_HEADS });
  }
  const timing = timingOf(values, CPU_TIMING);
  const notes: string[] = [];
  if (boolFlag(values, 'peers')) notes.push('--peers ignored: PyTorch peers are timed only against the CUDA backend');

  const times = await timeEachPoint(points, 'flash3 (CPU)', (p, i) => timeCpu(p, dtype, timing, BUFFER_SEED + 3 * i));
  const { rows, peerErrors } = buildRows(points, times, null);
  const device = `CPU reference (${cpus()[0]?.model?.trim() || process.arch})`;
  return { report: { backend: 'cpu', device, dtype, timing, peers: null, rows, peerErrors }, notes };
}

function write(flag: string, path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (e) {
    throw new Flash3Error(`${flag}: cannot write ${JSON.stringify(path)}: ${(e as Error).message}`, { cause: e });
  }
}

export const benchCommand: Command = {
  name: 'bench',
  summary: "Time the forward pass over the FlashAttention-3 paper's grid (16k tokens, hidden 2048) and report TFLOPS.",
  usage: 'flash3 bench [--backend auto|cuda|cpu] [--dtype bf16|fp16|fp8 [--accuracy]] [--headdim 64,128,256] [--seqlen 512,...] [--causal both|yes|no] [--backward] [--peers] [--json FILE] [--svg FILE]',
  details: [
    'On CUDA: batch = 16384 / seqlen and heads = 2048 / headdim at each point, forward FLOPs',
    '4·batch·heads·seqlen²·headdim (halved when causal), timed with CUDA events in `reps`',
    'rounds: each round runs every contender once (`warmup` launches, then `iters` timed',
    'back-to-back ones), in an order that rotates, and each contender\'s median round is reported.',
    '--peers adds PyTorch SDPA cuDNN and FlashAttention-2 to the rounds (needs python3 with torch',
    'on this machine; without it the reason is printed and flash3 alone shown). Interleaving keeps',
    'every contender in the same clock and power state: a GPU under load throttles within seconds.',
    '',
    '--backward times dQ, dK, dV (pre-pass, main kernel and dQ conversion) in the default and the',
    'deterministic mode, FLOPs 2.5 x forward; with --peers next to PyTorch\'s cuDNN and FA2 backwards.',
    '',
    'Without a usable GPU (or with --backend cpu) it times the CPU reference backend on a small',
    'grid (head dim 64, seqlen 128/256/512, batch 1, heads 2) with performance.now(); those numbers',
    'are labelled as the CPU reference and say nothing about the GPU kernels.',
  ].join('\n'),
  flags: {
    backend: { type: 'string', value: 'NAME', description: 'auto, cuda or cpu (auto: cuda when usable, else cpu)', default: 'auto' },
    dtype: { type: 'string', value: 'T', description: 'bf16, fp16 or fp8 (e4m3 kernel alone, bf16 out; peers in bf16)', default: 'bf16' },
    headdim: { type: 'string', value: 'LIST', description: 'head dims', default: '64,128,256 (cpu: 64)' },
    seqlen: { type: 'string', value: 'LIST', description: 'sequence lengths', default: '512,...,16384 (cpu: 128,256,512)' },
    causal: { type: 'string', value: 'WHICH', description: 'both, yes or no', default: 'both' },
    peers: { type: 'boolean', description: 'also time PyTorch cuDNN and FA2 (bench/peers.py)' },
    backward: { type: 'boolean', description: 'time the backward (default and deterministic; CUDA only); with --peers, the peers\' backwards' },
    accuracy: { type: 'boolean', description: 'with --dtype fp8: the accuracy mode (two-term Q; TFLOPS count the plain attention FLOPs)' },
    json: { type: 'string', value: 'FILE', description: 'write the results as JSON' },
    svg: { type: 'string', value: 'FILE', description: 'write bar charts (one panel per head dim and mask) as SVG' },
    warmup: { type: 'string', value: 'N', description: 'warm-up calls per round and contender (cpu: per point)', default: `${DEFAULT_TIMING.warmup} (cpu: ${CPU_TIMING.warmup})` },
    iters: { type: 'string', value: 'N', description: 'calls per timed repetition', default: `${DEFAULT_TIMING.iterations} (cpu: ${CPU_TIMING.iterations})` },
    reps: { type: 'string', value: 'N', description: 'interleaved rounds (cpu: repetitions); median reported', default: `${DEFAULT_TIMING.repetitions} (cpu: ${CPU_TIMING.repetitions})` },
  },
  async run(values) {
    const pick = pickBackend(choiceFlag(values, 'backend', ['auto', 'cuda', 'cpu'] as const, 'auto'));
    const dtype = dtypeFlag(values, 'dtype', ['bfloat16', 'float16', 'float8_e4m3'] as const, 'bfloat16');
    if (dtype === 'float8_e4m3' && pick.name !== 'cuda') throw new UsageError('--dtype fp8 benchmarks the CUDA FP8 kernel; no usable GPU here');
    const jsonPath = stringFlag(values, 'json');
    const svgPath = stringFlag(values, 'svg');
    if (boolFlag(values, 'backward')) {
      if (pick.name !== 'cuda') throw new UsageError(`--backward times the CUDA kernels, and the CUDA backend is not usable here (${pick.why})`);
      if (dtype === 'float8_e4m3') throw new UsageError('--backward runs in bf16 or fp16 (there is no FP8 backward)');
      const report = await benchBackward(values, dtype, cudaGridPoints(values, causalsOf(values)), timingOf(values, DEFAULT_TIMING));
      if (jsonPath) write('--json', jsonPath, JSON.stringify(report, null, 2) + '\n');
      console.log(backwardHeader(report));
      console.log(backwardTable(report));
      return 0;
    }
    if (pick.name === 'cpu') process.stderr.write(`flash3 bench: CPU reference backend (${pick.why})\n`);
    const { report, notes } = pick.name === 'cuda' ? await benchCuda(values, dtype) : await benchCpu(values, dtype as 'bfloat16' | 'float16');

    if (jsonPath) write('--json', jsonPath, reportJson(report));
    if (svgPath) write('--svg', svgPath, reportSvg(report));
    console.log(headerLine(report));
    for (const n of notes) console.log(n);
    const written = [jsonPath && `JSON ${jsonPath}`, svgPath && `SVG ${svgPath}`].filter(Boolean);
    if (written.length) console.log(`wrote ${written.join(', ')}`);
    console.log(reportTable(report));
    return 0;
  },
};
