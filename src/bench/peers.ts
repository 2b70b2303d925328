/**
 * Runs bench/peers.py (PyTorch SDPA's cuDNN and FA2 backends) on the same shapes, so flash3
 * is compared with its peers in the same run on the same card. Absent python3 or torch gives
 * a reason, not an error: the bench then prints flash3 alone.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BenchPoint } from './grid.js';
import type { TimingOptions } from './cudaTiming.js';

export const PEERS_SCRIPT = fileURLToPath(new URL('../../../bench/peers.py', import.meta.url));

export interface PeerTimes {
  cudnnMs: number | null;
  flashMs: number | null;
  errors: Record<string, string>;
}

export type PeersResult =
  | { ok: true; torch: string; cudnn: number; device: string; times: PeerTimes[]; scaledMmTflops?: number }
  | { ok: false; reason: string };

export interface PeerOptions {
  /** Also time torch._scaled_mm (e4m3, 8192³), the FP8 ceiling the FP8 bench reports. */
  scaledMm?: boolean;
  /** Time each peer's backward alone (autograd of one retained forward) instead of its forward. */
  backward?: boolean;
}

export function timePeers(points: BenchPoint[], dtype: 'bfloat16' | 'float16', timing: TimingOptions, options: PeerOptions = {}): PeersResult {
  const input = JSON.stringify({ dtype, points, ...timing, scaled_mm: options.scaledMm ?? false, backward: options.backward ?? false });
  const run = spawnSync('python3', [PEERS_SCRIPT], { input, encoding: 'utf8', maxBuffer: 16 << 20 });
  if (run.error) return { ok: false, reason: `python3 not runnable: ${run.error.message}` };
  if (run.status !== 0) {
    const last = (run.stderr || '').trim().split('\n').slice(-1)[0] ?? '';
    return { ok: false, reason: `peers script failed (${last || `exit ${run.status}`})` };
  }
  // A malformed reply is a reason like any other failure, not an exception for the bench to die of.
  try {
    const parsed = JSON.parse(run.stdout) as {
      torch: string;
      cudnn: number;
      device: string;
      results: { cudnn_ms: number | null; flash_ms: number | null; errors: Record<string, string> }[];
      scaled_mm_tflops?: number | null;
    };
    return {
      ok: true,
      torch: parsed.torch,
      cudnn: parsed.cudnn,
      device: parsed.device,
      times: parsed.results.map((r) => ({ cudnnMs: r.cudnn_ms, flashMs: r.flash_ms, errors: r.errors })),
      scaledMmTflops: parsed.scaled_mm_tflops ?? undefined,
    };
  } catch (e) {
    return { ok: false, reason: `peers script gave an unreadable answer: ${(e as Error).message}` };
  }
}
