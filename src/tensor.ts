/**
 * A typed, strided n-d array that lives on the host or on a CUDA device, with explicit
 * location and explicit dispose() (after onnxruntime-web's Tensor). GPU memory is not
 * garbage-collected promptly, so ownership is spelled out: every tensor returned by a method
 * is the caller's to dispose, and storage shared between views is freed when the last tensor
 * over it is disposed (or, as a safety net, collected).
 */
import { bytesPerElement, isDType, type DType } from './dtype.js';
import { CudaUnavailableError, DTypeError, DisposedError, OptionError, ShapeError, StrideError, UnsupportedError } from './errors.js';
import { readNpy, writeNpy, type NpyWriteDType } from './io/npy.js';
import { decode, encode, STORAGE_TYPES, type RawStorage } from './numerics/convert.js';
import { randn } from './numerics/random.js';

export type Location = 'cpu' | 'cuda';

/** Host storage: float64/float32 values, or the bit patterns of the narrower formats. */
export type CpuStorage = RawStorage;

/** Device memory. `release` is present only when the storage owns the memory it points at. */
export interface DeviceStorage {
  ptr: bigint;
  bytes: number;
  device: number;
  release?: () => void;
}

/**
 * How tensors reach the device. The CUDA backend registers one when it loads, which keeps this
 * module free of driver bindings for CPU-only users.
 */
export interface DeviceTransfer {
  alloc(bytes: number, device: number): DeviceStorage;
  upload(dst: DeviceStorage, byteOffset: number, src: ArrayBufferView): void;
  download(src: DeviceStorage, byteOffset: number, dst: ArrayBufferView): void;
}

let transfer: DeviceTransfer | null = null;

/** Install (or, with null, remove) the device transfer used by cuda(), cpu() and empty(..., 'cuda'). */
export function registerDeviceTransfer(t: DeviceTransfer | null): void {
  transfer = t;
}

function requireTransfer(what: string): DeviceTransfer {
  if (transfer) return transfer;
  throw new CudaUnavailableError(`${what} needs the CUDA backend, which is not loaded`, {
    fix: 'run on a machine with an NVIDIA driver and Hopper GPU where flash3 registers its CUDA backend, or keep tensors on the CPU',
  });
}

/** Storage shared by a tensor and its views; the last reference released frees it. */
class StorageHandle {
  private refs = 0;
  constructor(
    readonly storage: CpuStorage | DeviceStorage,
    private onLastRelease?: () => void,
  ) {}

  get ownsDeviceMemory(): boolean {
    return !ArrayBuffer.isView(this.storage) && this.storage.release !== undefined;
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs > 0 || !this.onLastRelease) return;
    const last = this.onLastRelease;
    this.onLastRelease = undefined;
    last();
  }
}

/** Frees device memory whose tensors were dropped without dispose(); not a substitute for it. */
const leaked = new FinalizationRegistry<StorageHandle>((handle) => {
  try {
    handle.release();
  } catch {
    // A finalizer has nobody to report to, and throwing here would crash the process.
  }
});


function checkDType(dtype: unknown, param: string): asserts dtype is DType {
  if (!isDType(dtype)) {
    throw new DTypeError('unknown dtype', { param, value: dtype, fix: 'use one of float64, float32, float16, bfloat16, float8_e4m3, float8_e5m2' });
  }
}

function checkShape(shape: unknown, param: string): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ShapeError('shape must be an array of non-negative integers', { param, value: shape, fix: 'pass e.g. [batch, seqlen, heads, headDim]' });
  }
  return [...shape];
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function packedStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= Math.max(shape[i], 1);
  }
  return strides;
}

/** Index of the last element a layout touches, relative to its offset. */
function extent(shape: readonly number[], strides: readonly number[]): number {
  let e = 0;
  for (let i = 0; i < shape.length; i++) e += (shape[i] - 1) * strides[i];
  return e;
}

