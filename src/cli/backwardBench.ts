/**
 * `flash3 bench --backward`: the backward over the paper's grid on the GPU, in the default and the
 * deterministic mode, next to PyTorch SDPA's cuDNN and FA2 backwards timed in the same run
 * (--peers). TFLOPS count the backward as 2.5 forwards, as FlashAttention's papers do.
 */
import { BenchBuffers, medianLaunchMs, type TimingOptions } from '../bench/cudaTiming.js';
import { backwardTflops, prepareCudaBackward } from '../bench/backwardTiming.js';
import type { BenchPoint } from '../bench/grid.js';
import { CudaContext } from '../cuda/context.js';
import { boolFlag, type FlagValues } from './args.js';
import { fixed, ms } from './format.js';
import { timeGridWithPeers } from './benchGrid.js';
import { buildPointRows, interleavedTiming, peersInfoOf, type PointTimes } from './benchReport.js';
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

export async function benchBackward(values: FlagValues, dtype: 'bfloat16' | 'float16', points: BenchPoint[], timing: TimingOptions): Promise<BackwardReport> {
  const ctx = CudaContext.get(0);
  const elements = Math.max(...points.map((p) => p.batch * p.seqlen * p.heads * p.headDim));
  const withPeers = boolFlag(values, 'peers');
  process.stderr.write(`flash3 bench --backward: ${points.length} points on ${ctx.name}${withPeers ? ', interleaved with PyTorch SDPA cuDNN and FA2 backwards (bench/peers.py)' : ''}\n`);

  const buffers = new BenchBuffers(dtype, elements, BUFFER_SEED);
  let timed: Awaited<ReturnType<typeof timeGridWithPeers>>;
  try {
    timed = await timeGridWithPeers(
      points,
      'flash3 backward',
      timing,
      (p) => {
        const prepared = prepareCudaBackward(buffers, p);
        return {
          contenders: [
            { name: 'flash3', time: (t) => medianLaunchMs(ctx, prepared.launchDefault, t) },
            { name: 'deterministic', time: (t) => medianLaunchMs(ctx, prepared.launchDeterministic, t) },
          ],
          dispose: prepared.dispose,
        };
      },
      withPeers ? { dtype, backward: true } : null,
    );
  } finally {
    buffers.dispose();
  }
  const built = buildPointRows(
    points,
    timed.flash3.map((m) => m.get('flash3')!),
    timed.peers,
    (p, ms) => backwardTflops(p, ms),
  );
  const rows = built.rows.map((r, i): BackwardRow => ({ ...r, deterministicMs: timed.flash3[i].get('deterministic')! }));
  return { device: ctx.name, dtype, timing, peers: peersInfoOf(timed.peers), rows, peerErrors: Object.keys(built.peerErrors) };
}

function tf(x: number | null): string {
  return x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(1);
}

function ratio(a: number | null, b: number | null): string {
  return a === null || b === null || !(b > 0) ? 'n/a' : `${fixed(a / b, 2)}x`;
}

export function backwardHeader(r: BackwardReport): string {
  const t = r.timing;
  const parts = [`flash3 bench --backward: ${r.device}`, r.dtype, interleavedTiming(t), 'backward FLOPs = 2.5 x forward'];
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
