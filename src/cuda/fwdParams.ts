/**
 * The forward kernel's parameter struct, byte for byte as kernels/fwd/params.cuh declares it
 * (the static_asserts there pin the same offsets).
 */
import { TENSOR_MAP_BYTES } from './tensormap.js';

export const FWD_PARAMS_BYTES = 640;
export const FWD_PARAMS_ALIGN = 128;

export interface FwdParams {
  tmQ: Uint8Array;
  tmK: Uint8Array;
  tmV: Uint8Array;
  tmO: Uint8Array;
  lse: bigint;
  seqlenQ: number;
  seqlenK: number;
  headsQ: number;
  groupSize: number;
  windowLeft: number;
  windowRight: number;
  scaleLog2: number;
  numMBlocks: number;
  /** Device address of the per-CTA tile lists (src/cuda/schedule.ts). */
  schedule: bigint;
}

export function packFwdParams(p: FwdParams): Uint8Array {
  const bytes = new Uint8Array(FWD_PARAMS_BYTES);
  [p.tmQ, p.tmK, p.tmV, p.tmO].forEach((map, i) => bytes.set(map.subarray(0, TENSOR_MAP_BYTES), i * TENSOR_MAP_BYTES));
  const view = new DataView(bytes.buffer);
  view.setBigUint64(512, p.lse, true);
  const ints: [number, number][] = [
    [520, p.seqlenQ],
    [524, p.seqlenK],
    [528, p.headsQ],
    [532, p.groupSize],
    [536, p.windowLeft],
    [540, p.windowRight],
    [548, p.numMBlocks],
  ];
  for (const [offset, value] of ints) view.setInt32(offset, value, true);
  view.setFloat32(544, p.scaleLog2, true);
  view.setBigUint64(552, p.schedule, true);
  return bytes;
}
