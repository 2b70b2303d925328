import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTable } from '../../src/cli/table.js';

test('aligns numeric columns right and text columns left', () => {
  const out = formatTable(
    ['seqlen', 'flash3 ms', 'speedup', 'note'],
    [
      [512, 0.041, '1.25x', 'warm'],
      ['16k', 12.5, '2.0x', 'causal, long'],
    ],
  );
  assert.equal(
    out,
    [
      '| seqlen | flash3 ms | speedup | note         |',
      '|--------|----------:|--------:|--------------|',
      '| 512    |     0.041 |   1.25x | warm         |',
      '| 16k    |      12.5 |    2.0x | causal, long |',
    ].join('\n'),
  );
});

test('explicit alignment wins, ragged rows are padded, pipes and newlines escaped', () => {
  const out = formatTable(['a', 'b'], [[1], ['x|y', 'two\nlines', 'extra']], { align: ['r', 'l'] });
  const lines = out.split('\n');
  assert.deepEqual(lines, [
    '|    a | b         |       |',
    '|-----:|-----------|-------|',
    '|    1 |           |       |',
    '| x\\|y | two lines | extra |',
  ]);
});

test('all rows have the same width, also with µ and ×', () => {
  const out = formatTable(['t', 'x'], [['3.2µs', '1.5×'], ['12 ms', '10×']]);
  const widths = new Set(out.split('\n').map((l) => [...l].length));
  assert.equal(widths.size, 1);
  assert.match(out, /\|-+:\|-+:\|/);
});

test('empty table still has a header and a rule', () => {
  assert.equal(formatTable(['name'], []), '| name |\n|------|');
});
