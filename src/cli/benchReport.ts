/**
 * What `flash3 bench` measured, as rows, and how it is rendered: the table, the JSON file and
 * the FA3-paper-style bar charts. Kept apart from the timing code so both backends share it.
 */
import { seqlenLabel, tflops, type BenchPoint } from '../bench/grid.js';
import type { TimingOptions } from '../bench/cudaTiming.js';
import type { PeersResult } from '../bench/peers.js';
import { fixed, ms } from './format.js';
import { panelGridSvg, type BarChartSpec, type BarSeries } from './svg.js';
import { formatTable } from './table.js';

/** One grid point's times: flash3's, and its peers' (null where a peer did not run or refused). */
export interface PointTimes<Tflops = number> {
  headDim: number;
  causal: boolean;
  seqlen: number;
  batch: number;
  heads: number;
  flash3Ms: number;
  flash3Tflops: Tflops;
  cudnnMs: number | null;
  cudnnTflops: number | null;
  flashMs: number | null;
  flashTflops: number | null;
}

export type BenchRow = PointTimes;

export interface BenchReport {
  backend: 'cuda' | 'cpu';
  device: string;
  dtype: string;
  timing: TimingOptions;
  /**
   * null when --peers was not asked for (or cannot apply, on the CPU). `scaledMmTflops`: the FP8
   * bench's ceiling, torch._scaled_mm e4m3 8192³ in the same run.
   */
  peers: { ok: true; torch: string; cudnn: number; device: string; scaledMmTflops?: number } | { ok: false; reason: string } | null;
  rows: BenchRow[];
  /** Why a peer has no number for some points: "cuDNN: <error>" -> points. */
  peerErrors: Record<string, string[]>;
}

/** The report's view of a peers run: its versions, or why it did not run; null when not asked for. */
export function peersInfoOf(peers: PeersResult | null): BenchReport['peers'] {
  if (peers === null) return null;
  if (!peers.ok) return { ok: false, reason: peers.reason };
  const info = { ok: true as const, torch: peers.torch, cudnn: peers.cudnn, device: peers.device };
  return peers.scaledMmTflops ? { ...info, scaledMmTflops: peers.scaledMmTflops } : info;
}

/**
 * Rows of flash3's and the peers' times at each point, TFLOPS by `rate` (forward or backward
 * FLOPs), and why a peer has no number for some points ("cuDNN: <error>" -> points).
 */
export function buildPointRows<T extends number | null>(
  points: BenchPoint[],
  flash3Ms: number[],
  peers: PeersResult | null,
  rate: (p: BenchPoint, ms: number) => T,
): { rows: PointTimes<T>[]; peerErrors: Record<string, string[]> } {
  const rateOrNull = (p: BenchPoint, t: number | null) => (t === null ? null : rate(p, t));
  const peerErrors: Record<string, string[]> = {};
  const rows = points.map((p, i) => {
    const peer = peers?.ok ? peers.times[i] : undefined;
    const cudnnMs = peer?.cudnnMs ?? null;
    const flashMs = peer?.flashMs ?? null;
    for (const [key, label] of [['cudnn', 'cuDNN'], ['flash', 'FA2']] as const) {
      const err = peer?.errors[key];
      if (err !== undefined) (peerErrors[`${label}: ${err}`] ??= []).push(pointLabel(p));
    }
    return {
      headDim: p.headDim,
      causal: p.causal,
      seqlen: p.seqlen,
      batch: p.batch,
      heads: p.heads,
      flash3Ms: flash3Ms[i],
      flash3Tflops: rate(p, flash3Ms[i]),
      cudnnMs,
      cudnnTflops: rateOrNull(p, cudnnMs),
      flashMs,
      flashTflops: rateOrNull(p, flashMs),
    };
  });
  return { rows, peerErrors };
}

/** The forward's rows: TFLOPS from forward FLOPs. */
export function buildRows(points: BenchPoint[], flash3Ms: number[], peers: PeersResult | null): { rows: BenchRow[]; peerErrors: Record<string, string[]> } {
  return buildPointRows(points, flash3Ms, peers, tflops);
}

export function pointLabel(p: { headDim: number; causal: boolean; seqlen: number }): string {
  return `hd${p.headDim}${p.causal ? ' causal' : ''} s=${seqlenLabel(p.seqlen)}`;
}

