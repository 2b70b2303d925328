/**
 * FP8 attention inputs: e4m3 data with float32 descales, one per (batch, head, block of rows),
 * optionally rotated by a random-sign Hadamard transform (FlashAttention-3's block quantization
 * and incoherent processing). quantizeFp8 makes them, on the GPU for device tensors; attention()
 * accepts them for q, k and v.
 */
import { OptionError, ShapeError, UnsupportedError } from './errors.js';
import { encode, roundTo } from './numerics/convert.js';
import { hadamardRows, randomSigns } from './numerics/hadamard.js';
import { quantizeFp8 as quantizeRows } from './cpu/fp8.js';
import { gatherHead } from './cpu/problem.js';
import { Tensor } from './tensor.js';

export type Fp8Scaling = 'tensor' | 'block';

export interface QuantizeOptions {
  /** One scale per block of rows of each (batch, head) (default), or one for the whole tensor. */
  scaling?: Fp8Scaling;
  /** Rotate rows by the random-sign Hadamard transform first; give q and k the same seed (v none). */
  hadamard?: boolean;
  /** Seed of the Hadamard signs (default 0). */
  seed?: number;
  /**
   * Sequence positions per descale (default 128); k and v need a multiple of the kernel's key block
   * (128, or 160 for FP8 head dim 64 from 16384 query rows, which falls back to a 128-key tile for
   * other blockings). attention()'s fp8 option picks k's and v's from the kernel unless this is set.
   */
  blockRows?: number;
  /**
   * 2: the accuracy mode's two-term e4m3 (x ≈ (x1 + x2) · descale, x2 quantizing x1's residual at
   * the same scale), for q: S = q1·kᵀ + q2·kᵀ costs 1.5x FP8's GEMM work. With attention()'s fp8
   * option it applies to q alone. Default 1.
   */
  terms?: 1 | 2;
  /**
   * Round each block scale up to a power of two (block scaling only; default false). Meant for v:
   * the FP8 kernel then moves P between two blocks' scales exactly and skips rescaling O every
   * key block (4-17% faster on an H100, within +-2% RMSE in the emulation); attention()'s fp8 option does
   * this for v. Not for q or k: their largest element would no longer map to e4m3's 448 exactly.
   */
  powerOfTwoScales?: boolean;
}

export interface ResolvedQuantize {
  scaling: Fp8Scaling;
  hadamard: boolean;
  seed: number;
  blockRows: number;
  terms: 1 | 2;
  powerOfTwoScales: boolean;
}

const QUANTIZE_OPTIONS = ['scaling', 'hadamard', 'seed', 'blockRows', 'terms', 'powerOfTwoScales'];
export const DEFAULT_BLOCK_ROWS = 128;

/**
 * Keys per K/V descale for a kernel that walks keys in blocks of `blockN`: the default where the
 * block divides it, else the block itself (FP8 head dim 64's 160-key tile from 16k query rows).
 */
export function keyBlockRows(blockN: number): number {
  return DEFAULT_BLOCK_ROWS % blockN === 0 ? DEFAULT_BLOCK_ROWS : blockN;
}
const HADAMARD_DIMS = [64, 128, 256];

