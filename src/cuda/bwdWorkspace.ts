/**
 * Where the backward plan's one workspace allocation keeps what its kernels share (byte offsets):
 * lse in log2 units and D per padded query row, the float32 dQ accumulator in 64 x 64 tiles
 * (kernels/bwd/prepost.cuh), then the int32 counters the pre-pass sets, one per row:
 * - a counter per dQ tile: deterministic mode's semaphores, or, where the main kernel converts dQ,
 *   the key blocks still to add to the tile;
 * - a persistent main kernel's work counter;
 * - where the main kernel converts dQ, its queue of finished tiles: tail, head and a slot per tile.
 */
export interface BwdWorkspaceNeeds {
  /** Batch x query heads x padded query rows (a multiple of 64). */
  rows: number;
  headDim: number;
  deterministic: boolean;
  persistent: boolean;
  convertsDq: boolean;
}

export interface BwdWorkspaceLayout {
  bytes: number;
  lseLog2: number;
  dpsum: number;
  dqAccum: number;
  /** The first counter; `counterCount` of them follow, set a row each by the pre-pass. */
  counters: number;
  counterCount: number;
  /** 64 x 64 tiles of the accumulator, and how many of the counters are per tile (0 or all). */
  dqTiles: number;
  tileCounters: number;
  /** Offsets, or undefined where the main kernel has none. */
  workCounter: number | undefined;
  dqQueue: number | undefined;
}

export function bwdWorkspaceLayout(n: BwdWorkspaceNeeds): BwdWorkspaceLayout {
  if (n.rows % 64 !== 0 || n.headDim % 64 !== 0) throw new Error(`internal: workspace rows ${n.rows} and head dim ${n.headDim} must be multiples of 64`);
  const dqTiles = (n.rows * n.headDim) / 4096;
  const tileCounters = n.deterministic || n.convertsDq ? dqTiles : 0;
  const queueCounters = n.convertsDq ? 2 + dqTiles : 0;
  const counterCount = tileCounters + (n.persistent ? 1 : 0) + queueCounters;
  // At most rows / 8 + 3 (head dim 256), so the rows always cover them.
  if (counterCount > n.rows) throw new Error(`internal: ${counterCount} counters for ${n.rows} pre-pass rows`);
  const rowBytes = n.rows * 4;
  const lseLog2 = 0;
  const dpsum = rowBytes;
  const dqAccum = 2 * rowBytes;
  const counters = dqAccum + n.rows * n.headDim * 4;
  return {
    bytes: counters + counterCount * 4,
    lseLog2,
    dpsum,
    dqAccum,
    counters,
    counterCount,
    dqTiles,
    tileCounters,
    workCounter: n.persistent ? counters + tileCounters * 4 : undefined,
    dqQueue: n.convertsDq ? counters + (counterCount - queueCounters) * 4 : undefined,
  };
}
