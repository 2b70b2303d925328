/**
 * One CUDA device's primary context, its memory, streams and events. Every entry point makes the
 * context current first: the driver binds contexts per OS thread, and other code in the process
 * (or another CudaContext) may have switched it since the last call.
 */
import { CudaError, CudaUnavailableError, DisposedError, OptionError } from '../errors.js';
import { asBigInt, asHandle, asNumber, check, cudaError, describeResult, type Driver, type Handle, hex, loadDriver, type Out } from './driver.js';

// CUdevice_attribute values, from cuda.h.
const ATTR_MULTIPROCESSOR_COUNT = 16;
const ATTR_COMPUTE_CAPABILITY_MAJOR = 75;
const ATTR_COMPUTE_CAPABILITY_MINOR = 76;
const ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
// CUpointer_attribute values.
const POINTER_ATTRIBUTE_CONTEXT = 1;
const POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9;
// Stream and event flags.
const STREAM_DEFAULT = 0x0;
const STREAM_NON_BLOCKING = 0x1;
const EVENT_DEFAULT = 0x0;
const EVENT_BLOCKING_SYNC = 0x1;
const EVENT_DISABLE_TIMING = 0x2;

let initialized: { driver: Driver } | { error: CudaUnavailableError } | undefined;

/** The driver after cuInit(0); a failed cuInit (no device, driver/library mismatch) is permanent, so it is cached. */
export function initDriver(): Driver {
  if (initialized === undefined) {
    try {
      const driver = loadDriver();
      const result = driver.cuInit(0);
      if (result !== 0) {
        const { name, description } = describeResult(result);
        initialized = {
          error: new CudaUnavailableError(`the CUDA driver could not start: cuInit failed with ${name} (${result}): ${description}`, {
            fix: 'check that `nvidia-smi` shows the GPU; the driver must support CUDA 12+ (R525 or newer)',
            cause: cudaError('cuInit(0)', result),
          }),
        };
      } else {
        initialized = { driver };
      }
    } catch (error) {
      if (!(error instanceof CudaUnavailableError)) throw error;
      initialized = { error };
    }
  }
  if ('error' in initialized) throw initialized.error;
  return initialized.driver;
}

