/**
 * NumPy .npy reading and writing (format versions 1.0, 2.0 and 3.0), limited to the float dtypes
 * flash3 exchanges with Python: float16/32/64 in, float16/32 out.
 *
 * Format reference: numpy/lib/format.py. Output is byte-identical to what `np.save` writes for
 * the same array, so files round-trip through diff-based tooling without churn.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { DTypeError, FormatError, ShapeError } from '../errors.js';
import { float16Bits, fromFloat16Bits } from '../numerics/convert.js';

export type NpyReadDType = 'float16' | 'float32' | 'float64';
export type NpyWriteDType = 'float32' | 'float16';

export interface NpyArray {
  dtype: NpyReadDType;
  shape: number[];
  /** Values in C (row-major) order, whatever order the file stored them in. */
  data: Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ARRAY_ALIGN = 64;
/** np.save leaves room for the growing axis to reach this many digits (in-place appends). */
const GROWTH_AXIS_MAX_DIGITS = 21;
const ACCEPTED = "'<f2', '<f4', '<f8' (any byte order)";
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const ITEM: Record<string, { dtype: NpyReadDType; itemSize: number }> = {
  f2: { dtype: 'float16', itemSize: 2 },
  f4: { dtype: 'float32', itemSize: 4 },
  f8: { dtype: 'float64', itemSize: 8 },
};

function formatError(where: string, message: string, fix?: string): FormatError {
  return new FormatError(`${where}${message}`, fix === undefined ? {} : { fix });
}

// ---------------------------------------------------------------------------------------------
// Header: a Python dict literal. Parsed with a tiny literal reader rather than regexes so key
// order, quoting style and spacing written by other tools (or old numpy, with `2L` ints) all work.

type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

function parsePyLiteral(text: string): PyValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at offset ${i} of header ${JSON.stringify(text.trim())}`);
  };
  const skip = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const value = (): PyValue => {
    skip();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: { [key: string]: PyValue } = {};
      for (;;) {
        skip();
        if (text[i] === '}') return i++, out;
        const key = value();
        if (typeof key !== 'string') fail('expected a string key');
        skip();
        if (text[i++] !== ':') fail("expected ':'");
        out[key as string] = value();
        skip();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') fail("expected ',' or '}'");
      }
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const out: PyValue[] = [];
      for (;;) {
        skip();
        if (text[i] === close) return i++, out;
        out.push(value());
        skip();
        if (text[i] === ',') i++;
        else if (text[i] !== close) fail(`expected ',' or '${close}'`);
      }
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) fail('unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const word = /^[A-Za-z_]\w*|^[-+]?\d+L?/.exec(text.slice(i));
    if (!word) return fail('unexpected character');
    i += word[0].length;
    const w = word[0];
    if (w === 'True') return true;
    if (w === 'False') return false;
    if (w === 'None') return null;
    if (/^[-+]?\d/.test(w)) return Number(w.replace(/L$/, ''));
    return fail(`unexpected name '${w}'`);
  };
  const v = value();
  skip();
  if (i !== text.length) fail('trailing characters');
  return v;
}

function pyRepr(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : JSON.stringify(v);
}

interface Header {
  itemSize: number;
  dtype: NpyReadDType;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
}

function interpretHeader(dict: PyValue, where: string): Header {
  if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) {
    throw formatError(where, `.npy header is not a dict, got ${pyRepr(dict)}`);
  }
  const { descr, fortran_order: fortran, shape } = dict;
  if (descr === undefined || fortran === undefined || shape === undefined) {
    throw formatError(where, `.npy header lacks one of 'descr', 'fortran_order', 'shape': ${pyRepr(dict)}`);
  }
  if (typeof descr !== 'string') {
    throw formatError(
      where,
      `expected a float16/32/64 .npy, got a structured dtype ${pyRepr(descr)}; accepted descr: ${ACCEPTED}`,
      'save a plain float array, e.g. np.save(path, arr.astype(np.float32))',
    );
  }
  const m = /^([<>|=]?)(f[248])$/.exec(descr);
  if (!m) {
    throw formatError(
      where,
      `expected float16/32/64 .npy, got '${descr}'; accepted descr: ${ACCEPTED}`,
      'convert with arr.astype(np.float32) before np.save',
    );
  }
  if (typeof fortran !== 'boolean') {
    throw formatError(where, `.npy header 'fortran_order' must be True or False, got ${pyRepr(fortran)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw formatError(where, `.npy header 'shape' must be a tuple of non-negative ints, got ${pyRepr(shape)}`);
  }
  const order = m[1];
  return {
    ...ITEM[m[2]],
    littleEndian: order === '>' ? false : order === '=' ? HOST_LITTLE_ENDIAN : true,
    fortranOrder: fortran,
    shape: shape as number[],
  };
}

/**
 * Parses a whole .npy file. `source` (a path, say) only prefixes error messages.
 * Throws FormatError for anything that is not a float16/32/64 array stored whole in `buf`.
 */
