/**
 * The bench's side-by-side timing without a GPU: interleaved rounds over fake contenders, and
 * the peers' process protocol against a stand-in for bench/peers.py (test/support/fakePeers.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { timeInterleaved, type Contender, type ContenderResult } from '../../src/bench/interleave.js';
import { interleavedPeerTimes, PeerRefusal, PeerServer } from '../../src/bench/peers.js';
import { timeGridWithPeers } from '../../src/cli/benchGrid.js';

const FAKE = fileURLToPath(new URL('../support/fakePeers.js', import.meta.url));
const TIMING = { warmup: 2, iterations: 5, repetitions: 4 };
const POINT = { headDim: 128, causal: false, seqlen: 2048, batch: 8, heads: 16 };

async function startFake(mode: string): Promise<PeerServer | { reason: string }> {
  return PeerServer.start([process.execPath, FAKE, mode]);
}

describe('interleaved timing', () => {
  it('runs every contender once per round, rotating the order, and reports median rounds', async () => {
    const order: string[] = [];
    const seen: number[] = [];
    const contender = (name: string, samples: number[]): Contender => ({
      name,
      time: (t) => {
        order.push(name);
        seen.push(t.repetitions);
        return samples[order.filter((n) => n === name).length - 1];
      },
    });
    const results = await timeInterleaved([contender('a', [5, 1, 3, 9]), contender('b', [2, 8, 4, 6]), contender('c', [7, 7, 1, 7])], TIMING);
    assert.deepEqual(order, ['a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b', 'a', 'b', 'c']);
    assert.ok(seen.every((r) => r === 1), 'each round is one timed repetition');
    assert.deepEqual(Object.fromEntries(results), {
      a: { ms: 4, samples: [5, 1, 3, 9] },
      b: { ms: 5, samples: [2, 8, 4, 6] },
      c: { ms: 7, samples: [7, 7, 1, 7] },
    });
  });

  it('lets a peer refuse (it sits out the remaining rounds) but stops on flash3\'s own failure', async () => {
    let refusals = 0;
    const refuses: Contender = {
      name: 'peer',
      mayRefuse: true,
      time: () => {
        refusals++;
        throw new PeerRefusal('not supported');
      },
    };
    const ok: Contender = { name: 'flash3', time: () => 1.5 };
    const results = await timeInterleaved([ok, refuses], TIMING);
    assert.equal(refusals, 1);
    assert.deepEqual(results.get('peer'), { error: 'not supported' });
    assert.deepEqual(results.get('flash3'), { ms: 1.5, samples: [1.5, 1.5, 1.5, 1.5] });
    assert.deepEqual(interleavedPeerTimes(new Map<string, ContenderResult>([['cudnn', { ms: 2, samples: [2] }], ['flash', { error: 'no' }]])), { cudnnMs: 2, flashMs: null, errors: { flash: 'no' } });

    const fails: Contender = {
      name: 'flash3',
      time: () => {
        throw new Error('CUDA_ERROR_OUT_OF_MEMORY');
      },
    };
    await assert.rejects(timeInterleaved([fails, ok], TIMING), /OUT_OF_MEMORY/);
  });
});

describe('peers process', () => {
  it('greets with its versions, times on request, and reports refused shapes', async () => {
    const server = await startFake('ok');
    assert.ok(server instanceof PeerServer, JSON.stringify(server));
    try {
      assert.deepEqual(server.versions, { torch: '9.9.9', cudnn: 91900, device: 'Fake GPU' });
      assert.equal(await server.time('cudnn', POINT, 'bfloat16', TIMING), 2.048 + 0.1 + 5e-6);
      assert.equal(await server.time('flash', POINT, 'bfloat16', TIMING, true), 2.048 + 0.2 + 5e-6);
      await assert.rejects(server.time('flash', { ...POINT, headDim: 256 }, 'bfloat16', TIMING), (e: Error) => e instanceof PeerRefusal && /head dimension/.test(e.message));
      assert.equal(await server.scaledMmTflops(TIMING), 1234);
    } finally {
      await server.close();
    }
  });

  it('gives a reason instead of a server when torch is missing or the interpreter is not there', async () => {
    assert.deepEqual(await startFake('fatal'), { reason: "ModuleNotFoundError: No module named 'torch'" });
    const missing = await PeerServer.start(['/nonexistent/python3-for-flash3-tests']);
    assert.ok(!(missing instanceof PeerServer) && /not runnable/.test(missing.reason), JSON.stringify(missing));
  });

  it('fails every later request with the script\'s last words when it dies', async () => {
    const server = await startFake('die');
    assert.ok(server instanceof PeerServer);
    await new Promise((r) => setTimeout(r, 200));
    await assert.rejects(server.time('cudnn', POINT, 'bfloat16', TIMING), /peers script ended \(Traceback: CUDA error: an illegal memory access/);
    await server.close();
  });
});

describe('grid with peers', () => {
  const points = [POINT, { ...POINT, headDim: 256, heads: 8 }];
  const prepare = () => {
    let disposed = 0;
    return {
      prepared: () => ({ contenders: [{ name: 'flash3', time: () => 1.25 }, { name: 'deterministic', time: () => 1.5 }], dispose: () => disposed++ }),
      disposed: () => disposed,
    };
  };

  it('times flash3 next to the peers at every point, with refusals and the FP8 ceiling', async () => {
    const own = prepare();
    const r = await timeGridWithPeers(points, 'test', TIMING, own.prepared, { dtype: 'bfloat16', backward: false, scaledMm: true, command: [process.execPath, FAKE, 'ok'] });
    assert.equal(own.disposed(), 2);
    assert.deepEqual(r.flash3.map((m) => Object.fromEntries(m)), [{ flash3: 1.25, deterministic: 1.5 }, { flash3: 1.25, deterministic: 1.5 }]);
    assert.ok(r.peers?.ok);
    if (!r.peers?.ok) return;
    assert.equal(r.peers.scaledMmTflops, 1234);
    assert.equal(r.peers.times[0].cudnnMs, 2.048 + 0.1 + 5e-6);
    assert.equal(r.peers.times[1].flashMs, null);
    assert.match(r.peers.times[1].errors.flash ?? '', /head dimension/);
  });

  it('times flash3 alone, with the reason, when the peers cannot start', async () => {
    const own = prepare();
    const r = await timeGridWithPeers(points, 'test', TIMING, own.prepared, { dtype: 'bfloat16', backward: true, command: [process.execPath, FAKE, 'fatal'] });
    assert.equal(r.flash3.length, 2);
    assert.deepEqual(r.peers, { ok: false, reason: "ModuleNotFoundError: No module named 'torch'" });
    assert.equal((await timeGridWithPeers(points, 'test', TIMING, own.prepared, null)).peers, null);
  });
});
