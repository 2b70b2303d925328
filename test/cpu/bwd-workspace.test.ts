import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bwdWorkspaceLayout, type BwdWorkspaceNeeds } from '../../src/cuda/bwdWorkspace.js';

/** Every region of the layout as [start, end) byte ranges, named. */
function regions(n: BwdWorkspaceNeeds) {
  const l = bwdWorkspaceLayout(n);
  const r: [string, number, number][] = [
    ['lseLog2', l.lseLog2, l.lseLog2 + n.rows * 4],
    ['dpsum', l.dpsum, l.dpsum + n.rows * 4],
    ['dqAccum', l.dqAccum, l.dqAccum + n.rows * n.headDim * 4],
  ];
  if (l.tileCounters > 0) r.push(['tile counters', l.counters, l.counters + l.tileCounters * 4]);
  if (l.workCounter !== undefined) r.push(['work counter', l.workCounter, l.workCounter + 4]);
  if (l.dqQueue !== undefined) r.push(['queue', l.dqQueue, l.dqQueue + (2 + l.dqTiles) * 4]);
  return { l, r };
}

describe('backward workspace layout', () => {
  const shapes = [
    { rows: 64, headDim: 64 },
    { rows: 64, headDim: 256 },
    { rows: 16 * 16384, headDim: 128 },
    { rows: 32 * 8 * 576, headDim: 256 },
  ];
  const modes = [
    { deterministic: false, persistent: true, convertsDq: false },
    { deterministic: false, persistent: true, convertsDq: true },
    { deterministic: true, persistent: false, convertsDq: false },
    { deterministic: false, persistent: false, convertsDq: false },
  ];
  it('keeps every region apart, inside the allocation, the accumulator 16-byte aligned', () => {
    for (const s of shapes) {
      for (const m of modes) {
        const { l, r } = regions({ ...s, ...m });
        const sorted = [...r].sort((a, b) => a[1] - b[1]);
        for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i][1] >= sorted[i - 1][2], `${sorted[i - 1][0]} overlaps ${sorted[i][0]}`);
        assert.equal(Math.max(...r.map((x) => x[2])), l.bytes);
        assert.equal(l.dqAccum % 16, 0);
        assert.equal(l.counters + l.counterCount * 4, l.bytes, 'the counters end the allocation');
      }
    }
  });

  it('has a counter per dQ tile only where a kernel counts tiles, and the pre-pass rows cover every counter', () => {
    for (const s of shapes) {
      for (const m of modes) {
        const { l } = regions({ ...s, ...m });
        assert.equal(l.dqTiles, (s.rows * s.headDim) / 4096);
        assert.equal(l.tileCounters, m.deterministic || m.convertsDq ? l.dqTiles : 0);
        assert.equal(l.workCounter !== undefined, m.persistent);
        assert.equal(l.dqQueue !== undefined, m.convertsDq);
        assert.ok(l.counterCount <= s.rows);
      }
    }
  });

  it('refuses rows or head dims that are not whole 64 x 64 tiles', () => {
    assert.throws(() => bwdWorkspaceLayout({ rows: 100, headDim: 64, ...modes[0] }), /multiples of 64/);
    assert.throws(() => bwdWorkspaceLayout({ rows: 64, headDim: 96, ...modes[0] }), /multiples of 64/);
  });
});