function checkLayout(shape: readonly number[], strides: unknown, offset: unknown, capacity: number, param: string): number[] {
  if (!Array.isArray(strides) || strides.length !== shape.length || !strides.every((s) => Number.isSafeInteger(s) && s >= 0)) {
    throw new StrideError(`strides must be ${shape.length} non-negative integers, one per dimension of shape [${shape.join(', ')}]`, {
      param: `${param}.strides`,
      value: strides,
      fix: `pass strides in elements, e.g. [${packedStrides(shape).join(', ')}] for a packed layout`,
    });
  }
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
    throw new StrideError('offset must be a non-negative integer (in elements)', { param: `${param}.offset`, value: offset, fix: 'pass an element offset into the storage' });
  }
  const numel = product(shape);
  if (numel === 0) return [...strides];
  strides.forEach((s, i) => {
    // A zero stride on a real dimension aliases elements, which a kernel writing outputs would race on.
    if (s === 0 && shape[i] > 1) {
      throw new StrideError(`stride of dimension ${i} is 0 but the dimension has size ${shape[i]}`, {
        param: `${param}.strides[${i}]`,
        value: 0,
        fix: 'give every dimension of size > 1 a positive stride; copy the data to broadcast it',
      });
    }
  });
  const last = shape.length - 1;
  if (last >= 0 && strides[last] !== 1) {
    throw new StrideError(`the last dimension must be contiguous (stride 1), got stride ${strides[last]}`, {
      param: `${param}.strides[${last}]`,
      value: strides[last],
      fix: 'call .contiguous() / pass a view whose last dimension is contiguous',
    });
  }
  const end = (offset as number) + extent(shape, strides);
  if (end >= capacity) {
    throw new StrideError(`layout addresses element ${end} but the storage holds ${capacity} elements`, {
      param: `${param}.strides`,
      value: strides,
      fix: 'check shape, strides and offset against the size of the underlying buffer',
    });
  }
  return [...strides];
}

