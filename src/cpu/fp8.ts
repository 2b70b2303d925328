/**
 * FP8 attention emulation for the error study of FlashAttention-3 (section 4.3): per-tensor
 * scaling versus block scaling with a randomized Hadamard transform ("incoherent processing"),
 * on inputs with outlier features.
 */
import { OptionError } from '../errors.js';
import { roundTo } from '../numerics/convert.js';
import { hadamardRows, randomSigns } from '../numerics/hadamard.js';
import { type CpuProblem, type CpuResult, gatherHead, validateProblem } from './problem.js';
import { attendAllHeads } from './tiled.js';

export type Fp8DType = 'float8_e4m3' | 'float8_e5m2';

export interface Fp8QuantizeOptions {
  /** one scale for the whole array, or one per block of blockRows consecutive rows */
  scaling: 'tensor' | 'block';
  blockRows: number;
  /** rotate each row by the randomized Hadamard transform (signs from `seed`) before scaling */
  hadamard: boolean;
  seed: number;
  dtype?: Fp8DType;
  /** block scales rounded up to powers of two (see pow2ScaleFor) */
  powerOfTwo?: boolean;
}

export interface Fp8Quantized {
  /** fp8-representable values, i.e. the quantized numbers before descale */
  values: Float64Array;
  /** one per tensor, or one per block of blockRows rows; x ≈ values · descale */
  descale: Float64Array;
}

const FP8_MAX: Record<Fp8DType, number> = { float8_e4m3: 448, float8_e5m2: 57344 };

/**
 * The smallest power of two s with amax <= max·s, and at least the least normal float32, as
 * kernels/quantize_fp8.cu computes it from the float32 amax.
 */
export function pow2ScaleFor(amax: number, dtype: Fp8DType = 'float8_e4m3'): number {
  const a = Math.fround(amax);
  let e = Math.max(Math.ceil(Math.log2(a / FP8_MAX[dtype])), -126);
  // log2 may land a hair off an exact power of two: settle on the smallest e that holds.
  while (e > -126 && a <= FP8_MAX[dtype] * 2 ** (e - 1)) e--;
  while (a > FP8_MAX[dtype] * 2 ** e) e++;
  return 2 ** e;
}

/** Quantizes a (rows, rowLen) array to fp8 with amax scaling; `x` is left untouched. */
export function quantizeFp8(x: Float64Array, rows: number, rowLen: number, opts: Fp8QuantizeOptions): Fp8Quantized {
  const dtype = opts.dtype ?? 'float8_e4m3';
  if (!(dtype in FP8_MAX)) throw new OptionError('dtype must be an fp8 dtype', { param: 'dtype', value: dtype });
  if (x.length !== rows * rowLen) {
    throw new OptionError(`x has ${x.length} elements, expected rows·rowLen = ${rows * rowLen}`, { param: 'x' });
  }
  if (opts.scaling !== 'tensor' && opts.scaling !== 'block') {
    throw new OptionError("scaling must be 'tensor' or 'block'", { param: 'scaling', value: opts.scaling });
  }
  const blockRows = opts.scaling === 'tensor' ? Math.max(rows, 1) : opts.blockRows;
  if (!Number.isInteger(blockRows) || blockRows < 1) {
    throw new OptionError('blockRows must be a positive integer', { param: 'blockRows', value: opts.blockRows });
  }
  const values = Float64Array.from(x);
  if (opts.hadamard) hadamardRows(values, rowLen, randomSigns(rowLen, opts.seed));

  const nBlocks = Math.ceil(rows / blockRows);
  const descale = new Float64Array(nBlocks);
  for (let blk = 0; blk < nBlocks; blk++) {
    const start = blk * blockRows * rowLen;
    const end = Math.min(rows, (blk + 1) * blockRows) * rowLen;
    let amax = 0;
    for (let e = start; e < end; e++) amax = Math.max(amax, Math.abs(values[e]));
    // An all-zero block quantizes exactly with any scale; 1 avoids 0/0. The scale and the quotients
    // are float32, as kernels/quantize_fp8.cu computes them: with amax 4 the float64 scale (4/448)
    // is 4e-8 off the float32 one, enough to flip quotients that sit on e4m3 ties (3.6% of a
    // two-term Q's residuals).
    const scale = amax > 0 ? (opts.powerOfTwo && opts.scaling === 'block' ? pow2ScaleFor(amax, dtype) : Math.fround(amax / FP8_MAX[dtype])) : 1;
    descale[blk] = scale;
    for (let e = start; e < end; e++) values[e] = roundTo(Math.fround(values[e] / scale), dtype);
  }
  return { values, descale };
}

