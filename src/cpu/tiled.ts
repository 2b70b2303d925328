/**
 * FlashAttention's blocked online softmax on the CPU, rounding at the same points a GPU kernel
 * does, so the error of a low-precision kernel can be predicted (and its results checked)
 * without a GPU. With float64 everywhere it matches referenceAttention to ~1e-12.
 */
import type { DType } from '../dtype.js';
import { isDType } from '../dtype.js';
import { OptionError } from '../errors.js';
import { float32Bits, fromFloat32Bits, roundArrayTo, roundTo } from '../numerics/convert.js';
import { dot } from './reference.js';
import {
  type CpuProblem,
  type CpuResult,
  firstKey,
  gatherHead,
  kvHeadOf,
  lastKey,
  lseIndex,
  scatterHead,
  validateProblem,
} from './problem.js';

export interface Emulation {
  /** tile sizes (e.g. 128 x 128) */
  blockM: number;
  blockN: number;
  /** q, k, v rounded to this first (float64 = no rounding) */
  inputDtype: DType;
  /** P = exp(S - m) rounded to this before P·V (FA kernels: the input dtype) */
  pDtype: DType;
  /** S, row max/sum, O accumulators rounded with Math.fround after each block step when float32 */
  accumulate: 'float32' | 'float64';
  /** final O rounded to this */
  outDtype: DType;
}

export function tiledAttention(p: CpuProblem, emu: Emulation): CpuResult {
  validateProblem(p);
  validateEmulation(emu);
  const { seqlenQ: sq, seqlenK: sk, headsQ, headsKv, headDim: d, headDimV: dv } = p;
  const q = roundArrayTo(Float64Array.from(p.q), emu.inputDtype);
  const k = roundArrayTo(Float64Array.from(p.k), emu.inputDtype);
  const v = roundArrayTo(Float64Array.from(p.v), emu.inputDtype);
  const pDtype = emu.pDtype;
  const steps: TileSteps = {
    blockM: emu.blockM,
    blockN: emu.blockN,
    fp32: emu.accumulate === 'float32',
    roundP: pDtype === 'float64' ? (x) => x : (x) => roundTo(x, pDtype),
  };
  return attendAllHeads(
    p,
    (b, h, kh) => ({
      q: gatherHead(q, sq, headsQ, d, b, h),
      k: gatherHead(k, sk, headsKv, d, b, kh),
      v: gatherHead(v, sk, headsKv, dv, b, kh),
    }),
    steps,
    (o) => roundArrayTo(o, emu.outDtype),
  );
}

/**
 * attendHeadTiled over every (batch, query head), with the inputs `headOf` gives (kh: the head's
 * k/v head), assembled into (batch, seqlenQ, headsQ, headDimV) out and (batch, headsQ, seqlenQ) lse.
 * `finish` maps each head's o before it is stored (e.g. rounding to the output dtype).
 */
export function attendAllHeads(
  p: CpuProblem,
  headOf: (b: number, h: number, kh: number) => HeadInputs,
  steps: TileSteps,
  finish: (o: Float64Array, b: number, h: number, kh: number) => Float64Array = (o) => o,
): CpuResult {
  const { batch, seqlenQ: sq, headsQ, headDimV: dv } = p;
  const out = new Float64Array(batch * sq * headsQ * dv);
  const lse = new Float64Array(batch * headsQ * sq);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < headsQ; h++) {
      const kh = kvHeadOf(p, h);
      const r = attendHeadTiled(p, headOf(b, h, kh), steps);
      scatterHead(out, finish(r.o, b, h, kh), sq, headsQ, dv, b, h);
      lse.set(r.lse, lseIndex(p, b, h, 0));
    }
  }
  return { out, lse };
}

/** One (batch, head) slice, contiguous, plus optional FP8 descales. Shared with fp8.ts. */
export interface HeadInputs {
  /** (seqlenQ, headDim) */
  q: Float64Array;
  /** (seqlenK, headDim) */
  k: Float64Array;
  /** (seqlenK, headDimV) */
  v: Float64Array;
  /** per query row; S is multiplied by qDescale[i]·kDescale[j] */
  qDescale?: Float64Array;
  /** per key */
  kDescale?: Float64Array;
  /** per key, constant over each blockN block, as the FP8 kernel applies it (see vUnitSteps) */
  vDescale?: Float64Array;
}

