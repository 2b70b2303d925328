/**
 * `flash3 bench --backward`: the backward over the paper's grid on the GPU, in the default and the
 * deterministic mode, next to PyTorch SDPA's cuDNN and FA2 backwards timed in the same run
 * (--peers). TFLOPS count the backward as 2.5 forwards, as FlashAttention's papers do.
 */
import { BenchBuffers, type TimingOptions } from '../bench/cudaTiming.js';
import { backwardTflops, timeCudaBackward } from '../bench/backwardTiming.js';
import { paperGrid, PAPER_HEAD_DIMS, PAPER_SEQLENS, seqlenLabel, type BenchPoint } from '../bench/grid.js';
import { timePeers, type PeersResult } from '../bench/peers.js';
import { CudaContext } from '../cuda/context.js';
import { FORWARD_HEAD_DIMS } from '../cuda/kernels.js';
import { UsageError, boolFlag, intListFlag, type FlagValues } from './args.js';
import { fixed, ms } from './format.js';
import { ProgressBar } from './progress.js';
import type { PointTimes } from './benchReport.js';
import { formatTable } from './table.js';

export interface BackwardRow extends PointTimes<number | null> {
  deterministicMs: number;
}

export interface BackwardReport {
  device: string;
  dtype: 'bfloat16' | 'float16';
  timing: TimingOptions;
  peers: { ok: true; torch: string; cudnn: number; device: string } | { ok: false; reason: string } | null;
  rows: BackwardRow[];
  peerErrors: string[];
}

const BUFFER_SEED = 4321;

export function benchBackward(values: FlagValues, dtype: 'bfloat16' | 'float16', causals: boolean[], timing: TimingOptions): BackwardReport {
  const headDims = intListFlag(values, 'headdim', PAPER_HEAD_DIMS);
  const bad = headDims.find((d) => !(FORWARD_HEAD_DIMS as readonly number[]).includes(d));
  if (bad !== undefined) throw new UsageError(`--headdim ${bad} has no CUDA kernel; use ${FORWARD_HEAD_DIMS.join(', ')}`);
  const points = paperGrid(headDims, intListFlag(values, 'seqlen', PAPER_SEQLENS), causals);
  const ctx = CudaContext.get(0);
  const elements = Math.max(...points.map((p) => p.batch * p.seqlen * p.heads * p.headDim));
  process.stderr.write(`flash3 bench --backward: ${points.length} points on ${ctx.name}\n`);

  const times: { ms: number; deterministicMs: number }[] = [];
  const buffers = new BenchBuffers(dtype, elements, BUFFER_SEED);
  const bar = new ProgressBar(points.length, { label: 'flash3 backward' });
  try {
    for (const p of points) {
      times.push(timeCudaBackward(buffers, p, timing));
      bar.tick(`hd${p.headDim}${p.causal ? ' causal' : ''} s=${seqlenLabel(p.seqlen)}`);
    }
  } finally {
    bar.done();
    buffers.dispose();
  }

  let peers: PeersResult | null = null;
  if (boolFlag(values, 'peers')) {
    process.stderr.write('flash3 bench --backward: timing PyTorch SDPA cuDNN and FA2 backwards on the same points (bench/peers.py)...\n');
    try {
      peers = timePeers(points, dtype, timing, { backward: true });
    } catch (e) {
      peers = { ok: false, reason: `peers script gave an unreadable answer: ${(e as Error).message}` };
    }
  }
  const peerErrors = new Set<string>();
  const rows = points.map((p: BenchPoint, i): BackwardRow => {
    const peer = peers?.ok ? peers.times[i] : undefined;
    for (const [key, label] of [['cudnn', 'cuDNN'], ['flash', 'FA2']] as const) {
      const err = peer?.errors[key];
      if (err !== undefined) peerErrors.add(`${label}: ${err}`);
    }
    const cudnnMs = peer?.cudnnMs ?? null;
    const flashMs = peer?.flashMs ?? null;
    return {
      ...p,
      flash3Ms: times[i].ms,
      flash3Tflops: backwardTflops(p, times[i].ms),
      deterministicMs: times[i].deterministicMs,
      cudnnMs,
      cudnnTflops: backwardTflops(p, cudnnMs),
      flashMs,
      flashTflops: backwardTflops(p, flashMs),
    };
  });
  const peersInfo = peers === null ? null : peers.ok ? { ok: true as const, torch: peers.torch, cudnn: peers.cudnn, device: peers.device } : { ok: false as const, reason: peers.reason };
  return { device: ctx.name, dtype, timing, peers: peersInfo, rows, peerErrors: [...peerErrors] };
}

function tf(x: number | null): string {
  return x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(1);
}

function ratio(a: number | null, b: number | null): string {
  return a === null || b === null || !(b > 0) ? 'n/a' : `${fixed(a / b, 2)}x`;
}

export function backwardHeader(r: BackwardReport): string {
  const t = r.timing;
  const parts = [`flash3 bench --backward: ${r.device}`, r.dtype, `warmup ${t.warmup}, ${t.iterations} iterations x ${t.repetitions} repetitions (median)`, 'backward FLOPs = 2.5 x forward'];
  if (r.peers?.ok) parts.push(`peers: torch ${r.peers.torch}, cuDNN ${r.peers.cudnn}`);
  else if (r.peers) parts.push(`peers unavailable: ${r.peers.reason}`);
  return parts.join(', ');
}

export function backwardTable(r: BackwardReport): string {
  const withPeers = r.peers?.ok === true;
  const headers = ['head dim', 'causal', 'seqlen', 'batch', 'heads', 'flash3 ms', 'flash3 TFLOPS', 'deterministic ms', 'det/default'];
  if (withPeers) headers.push('cuDNN TFLOPS', 'FA2 TFLOPS', 'flash3/cuDNN', 'flash3/FA2');
  const rows = r.rows.map((x) => {
    const cells: (string | number)[] = [x.headDim, x.causal ? 'yes' : 'no', x.seqlen, x.batch, x.heads, ms(x.flash3Ms), tf(x.flash3Tflops), ms(x.deterministicMs), `${fixed(x.deterministicMs / x.flash3Ms, 2)}x`];
    if (withPeers) cells.push(tf(x.cudnnTflops), tf(x.flashTflops), ratio(x.flash3Tflops, x.cudnnTflops), ratio(x.flash3Tflops, x.flashTflops));
    return cells;
  });
  const align = headers.map((_, i) => (i === 1 ? 'l' : 'r') as 'l' | 'r');
  return [formatTable(headers, rows, { align }), ...r.peerErrors.map((e) => `n/a ${e}`)].join('\n');
}
