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
  /** FP8 inputs only (absent for 16-bit): descales per (batch, head, block of rows). */
  descale?: Fp8Descales;
}

export interface Fp8Descales {
  q: bigint;
  k: bigint;
  v: bigint;
  qRows: number;
  kRows: number;
  qBlocks: number;
  kBlocks: number;
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
  if (p.descale) {
    const d = p.descale;
    [d.q, d.k, d.v].forEach((ptr, i) => view.setBigUint64(560 + 8 * i, ptr, true));
    [d.qRows, d.kRows, d.qBlocks, d.kBlocks].forEach((n, i) => view.setInt32(584 + 4 * i, n, true));
  }
  return bytes;
}