function driverVersionString(driver: Driver): string {
  const out: Out = [0];
  check('cuDriverGetVersion', driver.cuDriverGetVersion(out));
  const v = asNumber(out[0]);
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

function deviceCount(driver: Driver): number {
  const out: Out = [0];
  check('cuDeviceGetCount', driver.cuDeviceGetCount(out));
  return asNumber(out[0]);
}

interface DeviceFacts {
  device: number;
  name: string;
  multiprocessorCount: number;
  computeCapability: [number, number];
  maxSharedMemoryPerBlockOptin: number;
  totalMemory: number;
}

/** What can be learned about a device without creating a context (no GPU memory is used). */
function deviceFacts(driver: Driver, ordinal: number): DeviceFacts {
  const devOut: Out = [0];
  check(`cuDeviceGet(ordinal=${ordinal})`, driver.cuDeviceGet(devOut, ordinal));
  const device = asNumber(devOut[0]);
  const nameBuf = new Uint8Array(256);
  check(`cuDeviceGetName(device=${device})`, driver.cuDeviceGetName(nameBuf, nameBuf.length, device));
  const end = nameBuf.indexOf(0);
  const name = Buffer.from(nameBuf.subarray(0, end < 0 ? nameBuf.length : end)).toString('utf8');
  const attribute = (attrib: number): number => {
    const out: Out = [0];
    check(`cuDeviceGetAttribute(attrib=${attrib}, device=${device})`, driver.cuDeviceGetAttribute(out, attrib, device));
    return asNumber(out[0]);
  };
  const memOut: Out = [0];
  check(`cuDeviceTotalMem_v2(device=${device})`, driver.cuDeviceTotalMem_v2(memOut, device));
  return {
    device,
    name,
    multiprocessorCount: attribute(ATTR_MULTIPROCESSOR_COUNT),
    computeCapability: [attribute(ATTR_COMPUTE_CAPABILITY_MAJOR), attribute(ATTR_COMPUTE_CAPABILITY_MINOR)],
    maxSharedMemoryPerBlockOptin: attribute(ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
    totalMemory: asNumber(memOut[0]),
  };
}

export interface ProbedDevice {
  ordinal: number;
  name: string;
  sms: number;
  cc: [number, number];
  /** Total device memory in bytes. */
  memory: number;
}

export type CudaProbe =
  | { ok: true; devices: ProbedDevice[]; driverVersion: string }
  | { ok: false; reason: string };

/** Whether CUDA works here and which devices there are; never throws, creates no context. */
export function probeCuda(): CudaProbe {
  try {
    const driver = initDriver();
    const count = deviceCount(driver);
    if (count === 0) return { ok: false, reason: 'the NVIDIA driver reports no CUDA devices' };
    const devices: ProbedDevice[] = [];
    for (let ordinal = 0; ordinal < count; ordinal++) {
      const facts = deviceFacts(driver, ordinal);
      devices.push({
        ordinal,
        name: facts.name,
        sms: facts.multiprocessorCount,
        cc: facts.computeCapability,
        memory: facts.totalMemory,
      });
    }
    return { ok: true, devices, driverVersion: driverVersionString(driver) };
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
}

function checkByteCount(param: string, bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new OptionError('byte count must be a non-negative integer', { param, value: bytes });
  }
}

function checkPointer(param: string, ptr: bigint): void {
  if (typeof ptr !== 'bigint' || ptr < 0n || ptr >= 1n << 64n) {
    throw new OptionError('device pointer must be a bigint in [0, 2^64)', { param, value: ptr });
  }
}

/** A typed array or DataView as the bytes it covers, without copying. */
function bytesOf(view: ArrayBufferView): Uint8Array {
  return view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export class CudaContext {
  private static readonly byOrdinal = new Map<number, CudaContext>();

  readonly driver: Driver;
  readonly ordinal: number;
  /** The CUdevice. */
  readonly device: number;
  /** The retained primary CUcontext; it lives until the process exits. */
  readonly handle: Handle;
  readonly name: string;
  readonly multiprocessorCount: number;
  readonly computeCapability: [number, number];
  readonly maxSharedMemoryPerBlockOptin: number;
  readonly totalMemory: number;
  /** e.g. "13.0": the CUDA version the driver supports, not the toolkit's. */
  readonly driverVersion: string;

  private constructor(driver: Driver, ordinal: number) {
    this.driver = driver;
    this.ordinal = ordinal;
    const facts = deviceFacts(driver, ordinal);
    this.device = facts.device;
    this.name = facts.name;
    this.multiprocessorCount = facts.multiprocessorCount;
    this.computeCapability = facts.computeCapability;
    this.maxSharedMemoryPerBlockOptin = facts.maxSharedMemoryPerBlockOptin;
    this.totalMemory = facts.totalMemory;
    this.driverVersion = driverVersionString(driver);
    const ctxOut: Out = [null];
    check(`cuDevicePrimaryCtxRetain(device=${this.device})`, driver.cuDevicePrimaryCtxRetain(ctxOut, this.device));
    this.handle = asHandle('cuDevicePrimaryCtxRetain', ctxOut[0]);
    this.makeCurrent();
  }

  /** The context of device `ordinal`, created (primary context retained and made current) on first use. */
  static get(ordinal = 0): CudaContext {
    const existing = CudaContext.byOrdinal.get(ordinal);
    if (existing) {
      existing.makeCurrent();
      return existing;
    }
    const driver = initDriver();
    const count = deviceCount(driver);
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= count) {
      throw new OptionError(`no CUDA device with this ordinal: this machine has ${count}`, {
        param: 'ordinal',
        value: ordinal,
        fix: `use 0${count > 1 ? ` to ${count - 1}` : ''} (see \`flash3 info\`)`,
      });
    }
    const context = new CudaContext(driver, ordinal);
    CudaContext.byOrdinal.set(ordinal, context);
    return context;
  }

  makeCurrent(): void {
    check(`cuCtxSetCurrent(device ${this.ordinal})`, this.driver.cuCtxSetCurrent(this.handle));
  }

  /** Device memory of `bytes` bytes (256-byte aligned); 0 bytes gives a null buffer without calling the driver. */
  alloc(bytes: number): DeviceBuffer {
    checkByteCount('bytes', bytes);
    if (bytes === 0) return new DeviceBuffer(this, 0n, 0);
    this.makeCurrent();
    const out: Out = [0];
    check(`cuMemAlloc_v2(bytes=${bytes})`, this.driver.cuMemAlloc_v2(out, bytes));
    return new DeviceBuffer(this, asBigInt(out[0]), bytes);
  }

  /**
   * Copies all of `src` to device address `dst`. With a stream the copy is queued on it; from
   * pageable memory the driver still stages it before returning, so `src` may be reused at once.
   */
  upload(dst: bigint, src: ArrayBufferView, stream?: Stream): void {
    checkPointer('dst', dst);
    const bytes = bytesOf(src);
    if (bytes.byteLength === 0) return;
    this.makeCurrent();
    if (stream) {
      check(
        `cuMemcpyHtoDAsync_v2(dst=${hex(dst)}, bytes=${bytes.byteLength})`,
        this.driver.cuMemcpyHtoDAsync_v2(dst, bytes, bytes.byteLength, stream.handle),
      );
    } else {
      check(`cuMemcpyHtoD_v2(dst=${hex(dst)}, bytes=${bytes.byteLength})`, this.driver.cuMemcpyHtoD_v2(dst, bytes, bytes.byteLength));
    }
  }

  /** Fills all of `dst` from device address `src`; returns once the bytes are in `dst` (pageable memory), stream or not. */
  download(src: bigint, dst: ArrayBufferView, stream?: Stream): void {
    checkPointer('src', src);
    const bytes = bytesOf(dst);
    if (bytes.byteLength === 0) return;
    this.makeCurrent();
    if (stream) {
      check(
        `cuMemcpyDtoHAsync_v2(src=${hex(src)}, bytes=${bytes.byteLength})`,
        this.driver.cuMemcpyDtoHAsync_v2(bytes, src, bytes.byteLength, stream.handle),
      );
      stream.synchronize();
    } else {
      check(`cuMemcpyDtoH_v2(src=${hex(src)}, bytes=${bytes.byteLength})`, this.driver.cuMemcpyDtoH_v2(bytes, src, bytes.byteLength));
    }
  }

  copyDeviceToDevice(dst: bigint, src: bigint, bytes: number): void {
    checkPointer('dst', dst);
    checkPointer('src', src);
    checkByteCount('bytes', bytes);
    if (bytes === 0) return;
    this.makeCurrent();
    check(
      `cuMemcpyDtoD_v2(dst=${hex(dst)}, src=${hex(src)}, bytes=${bytes})`,
      this.driver.cuMemcpyDtoD_v2(dst, src, bytes),
    );
  }

  memset8(ptr: bigint, byte: number, bytes: number, stream?: Stream): void {
    checkPointer('ptr', ptr);
    if (!Number.isInteger(byte) || byte < 0 || byte > 255) {
      throw new OptionError('memset value must be a byte (0..255)', { param: 'byte', value: byte });
    }
    checkByteCount('bytes', bytes);
    if (bytes === 0) return;
    this.makeCurrent();
    const call = `${stream ? 'cuMemsetD8Async' : 'cuMemsetD8_v2'}(ptr=${hex(ptr)}, byte=${byte}, bytes=${bytes})`;
    check(call, stream ? this.driver.cuMemsetD8Async(ptr, byte, bytes, stream.handle) : this.driver.cuMemsetD8_v2(ptr, byte, bytes));
  }

  /** Free and total device memory in bytes, as the driver sees them now. */
  memInfo(): { free: number; total: number } {
    this.makeCurrent();
    const free: Out = [0];
    const total: Out = [0];
    check('cuMemGetInfo_v2', this.driver.cuMemGetInfo_v2(free, total));
    return { free: asNumber(free[0]), total: asNumber(total[0]) };
  }

  /** Waits for all work on this device; surfaces errors of earlier asynchronous launches. */
  synchronize(): void {
    this.makeCurrent();
    check(`cuCtxSynchronize(device ${this.ordinal})`, this.driver.cuCtxSynchronize());
  }

  /** The ordinal of the device that owns `ptr`; throws CudaError (INVALID_VALUE) if it is not CUDA memory. */
  deviceOfPointer(ptr: bigint): number {
    checkPointer('ptr', ptr);
    this.makeCurrent();
    // CONTEXT is documented to fail for memory CUDA does not know; DEVICE_ORDINAL is not.
    this.pointerAttribute(ptr, POINTER_ATTRIBUTE_CONTEXT, 'CU_POINTER_ATTRIBUTE_CONTEXT');
    const data = this.pointerAttribute(ptr, POINTER_ATTRIBUTE_DEVICE_ORDINAL, 'CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL');
    return new DataView(data.buffer).getInt32(0, true);
  }

  /** Whether `ptr` was allocated in this context (false for other devices' and non-CUDA memory). */
  ownsPointer(ptr: bigint): boolean {
    checkPointer('ptr', ptr);
    this.makeCurrent();
    try {
      const data = this.pointerAttribute(ptr, POINTER_ATTRIBUTE_CONTEXT, 'CU_POINTER_ATTRIBUTE_CONTEXT');
      return new DataView(data.buffer).getBigUint64(0, true) === this.handle;
    } catch (error) {
      if (error instanceof CudaError && error.resultName === 'CUDA_ERROR_INVALID_VALUE') return false;
      throw error;
    }
  }

  private pointerAttribute(ptr: bigint, attribute: number, attributeName: string): Uint8Array {
    const data = new Uint8Array(8);
    check(`cuPointerGetAttribute(${attributeName}, ptr=${hex(ptr)})`, this.driver.cuPointerGetAttribute(data, attribute, ptr));
    return data;
  }
}

/** A device allocation. Not freed by garbage collection: a kernel may still be using it, so call free(). */
export class DeviceBuffer {
  readonly context: CudaContext;
  readonly ptr: bigint;
  readonly bytes: number;
  private released = false;

  /** @internal Use CudaContext.alloc. */
  constructor(context: CudaContext, ptr: bigint, bytes: number) {
    this.context = context;
    this.ptr = ptr;
    this.bytes = bytes;
  }

  get freed(): boolean {
    return this.released;
  }

  /** Returns the memory to the driver; later calls do nothing. */
  free(): void {
    if (this.released) return;
    this.released = true;
    if (this.ptr === 0n) return;
    this.context.makeCurrent();
    check(`cuMemFree_v2(ptr=${hex(this.ptr)}, bytes=${this.bytes})`, this.context.driver.cuMemFree_v2(this.ptr));
  }
}

export class Stream {
  readonly context: CudaContext;
  private current: Handle | null;

  /**
   * A blocking stream by default: it orders itself after the legacy default stream, which
   * synchronous copies (upload without a stream) use, so a kernel never reads a half-done upload.
   */
  constructor(context: CudaContext, options: { nonBlocking?: boolean } = {}) {
    this.context = context;
    context.makeCurrent();
    const out: Out = [null];
    const flags = options.nonBlocking ? STREAM_NON_BLOCKING : STREAM_DEFAULT;
    check(`cuStreamCreate(flags=${flags})`, context.driver.cuStreamCreate(out, flags));
    this.current = asHandle('cuStreamCreate', out[0]);
  }

  get handle(): Handle {
    if (this.current === null) throw new DisposedError('stream used after destroy()', { fix: 'create a new Stream' });
    return this.current;
  }

  synchronize(): void {
    this.context.makeCurrent();
    check('cuStreamSynchronize', this.context.driver.cuStreamSynchronize(this.handle));
  }

  /** Idempotent; queued work still completes. */
  destroy(): void {
    if (this.current === null) return;
    const handle = this.current;
    this.current = null;
    this.context.makeCurrent();
    check('cuStreamDestroy_v2', this.context.driver.cuStreamDestroy_v2(handle));
  }
}

export class Event {
  readonly context: CudaContext;
  private current: Handle | null;

  /** Timing is on unless `timing: false`; `blockingSync` makes synchronize() sleep instead of spin. */
  constructor(context: CudaContext, options: { timing?: boolean; blockingSync?: boolean } = {}) {
    this.context = context;
    context.makeCurrent();
    let flags = EVENT_DEFAULT;
    if (options.timing === false) flags |= EVENT_DISABLE_TIMING;
    if (options.blockingSync) flags |= EVENT_BLOCKING_SYNC;
    const out: Out = [null];
    check(`cuEventCreate(flags=${flags})`, context.driver.cuEventCreate(out, flags));
    this.current = asHandle('cuEventCreate', out[0]);
  }

  get handle(): Handle {
    if (this.current === null) throw new DisposedError('event used after destroy()', { fix: 'create a new Event' });
    return this.current;
  }

  /** Records on `stream`, or on the legacy default stream. */
  record(stream?: Stream): void {
    this.context.makeCurrent();
    check('cuEventRecord', this.context.driver.cuEventRecord(this.handle, stream ? stream.handle : null));
  }

  synchronize(): void {
    this.context.makeCurrent();
    check('cuEventSynchronize', this.context.driver.cuEventSynchronize(this.handle));
  }

  /** Milliseconds between two recorded events; waits for `end` first so the answer is never NOT_READY. */
  static elapsedMs(start: Event, end: Event): number {
    end.synchronize();
    const driver = end.context.driver;
    const out: Out = [0];
    check(`${driver.boundAs.cuEventElapsedTime ?? 'cuEventElapsedTime'}`, driver.cuEventElapsedTime(out, start.handle, end.handle));
    return asNumber(out[0]);
  }

  destroy(): void {
    if (this.current === null) return;
    const handle = this.current;
    this.current = null;
    this.context.makeCurrent();
    check('cuEventDestroy_v2', this.context.driver.cuEventDestroy_v2(handle));
  }
}
