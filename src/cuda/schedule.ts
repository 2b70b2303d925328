/**
 * The forward kernel's persistent schedule, planned on the host: which tiles each CTA computes.
 *
 * Tiles are taken in the kernel's order (kernels/fwd/kernel.cuh decode_tile: heads outermost for
 * L2 reuse of K/V, heaviest query blocks of a head first) and each goes to the CTA that would be
 * free first, costed by the key blocks it visits: a dynamic scheduler's greedy choice, made ahead
 * of time, so no counter or hand-over between the kernel's roles is needed.
 */

export interface ScheduleShape {
  numMBlocks: number;
  headsQ: number;
  batch: number;
  blockM: number;
  blockN: number;
  seqlenQ: number;
  seqlenK: number;
  /** -1 unbounded. */
  windowLeft: number;
  windowRight: number;
  /** CTAs in the persistent grid. */
  grid: number;
}

/** Loading Q and writing O cost about as much as this many key blocks (a model, not a measurement). */
const TILE_OVERHEAD_BLOCKS = 1.5;

function floorDiv(a: number, b: number): number {
  return Math.floor(a / b);
}

/** Key blocks query block `mBlock` visits: key_block_range in kernels/fwd/mask.cuh. */
export function keyBlockCount(s: ScheduleShape, mBlock: number): number {
  const rowFirst = mBlock * s.blockM;
  const rowLast = Math.min(rowFirst + s.blockM, s.seqlenQ) - 1;
  const shift = s.seqlenK - s.seqlenQ;
  let nMax = Math.ceil(s.seqlenK / s.blockN);
  if (s.windowRight >= 0) nMax = Math.min(nMax, Math.max(0, floorDiv(rowLast + shift + s.windowRight, s.blockN) + 1));
  let nMin = 0;
  if (s.windowLeft >= 0) nMin = Math.max(0, floorDiv(rowFirst + shift - s.windowLeft, s.blockN));
  return Math.max(0, nMax - nMin);
}

/** A binary min-heap of (finish time, cta), ties to the lower CTA so plans are deterministic. */
class CtaHeap {
  private readonly time: Float64Array;
  private readonly cta: Int32Array;
  constructor(n: number) {
    this.time = new Float64Array(n);
    this.cta = Int32Array.from({ length: n }, (_, i) => i);
  }
  private less(i: number, j: number): boolean {
    return this.time[i] < this.time[j] || (this.time[i] === this.time[j] && this.cta[i] < this.cta[j]);
  }
  private swap(i: number, j: number): void {
    [this.time[i], this.time[j]] = [this.time[j], this.time[i]];
    [this.cta[i], this.cta[j]] = [this.cta[j], this.cta[i]];
  }
  /** Gives the earliest-free CTA `cost` more work and returns it. */
  assign(cost: number): number {
    const chosen = this.cta[0];
    this.time[0] += cost;
    const n = this.time.length;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(l, m)) m = l;
      if (r < n && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return chosen;
  }
}

/** gridDim + 1 offsets, then every tile index once, grouped by CTA in the order each CTA runs them. */
export function planSchedule(s: ScheduleShape): Int32Array {
  const numTiles = s.numMBlocks * s.headsQ * s.batch;
  const costOfM = Array.from({ length: s.numMBlocks }, (_, m) => keyBlockCount(s, m) + TILE_OVERHEAD_BLOCKS);
  const owner = new Int32Array(numTiles);
  const count = new Int32Array(s.grid);
  const heap = new CtaHeap(s.grid);
  for (let t = 0; t < numTiles; t++) {
    const mBlock = s.numMBlocks - 1 - (t % s.numMBlocks);
    owner[t] = heap.assign(costOfM[mBlock]);
    count[owner[t]]++;
  }
  const out = new Int32Array(s.grid + 1 + numTiles);
  for (let c = 0; c < s.grid; c++) out[c + 1] = out[c] + count[c];
  const next = out.slice(0, s.grid);
  for (let t = 0; t < numTiles; t++) out[s.grid + 1 + next[owner[t]]++] = t;
  return out;
}