/** Small CPU numbers keep 3 significant digits; GPU TFLOPS read best with one decimal. */
function tf(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return 'n/a';
  return x >= 10 ? x.toFixed(1) : String(Number(x.toPrecision(3)));
}

function ratio(a: number, b: number | null): string {
  return b === null || !(b > 0) ? 'n/a' : `${fixed(a / b, 2)}x`;
}

/** How the CUDA benches time (src/bench/interleave.ts), for their header lines. */
export function interleavedTiming(t: TimingOptions): string {
  return `${t.repetitions} interleaved rounds of ${t.warmup} warm-up + ${t.iterations} timed calls per contender (median round)`;
}

export function headerLine(r: BenchReport): string {
  const t = r.timing;
  const what = r.backend === 'cpu' ? 'CPU reference backend (float64 on the host; not the GPU kernels)' : r.device;
  const parts = [`flash3 bench: ${what}`, r.dtype, r.backend === 'cpu' ? `warmup ${t.warmup}, ${t.iterations} iterations x ${t.repetitions} repetitions (median)` : interleavedTiming(t)];
  if (r.peers?.ok) parts.push(`peers: torch ${r.peers.torch}, cuDNN ${r.peers.cudnn}`);
  return parts.join(', ');
}

export function reportTable(r: BenchReport): string {
  const withPeers = r.peers?.ok === true;
  const ceiling = r.peers?.ok ? (r.peers.scaledMmTflops ?? null) : null;
  const headers = ['head dim', 'causal', 'seqlen', 'batch', 'heads', 'flash3 ms', 'flash3 TFLOPS'];
  if (withPeers) headers.push('cuDNN TFLOPS', 'FA2 TFLOPS', 'flash3/cuDNN', 'flash3/FA2');
  if (ceiling !== null) headers.push('flash3/_scaled_mm');
  const rows = r.rows.map((x) => {
    const cells: (string | number)[] = [x.headDim, x.causal ? 'yes' : 'no', x.seqlen, x.batch, x.heads, ms(x.flash3Ms), tf(x.flash3Tflops)];
    if (withPeers) cells.push(tf(x.cudnnTflops), tf(x.flashTflops), ratio(x.flash3Tflops, x.cudnnTflops), ratio(x.flash3Tflops, x.flashTflops));
    if (ceiling !== null) cells.push(ratio(x.flash3Tflops, ceiling));
    return cells;
  });
  // Explicit, because a column holding "n/a" would otherwise turn left-aligned.
  const align = headers.map((_, i) => (i === 1 ? 'l' : 'r') as 'l' | 'r');
  const lines = [formatTable(headers, rows, { align })];
  for (const [err, where] of Object.entries(r.peerErrors)) lines.push(`n/a ${err} (${where.join(', ')})`);
  return lines.join('\n');
}

export function reportJson(r: BenchReport): string {
  const { backend, device, dtype, timing, peers, rows, peerErrors } = r;
  return JSON.stringify({ backend, device, dtype, timing, peers, peerErrors, rows }, null, 2) + '\n';
}

/** One panel per (head dim, causal), groups = sequence lengths, as in the FA3 paper's figures. */
export function reportSvg(r: BenchReport): string {
  const panels: BarChartSpec[] = [];
  const keys = [...new Set(r.rows.map((x) => `${x.headDim}/${x.causal}`))];
  for (const key of keys) {
    const rows = r.rows.filter((x) => `${x.headDim}/${x.causal}` === key);
    const { headDim, causal } = rows[0];
    const series: BarSeries[] = [{ name: r.backend === 'cpu' ? 'flash3 (CPU reference)' : 'flash3', values: rows.map((x) => x.flash3Tflops) }];
    if (r.peers?.ok) {
      series.push({ name: 'cuDNN', values: rows.map((x) => x.cudnnTflops) });
      series.push({ name: 'FA2', values: rows.map((x) => x.flashTflops) });
    }
    panels.push({
      title: `head dim ${headDim}, ${causal ? 'causal' : 'non-causal'}`,
      groups: rows.map((x) => seqlenLabel(x.seqlen)),
      series,
      yLabel: 'TFLOPS',
      xLabel: 'sequence length',
    });
  }
  const columns = new Set(r.rows.map((x) => x.causal)).size;
  const title = `Attention forward, ${r.backend === 'cpu' ? 'CPU reference' : r.device}, ${r.dtype}`;
  return panelGridSvg(panels, columns, { title });
}
