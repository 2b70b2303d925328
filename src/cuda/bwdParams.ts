/**
 * The backward kernel's parameter struct, byte for byte as kernels/bwd/params.cuh declares it
 * (the static_asserts there pin the same offsets).
 */
import type { Softcap } from './fwdParams.js';
import { packParamBlock } from './paramBlock.js';

export const BWD_PARAMS_BYTES = 896;
export const BWD_PARAMS_ALIGN = 128;

export interface BwdParams {
  tmQ: Uint8Array;
  tmK: Uint8Array;
  tmV: Uint8Array;
  tmDout: Uint8Array;
  tmDk: Uint8Array;
  tmDv: Uint8Array;
  lseLog2: bigint;
  dpsum: bigint;
  dqAccum: bigint;
  /** A counter per dQ tile: deterministic mode's semaphores, or a kernel that converts dQ's counts; else 0n. */
  dqCounters: bigint;
  seqlenQ: number;
  seqlenK: number;
  headsQ: number;
  groupSize: number;
  windowLeft: number;
  windowRight: number;
  scaleLog2: number;
  softmaxScale: number;
  numMBlocks: number;
  numNBlocks: number;
  /** Unmasked: key blocks per rotation group (kernels/bwd/kernel.cuh dq_rank); 0 = no rotation. */
  rotateGroup: number;
  /** Deterministic and masked: dQ tiles take key blocks in descending order. */
  arrivalOrder: boolean;
  softcap: Softcap;
  /** Persistent builds: the counter the CTAs take items from (zeroed by the pre-pass), else 0n. */
  workCounter: bigint;
  /** Key blocks x kv heads x batch. */
  numItems: number;
  /** Kernels that convert dQ: the contiguous dQ output, else 0n. */
  dq: bigint;
  /** Kernels that convert dQ: the queue of finished dQ tiles (tail, head, a slot per tile), else 0n. */
  dqQueue: bigint;
}

export function packBwdParams(p: BwdParams): Uint8Array {
  return packParamBlock(BWD_PARAMS_BYTES, [p.tmQ, p.tmK, p.tmV, p.tmDout, p.tmDk, p.tmDv], {
    u64: [[768, p.lseLog2], [776, p.dpsum], [784, p.dqAccum], [792, p.dqCounters], [864, p.workCounter], [880, p.dq], [888, p.dqQueue]],
    i32: [
      [800, p.seqlenQ],
      [804, p.seqlenK],
      [808, p.headsQ],
      [812, p.groupSize],
      [816, p.windowLeft],
      [820, p.windowRight],
      [832, p.numMBlocks],
      [836, p.numNBlocks],
      [840, p.rotateGroup],
      [844, p.arrivalOrder ? 1 : 0],
      [872, p.numItems],
    ],
    f32: [[824, p.scaleLog2], [828, p.softmaxScale], [848, p.softcap.scale], [852, p.softcap.log2], [856, p.softcap.invLog2]],
  });
}
