import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OptionError } from '../../src/errors.js';
import { ProgressBar, formatDuration, type ProgressStream } from '../../src/cli/progress.js';

function fakeStream(isTTY: boolean, columns?: number): ProgressStream & { out: string } {
  return {
    out: '',
    isTTY,
    columns,
    write(s: string) {
      this.out += s;
      return true;
    },
  };
}

test('formatDuration', () => {
  assert.equal(formatDuration(950), '0.9s');
  assert.equal(formatDuration(12_400), '12s');
  assert.equal(formatDuration(75_000), '1m15s');
  assert.equal(formatDuration(4_000_000), '1h06m');
  assert.equal(formatDuration(NaN), '--');
});

test('TTY: redraws one line with \\r and shows count, percent, elapsed, eta and detail', () => {
  let t = 0;
  const s = fakeStream(true);
  const bar = new ProgressBar(4, { label: 'bench', stream: s, now: () => t });
  t = 1000;
  bar.tick('hdim 64');
  assert.equal(s.out, '\rbench  [######..................]  1/4   25%  elapsed 1.0s  eta 3.0s  hdim 64');
  t = 1010; // within the redraw throttle: nothing drawn
  bar.tick();
  assert.equal(s.out.split('\r').length, 2);
  t = 2000;
  bar.tick('x');
  t = 4000;
  bar.tick('hdim 256');
  bar.done();
  const frames = s.out.split('\r').slice(1);
  assert.equal(frames.length, 4);
  assert.match(frames[2], /^bench  \[#{24}\]  4\/4  100%  elapsed 4\.0s  hdim 256 *$/);
  assert.ok(s.out.endsWith('\n'));
  assert.ok(!s.out.slice(0, -1).includes('\n'));
});

test('TTY: a shorter redraw blanks the rest of the previous one and lines fit the terminal', () => {
  let t = 0;
  const s = fakeStream(true, 40);
  const bar = new ProgressBar(2, { stream: s, now: () => t });
  t = 100;
  bar.tick('a long detail that will not fit');
  t = 200;
  bar.tick('b');
  const frames = s.out.split('\r').slice(1);
  assert.ok(frames.every((f) => f.length <= 39));
  assert.equal(frames[1].length, frames[0].length);
});

test('non-TTY: one line per tenth, no carriage returns', () => {
  let t = 0;
  const s = fakeStream(false);
  const bar = new ProgressBar(100, { label: 'grid', stream: s, now: () => t });
  for (let i = 0; i < 100; i++) {
    t += 50;
    bar.tick(`case ${i}`);
  }
  bar.done();
  const lines = s.out.trimEnd().split('\n');
  assert.equal(lines.length, 10);
  assert.ok(!s.out.includes('\r'));
  assert.equal(lines[0], 'grid  10/100   10%  elapsed 0.5s  eta 4.5s  case 9');
  assert.equal(lines[9], 'grid  100/100  100%  elapsed 5.0s  case 99');
});

test('non-TTY: done() early reports where it stopped; done() twice is harmless', () => {
  const s = fakeStream(false);
  const bar = new ProgressBar(50, { stream: s, now: () => 0 });
  bar.tick();
  bar.done();
  bar.done();
  bar.tick();
  assert.equal(s.out, '1/50    2%  elapsed 0.0s  eta 0.0s\n');
});

test('zero total completes immediately', () => {
  const s = fakeStream(false);
  new ProgressBar(0, { stream: s, now: () => 0 }).done();
  assert.equal(s.out, '0/0  100%  elapsed 0.0s\n');
  assert.throws(() => new ProgressBar(-1), OptionError);
});
