/**
 * Bit-exact conversions between float64 and the narrow formats flash3 stores, with IEEE
 * round-to-nearest-even and subnormals, so CPU emulation rounds exactly as the GPU casts do.
 */
import type { DType } from '../dtype.js';
import { DTypeError } from '../errors.js';

const pow2 = (e: number): number => Math.pow(2, e);

function roundHalfEven(m: number): number {
  const f = Math.floor(m);
  const d = m - f; // exact: m has at most 53 significant bits
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Sign-less code of a finite a >= 0 in a format with `manBits` fraction bits and `bias`,
 * rounded to nearest even. Rounding up out of the mantissa carries into the exponent, which is
 * exactly the next code, so callers only compare against their largest finite code. Arithmetic
 * instead of shifts keeps huge inputs from wrapping around 32 bits.
 */
function magnitudeCode(a: number, manBits: number, bias: number): number {
  if (a === 0) return 0;
  const minExp = 1 - bias;
  let e = Math.floor(Math.log2(a));
  // Math.log2 may be off by one right next to a power of two.
  if (pow2(e) > a) e--;
  else if (pow2(e + 1) <= a) e++;
  if (e < minExp) return roundHalfEven(a * pow2(manBits - minExp));
  const m = roundHalfEven(a * pow2(manBits - e));
  return (e + bias) * pow2(manBits) + m - pow2(manBits);
}

const isNegative = (x: number): boolean => x < 0 || (x === 0 && 1 / x < 0);

// ---- float16 (IEEE binary16) ----

export function float16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = isNegative(x) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  const code = magnitudeCode(a, 10, 15);
  return sign | (code > 0x7bff ? 0x7c00 : code);
}

function decodeFloat16(b: number): number {
  const sign = b & 0x8000 ? -1 : 1;
  const exp = (b >> 10) & 0x1f;
  const man = b & 0x3ff;
  if (exp === 0x1f) return man ? NaN : sign * Infinity;
  if (exp === 0) return sign * man * pow2(-24);
  return sign * (1024 + man) * pow2(exp - 25);
}

let float16Table: Float64Array | undefined;
function float16Values(): Float64Array {
  if (!float16Table) {
    float16Table = new Float64Array(65536);
    for (let b = 0; b < 65536; b++) float16Table[b] = decodeFloat16(b);
  }
  return float16Table;
}

export function fromFloat16Bits(b: number): number {
  return float16Values()[b & 0xffff];
}

// ---- bfloat16 (top half of float32) ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bits of x rounded to float32, as an unsigned 32-bit integer. */
export function float32Bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

export function fromFloat32Bits(b: number): number {
  u32[0] = b >>> 0;
  return f32[0];
}

/** Rounds through float32 first, as a float32 -> bfloat16 cast on the GPU sees the value. */
export function bfloat16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  f32[0] = x;
  const u = u32[0];
  // Adding 0x7fff plus the lowest kept bit rounds half to even; a carry out of the mantissa
  // lands in the exponent, which also turns overflow into infinity.
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function fromBfloat16Bits(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

// ---- OCP float8 e4m3fn: no infinities, 0x7f/0xff are NaN, max 448 ----

const E4M3_MAX_CODE = 0x7e;

/** Without saturation a value whose rounding exceeds 448 (|x| > 464) or an infinity becomes NaN. */
export function e4m3Bits(x: number, saturate = true): number {
  if (Number.isNaN(x)) return 0x7f;
  const sign = isNegative(x) ? 0x80 : 0;
  const a = Math.abs(x);
  const code = a === Infinity ? Infinity : magnitudeCode(a, 3, 7);
  if (code > E4M3_MAX_CODE) return saturate ? sign | E4M3_MAX_CODE : 0x7f;
  return sign | code;
}

function decodeE4m3(b: number): number {
  if ((b & 0x7f) === 0x7f) return NaN;
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const man = b & 7;
  if (exp === 0) return sign * man * pow2(-9);
  return sign * (8 + man) * pow2(exp - 10);
}

// ---- OCP float8 e5m2: IEEE-like, inf 0x7c, NaN 0x7d..0x7f, max 57344 ----

const E5M2_MAX_CODE = 0x7b;

/** NaN encodes as 0x7e, the top byte of the float16 NaN 0x7e00 (e5m2 is float16's top byte). */
export function e5m2Bits(x: number, saturate = true): number {
  if (Number.isNaN(x)) return 0x7e;
  const sign = isNegative(x) ? 0x80 : 0;
  const a = Math.abs(x);
  const code = a === Infinity ? Infinity : magnitudeCode(a, 2, 15);
  if (code > E5M2_MAX_CODE) return sign | (saturate ? E5M2_MAX_CODE : 0x7c);
  return sign | code;
}

function decodeE5m2(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 2) & 0x1f;
  const man = b & 3;
  if (exp === 0x1f) return man ? NaN : sign * Infinity;
  if (exp === 0) return sign * man * pow2(-16);
  return sign * (4 + man) * pow2(exp - 17);
}