export function resolveQuantize(options: QuantizeOptions | undefined, param = 'options'): ResolvedQuantize {
  const o = (options ?? {}) as Record<string, unknown>;
  for (const name of Object.keys(o)) {
    if (!QUANTIZE_OPTIONS.includes(name)) {
      throw new OptionError(`unknown FP8 option "${name}"`, { param: `${param}.${name}`, fix: `known options are ${QUANTIZE_OPTIONS.join(', ')}` });
    }
  }
  const scaling = o.scaling ?? 'block';
  if (scaling !== 'block' && scaling !== 'tensor') {
    throw new OptionError("scaling must be 'block' or 'tensor'", { param: `${param}.scaling`, value: scaling, fix: "pass 'block' (one scale per block of rows) or 'tensor'" });
  }
  const hadamard = o.hadamard ?? false;
  if (typeof hadamard !== 'boolean') throw new OptionError('hadamard must be a boolean', { param: `${param}.hadamard`, value: hadamard });
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new OptionError('seed must be an integer', { param: `${param}.seed`, value: seed });
  const blockRows = o.blockRows ?? DEFAULT_BLOCK_ROWS;
  if (!Number.isSafeInteger(blockRows) || (blockRows as number) < 1) {
    throw new OptionError('blockRows must be a positive integer', { param: `${param}.blockRows`, value: blockRows, fix: `pass e.g. ${DEFAULT_BLOCK_ROWS}` });
  }
  const terms = o.terms ?? 1;
  if (terms !== 1 && terms !== 2) throw new OptionError('terms must be 1 or 2', { param: `${param}.terms`, value: terms, fix: 'pass 2 for the two-term accuracy mode, or omit it' });
  const powerOfTwoScales = o.powerOfTwoScales ?? false;
  if (typeof powerOfTwoScales !== 'boolean') {
    throw new OptionError('powerOfTwoScales must be a boolean', { param: `${param}.powerOfTwoScales`, value: powerOfTwoScales });
  }
  if (powerOfTwoScales && scaling !== 'block') {
    throw new OptionError('powerOfTwoScales rounds block scales', { param: `${param}.powerOfTwoScales`, value: true, fix: "pass scaling: 'block' or drop powerOfTwoScales" });
  }
  return { scaling, hadamard, seed: seed as number, blockRows: blockRows as number, terms, powerOfTwoScales };
}

/**
 * e4m3 values with their descales: x ≈ data · descale[batch, head, row / blockRows] (after the
 * rotation, if any); with two terms, x ≈ (data[..., :dim] + data[..., dim:]) · descale.
 */
export class QuantizedTensor {
  /** float8_e4m3, (batch, seqlen, heads, terms · dim). */
  readonly data: Tensor;
  /** float32, (batch, heads, ceil(seqlen / blockRows)). */
  readonly descale: Tensor;
  readonly blockRows: number;
  /** The Hadamard signs' seed, or null when the rows are not rotated. */
  readonly hadamardSeed: number | null;
  readonly terms: 1 | 2;

  constructor(data: Tensor, descale: Tensor, blockRows: number, hadamardSeed: number | null = null, terms: 1 | 2 = 1) {
    if (!(data instanceof Tensor) || data.dtype !== 'float8_e4m3' || data.shape.length !== 4 || data.shape[3] % terms !== 0) {
      throw new ShapeError(`data must be a float8_e4m3 Tensor (batch, seqlen, heads, ${terms === 2 ? '2 · dim' : 'dim'})`, { param: 'data', fix: 'create it with quantizeFp8(x)' });
    }
    const [b, s, h] = data.shape;
    const want = [b, h, Math.ceil(s / blockRows)];
    if (!(descale instanceof Tensor) || descale.dtype !== 'float32' || descale.shape.join() !== want.join()) {
      throw new ShapeError(`descale must be float32 [${want.join(', ')}] for ${s} rows in blocks of ${blockRows}`, {
        param: 'descale',
        value: descale instanceof Tensor ? [...descale.shape] : undefined,
        fix: 'pass one descale per (batch, head, block of blockRows rows)',
      });
    }
    if (descale.location !== data.location || descale.device !== data.device || !descale.isContiguous()) {
      throw new UnsupportedError('descale must be contiguous and on the same device as data', { param: 'descale', fix: 'move or copy it with .cuda()/.cpu()/.contiguous()' });
    }
    this.data = data;
    this.descale = descale;
    this.blockRows = blockRows;
    this.hadamardSeed = hadamardSeed;
    this.terms = terms;
  }

  /** The logical (batch, seqlen, heads, dim) shape. */
  get shape(): readonly number[] {
    const [b, s, h, w] = this.data.shape;
    return [b, s, h, w / this.terms];
  }

  /** A (batch, seqlen, heads, dim) view of the first term, for shape checks; the caller disposes it. */
  firstTerm(): Tensor {
    const [b, s, h, w] = this.data.shape;
    return this.data.view([b, s, h, w / this.terms], this.data.strides);
  }

  /** Host only: the e4m3 values as (batch, seqlen, heads, dim) float64, the terms summed (exact). */
  summedValues(): Float64Array {
    const v = this.data.toFloat64Array();
    if (this.terms === 1) return v;
    const dim = this.shape[3];
    const out = new Float64Array(v.length / 2);
    for (let row = 0; row < out.length / dim; row++) {
      for (let c = 0; c < dim; c++) out[row * dim + c] = v[2 * row * dim + c] + v[2 * row * dim + dim + c];
    }
    return out;
  }

