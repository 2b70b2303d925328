/**
 * TMA descriptors (CUtensorMap) for tiled loads and stores, encoded on the host by the driver and
 * passed to kernels as a 128-byte `__grid_constant__` argument. The documented constraints are
 * checked here first so a bad layout gets a named error instead of CUDA_ERROR_INVALID_VALUE.
 */
import { DTypeError, OptionError, StrideError } from '../errors.js';
import type { CudaContext } from './context.js';
import { check, hex } from './driver.js';

export type TensorMapDType = 'float16' | 'bfloat16' | 'float8_e4m3' | 'float8_e5m2' | 'float32';
export type TensorMapSwizzle = 'none' | '32B' | '64B' | '128B';
export type TensorMapL2Promotion = 'none' | '64B' | '128B' | '256B';

export interface TiledTensorMapOptions {
  dtype: TensorMapDType;
  /** Device address of element 0; a multiple of 16. */
  globalAddress: bigint;
  /** Elements per dimension, innermost first; 1 to 5 dimensions. */
  globalDims: number[];
  /** Byte strides of dimensions 1.. (the innermost is contiguous), each a multiple of 16. */
  globalStridesBytes: number[];
  /** Elements per dimension of the box one TMA copy moves, innermost first, each at most 256. */
  boxDims: number[];
  /** Traversal step per dimension (1..8); defaults to all 1. */
  elementStrides?: number[];
  /** Shared-memory swizzle; the box's inner row must fit its span. */
  swizzle: TensorMapSwizzle;
  interleave?: 'none';
  /** L2 sector promotion; defaults to 'none'. */
  l2Promotion?: TensorMapL2Promotion;
  /** Out-of-bounds elements read as zero (default) or as a NaN that makes FMA produce zero. */
  oobFill?: 'zero' | 'nan';
}

/** sizeof(CUtensorMap). */
export const TENSOR_MAP_BYTES = 128;
/** The driver requires 64; cuda.h declares CUtensorMap alignas(128), so the stricter one is used. */
const TENSOR_MAP_ALIGN = 128;

// CUtensorMapDataType: FP8 has no enum of its own; TMA only moves bytes, so it is UINT8.
const DATA_TYPES: Record<TensorMapDType, { code: number; bytes: number; float: boolean }> = {
  float16: { code: 6, bytes: 2, float: true },
  bfloat16: { code: 9, bytes: 2, float: true },
  float32: { code: 7, bytes: 4, float: true },
  float8_e4m3: { code: 0, bytes: 1, float: false },
  float8_e5m2: { code: 0, bytes: 1, float: false },
};
const SWIZZLES: Record<TensorMapSwizzle, { code: number; span: number }> = {
  none: { code: 0, span: Infinity },
  '32B': { code: 1, span: 32 },
  '64B': { code: 2, span: 64 },
  '128B': { code: 3, span: 128 },
};
const L2_PROMOTIONS: Record<TensorMapL2Promotion, number> = { none: 0, '64B': 1, '128B': 2, '256B': 3 };
const OOB_FILLS = { zero: 0, nan: 1 } as const;
const INTERLEAVE_NONE = 0;

const MAX_RANK = 5;
const MAX_BOX = 256;
const MAX_ELEMENT_STRIDE = 8;
const MAX_GLOBAL_DIM = 2 ** 32;
const MAX_GLOBAL_STRIDE = 2 ** 40;

function checkIntegers(param: string, values: unknown, length: number, min: number, max: number, what: string): number[] {
  if (!Array.isArray(values) || values.length !== length) {
    throw new OptionError(`${param} must have ${length} entries (one per dimension${param === 'globalStridesBytes' ? ' after the first' : ''})`, {
      param,
      value: values,
    });
  }
  values.forEach((v, i) => {
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new OptionError(`${what} must be an integer in [${min}, ${max}]`, { param: `${param}[${i}]`, value: v });
    }
  });
  return values as number[];
}

function pick<K extends string, V>(table: Record<K, V>, param: string, value: unknown): V {
  if (typeof value !== 'string' || !Object.prototype.hasOwnProperty.call(table, value)) {
    throw new OptionError(`unknown ${param}`, { param, value, fix: `use one of ${Object.keys(table).map((k) => `'${k}'`).join(', ')}` });
  }
  return table[value as K];
}

interface Encoding {
  dataType: number;
  rank: number;
  globalDim: BigUint64Array;
  globalStrides: BigUint64Array;
  boxDim: Uint32Array;
  elementStrides: Uint32Array;
  swizzle: number;
  l2Promotion: number;
  oobFill: number;
}