/** Copy a strided layout of `src` into `dst` in row-major logical order. */
function gather(src: ArrayLike<number>, base: number, shape: readonly number[], strides: readonly number[], dst: { [i: number]: number }): void {
  const n = product(shape);
  if (n === 0) return;
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[base];
    return;
  }
  const inner = shape[rank - 1];
  const innerStride = strides[rank - 1];
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < n; ) {
    for (let j = 0; j < inner; j++) dst[o++] = src[base + j * innerStride];
    for (let d = rank - 2; d >= 0; d--) {
      base += strides[d];
      if (++idx[d] < shape[d]) break;
      base -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

interface Init {
  dtype: DType;
  shape: number[];
  strides: number[];
  offset: number;
  location: Location;
  handle: StorageHandle;
}

export interface RawLayout {
  strides?: readonly number[];
  offset?: number;
}

export interface RandnOptions {
  dtype?: DType;
  seed?: number;
  std?: number;
  mean?: number;
}

export interface DevicePointerOptions {
  strides?: readonly number[];
  device?: number;
  /** Called once when the last tensor over this memory is disposed; flash3 never frees it. */
  onDispose?: () => void;
}

export class Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** In elements. */
  readonly strides: readonly number[];
  /** In elements, from the start of the storage. */
  readonly offset: number;
  readonly location: Location;
  /** CUDA device ordinal; -1 for host tensors. */
  readonly device: number;
  readonly numel: number;
  private handle: StorageHandle | null;

  private constructor(init: Init) {
    this.dtype = init.dtype;
    this.shape = Object.freeze(init.shape);
    this.strides = Object.freeze(init.strides);
    this.offset = init.offset;
    this.location = init.location;
    this.numel = product(init.shape);
    this.handle = init.handle;
    const s = init.handle.storage;
    this.device = ArrayBuffer.isView(s) ? -1 : s.device;
    init.handle.retain();
    if (init.handle.ownsDeviceMemory) leaked.register(this, init.handle, this);
  }

  // ---- construction ----

  /** Values rounded to `dtype` (round-to-nearest-even), packed row-major. */
  static fromArray(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'float32'): Tensor {
    checkDType(dtype, 'dtype');
    const dims = checkShape(shape, 'shape');
    if (values.length !== product(dims)) {
      throw new ShapeError(`${values.length} values do not fill shape [${dims.join(', ')}] (${product(dims)} elements)`, {
        param: 'values.length',
        value: values.length,
        fix: 'pass exactly one value per element of shape',
      });
    }
    const raw = encode(values instanceof Float64Array ? values : Float64Array.from(values), dtype);
    return Tensor.host(raw, dims, packedStrides(dims), 0, dtype);
  }

  /** Zero-copy over `raw`, which must be the storage type of `dtype` (Uint16Array bits for bfloat16, ...). */
  static fromRaw(raw: CpuStorage, shape: readonly number[], dtype: DType, layout: RawLayout = {}): Tensor {
    checkDType(dtype, 'dtype');
    const expected = STORAGE_TYPES[dtype];
    if (!(raw instanceof expected)) {
      const got = ArrayBuffer.isView(raw) ? raw.constructor.name : typeof raw;
      throw new DTypeError(`${dtype} is stored as a ${expected.name}, got a ${got}`, {
        param: 'raw',
        fix: `pass a ${expected.name}${expected === Float64Array || expected === Float32Array ? '' : ` of ${dtype} bit patterns`}, or use Tensor.fromArray(values, shape, '${dtype}') to convert numbers`,
      });
    }
    const dims = checkShape(shape, 'shape');
    const strides = checkLayout(dims, layout.strides ?? packedStrides(dims), layout.offset ?? 0, raw.length, 'layout');
    return Tensor.host(raw, dims, strides, layout.offset ?? 0, dtype);
  }

  /** Normal samples, deterministic in `seed`, rounded to `dtype`. */
  static randn(shape: readonly number[], options: RandnOptions = {}): Tensor {
    const { dtype = 'float32', seed = 0, std = 1, mean = 0 } = options;
    checkDType(dtype, 'options.dtype');
    const dims = checkShape(shape, 'shape');
    return Tensor.host(encode(randn(product(dims), seed, std, mean), dtype), dims, packedStrides(dims), 0, dtype);
  }

  /** Zeros on the host; uninitialised memory on a device. */
  static empty(shape: readonly number[], dtype: DType, location: Location = 'cpu', device = 0): Tensor {
    checkDType(dtype, 'dtype');
    const dims = checkShape(shape, 'shape');
    if (location === 'cpu') return Tensor.host(new STORAGE_TYPES[dtype](product(dims)), dims, packedStrides(dims), 0, dtype);
    if (location !== 'cuda') throw new OptionError('unknown location', { param: 'location', value: location, fix: "use 'cpu' or 'cuda'" });
    return Tensor.fromDeviceStorage(allocDevice(requireTransfer('Tensor.empty(..., "cuda")'), product(dims) * bytesPerElement(dtype), device), dims, dtype);
  }

  /** A .npy file (float16/32/64), converted to `dtype` (default: the file's). */
  static fromNpy(path: string, dtype?: DType): Tensor {
    const npy = readNpy(path);
    return Tensor.fromArray(npy.data, npy.shape, dtype ?? npy.dtype);
  }

  /** Takes ownership of `storage` (its release() runs when the last tensor over it is disposed); if this throws, the caller still owns it. */
  static fromDeviceStorage(storage: DeviceStorage, shape: readonly number[], dtype: DType, layout: RawLayout = {}): Tensor {
    checkDType(dtype, 'dtype');
    const dims = checkShape(shape, 'shape');
    const bpe = bytesPerElement(dtype);
    const offset = layout.offset ?? 0;
    const strides = checkLayout(dims, layout.strides ?? packedStrides(dims), offset, Math.floor(storage.bytes / bpe), 'layout');
    return new Tensor({ dtype, shape: dims, strides, offset, location: 'cuda', handle: new StorageHandle(storage, storage.release) });
  }

  /** Zero-copy wrap of device memory owned elsewhere; dispose() calls onDispose and never frees. */
  static fromDevicePointer(ptr: bigint, shape: readonly number[], dtype: DType, options: DevicePointerOptions = {}): Tensor {
    checkDType(dtype, 'dtype');
    const dims = checkShape(shape, 'shape');
    const numel = product(dims);
    if (typeof ptr !== 'bigint' || ptr < 0n || (ptr === 0n && numel > 0)) {
      throw new OptionError('device pointer must be a non-null bigint address', { param: 'ptr', value: ptr, fix: 'pass the address as a bigint, e.g. BigInt(tensor.data_ptr())' });
    }
    const device = options.device ?? 0;
    if (!Number.isSafeInteger(device) || device < 0) {
      throw new OptionError('device must be a non-negative integer', { param: 'options.device', value: device, fix: 'pass the CUDA ordinal, e.g. 0' });
    }
    const strides = checkLayout(dims, options.strides ?? packedStrides(dims), 0, Infinity, 'options');
    const bytes = numel === 0 ? 0 : (extent(dims, strides) + 1) * bytesPerElement(dtype);
    const storage: DeviceStorage = { ptr, bytes, device };
    return new Tensor({ dtype, shape: dims, strides, offset: 0, location: 'cuda', handle: new StorageHandle(storage, options.onDispose) });
  }

  private static host(raw: CpuStorage, shape: number[], strides: number[], offset: number, dtype: DType): Tensor {
    return new Tensor({ dtype, shape, strides, offset, location: 'cpu', handle: new StorageHandle(raw) });
  }

  // ---- state ----

  get disposed(): boolean {
    return this.handle === null;
  }

  /** Host typed array or device memory; shared with views. */
  get storage(): CpuStorage | DeviceStorage {
    return this.live().storage;
  }

  /** The host typed array (cpu tensors only); element `offset` is where this tensor starts. */
  get raw(): CpuStorage {
    const s = this.storage;
    if (ArrayBuffer.isView(s)) return s;
    throw new UnsupportedError(`${this} has no host storage`, { param: 'tensor.raw', fix: 'call .cpu() first' });
  }

  /** Address of this tensor's first element (cuda tensors only). */
  get devicePointer(): bigint {
    const s = this.storage;
    if (!ArrayBuffer.isView(s)) return s.ptr + BigInt(this.offset * bytesPerElement(this.dtype));
    throw new UnsupportedError(`${this} has no device pointer`, { param: 'tensor.devicePointer', fix: 'call .cuda() first' });
  }

  isContiguous(): boolean {
    if (this.numel === 0) return true;
    const packed = packedStrides(this.shape);
    return this.shape.every((d, i) => d === 1 || this.strides[i] === packed[i]);
  }

  /**
   * A tensor over the same storage (as torch.as_strided): `offset` is absolute, in elements.
   * Strides default to packed row-major, which only means "reshape" for a contiguous tensor.
   */
  view(shape: readonly number[], strides?: readonly number[], offset: number = this.offset): Tensor {
    const handle = this.live();
    const dims = checkShape(shape, 'shape');
    if (strides === undefined && !this.isContiguous()) {
      throw new StrideError(`cannot reshape non-contiguous ${this} without explicit strides`, {
        param: 'strides',
        fix: 'call .contiguous() first, or pass the strides of the view',
      });
    }
    const capacity = this.capacity(handle);
    const checked = checkLayout(dims, strides ?? packedStrides(dims), offset, capacity, 'view');
    return new Tensor({ dtype: this.dtype, shape: dims, strides: checked, offset, location: this.location, handle });
  }

  /** Packed row-major tensor with the same values (storage shared when already packed). */
  contiguous(): Tensor {
    this.live();
    if (this.isContiguous()) return this.view(this.shape, packedStrides(this.shape));
    if (this.location === 'cpu') return Tensor.host(this.packedRaw(), [...this.shape], packedStrides(this.shape), 0, this.dtype);
    const host = this.cpu();
    try {
      return host.cuda(this.device);
    } finally {
      host.dispose();
    }
  }

  // ---- transfers ----

  cuda(device = 0): Tensor {
    this.live();
    if (this.location === 'cuda' && this.device === device) return this.view(this.shape, this.strides);
    const t = requireTransfer(`${this}.cuda()`);
    const raw = this.packedRaw();
    const storage = allocDevice(t, raw.byteLength, device);
    try {
      if (raw.byteLength > 0) t.upload(storage, 0, raw);
    } catch (e) {
      storage.release?.();
      throw e;
    }
    return Tensor.fromDeviceStorage(storage, this.shape, this.dtype);
  }

  cpu(): Tensor {
    this.live();
    if (this.location === 'cpu') return this.view(this.shape, this.strides);
    return Tensor.host(this.packedRaw(), [...this.shape], packedStrides(this.shape), 0, this.dtype);
  }

  // ---- reading ----

  /** Values in row-major logical order, decoded to float64 (downloads cuda tensors). */
  toFloat64Array(): Float64Array {
    const { base, src } = this.hostSpan();
    if (this.dtype === 'float64' || this.dtype === 'float32') {
      const out = new Float64Array(this.numel);
      gather(src, base, this.shape, this.strides, out);
      return out;
    }
    const raw = new STORAGE_TYPES[this.dtype](this.numel);
    gather(src, base, this.shape, this.strides, raw);
    return decode(raw, this.dtype);
  }

  toFloat32Array(): Float32Array {
    if (this.dtype !== 'float32') return Float32Array.from(this.toFloat64Array());
    const { base, src } = this.hostSpan();
    const out = new Float32Array(this.numel);
    gather(src, base, this.shape, this.strides, out);
    return out;
  }

  toNpy(path: string, dtype: NpyWriteDType = 'float32'): void {
    if (dtype !== 'float32' && dtype !== 'float16') {
      throw new DTypeError('.npy files are written as float32 or float16', { param: 'dtype', value: dtype, fix: "pass 'float32' or 'float16'" });
    }
    writeNpy(path, this.toFloat64Array(), [...this.shape], dtype);
  }

  // ---- lifetime ----

  /** Idempotent. Frees owned device memory once no other tensor shares it. */
  dispose(): void {
    const handle = this.handle;
    if (handle === null) return;
    this.handle = null;
    leaked.unregister(this);
    handle.release();
  }

  toString(): string {
    const where = this.location === 'cuda' ? `cuda:${this.device}` : 'cpu';
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${where}${this.disposed ? ', disposed' : ''})`;
  }

  // ---- internals ----

  private live(): StorageHandle {
    if (this.handle) return this.handle;
    throw new DisposedError(`${this} was used after dispose()`, { fix: 'keep the tensor alive until its last use, or create a new one' });
  }

  private capacity(handle: StorageHandle): number {
    const s = handle.storage;
    return ArrayBuffer.isView(s) ? s.length : Math.floor(s.bytes / bytesPerElement(this.dtype));
  }

  /** The host elements this tensor addresses: all of its storage on the CPU, the touched span from a device. */
  private hostSpan(): { src: CpuStorage; base: number } {
    const s = this.live().storage;
    if (ArrayBuffer.isView(s)) return { src: s, base: this.offset };
    const span = this.numel === 0 ? 0 : extent(this.shape, this.strides) + 1;
    const host = new STORAGE_TYPES[this.dtype](span);
    if (span > 0) requireTransfer(`${this}.cpu()`).download(s, this.offset * bytesPerElement(this.dtype), host);
    return { src: host, base: 0 };
  }

  /** Packed row-major copy of the raw storage elements, without decoding. */
  private packedRaw(): CpuStorage {
    const { src, base } = this.hostSpan();
    if (this.isContiguous()) return src.slice(base, base + this.numel);
    const out = new STORAGE_TYPES[this.dtype](this.numel);
    gather(src, base, this.shape, this.strides, out);
    return out;
  }
}

function allocDevice(t: DeviceTransfer, bytes: number, device: number): DeviceStorage {
  if (!Number.isSafeInteger(device) || device < 0) {
    throw new OptionError('device must be a non-negative integer', { param: 'device', value: device, fix: 'pass the CUDA ordinal, e.g. 0' });
  }
  // Zero-byte allocations are an error in the CUDA driver; an empty tensor needs no memory.
  return bytes === 0 ? { ptr: 0n, bytes: 0, device } : t.alloc(bytes, device);
}
