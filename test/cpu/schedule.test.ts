import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { firstKey, lastKey, type CpuProblem } from '../../src/cpu/problem.js';
import { keyBlockCount, planSchedule, type ScheduleShape } from '../../src/cuda/schedule.js';

function shape(over: Partial<ScheduleShape>): ScheduleShape {
  const base = { headsQ: 16, batch: 1, blockM: 128, blockN: 128, seqlenQ: 16384, seqlenK: 16384, windowLeft: -1, windowRight: 0, grid: 132 };
  const s = { ...base, ...over } as ScheduleShape;
  return { ...s, numMBlocks: over.numMBlocks ?? Math.ceil(s.seqlenQ / s.blockM) };
}

/** Key blocks a query block must visit, counted from the CPU backend's own mask. */
function bruteForceBlocks(s: ScheduleShape, mBlock: number): number {
  const p = { seqlenQ: s.seqlenQ, seqlenK: s.seqlenK, windowLeft: s.windowLeft, windowRight: s.windowRight } as CpuProblem;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = mBlock * s.blockM; i < Math.min((mBlock + 1) * s.blockM, s.seqlenQ); i++) {
    const a = firstKey(p, i);
    const b = lastKey(p, i);
    if (a > b) continue;
    lo = Math.min(lo, Math.floor(a / s.blockN));
    hi = Math.max(hi, Math.floor(b / s.blockN));
  }
  return hi >= lo ? hi - lo + 1 : 0;
}

describe('host-planned tile schedule', () => {
  it('visits exactly the key blocks the mask allows', () => {
    const cases: Partial<ScheduleShape>[] = [
      { seqlenQ: 1000, seqlenK: 300, blockN: 64 },
      { seqlenQ: 300, seqlenK: 1000, windowRight: -1 },
      { seqlenQ: 513, seqlenK: 700, windowLeft: 100, windowRight: 37, blockN: 80 },
      { seqlenQ: 4097, seqlenK: 4097 },
      { seqlenQ: 1, seqlenK: 4097, windowRight: -1 },
    ];
    for (const c of cases) {
      const s = shape(c);
      for (let m = 0; m < s.numMBlocks; m++) assert.equal(keyBlockCount(s, m), bruteForceBlocks(s, m), `${JSON.stringify(c)} m=${m}`);
    }
  });

  it('gives every tile to exactly one CTA', () => {
    const s = shape({ seqlenQ: 1000, seqlenK: 1000, batch: 3, headsQ: 5, grid: 7 });
    const plan = planSchedule(s);
    const tiles = s.numMBlocks * s.headsQ * s.batch;
    assert.equal(plan[0], 0);
    assert.equal(plan[s.grid], tiles);
    const seen = new Set(plan.slice(s.grid + 1));
    assert.equal(seen.size, tiles);
    for (let c = 0; c < s.grid; c++) assert.ok(plan[c] <= plan[c + 1]);
  });

  it('balances causal work across the grid (16k, d=128 tiles on 132 SMs)', () => {
    const s = shape({});
    const plan = planSchedule(s);
    const loads = Array.from({ length: s.grid }, (_, c) => {
      let sum = 0;
      for (let i = plan[c]; i < plan[c + 1]; i++) sum += keyBlockCount(s, s.numMBlocks - 1 - (plan[s.grid + 1 + i] % s.numMBlocks)) + 1.5;
      return sum;
    });
    const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
    assert.ok(Math.max(...loads) / mean < 1.02, `max/mean ${Math.max(...loads) / mean}`);
  });
});
