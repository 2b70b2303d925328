/**
 * What `flash3 bench` and `flash3 bench --backward` share: the CUDA grid from the flags, and the
 * per-point timing loop behind a progress bar.
 */
import { paperGrid, PAPER_HEAD_DIMS, PAPER_SEQLENS, type BenchPoint } from '../bench/grid.js';
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
export function timeEachPoint<T>(points: BenchPoint[], label: string, time: (p: BenchPoint, i: number) => T): T[] {
  const bar = new ProgressBar(points.length, { label });
  const times: T[] = [];
  try {
    points.forEach((p, i) => {
      times.push(time(p, i));
      bar.tick(pointLabel(p));
    });
  } finally {
    bar.done();
  }
  return times;
}