  dispose(): void {
    this.data.dispose();
    this.descale.dispose();
  }
}

/** A device quantizer, registered by the CUDA backend so this module loads without a driver. */
export type DeviceQuantizer = (x: Tensor, q: ResolvedQuantize) => QuantizedTensor;
let deviceQuantizer: DeviceQuantizer | undefined;
export function registerDeviceQuantizer(f: DeviceQuantizer): void {
  deviceQuantizer = f;
}

/** Quantizes a 16-bit (batch, seqlen, heads, dim) tensor to e4m3, where it lives. */
export function quantizeFp8(x: Tensor, options?: QuantizeOptions): QuantizedTensor {
  if (!(x instanceof Tensor) || x.shape.length !== 4) {
    throw new ShapeError('x must be a rank-4 Tensor (batch, seqlen, heads, dim)', { param: 'x', fix: 'pass q, k or v as attention() takes them' });
  }
  if (x.dtype !== 'bfloat16' && x.dtype !== 'float16') {
    throw new UnsupportedError(`quantizeFp8 takes bfloat16 or float16, got ${x.dtype}`, { param: 'x.dtype', value: x.dtype, fix: 'convert x to bfloat16 first' });
  }
  const q = resolveQuantize(options);
  if (q.hadamard && !HADAMARD_DIMS.includes(x.shape[3])) {
    throw new UnsupportedError(`the Hadamard rotation needs a head dim of ${HADAMARD_DIMS.join(', ')}, got ${x.shape[3]}`, { param: 'options.hadamard', fix: 'pass hadamard: false' });
  }
  if (x.location === 'cuda') {
    if (!deviceQuantizer) throw new UnsupportedError('no CUDA quantizer is registered', { param: 'x', fix: "import flash3 from its package entry, or quantize x.cpu()" });
    return deviceQuantizer(x, q);
  }
  return quantizeOnHost(x, q);
}

function quantizeOnHost(x: Tensor, q: ResolvedQuantize): QuantizedTensor {
  const [b, s, h, d] = x.shape;
  const values = x.toFloat64Array();
  const blocks = Math.ceil(s / q.blockRows);
  const data = new Float64Array(values.length * q.terms);
  const rotated = q.terms === 2 ? Float64Array.from(values) : null;
  if (rotated && q.hadamard) hadamardRows(rotated, d, randomSigns(d, q.seed));
  const descale = new Float64Array(b * h * blocks);
  const base = { hadamard: q.hadamard, seed: q.seed, dtype: 'float8_e4m3' as const };
  // Per-tensor: one amax over everything (after the rotation), shared by every block.
  const whole = q.scaling === 'tensor' ? quantizeRows(values, b * s * h, d, { ...base, scaling: 'tensor', blockRows: 1 }) : null;
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      // Where row si of this (batch, head) sits in r.values, and its descale.
      const r = whole ?? quantizeRows(gatherHead(values, s, h, d, bi, hi), s, d, { ...base, scaling: 'block', blockRows: q.blockRows, powerOfTwo: q.powerOfTwoScales });
      const at = (si: number) => (whole ? ((bi * s + si) * h + hi) * d : si * d);
      const scaleOf = (si: number) => (whole ? whole.descale[0] : r.descale[Math.floor(si / q.blockRows)]);
      for (let si = 0; si < s; si++) {
        const row = (bi * s + si) * h + hi;
        data.set(r.values.subarray(at(si), at(si) + d), row * d * q.terms);
        if (!rotated) continue;
        // The second term quantizes the first's residual at the first's scale (float32 quotient, as the device).
        for (let c = 0; c < d; c++) data[row * 2 * d + d + c] = roundTo(Math.fround(rotated[row * d + c] / scaleOf(si)) - r.values[at(si) + c], 'float8_e4m3');
      }
      for (let blk = 0; blk < blocks; blk++) descale[(bi * h + hi) * blocks + blk] = scaleOf(blk * q.blockRows);
    }
  }
  return new QuantizedTensor(
    Tensor.fromRaw(encode(data, 'float8_e4m3'), [b, s, h, d * q.terms], 'float8_e4m3'),
    Tensor.fromArray(descale, [b, h, blocks], 'float32'),
    q.blockRows,
    q.hadamard ? q.seed : null,
    q.terms,
  );
}