export function parseNpy(buf: Uint8Array, source?: string): NpyArray {
  const where = source === undefined ? '' : `${source}: `;
  if (buf.length < 10 || MAGIC.some((b, k) => buf[k] !== b)) {
    const head = Array.from(buf.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw formatError(
      where,
      `not a .npy file: expected magic bytes 93 4e 55 4d 50 59 ("\\x93NUMPY"), got ${head || 'an empty file'}`,
      'write the file with numpy.save (not np.savez, pickle or tofile)',
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const major = buf[6];
  const minor = buf[7];
  if (major < 1 || major > 3 || minor !== 0) {
    throw formatError(where, `unsupported .npy format version ${major}.${minor}; accepted: 1.0, 2.0, 3.0`);
  }
  const lenSize = major === 1 ? 2 : 4;
  if (buf.length < 8 + lenSize) throw formatError(where, `.npy file truncated inside its header (${buf.length} bytes)`);
  const headerLen = lenSize === 2 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenSize + headerLen;
  if (buf.length < dataStart) {
    throw formatError(where, `.npy file truncated: header says it ends at byte ${dataStart}, file has ${buf.length} bytes`);
  }
  const headerBytes = buf.subarray(8 + lenSize, dataStart);
  const headerText = major === 3 ? new TextDecoder('utf-8').decode(headerBytes) : latin1(headerBytes);
  let dict: PyValue;
  try {
    dict = parsePyLiteral(headerText);
  } catch (e) {
    throw new FormatError(`${where}malformed .npy header: ${(e as Error).message}`, { cause: e });
  }
  const h = interpretHeader(dict, where);

  const count = h.shape.reduce((p, d) => p * d, 1);
  const need = count * h.itemSize;
  if (buf.length - dataStart < need) {
    throw formatError(
      where,
      `.npy data truncated: shape (${h.shape.join(', ')}) of ${h.dtype} needs ${need} bytes, file has ${buf.length - dataStart}`,
      'the file was cut short; write it again',
    );
  }

  const raw = new Float64Array(count);
  const le = h.littleEndian;
  for (let k = 0, off = dataStart; k < count; k++, off += h.itemSize) {
    raw[k] =
      h.itemSize === 2 ? fromFloat16Bits(view.getUint16(off, le)) : h.itemSize === 4 ? view.getFloat32(off, le) : view.getFloat64(off, le);
  }
  return { dtype: h.dtype, shape: h.shape.slice(), data: h.fortranOrder ? fortranToC(raw, h.shape) : raw };
}

// TextDecoder('latin1') is really windows-1252, which differs from latin-1 in 0x80..0x9f.
function latin1(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** Reorders column-major values (first index fastest) into row-major order. */
function fortranToC(src: Float64Array, shape: number[]): Float64Array {
  const n = shape.length;
  const out = new Float64Array(src.length);
  if (n < 2) return src;
  const fStride = new Array<number>(n);
  fStride[0] = 1;
  for (let d = 1; d < n; d++) fStride[d] = fStride[d - 1] * shape[d - 1];
  // Walk the C-order output with an odometer over the multi-index, tracking the Fortran offset.
  const idx = new Array<number>(n).fill(0);
  let off = 0;
  for (let k = 0; k < out.length; k++) {
    out[k] = src[off];
    for (let d = n - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) {
        off += fStride[d];
        break;
      }
      off -= (shape[d] - 1) * fStride[d];
      idx[d] = 0;
    }
  }
  return out;
}

function headerFor(dtype: NpyWriteDType, shape: number[]): Uint8Array {
  const descr = dtype === 'float32' ? '<f4' : '<f2';
  const shapeRepr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  if (shape.length > 0) dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  // Same rule as numpy's _wrap_header: pad with spaces plus '\n' to a multiple of 64, and an
  // already aligned header still gets a full 64 bytes of padding.
  const hlen = dict.length + 1;
  const padFor = (prefix: number) => ARRAY_ALIGN - ((prefix + hlen) % ARRAY_ALIGN);
  // Version 1.0 stores the header length in 16 bits; numpy moves to 2.0 only when that overflows.
  const version = hlen + padFor(10) <= 0xffff ? 1 : 2;
  const prefix = version === 1 ? 10 : 12;
  const padLen = padFor(prefix);
  const text = dict + ' '.repeat(padLen) + '\n';
  const out = new Uint8Array(prefix + text.length);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, text.length, true);
  else view.setUint32(8, text.length, true);
  for (let k = 0; k < text.length; k++) out[prefix + k] = text.charCodeAt(k);
  return out;
}

/** Encodes C-order `data` of the given shape as a .npy file, exactly as np.save would. */
export function serializeNpy(data: Float64Array | Float32Array, shape: number[], dtype: NpyWriteDType): Uint8Array {
  if (dtype !== 'float32' && dtype !== 'float16') {
    throw new DTypeError('serializeNpy writes float32 or float16 only', {
      param: 'dtype',
      value: dtype,
      fix: "pass 'float32' (lossless for float32 data) or 'float16'",
    });
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ShapeError('shape must be an array of non-negative integers', { param: 'shape', value: shape });
  }
  const count = shape.reduce((p, d) => p * d, 1);
  if (count !== data.length) {
    throw new ShapeError(`shape holds ${count} elements but data has ${data.length}`, {
      param: 'shape',
      value: shape,
      fix: 'pass the shape of the data, in C (row-major) order',
    });
  }
  const header = headerFor(dtype, shape);
  const itemSize = dtype === 'float32' ? 4 : 2;
  const out = new Uint8Array(header.length + count * itemSize);
  out.set(header, 0);
  const view = new DataView(out.buffer);
  for (let k = 0, off = header.length; k < count; k++, off += itemSize) {
    if (itemSize === 4) view.setFloat32(off, data[k], true);
    else view.setUint16(off, float16Bits(data[k]), true);
  }
  return out;
}

export function readNpy(path: string): NpyArray {
  return parseNpy(readFileSync(path), path);
}

export function writeNpy(path: string, data: Float64Array | Float32Array, shape: number[], dtype: NpyWriteDType): void {
  writeFileSync(path, serializeNpy(data, shape, dtype));
}