function validate(opts: TiledTensorMapOptions): Encoding {
  if (typeof opts.dtype !== 'string' || !Object.prototype.hasOwnProperty.call(DATA_TYPES, opts.dtype)) {
    throw new DTypeError('TMA descriptors support float16, bfloat16, float8_e4m3, float8_e5m2 and float32', {
      param: 'dtype',
      value: opts.dtype,
    });
  }
  const type = DATA_TYPES[opts.dtype];

  const rank = Array.isArray(opts.globalDims) ? opts.globalDims.length : 0;
  if (rank < 1 || rank > MAX_RANK) {
    throw new OptionError(`a tensor map has 1 to ${MAX_RANK} dimensions`, { param: 'globalDims', value: opts.globalDims });
  }
  const dims = checkIntegers('globalDims', opts.globalDims, rank, 1, MAX_GLOBAL_DIM, 'a dimension');

  if (typeof opts.globalAddress !== 'bigint' || opts.globalAddress <= 0n || opts.globalAddress % 16n !== 0n) {
    throw new StrideError('TMA needs a global address that is a nonzero multiple of 16 bytes', {
      param: 'globalAddress',
      value: typeof opts.globalAddress === 'bigint' ? hex(opts.globalAddress) : opts.globalAddress,
      fix: 'start the tensor at a 16-byte-aligned offset into its allocation (allocations are 256-byte aligned)',
    });
  }

  const strides = opts.globalStridesBytes;
  if (!Array.isArray(strides) || strides.length !== rank - 1) {
    throw new OptionError(`globalStridesBytes must have ${rank - 1} entries (one per dimension after the first)`, {
      param: 'globalStridesBytes',
      value: strides,
    });
  }
  strides.forEach((s, i) => {
    const param = `globalStridesBytes[${i}]`;
    if (!Number.isInteger(s) || s <= 0) throw new StrideError('a stride must be a positive integer of bytes', { param, value: s });
    if (s % 16 !== 0) {
      throw new StrideError('TMA needs every stride to be a multiple of 16 bytes', {
        param,
        value: s,
        fix: `pad that dimension so its stride is a multiple of 16 bytes (a multiple of ${16 / type.bytes} ${opts.dtype} elements)`,
      });
    }
    if (s >= MAX_GLOBAL_STRIDE) {
      throw new StrideError('TMA strides must be below 2^40 bytes', { param, value: s, fix: 'split the tensor into smaller pieces' });
    }
  });

  const box = checkIntegers('boxDims', opts.boxDims, rank, 1, MAX_BOX, 'a box dimension');
  const innerBoxBytes = box[0] * type.bytes;
  if (innerBoxBytes % 16 !== 0) {
    throw new OptionError(`the box's inner row must be a multiple of 16 bytes, got ${innerBoxBytes}`, {
      param: 'boxDims[0]',
      value: box[0],
      fix: `use a multiple of ${16 / type.bytes} elements`,
    });
  }
  const elementStrides = checkIntegers('elementStrides', opts.elementStrides ?? new Array<number>(rank).fill(1), rank, 1, MAX_ELEMENT_STRIDE, 'an element stride');

  if (opts.interleave !== undefined && opts.interleave !== 'none') {
    throw new OptionError('only non-interleaved tensor maps are supported', { param: 'interleave', value: opts.interleave, fix: "use 'none'" });
  }
  const swizzle = pick(SWIZZLES, 'swizzle', opts.swizzle);
  if (innerBoxBytes > swizzle.span) {
    throw new OptionError(`the box's inner row (${innerBoxBytes} bytes) is wider than the ${opts.swizzle} swizzle span`, {
      param: 'boxDims[0]',
      value: box[0],
      fix: `use at most ${swizzle.span / type.bytes} elements, or a wider swizzle`,
    });
  }
  const l2Promotion = pick(L2_PROMOTIONS, 'l2Promotion', opts.l2Promotion ?? 'none');
  const oobFill = pick(OOB_FILLS, 'oobFill', opts.oobFill ?? 'zero');
  if (oobFill === OOB_FILLS.nan && !type.float) {
    throw new OptionError(`NaN out-of-bounds fill needs a floating-point TMA type; ${opts.dtype} is moved as bytes`, {
      param: 'oobFill',
      value: opts.oobFill,
      fix: "use 'zero'",
    });
  }

  return {
    dataType: type.code,
    rank,
    globalDim: BigUint64Array.from(dims, BigInt),
    // The driver reads rank-1 strides; one spare entry keeps the pointer valid for rank 1.
    globalStrides: BigUint64Array.from(strides.length > 0 ? strides : [0], BigInt),
    boxDim: Uint32Array.from(box),
    elementStrides: Uint32Array.from(elementStrides),
    swizzle: swizzle.code,
    l2Promotion,
    oobFill,
  };
}

/** The 128 bytes of a CUtensorMap for a tiled TMA view of a tensor; pass as `{ kind: 'bytes', value, align: 64 }`. */
export function encodeTensorMapTiled(ctx: CudaContext, opts: TiledTensorMapOptions): Uint8Array {
  const e = validate(opts);
  const koffi = ctx.driver.koffi;
  const raw = koffi.alloc('uint8_t', TENSOR_MAP_BYTES + TENSOR_MAP_ALIGN) as bigint;
  try {
    const pad = (TENSOR_MAP_ALIGN - Number(raw % BigInt(TENSOR_MAP_ALIGN))) % TENSOR_MAP_ALIGN;
    ctx.makeCurrent();
    const call =
      `cuTensorMapEncodeTiled(dtype=${opts.dtype}, address=${hex(opts.globalAddress)}, dims=[${opts.globalDims}], ` +
      `strides=[${opts.globalStridesBytes}], box=[${opts.boxDims}], swizzle=${opts.swizzle})`;
    check(
      call,
      ctx.driver.cuTensorMapEncodeTiled(
        raw + BigInt(pad),
        e.dataType,
        e.rank,
        opts.globalAddress,
        e.globalDim,
        e.globalStrides,
        e.boxDim,
        e.elementStrides,
        INTERLEAVE_NONE,
        e.swizzle,
        e.l2Promotion,
        e.oobFill,
      ),
    );
    return new Uint8Array(koffi.view(raw, TENSOR_MAP_BYTES + TENSOR_MAP_ALIGN).slice(pad, pad + TENSOR_MAP_BYTES));
  } finally {
    koffi.free(raw);
  }
}
