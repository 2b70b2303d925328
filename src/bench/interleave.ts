/**
 * Times several contenders (flash3 and its peers) on one point in interleaved rounds: each round
 * runs every contender once (its warm-up calls, then one timed repetition), in an order that
 * rotates from round to round, and each contender's median round is reported.
 *
 * Why: an H100 under sustained attention load settles at its power cap within a second or two,
 * about 15% below the clock it starts at. Timed one after the other, a contender that ran first,
 * or after a pause (a process starting), was measured at higher clocks: on one H100, torch's
 * cuDNN read 616 TFLOPS at d=128 2k in such a run and 559 under sustained load, next to
 * flash3's 555. Interleaved, every contender sees the same card state.
 */
import type { TimingOptions } from './cudaTiming.js';
import { median } from './grid.js';

export interface Contender {
  name: string;
  /** Milliseconds per call over `timing` (repetitions: 1). */
  time(timing: TimingOptions): number | Promise<number>;
  /**
   * Whether a failure is a result (a peer refusing a shape: reported, and the contender sits out
   * the remaining rounds) rather than an error for the bench to stop on (flash3's own failures).
   */
  mayRefuse?: boolean;
}

/** A contender's median round and every round's time (ms, in round order), or why it sat out. */
export type ContenderResult = { ms: number; samples: number[] } | { error: string };

export async function timeInterleaved(contenders: readonly Contender[], timing: TimingOptions): Promise<Map<string, ContenderResult>> {
  const round: TimingOptions = { ...timing, repetitions: 1 };
  const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const refused = new Map<string, string>();
  for (let r = 0; r < timing.repetitions; r++) {
    for (let j = 0; j < contenders.length; j++) {
      const c = contenders[(j + r) % contenders.length];
      if (refused.has(c.name)) continue;
      try {
        samples.get(c.name)!.push(await c.time(round));
      } catch (e) {
        if (!c.mayRefuse) throw e;
        refused.set(c.name, (e as Error).message);
      }
    }
  }
  return new Map(
    contenders.map((c): [string, ContenderResult] => {
      const error = refused.get(c.name);
      const times = samples.get(c.name)!;
      return [c.name, error !== undefined ? { error } : { ms: median(times), samples: times }];
    }),
  );
}
