/**
 * The shapes `flash3 check` runs: each covers features a kernel can get wrong (odd lengths,
 * seqlenQ != seqlenK both ways, GQA/MQA, causal and windowed masks, every head dim), with
 * lengths drawn from the seed so repeated runs probe different tile remainders.
 */
import type { ProblemDims } from '../cpu/problem.js';
import { Rng } from '../numerics/random.js';

export type Mask = { kind: 'full' } | { kind: 'causal' } | { kind: 'window'; left: number; right: number };

/** A case's sizes (v's head dim equals q's), what it probes, and its mask. */
export interface CheckCase extends Omit<ProblemDims, 'headDimV'> {
  what: string;
  mask: Mask;
}

/** An odd integer in [lo, hi] (lo odd). */
function odd(rng: Rng, lo: number, hi: number): number {
  return lo + 2 * Math.floor(rng.uniform() * (Math.floor((hi - lo) / 2) + 1));
}

function int(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng.uniform() * (hi - lo + 1));
}

/** `quick` keeps the three cases that between them still cover every feature. */
export function checkCases(seed: number, quick: boolean): CheckCase[] {
  const rng = new Rng(seed);
  const all: (CheckCase & { quick: boolean })[] = [
    { quick: true, what: 'seqlenQ < seqlenK, GQA, causal', batch: 1, seqlenQ: odd(rng, 9, 31), seqlenK: odd(rng, 65, 129), headsQ: 4, headsKv: 2, headDim: 128, mask: { kind: 'causal' } },
    { quick: true, what: 'seqlenQ > seqlenK, MQA, causal', batch: 1, seqlenQ: odd(rng, 65, 129), seqlenK: odd(rng, 9, 31), headsQ: 4, headsKv: 1, headDim: 64, mask: { kind: 'causal' } },
    { quick: true, what: 'sliding window, GQA, head dim 256', batch: 1, seqlenQ: odd(rng, 65, 97), seqlenK: odd(rng, 65, 97), headsQ: 4, headsKv: 2, headDim: 256, mask: { kind: 'window', left: int(rng, 8, 32), right: int(rng, 0, 16) } },
    { quick: false, what: 'odd lengths, batch 2', batch: 2, seqlenQ: 0, seqlenK: 0, headsQ: 2, headsKv: 2, headDim: 64, mask: { kind: 'full' } },
    { quick: false, what: 'head dim 256, causal', batch: 1, seqlenQ: 0, seqlenK: 0, headsQ: 2, headsKv: 2, headDim: 256, mask: { kind: 'causal' } },
    { quick: false, what: 'one query (decoding), MQA', batch: 2, seqlenQ: 1, seqlenK: odd(rng, 33, 161), headsQ: 4, headsKv: 1, headDim: 128, mask: { kind: 'full' } },
    { quick: false, what: 'several tiles each way, GQA, causal', batch: 1, seqlenQ: odd(rng, 257, 511), seqlenK: odd(rng, 257, 511), headsQ: 4, headsKv: 2, headDim: 128, mask: { kind: 'causal' } },
    { quick: false, what: 'sliding window, seqlenQ < seqlenK', batch: 1, seqlenQ: odd(rng, 33, 63), seqlenK: odd(rng, 129, 193), headsQ: 2, headsKv: 1, headDim: 128, mask: { kind: 'window', left: int(rng, 16, 48), right: int(rng, 0, 8) } },
  ];
  // Square cases draw one length for both sides.
  for (const c of all) {
    if (c.seqlenQ === 0) c.seqlenQ = c.seqlenK = odd(rng, 33, 95);
  }
  return all.filter((c) => !quick || c.quick).map(({ quick: _, ...c }) => c);
}

export function maskLabel(m: Mask): string {
  return m.kind === 'window' ? `window (${m.left}, ${m.right})` : m.kind;
}

export function shapeLabel(c: CheckCase): string {
  return `b=${c.batch} sq=${c.seqlenQ} sk=${c.seqlenK} hq=${c.headsQ} hkv=${c.headsKv} d=${c.headDim}`;
}

export function maskOptions(m: Mask): { causal?: boolean; windowSize?: [number, number] } {
  if (m.kind === 'causal') return { causal: true };
  if (m.kind === 'window') return { windowSize: [m.left, m.right] };
  return {};
}
