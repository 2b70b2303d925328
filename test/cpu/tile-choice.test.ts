import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backwardBuild, FORWARD_TILES, forwardTileFor, forwardVariantFor, SEQUENCE_TILES, type ForwardInputs } from '../../src/cuda/kernels.js';
import { keyBlockRows } from '../../src/fp8.js';

const UNMASKED = { windowLeft: -1, windowRight: -1 };
const CAUSAL = { windowLeft: -1, windowRight: 0 };
const WINDOW = { windowLeft: 256, windowRight: 256 };

describe('forward tile choice by problem size and mask', () => {
  it('takes each sequence tile from its first query row, and the default below it', () => {
    for (const t of SEQUENCE_TILES) {
      const inputs: ForwardInputs = t.fp8 ? { fp8: true, out: 'bfloat16' } : 'bfloat16';
      const mask = t.mask === 'unmasked' ? UNMASKED : CAUSAL;
      assert.equal(forwardVariantFor(inputs, t.headDim, t.minSeqlenQ, mask), t.variant, `${t.variant} d=${t.headDim}`);
      assert.notEqual(forwardVariantFor(inputs, t.headDim, t.minSeqlenQ - 1, mask), t.variant);
      assert.deepEqual(forwardTileFor(inputs, t.headDim, t.minSeqlenQ, mask), { blockM: t.blockM, blockN: t.blockN });
    }
  });

  it('gives head dim 64 from 512 rows the three-warpgroup tile unmasked, three CTAs per SM masked, and the long tile from 2048', () => {
    assert.equal(forwardVariantFor('bfloat16', 64, 511, UNMASKED), 'default');
    assert.equal(forwardVariantFor('bfloat16', 64, 511, CAUSAL), 'default');
    assert.equal(forwardVariantFor('bfloat16', 64, 1024, UNMASKED), 'tall');
    assert.equal(forwardVariantFor('bfloat16', 64, 1024, CAUSAL), 'trio');
    assert.equal(forwardVariantFor('float16', 64, 2047, WINDOW), 'trio');
    assert.deepEqual(forwardTileFor('bfloat16', 64, 1024, CAUSAL), { blockM: 64, blockN: 64 });
    assert.equal(forwardVariantFor({ fp8: true, out: 'bfloat16' }, 64, 1024, CAUSAL), 'default');
    assert.equal(forwardVariantFor('bfloat16', 64, 2048, CAUSAL), 'long');
    assert.equal(forwardVariantFor('bfloat16', 64, 2048, UNMASKED), 'long');
    assert.equal(forwardVariantFor('bfloat16', 64, 2048, WINDOW), 'long');
  });

  it('gives head dim 128 the three-warpgroup tile only without a mask', () => {
    for (const s of [2048, 4096, 8192, 16384]) assert.equal(forwardVariantFor('float16', 128, s, UNMASKED), 'tall');
    assert.equal(forwardVariantFor('bfloat16', 128, 1024, UNMASKED), 'default');
    for (const mask of [CAUSAL, WINDOW]) {
      assert.equal(forwardVariantFor('bfloat16', 128, 4096, mask), 'default');
      assert.equal(forwardVariantFor('bfloat16', 128, 8192, mask), 'long');
    }
    assert.deepEqual(forwardTileFor('bfloat16', 128, 4096, CAUSAL), FORWARD_TILES[128]);
    assert.deepEqual(forwardTileFor('bfloat16', 128, 4096, UNMASKED), { blockM: 192, blockN: 128 });
  });

  it('runs soft-capped problems on the default tile of the softcap build, at any length', () => {
    for (const d of [64, 128, 256]) {
      for (const s of [512, 4096, 16384]) {
        for (const mask of [UNMASKED, CAUSAL]) {
          assert.equal(forwardVariantFor('bfloat16', d, s, { ...mask, softcap: 30 }), 'softcap');
          assert.deepEqual(forwardTileFor('float16', d, s, { ...mask, softcap: 30 }), FORWARD_TILES[d as 64 | 128 | 256]);
        }
      }
    }
    assert.equal(forwardVariantFor('bfloat16', 128, 4096, { ...UNMASKED, softcap: 0 }), 'tall');
  });

  it('runs FP8 head dim 64 from 16384 rows on the 160-key tile where K and V are blocked by a multiple of 160', () => {
    const fp8: ForwardInputs = { fp8: true, out: 'bfloat16' };
    assert.equal(forwardVariantFor(fp8, 64, 16384, UNMASKED), 'wide');
    assert.equal(forwardVariantFor(fp8, 64, 32768, { ...CAUSAL, fp8KeyRows: 320 }), 'wide');
    assert.equal(forwardVariantFor(fp8, 64, 16384, { ...UNMASKED, fp8KeyRows: 128 }), 'long');
    assert.deepEqual(forwardTileFor(fp8, 64, 16384, { ...CAUSAL, fp8KeyRows: 256 }), { blockM: 192, blockN: 128 });
    assert.equal(forwardVariantFor(fp8, 64, 16383, UNMASKED), 'long');
    // The key blocking is FP8's: 16-bit inputs ignore it.
    assert.equal(forwardVariantFor('bfloat16', 64, 16384, { ...UNMASKED, fp8KeyRows: 160 }), 'long');
    assert.deepEqual([64, 128, 160].map(keyBlockRows), [128, 128, 160]);
  });

  it('leaves FP8 inputs to their own tiles', () => {
    assert.equal(forwardVariantFor({ fp8: true, out: 'float16' }, 128, 4096, UNMASKED), 'long');
    assert.equal(forwardVariantFor({ fp8: true, out: 'float16' }, 256, 16384, UNMASKED), 'default');
  });
});

describe('backward build choice', () => {
  it('runs the deterministic mode and soft-capping on builds of their own, tuning builds on their twins', () => {
    assert.equal(backwardBuild('default', false, false), 'default');
    assert.equal(backwardBuild('default', false, true), 'det');
    assert.equal(backwardBuild('default', true, false), 'softcap');
    assert.equal(backwardBuild('default', true, true), 'softcap_det');
    assert.equal(backwardBuild('h2', false, true), 'h2_det');
    assert.equal(backwardBuild('h2', true, false), 'h2');
  });
});