export interface Fp8AttentionOptions {
  scaling: 'tensor' | 'block';
  /** Hadamard on Q and K over the head dim, with the same signs, so QKᵀ is unchanged */
  hadamard: boolean;
  seed: number;
  /** Q block scaling granularity and query tile */
  blockM: number;
  /** K and V block scaling granularity and key tile */
  blockN: number;
  /**
   * Accuracy mode: Q as the sum of two e4m3 terms (Q ≈ Q1·d1 + Q2·d2, the second quantizing the
   * first's residual with its own block scales), so S = Q1Kᵀ·d1 + Q2Kᵀ·d2 costs one more FP8
   * GEMM (1.5x the FLOPs of plain FP8, still under bf16's cost at twice the FP8 rate).
   */
  qSplit?: boolean;
}

/**
 * Attention with e4m3 Q, K, V (scaled as `opts` says), S and the online softmax in float32,
 * P rounded to e4m3 before P·V, float32 accumulation, and the V descale applied as the kernel
 * does: per tensor to the output; per block of keys partly in P, partly to O (vUnitSteps in
 * tiled.ts), with V's block scales powers of two as attention()'s fp8 option makes them.
 */
export function fp8AttentionEmulated(p: CpuProblem, opts: Fp8AttentionOptions): CpuResult {
  validateProblem(p);
  for (const name of ['blockM', 'blockN'] as const) {
    if (!Number.isInteger(opts[name]) || opts[name] < 1) {
      throw new OptionError(`${name} must be a positive integer`, { param: `options.${name}`, value: opts[name] });
    }
  }
  const { batch, seqlenQ: sq, seqlenK: sk, headsQ, headsKv, headDim: d, headDimV: dv } = p;
  const steps = { blockM: opts.blockM, blockN: opts.blockN, fp32: true, roundP: (x: number) => roundTo(x, 'float8_e4m3') };
  const perTensor = opts.scaling === 'tensor';
  const quantQ = (opts.qSplit ? splitSlicer : slicer)({ x: p.q, batch, seqlen: sq, heads: headsQ, dim: d, blockRows: opts.blockM, hadamard: opts.hadamard }, opts);
  const quantK = slicer({ x: p.k, batch, seqlen: sk, heads: headsKv, dim: d, blockRows: opts.blockN, hadamard: opts.hadamard }, opts);
  // V's block scales are powers of two, as attention()'s fp8 option quantizes v.
  const quantV = slicer({ x: p.v, batch, seqlen: sk, heads: headsKv, dim: dv, blockRows: opts.blockN, hadamard: false, powerOfTwo: true }, opts);

  // K and V slices are shared by the query heads of a group: quantize each once.
  const memo = <T>(f: (b: number, h: number) => T) => {
    const cache = new Map<number, T>();
    return (b: number, h: number): T => {
      const key = b * headsKv + h;
      let v = cache.get(key);
      if (v === undefined) cache.set(key, (v = f(b, h)));
      return v;
    };
  };
  const kOf = memo(quantK);
  const vOf = memo(quantV);
  return attendAllHeads(
    p,
    (b, h, kh) => {
      const qs = quantQ(b, h);
      return {
        q: qs.values,
        k: kOf(b, kh).values,
        v: vOf(b, kh).values,
        qDescale: qs.rowDescale,
        kDescale: kOf(b, kh).rowDescale,
        vDescale: perTensor ? undefined : vOf(b, kh).rowDescale,
      };
    },
    steps,
    (o, b, _h, kh) => (perTensor ? o.map((x) => Math.fround(x * vOf(b, kh).rowDescale[0])) : o),
  );
}

/** One (batch, seqlen, heads, dim) input and how it is quantized. */
interface SliceSpec {
  x: Float64Array;
  batch: number;
  seqlen: number;
  heads: number;
  dim: number;
  /** Rows (sequence positions of one head) per scale under block scaling. */
  blockRows: number;
  hadamard: boolean;
  /** block scales rounded up to powers of two (per-tensor scaling keeps its amax scale) */
  powerOfTwo?: boolean;
}

interface HeadSlice {
  /** (seqlen, dim) fp8 values of one (batch, head) */
  values: Float64Array;
  /** descale of each sequence position */
  rowDescale: Float64Array;
}

/**
 * Returns a getter for quantized (batch, head) slices. Per-tensor scaling needs the amax of
 * the whole tensor, so it quantizes everything once; block scaling quantizes each slice, since
 * a block is blockRows consecutive positions of one head.
 */
