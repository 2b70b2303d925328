/**
 * What `flash3 bench` and `flash3 bench --backward` share: the CUDA grid from the flags, the
 * per-point loop behind a progress bar, and the peers timed in interleaved rounds with flash3.
 */
import { interleavedPeerTimes, PEER_BACKENDS, PeerServer, type PeersResult, type PeerTimes } from '../bench/peers.js';
import { paperGrid, PAPER_HEAD_DIMS, PAPER_SEQLENS, type BenchPoint } from '../bench/grid.js';
import { timeInterleaved, type Contender } from '../bench/interleave.js';
import type { TimingOptions } from '../bench/cudaTiming.js';
import { FORWARD_HEAD_DIMS } from '../cuda/kernels.js';
import { UsageError, intListFlag, type FlagValues } from './args.js';
import { pointLabel } from './benchReport.js';
import { ProgressBar } from './progress.js';

/** The paper's grid at --headdim/--seqlen, refusing head dims that have no CUDA kernel. */
export function cudaGridPoints(values: FlagValues, causals: boolean[]): BenchPoint[] {
  const headDims = intListFlag(values, 'headdim', PAPER_HEAD_DIMS);
  const bad = headDims.find((d) => !(FORWARD_HEAD_DIMS as readonly number[]).includes(d));
  if (bad !== undefined) throw new UsageError(`--headdim ${bad} has no CUDA kernel; use ${FORWARD_HEAD_DIMS.join(', ')}`);
  return paperGrid(headDims, intListFlag(values, 'seqlen', PAPER_SEQLENS), causals);
}

/** `time(p, i)` at every point in order, ticking a progress bar labelled `label`. */
export async function timeEachPoint<T>(points: BenchPoint[], label: string, time: (p: BenchPoint, i: number) => T | Promise<T>): Promise<T[]> {
  const bar = new ProgressBar(points.length, { label });
  const times: T[] = [];
  try {
    for (const [i, p] of points.entries()) {
      times.push(await time(p, i));
      bar.tick(pointLabel(p));
    }
  } finally {
    bar.done();
  }
  return times;
}

/** flash3's contenders at one point (their names are the keys of the result) and what frees them. */
export interface PreparedContenders {
  contenders: Contender[];
  dispose(): void;
}

export interface PeerRequest {
  dtype: 'bfloat16' | 'float16';
  backward: boolean;
  /** After the grid, also time torch._scaled_mm (e4m3, 8192³), the FP8 bench's ceiling. */
  scaledMm?: boolean;
  /** The peers script's command line (default: python3 bench/peers.py). */
  command?: readonly string[];
}

/**
 * At each point, flash3's contenders and (with `peers`) PyTorch's cuDNN and FA2, timed in
 * interleaved rounds (src/bench/interleave.ts). Returns flash3's milliseconds per contender name
 * at each point, and the peers' result: their times, or why they could not run.
 */
export async function timeGridWithPeers(
  points: BenchPoint[],
  label: string,
  timing: TimingOptions,
  prepare: (p: BenchPoint) => PreparedContenders,
  peers: PeerRequest | null,
): Promise<{ flash3: Map<string, number>[]; peers: PeersResult | null }> {
  const started = peers ? await PeerServer.start(peers.command) : null;
  const server = started instanceof PeerServer ? started : null;
  const peerTimes: PeerTimes[] = [];
  try {
    const flash3 = await timeEachPoint(points, server ? `${label} + cuDNN, FA2` : label, async (p) => {
      const prepared = prepare(p);
      try {
        const own = prepared.contenders;
        const results = await timeInterleaved([...own, ...(server && peers ? peerContenders(server, p, peers) : [])], timing);
        peerTimes.push(interleavedPeerTimes(results));
        return new Map(own.map((c) => [c.name, (results.get(c.name) as { ms: number }).ms]));
      } finally {
        prepared.dispose();
      }
    });
    if (started === null) return { flash3, peers: null };
    if (!(started instanceof PeerServer)) return { flash3, peers: { ok: false, reason: started.reason } };
    const scaledMmTflops = peers?.scaledMm ? ((await started.scaledMmTflops(timing)) ?? undefined) : undefined;
    return { flash3, peers: { ok: true, ...started.versions, times: peerTimes, scaledMmTflops } };
  } finally {
    await server?.close();
  }
}

function peerContenders(server: PeerServer, p: BenchPoint, request: PeerRequest): Contender[] {
  return PEER_BACKENDS.map((backend) => ({
    name: backend,
    mayRefuse: true,
    time: (t: TimingOptions) => server.time(backend, p, request.dtype, t, request.backward),
  }));
}
