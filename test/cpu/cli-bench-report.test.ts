/**
 * `flash3 bench`'s report with PyTorch peers, which only a GPU machine produces for real: fed
 * here with made-up timings, including a peer that rejects some shapes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { paperGrid, tflops } from '../../src/bench/grid.js';
import type { PeersResult, PeerTimes } from '../../src/bench/peers.js';
import { buildRows, headerLine, reportJson, reportSvg, reportTable, type BenchReport } from '../../src/cli/benchReport.js';

const points = paperGrid([64, 256], [512, 1024], [false, true]);
const flash3Ms = points.map((_, i) => 1 + i);
const peers: PeersResult = {
  ok: true,
  torch: '2.5.1',
  cudnn: 90100,
  device: 'NVIDIA H100 80GB HBM3',
  times: points.map((p, i): PeerTimes =>
    p.headDim === 256 && p.causal
      ? { cudnnMs: null, flashMs: 2 + i, errors: { cudnn: 'No available kernel' } }
      : { cudnnMs: 2 + i, flashMs: 4 + i, errors: {} },
  ),
};

function report(): BenchReport {
  const { rows, peerErrors } = buildRows(points, flash3Ms, peers);
  return {
    backend: 'cuda',
    device: 'NVIDIA H100 80GB HBM3',
    dtype: 'bfloat16',
    timing: { warmup: 3, iterations: 10, repetitions: 5 },
    peers: { ok: true, torch: '2.5.1', cudnn: 90100, device: 'NVIDIA H100 80GB HBM3' },
    rows,
    peerErrors,
  };
}

test('rows carry TFLOPS for flash3 and each peer, null where a peer has no number', () => {
  const r = report();
  assert.equal(r.rows.length, points.length);
  r.rows.forEach((row, i) => {
    assert.equal(row.flash3Tflops, tflops(points[i], flash3Ms[i]));
    if (points[i].headDim === 256 && points[i].causal) assert.equal(row.cudnnTflops, null);
    else assert.equal(row.cudnnTflops, tflops(points[i], 2 + i));
  });
  assert.deepEqual(Object.keys(r.peerErrors), ['cuDNN: No available kernel']);
  assert.equal(r.peerErrors['cuDNN: No available kernel'].length, 2);
});

test('the table shows peer columns, n/a for missing numbers, and the peer error below', () => {
  const text = reportTable(report());
  assert.match(text, /\| flash3 TFLOPS \| cuDNN TFLOPS \| FA2 TFLOPS \| flash3\/cuDNN \| flash3\/FA2 \|/);
  assert.match(text, /\| +n\/a \| +4\.29 \| +n\/a \| +1\.14x \|/);
  assert.match(text, /\n\| +64 \| no +\| +512 \| +32 \| +32 \| .*\| +2\.00x \| +4\.00x \|/);
  assert.match(text.split('\n').at(-1)!, /^n\/a cuDNN: No available kernel \(hd256 causal s=512, hd256 causal s=1k\)$/);
  assert.match(headerLine(report()), /NVIDIA H100 80GB HBM3, bfloat16, 5 interleaved rounds of 3 warm-up \+ 10 timed calls per contender \(median round\), peers: torch 2\.5\.1, cuDNN 90100/);
});

test("the FP8 table shows each point's share of torch._scaled_mm measured in the same run", () => {
  const r = report();
  const fp8: BenchReport = { ...r, dtype: 'float8_e4m3', peers: { ok: true, torch: '2.5.1', cudnn: 90100, device: 'NVIDIA H100 80GB HBM3', scaledMmTflops: 1000 } };
  const text = reportTable(fp8);
  assert.match(text, /\| flash3\/cuDNN \| flash3\/FA2 \| flash3\/_scaled_mm \|/);
  const first = (r.rows[0].flash3Tflops / 1000).toFixed(2);
  assert.match(text, new RegExp(`\\n\\| +64 \\| no +\\| +512 \\| .*\\| +${first.replace('.', '\\.')}x \\|`));
  assert.equal(JSON.parse(reportJson(fp8)).peers.scaledMmTflops, 1000);
  assert.doesNotMatch(reportTable(r), /_scaled_mm/, 'no ceiling column without the ceiling');
});

test('JSON and SVG hold every point and series', () => {
  const json = JSON.parse(reportJson(report()));
  assert.equal(json.rows.length, points.length);
  assert.equal(json.peers.torch, '2.5.1');
  const svg = reportSvg(report());
  assert.equal(svg.match(/class="panel"/g)?.length, 4);
  // 8 points x 3 series, less the 2 missing cuDNN bars.
  assert.equal(svg.match(/class="bar"/g)?.length, 8 * 3 - 2);
  assert.match(svg, /head dim 256, causal/);
});
