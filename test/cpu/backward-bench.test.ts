/** `flash3 bench --backward`: its report table, its FLOP count, and its refusal without CUDA. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { backwardFlops } from '../../src/bench/backwardTiming.js';
import { forwardFlops } from '../../src/bench/grid.js';
import { backwardHeader, backwardTable, type BackwardReport } from '../../src/cli/backwardBench.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

describe('flash3 bench --backward', () => {
  it('counts the backward as 2.5 forwards', () => {
    const p = { headDim: 128, causal: true, seqlen: 4096, batch: 4, heads: 16 };
    assert.equal(backwardFlops(p), 2.5 * forwardFlops(p));
  });

  it('tables flash3 next to the peers, with ratios and the deterministic mode', () => {
    const report: BackwardReport = {
      device: 'NVIDIA H100',
      dtype: 'bfloat16',
      timing: { warmup: 1, iterations: 2, repetitions: 3 },
      peers: { ok: true, torch: '2.11.0', cudnn: 91900, device: 'NVIDIA H100' },
      rows: [
        { headDim: 128, causal: false, seqlen: 16384, batch: 1, heads: 16, flash3Ms: 10, flash3Tflops: 500, deterministicMs: 11, cudnnMs: 12.5, cudnnTflops: 400, flashMs: 20, flashTflops: 250 },
        { headDim: 64, causal: true, seqlen: 512, batch: 32, heads: 32, flash3Ms: 1, flash3Tflops: 300, deterministicMs: 1.5, cudnnMs: null, cudnnTflops: null, flashMs: 2, flashTflops: 150 },
      ],
      peerErrors: ['cuDNN: not supported'],
    };
    const lines = backwardTable(report).split('\n');
    assert.match(lines[0], /\| head dim \|.*\| deterministic ms \| det\/default \| cuDNN TFLOPS \| FA2 TFLOPS \| flash3\/cuDNN \| flash3\/FA2 \|/);
    assert.match(lines[2], /\| +128 \| no +\|.*\| +500\.0 \|.*\| +1\.10x \| +400\.0 \| +250\.0 \| +1\.25x \| +2\.00x \|/);
    assert.match(lines[3], /\| +n\/a \| +150\.0 \| +n\/a \| +2\.00x \|$/);
    assert.equal(lines.at(-1), 'n/a cuDNN: not supported');
    assert.match(backwardHeader(report), /NVIDIA H100, bfloat16, .*2\.5 x forward, peers: torch 2\.11\.0, cuDNN 91900/);
  });

  it('refuses the CPU backend: it times the CUDA kernels only', () => {
    const r = spawnSync(process.execPath, [MAIN, 'bench', '--backward', '--backend', 'cpu'], { encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--backward times the CUDA kernels/);
  });
});