function slicer(spec: SliceSpec, opts: Fp8AttentionOptions): (b: number, h: number) => HeadSlice {
  const { x, batch, seqlen, heads, dim, blockRows, hadamard } = spec;
  const base = { hadamard, seed: opts.seed, dtype: 'float8_e4m3' as const };
  if (opts.scaling === 'tensor') {
    const whole = quantizeFp8(x, batch * seqlen * heads, dim, { ...base, scaling: 'tensor', blockRows: 1 });
    const rowDescale = new Float64Array(seqlen).fill(whole.descale[0]);
    return (b, h) => ({ values: gatherHead(whole.values, seqlen, heads, dim, b, h), rowDescale });
  }
  if (opts.scaling !== 'block') {
    throw new OptionError("scaling must be 'tensor' or 'block'", { param: 'options.scaling', value: opts.scaling });
  }
  return (b, h) => {
    const slice = quantizeFp8(gatherHead(x, seqlen, heads, dim, b, h), seqlen, dim, { ...base, scaling: 'block', blockRows, powerOfTwo: spec.powerOfTwo });
    const rowDescale = new Float64Array(seqlen);
    for (let s = 0; s < seqlen; s++) rowDescale[s] = slice.descale[Math.floor(s / blockRows)];
    return { values: slice.values, rowDescale };
  };
}

/**
 * Two-term quantization of (batch, head) slices: values are Q1·d1 + Q2·d2 (exactly what two FP8
 * GEMMs with their descales sum to), so the returned descale is 1.
 */
function splitSlicer(spec: SliceSpec, opts: Fp8AttentionOptions): (b: number, h: number) => HeadSlice {
  const { x, seqlen, heads, dim, blockRows, hadamard } = spec;
  if (opts.scaling !== 'block') {
    throw new OptionError("the two-term Q of the accuracy mode is defined for block scaling", { param: 'options.scaling', value: opts.scaling, fix: "pass scaling: 'block'" });
  }
  const scaling = { scaling: 'block' as const, blockRows, hadamard: false, seed: opts.seed, dtype: 'float8_e4m3' as const };
  return (b, h) => {
    const slice = gatherHead(x, seqlen, heads, dim, b, h);
    if (hadamard) hadamardRows(slice, dim, randomSigns(dim, opts.seed));
    const hi = quantizeFp8(slice, seqlen, dim, scaling);
    const approx = (qz: Fp8Quantized, e: number) => qz.values[e] * qz.descale[Math.floor(Math.floor(e / dim) / blockRows)];
    // The residual keeps the first term's scale (Q2 = e4m3((Q - Q1·d1) / d1)), so one descale
    // covers both terms and the GPU accumulates Q1·Kᵀ and Q2·Kᵀ in one wgmma chain.
    const lo = slice.map((value, e) => {
      const d1 = hi.descale[Math.floor(Math.floor(e / dim) / blockRows)];
      return roundTo((value - approx(hi, e)) / d1, 'float8_e4m3') * d1;
    });
    return { values: slice.map((_, e) => approx(hi, e) + lo[e]), rowDescale: new Float64Array(seqlen).fill(1) };
  };
}

/** Descales of already-quantized inputs, one per (batch, head, block of rows), as QuantizedTensor holds them. */
export interface Fp8Descales {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  qRows: number;
  /** Keys per K and V descale, a multiple of the tile's blockN. */
  kRows: number;
}

/**
 * What the FP8 kernel computes from e4m3 q, k, v (`p` holds their values) and their descales:
 * S in float32 scaled by the row's Q and the key's K descale, P rounded to e4m3, each key
 * block's V descale brought in as the kernel does (vUnitSteps in tiled.ts). `tile` is the
 * kernel's blocking (forwardTileFor).
 */
export function fp8AttentionQuantized(p: CpuProblem, d: Fp8Descales, tile: { blockM: number; blockN: number }): CpuResult {
  validateProblem(p);
  const { seqlenQ: sq, seqlenK: sk, headsQ, headsKv, headDim, headDimV: dv } = p;
  const steps = { ...tile, fp32: true, roundP: (x: number) => roundTo(x, 'float8_e4m3') };
  const perRow = (descale: Float64Array, b: number, h: number, heads: number, seqlen: number, rows: number) => {
    const blocks = Math.ceil(seqlen / rows);
    const out = new Float64Array(seqlen);
    for (let s = 0; s < seqlen; s++) out[s] = descale[(b * heads + h) * blocks + Math.floor(s / rows)];
    return out;
  };
  return attendAllHeads(
    p,
    (b, h, kh) => ({
      q: gatherHead(p.q, sq, headsQ, headDim, b, h),
      k: gatherHead(p.k, sk, headsKv, headDim, b, kh),
      v: gatherHead(p.v, sk, headsKv, dv, b, kh),
      qDescale: perRow(d.q, b, h, headsQ, sq, d.qRows),
      kDescale: perRow(d.k, b, kh, headsKv, sk, d.kRows),
      vDescale: perRow(d.v, b, kh, headsKv, sk, d.kRows),
    }),
    steps,
  );
}