/** How the FP8 kernel brings key block n's V descale in (kernels/fwd/kernel.cuh, Descales). */
interface VUnitStep {
  /** P of the block is multiplied by 2^pShift before it is narrowed (exact). */
  pShift: number;
  /** O accumulated so far is multiplied by this on entering the block (1: no rescale). */
  oRatio: number;
}

/**
 * O is kept in a unit u = 2^E·mu. A block whose descale 2^e·m has 0 <= e - E <= 8 puts 2^(e-E)
 * into P and changes the unit's mantissa to m (O *= mu/m, 1 when the mantissas agree, as with
 * power-of-two scales); any other block rebases the unit to its descale (O *= u/v). The blocks
 * come last first, as the kernel walks them. Returns the steps by block and the final unit.
 * `r` rounds the ratios (float32 as in the kernel; identity for exact arithmetic).
 */
export function vUnitSteps(
  vBlockDescale: (nb: number) => number,
  nbLo: number,
  nbHi: number,
  r: (x: number) => number = Math.fround,
): { steps: VUnitStep[]; unit: number } {
  const EXP = 0x7f800000;
  const MANT = 0x007fffff;
  const steps: VUnitStep[] = [];
  let unit = Math.fround(vBlockDescale(nbHi));
  for (let nb = nbHi; nb >= nbLo; nb--) {
    const v = Math.fround(vBlockDescale(nb));
    const u = float32Bits(unit);
    const vb = float32Bits(v);
    // Sign and exponent together: descales of opposite signs never share a unit.
    const shift = (vb >>> 23) - (u >>> 23);
    if ((u & EXP) !== 0 && shift >= 0 && shift <= 8) {
      const ratio = (u & MANT) === (vb & MANT) ? 1 : r(fromFloat32Bits((u & MANT) | 0x3f800000) / fromFloat32Bits((vb & MANT) | 0x3f800000));
      unit = fromFloat32Bits((u & ~MANT) | (vb & MANT));
      steps[nb] = { pShift: shift, oRatio: ratio };
    } else {
      steps[nb] = { pShift: 0, oRatio: r(unit / v) };
      unit = v;
    }
  }
  return { steps, unit };
}

export interface TileSteps {
  blockM: number;
  blockN: number;
  /** round S, m, l, O to float32 after each block step */
  fp32: boolean;
  /** rounding applied to P before P·V */
  roundP: (x: number) => number;
}

const identity = (x: number): number => x;

/**
 * The per-head kernel: o = softmax(S)·V (unrounded; callers round to their out dtype) and lse
 * (natural log), both of one head. Rows are independent, so walking row by row over the key
 * blocks performs the same arithmetic, in the same order, as the GPU's tile-by-tile walk.
 */