const E4M3_TABLE = Float64Array.from({ length: 256 }, (_, b) => decodeE4m3(b));
const E5M2_TABLE = Float64Array.from({ length: 256 }, (_, b) => decodeE5m2(b));

export function fromE4m3Bits(b: number): number {
  return E4M3_TABLE[b & 0xff];
}

export function fromE5m2Bits(b: number): number {
  return E5M2_TABLE[b & 0xff];
}

// ---- rounding and bulk storage ----

/** x after a store/load round trip through `dtype`; float8 saturates, as scaled quantization assumes. */
export function roundTo(x: number, dtype: DType): number {
  switch (dtype) {
    case 'float64':
      return x;
    case 'float32':
      return Math.fround(x);
    case 'float16':
      return fromFloat16Bits(float16Bits(x));
    case 'bfloat16':
      return fromBfloat16Bits(bfloat16Bits(x));
    case 'float8_e4m3':
      return E4M3_TABLE[e4m3Bits(x)];
    case 'float8_e5m2':
      return E5M2_TABLE[e5m2Bits(x)];
    default:
      throw unknownDType(dtype);
  }
}

/** Rounds every element of `a` in place and returns `a`. */
export function roundArrayTo(a: Float64Array, dtype: DType): Float64Array {
  switch (dtype) {
    case 'float64':
      return a;
    case 'float32':
    case 'bfloat16':
      a.set(decode(encode(a, dtype), dtype));
      return a;
    default:
      for (let i = 0; i < a.length; i++) a[i] = roundTo(a[i], dtype);
      return a;
  }
}

export type RawStorage = Float64Array | Float32Array | Uint16Array | Uint8Array;

/** The typed array that holds each dtype's raw values (bit patterns for the narrow formats). */
export const STORAGE_TYPES: Record<DType, { new (n: number): RawStorage; name: string }> = {
  float64: Float64Array,
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  float8_e4m3: Uint8Array,
  float8_e5m2: Uint8Array,
};

/** Raw storage of `values` in `dtype`: floats for float64/32, bit patterns for the rest. */
export function encode(values: Float64Array, dtype: DType): RawStorage {
  const n = values.length;
  switch (dtype) {
    case 'float64':
      return Float64Array.from(values);
    case 'float32':
      return Float32Array.from(values);
    case 'bfloat16': {
      const asF32 = Float32Array.from(values);
      const bits = new Uint32Array(asF32.buffer);
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const u = bits[i];
        const isNaN = (u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0;
        out[i] = isNaN ? 0x7fc0 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
      }
      return out;
    }
    case 'float16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = float16Bits(values[i]);
      return out;
    }
    case 'float8_e4m3': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = e4m3Bits(values[i]);
      return out;
    }
    case 'float8_e5m2': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = e5m2Bits(values[i]);
      return out;
    }
    default:
      throw unknownDType(dtype);
  }
}

/** Values held by raw storage of `dtype` (the inverse of encode). */
export function decode(raw: RawStorage, dtype: DType): Float64Array {
  const expected = STORAGE_TYPES[dtype];
  if (expected === undefined) throw unknownDType(dtype);
  if (!(raw instanceof expected)) {
    throw new DTypeError(`raw storage for ${dtype} must be a ${expected.name}, got ${raw.constructor.name}`, {
      param: 'raw',
      fix: `pass the array encode(values, '${dtype}') returned`,
    });
  }
  const n = raw.length;
  switch (dtype) {
    case 'float64':
    case 'float32':
      return Float64Array.from(raw);
    case 'bfloat16': {
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = raw[i] << 16;
      return Float64Array.from(new Float32Array(bits.buffer));
    }
    case 'float16':
      return gather(raw, float16Values());
    case 'float8_e4m3':
      return gather(raw, E4M3_TABLE);
    case 'float8_e5m2':
      return gather(raw, E5M2_TABLE);
  }
}



function gather(codes: RawStorage, table: Float64Array): Float64Array {
  const out = new Float64Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = table[codes[i]];
  return out;
}

function unknownDType(dtype: unknown): DTypeError {
  return new DTypeError('unknown dtype', { param: 'dtype', value: dtype, fix: 'use one of DTYPES from dtype.ts' });
}
