/**
 * The forward kernel's parameter struct, byte for byte as kernels/fwd/params.cuh declares it
 * (the static_asserts there pin the same offsets).
 */
import { packParamBlock } from './paramBlock.js';

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
  /** 16-bit inputs: soft-capping (kernels/fwd/softcap.cuh); absent or 0 = off. */
  softcap?: Softcap;
}

/** Soft-capping as the kernels take it: x -> cap * tanh(x * scale / cap), exp2 scaled by cap * log2(e). */
export interface Softcap {
  /** softmax_scale / softcap. */
  scale: number;
  /** softcap * log2(e). */
  log2: number;
  /** 1 / log2, for the backward's slope (0 when off). */
  invLog2: number;
}

/** The kernels' soft-capping terms for a softmax scale and a cap (0: off). */
export function softcapTerms(softmaxScale: number, softcap: number): Softcap {
  return softcap > 0
    ? { scale: softmaxScale / softcap, log2: softcap * Math.LOG2E, invLog2: 1 / (softcap * Math.LOG2E) }
    : { scale: 0, log2: 0, invLog2: 0 };
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
  const d = p.descale;
  return packParamBlock(FWD_PARAMS_BYTES, [p.tmQ, p.tmK, p.tmV, p.tmO], {
    u64: [[512, p.lse], [552, p.schedule], ...(d ? ([[560, d.q], [568, d.k], [576, d.v]] as [number, bigint][]) : [])],
    i32: [
      [520, p.seqlenQ],
      [524, p.seqlenK],
      [528, p.headsQ],
      [532, p.groupSize],
      [536, p.windowLeft],
      [540, p.windowRight],
      [548, p.numMBlocks],
      ...(d ? ([[584, d.qRows], [588, d.kRows], [592, d.qBlocks], [596, d.kBlocks]] as [number, number][]) : []),
    ],
    f32: [[544, p.scaleLog2], ...(p.softcap ? ([[600, p.softcap.scale], [604, p.softcap.log2]] as [number, number][]) : [])],
  });
}
