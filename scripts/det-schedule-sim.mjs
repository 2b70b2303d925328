// Round-based model of the backward's deterministic dQ schedule, for choosing contribution orders
// without a GPU. Each CTA (one key block of one head) takes a query-block step when its dQ tile's
// semaphore has reached its rank, and the step then lasts `--step-ticks` rounds plus a random
// 0..`--jitter` more (seeded, the same in both schedules); CTAs are dispatched in linear order onto
// `--sms` slots as they free up. It reports the rounds against the same schedule with no
// semaphores, and fails on a deadlock. The ranges and ranks mirror kernels/bwd (key_block_range,
// query_block_range, the rotation, dq_rank). Equal steps (the default, 1 tick, no jitter) show
// ordering effects only; jitter shows what uneven steps cost a chain of turns. Fence and
// reduction latency are not modelled.
// Usage: node scripts/det-schedule-sim.mjs [--seqlen 16384] [--heads 16] [--mask causal|full]
//        [--block-n 128] [--sms 132] [--order ascending|arrival] [--release immediate|deferred]
//        [--step-ticks 1] [--jitter 0] [--publish-ticks 1]
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    seqlen: { type: 'string', default: '16384' },
    heads: { type: 'string', default: '16' },
    mask: { type: 'string', default: 'causal' },
    'block-n': { type: 'string', default: '128' },
    sms: { type: 'string', default: '132' },
    order: { type: 'string', default: 'ascending' },
    release: { type: 'string', default: 'immediate' },
    'step-ticks': { type: 'string', default: '1' },
    jitter: { type: 'string', default: '0' },
    'publish-ticks': { type: 'string', default: '1' },
  },
});
const stepTicks = Number(values['step-ticks']);
const jitter = Number(values.jitter);
const publishTicks = Number(values['publish-ticks']);
const BM = 64;
const sq = Number(values.seqlen);
const sk = sq;
const BN = Number(values['block-n']);
const groups = Number(values.heads);
const slots = Number(values.sms);
const [left, right] = values.mask === 'causal' ? [-1, 0] : [-1, -1];

const floorDiv = (a, b) => (a >= 0 ? Math.trunc(a / b) : -Math.trunc((-a + b - 1) / b));
function keyBlocks(m) {
  const rowFirst = m * BM, rowLast = Math.min(rowFirst + BM, sq) - 1, shift = sk - sq;
  let nMax = Math.ceil(sk / BN);
  if (right >= 0) nMax = Math.min(nMax, Math.max(0, floorDiv(rowLast + shift + right, BN) + 1));
  const nMin = left >= 0 ? Math.max(0, floorDiv(rowFirst + shift - left, BN)) : 0;
  return [nMin, nMax];
}
function queryBlocks(n) {
  const colFirst = n * BN, colLast = Math.min(colFirst + BN, sk) - 1, shift = sk - sq, M = Math.ceil(sq / BM);
  const mMin = right >= 0 ? Math.max(0, floorDiv(colFirst - shift - right, BM)) : 0;
  const mMax = left >= 0 ? Math.min(M, Math.max(0, floorDiv(colLast - shift + left, BM) + 1)) : M;
  return [mMin, mMax];
}

// mulberry32: the same step costs for both schedules.
function costs(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return stepTicks + Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * (jitter + 1));
  };
}

function simulate(withSemaphores) {
  const M = Math.ceil(sq / BM), N = Math.ceil(sk / BN);
  const cost = costs(12345);
  // Arrival order: unmasked, key blocks rotate in groups that fit the slots (kernels/bwd
  // rotation_group), ranked group by group and by arrival within a group; masked, each head's key
  // blocks are dispatched in descending order (this_block) and ranked so.
  const unmasked = left < 0 && right < 0;
  const group = Math.ceil(N / Math.ceil(N / slots));
  const rotate = values.order === 'arrival' && unmasked;
  const arrival = values.order === 'arrival' && !unmasked;
  const ctas = [];
  for (let g = 0; g < groups; g++) {
    for (let i = 0; i < N; i++) {
      const n = arrival ? N - 1 - i : i;
      const [mMin, mMax] = queryBlocks(n);
      const first = Math.trunc(n / group) * group;
      const size = Math.min(group, N - first);
      const rotation = rotate ? Math.trunc(((n - first) * M) / size) : 0;
      const steps = [];
      for (let t = 0; t < mMax - mMin; t++) {
        const m = mMin + ((rotation + t) % (mMax - mMin));
        let rank;
        if (rotate) rank = first + ((Math.min(size, Math.ceil(((m + 1) * size) / M)) - 1 - (n - first) + size) % size);
        else {
          const [nLo, nHi] = keyBlocks(m);
          rank = arrival ? nHi - 1 - n : n - nLo;
        }
        steps.push({ tile: g * M + m, rank, ticks: cost() });
      }
      ctas.push({ steps, next: 0, pending: -1, remaining: 0, running: false, done: false });
    }
  }
  // A contribution becomes visible to other CTAs `--publish-ticks` rounds after it is released (at
  // least the next round), at its step's start (immediate) or end (deferred): that is the latency
  // of each link of a chain.
  const count = new Map();
  let inFlight = [];  // [round it becomes visible, tile]
  let rounds = 0;
  const publish = (c) => {
    if (c.pending >= 0) inFlight.push([rounds + publishTicks, c.pending]);
    c.pending = -1;
  };
  let dispatched = 0, running = 0, finished = 0;
  while (finished < ctas.length) {
    while (running < slots && dispatched < ctas.length) {
      ctas[dispatched++].running = true;
      running++;
    }
    let progressed = false;
    for (const c of ctas) {
      if (!c.running) continue;
      if (c.remaining > 0) {
        progressed = true;
        if (--c.remaining > 0) continue;
      }
      // At a step's end: deferred, the turn taken at its start goes on now.
      if (values.release === 'deferred') publish(c);
      if (c.next === c.steps.length) {
        publish(c);
        c.running = false;
        running--;
        finished++;
        progressed = true;
        continue;
      }
      const s = c.steps[c.next];
      if (!withSemaphores || (count.get(s.tile) ?? 0) === s.rank) {
        c.pending = s.tile;
        c.next++;
        c.remaining = s.ticks - 1;
        progressed = true;
        if (values.release === 'immediate') publish(c);
      }
    }
    rounds++;
    const arriving = inFlight.filter(([at]) => at <= rounds);
    inFlight = inFlight.filter(([at]) => at > rounds);
    for (const [, tile] of arriving) count.set(tile, (count.get(tile) ?? 0) + 1);
    progressed ||= arriving.length > 0 || inFlight.length > 0;
    if (!progressed && ctas.some((c) => c.pending >= 0)) progressed = true;
    if (!progressed) throw new Error(`deadlock after ${rounds} rounds`);
  }
  return rounds;
}

const free = simulate(false);
const ordered = simulate(true);
console.log(`seqlen ${sq}, ${groups} heads, ${values.mask}, block N ${BN}, ${slots} SMs, order ${values.order}, release ${values.release}, steps ${stepTicks}+0..${jitter} ticks`);
console.log(`rounds without semaphores ${free}, deterministic ${ordered} (${(ordered / free).toFixed(2)}x)`);