export function attendHeadTiled(p: CpuProblem, head: HeadInputs, steps: TileSteps): { o: Float64Array; lse: Float64Array } {
  const { seqlenQ: sq, seqlenK: sk, headDim: d, headDimV: dv, softcap } = p;
  const { blockM, blockN, roundP } = steps;
  const r = steps.fp32 ? Math.fround : identity;
  const { q, k, v, qDescale, kDescale, vDescale } = head;
  // GPU kernels fold the softmax scale into the exponent: exp2(s·scale·log2e − m).
  const scaleLog2 = r(p.softmaxScale * Math.LOG2E);
  const capScale = r(p.softmaxScale / softcap);
  const capLog2 = r(softcap * Math.LOG2E);

  const o = new Float64Array(sq * dv);
  const lse = new Float64Array(sq);
  const s = new Float64Array(blockN);
  const acc = new Float64Array(dv);
  const pv = new Float64Array(dv);
  const nBlocks = Math.ceil(sk / blockN);
  const fullBlock = new Uint8Array(nBlocks);

  for (let m0 = 0; m0 < sq; m0 += blockM) {
    const m1 = Math.min(sq, m0 + blockM);
    // Key blocks outside [first key of the first row, last key of the last row] are skipped whole.
    const keyLo = firstKey(p, m0);
    const keyHi = lastKey(p, m1 - 1);
    const nbLo = keyLo <= keyHi ? Math.floor(keyLo / blockN) : 0;
    const nbHi = keyLo <= keyHi ? Math.floor(keyHi / blockN) : -1;
    for (let nb = nbLo; nb <= nbHi; nb++) {
      const n0 = nb * blockN;
      const n1 = Math.min(sk, n0 + blockN);
      // Wholly inside for every row of the tile: no per-element masking needed.
      fullBlock[nb] = firstKey(p, m1 - 1) <= n0 && lastKey(p, m0) >= n1 - 1 ? 1 : 0;
    }
    const units = vDescale && nbLo <= nbHi ? vUnitSteps((nb) => vDescale[nb * blockN], nbLo, nbHi, r) : null;

    for (let i = m0; i < m1; i++) {
      const rowLo = firstKey(p, i);
      const rowHi = lastKey(p, i);
      const qOff = i * d;
      const qd = qDescale ? qDescale[i] : 1;
      let m = -Infinity; // running max, log2 units
      let l = 0; // running sum of exp2(s - m)
      acc.fill(0);
      // Last key block first, as the kernels walk them: the running max at each step, and so the
      // rounding of P, is the GPU's.
      for (let nb = nbHi; nb >= nbLo; nb--) {
        const n0 = nb * blockN;
        const n1 = Math.min(sk, n0 + blockN);
        const jLo = fullBlock[nb] ? n0 : Math.max(n0, rowLo);
        const jHi = fullBlock[nb] ? n1 - 1 : Math.min(n1 - 1, rowHi);
        const unit = units?.steps[nb];
        if (jLo > jHi) {
          // This row sees nothing here: only O's unit may change.
          if (unit && unit.oRatio !== 1) for (let c = 0; c < dv; c++) acc[c] = r(acc[c] * unit.oRatio);
          continue;
        }

        let blockMax = -Infinity;
        for (let j = jLo; j <= jHi; j++) {
          let sc = r(dot(q, qOff, k, j * d, d));
          if (qDescale || kDescale) sc = r(sc * qd * (kDescale ? kDescale[j] : 1));
          sc = softcap > 0 ? r(r(Math.tanh(r(sc * capScale))) * capLog2) : r(sc * scaleLog2);
          s[j - n0] = sc;
          if (sc > blockMax) blockMax = sc;
        }
        const mNew = Math.max(m, blockMax);
        const alpha = m === -Infinity ? 0 : r(Math.pow(2, m - mNew));
        const pFactor = unit ? 2 ** unit.pShift : 1;
        const oFactor = unit ? r(alpha * unit.oRatio) : alpha;

        let rowSum = 0;
        pv.fill(0);
        for (let j = jLo; j <= jHi; j++) {
          // The row sum uses P before it is narrowed for the MMA, as FA kernels do.
          const pf = r(Math.pow(2, s[j - n0] - mNew));
          rowSum += pf;
          const pn = roundP(pf * pFactor);
          if (pn === 0) continue;
          const vOff = j * dv;
          for (let c = 0; c < dv; c++) pv[c] += pn * v[vOff + c];
        }
        for (let c = 0; c < dv; c++) acc[c] = r(acc[c] * oFactor + r(pv[c]));
        l = r(l * alpha + r(rowSum));
        m = mNew;
      }

      if (m === -Infinity) {
        lse[i] = -Infinity; // o row stays 0
        continue;
      }
      const inv = units ? r(r(1 / l) * units.unit) : r(1 / l);
      for (let c = 0; c < dv; c++) o[i * dv + c] = r(acc[c] * inv);
      lse[i] = r((m + Math.log2(l)) * Math.LN2);
    }
  }
  return { o, lse };
}

function validateEmulation(emu: Emulation): void {
  for (const name of ['blockM', 'blockN'] as const) {
    if (!Number.isInteger(emu[name]) || emu[name] < 1) {
      throw new OptionError(`${name} must be a positive integer`, { param: `emulation.${name}`, value: emu[name], fix: 'use 64 or 128' });
    }
  }
  for (const name of ['inputDtype', 'pDtype', 'outDtype'] as const) {
    if (!isDType(emu[name])) {
      throw new OptionError(`${name} is not a dtype`, { param: `emulation.${name}`, value: emu[name] });
    }
  }
  if (emu.accumulate !== 'float32' && emu.accumulate !== 'float64') {
    throw new OptionError("accumulate must be 'float32' or 'float64'", { param: 'emulation.accumulate', value: emu.accumulate });
  }
}
