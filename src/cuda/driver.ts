/**
 * The koffi binding of the CUDA driver API (libcuda.so.1), loaded on first use so that importing
 * flash3 works on machines without an NVIDIA driver, or without koffi's native addon.
 *
 * Symbol names are the versioned ones that cuda.h's `#define`s resolve to (CUDA 13.0 header):
 * binding the unversioned name would get the legacy 32-bit-size ABI for several of them.
 */
import { createRequire } from 'node:module';
import type * as KoffiModule from 'koffi';
import { CudaError, CudaUnavailableError, OutOfMemoryError } from '../errors.js';

export type Koffi = typeof KoffiModule;

/** A CUcontext / CUstream / CUevent / CUmodule / CUfunction; koffi 3 gives pointers as bigints, NULL as null. */
export type Handle = bigint;
/** What may be passed where the driver takes a handle: `null` is NULL (the legacy default stream). */
export type HandleArg = bigint | null;
/** A one-element array that koffi fills for an `_Out_` parameter. */
export type Out = unknown[];

/** The raw driver entry points; every one returns a CUresult to pass to `check`. */
export interface Driver {
  readonly koffi: Koffi;
  /** The symbol actually bound for each entry point whose name has several versions. */
  readonly boundAs: Readonly<Record<string, string>>;

  cuInit(flags: number): number;
  cuDriverGetVersion(version: Out): number;
  cuDeviceGetCount(count: Out): number;
  cuDeviceGet(device: Out, ordinal: number): number;
  cuDeviceGetName(name: Uint8Array, len: number, dev: number): number;
  cuDeviceGetAttribute(value: Out, attrib: number, dev: number): number;
  cuDeviceTotalMem_v2(bytes: Out, dev: number): number;
  cuDevicePrimaryCtxRetain(ctx: Out, dev: number): number;
  cuDevicePrimaryCtxRelease_v2(dev: number): number;
  cuCtxSetCurrent(ctx: HandleArg): number;
  cuCtxGetCurrent(ctx: Out): number;
  cuCtxGetDevice(dev: Out): number;
  cuCtxSynchronize(): number;
  cuMemAlloc_v2(dptr: Out, bytes: number): number;
  cuMemFree_v2(dptr: bigint): number;
  cuMemcpyHtoD_v2(dst: bigint, src: Uint8Array, bytes: number): number;
  cuMemcpyDtoH_v2(dst: Uint8Array, src: bigint, bytes: number): number;
  cuMemcpyDtoD_v2(dst: bigint, src: bigint, bytes: number): number;
  cuMemcpyHtoDAsync_v2(dst: bigint, src: Uint8Array, bytes: number, stream: HandleArg): number;
  cuMemcpyDtoHAsync_v2(dst: Uint8Array, src: bigint, bytes: number, stream: HandleArg): number;
  cuMemsetD8_v2(dst: bigint, value: number, count: number): number;
  cuMemsetD8Async(dst: bigint, value: number, count: number, stream: HandleArg): number;
  cuMemGetInfo_v2(free: Out, total: Out): number;
  /** `data` receives the attribute's value: 8 bytes is enough for every attribute flash3 reads. */
  cuPointerGetAttribute(data: Uint8Array, attribute: number, ptr: bigint): number;
  cuStreamCreate(stream: Out, flags: number): number;
  cuStreamDestroy_v2(stream: HandleArg): number;
  cuStreamSynchronize(stream: HandleArg): number;
  cuEventCreate(event: Out, flags: number): number;
  cuEventRecord(event: HandleArg, stream: HandleArg): number;
  cuEventSynchronize(event: HandleArg): number;
  /** Bound to cuEventElapsedTime_v2 (what cuda.h 13 maps the name to), or the old one on older drivers. */
  cuEventElapsedTime(ms: Out, start: HandleArg, end: HandleArg): number;
  cuEventDestroy_v2(event: HandleArg): number;
  cuModuleLoadData(module: Out, image: Uint8Array): number;
  cuModuleUnload(module: HandleArg): number;
  cuModuleGetFunction(fn: Out, module: HandleArg, name: string): number;
  cuModuleGetGlobal_v2(dptr: Out, bytes: Out, module: HandleArg, name: string): number;
  cuFuncSetAttribute(fn: HandleArg, attrib: number, value: number): number;
  cuFuncGetAttribute(value: Out, attrib: number, fn: HandleArg): number;
  /** `config` and `params` are native addresses (koffi.alloc), because the config embeds pointers. */
  cuLaunchKernelEx(config: bigint, fn: HandleArg, params: bigint, extra: null): number;
  cuTensorMapEncodeTiled(
    tensorMap: bigint,
    dataType: number,
    rank: number,
    globalAddress: bigint,
    globalDim: BigUint64Array,
    globalStrides: BigUint64Array,
    boxDim: Uint32Array,
    elementStrides: Uint32Array,
    interleave: number,
    swizzle: number,
    l2Promotion: number,
    oobFill: number,
  ): number;
  cuGetErrorName(result: number, name: Out): number;
  cuGetErrorString(result: number, description: Out): number;
}

const LIBRARY = 'libcuda.so.1';

/** C prototypes, with `%s` where the symbol name goes; enums and CUresult are passed as int. */
const PROTOTYPES: Record<string, string> = {
  cuInit: 'int %s(unsigned int flags)',
  cuDriverGetVersion: 'int %s(_Out_ int *version)',
  cuDeviceGetCount: 'int %s(_Out_ int *count)',
  cuDeviceGet: 'int %s(_Out_ int *device, int ordinal)',
  cuDeviceGetName: 'int %s(void *name, int len, int dev)',
  cuDeviceGetAttribute: 'int %s(_Out_ int *value, int attrib, int dev)',
  cuDeviceTotalMem_v2: 'int %s(_Out_ size_t *bytes, int dev)',
  cuDevicePrimaryCtxRetain: 'int %s(_Out_ void **ctx, int dev)',
  cuDevicePrimaryCtxRelease_v2: 'int %s(int dev)',
  cuCtxSetCurrent: 'int %s(void *ctx)',
  cuCtxGetCurrent: 'int %s(_Out_ void **ctx)',
  cuCtxGetDevice: 'int %s(_Out_ int *dev)',
  cuCtxSynchronize: 'int %s()',
  cuMemAlloc_v2: 'int %s(_Out_ unsigned long long *dptr, size_t bytes)',
  cuMemFree_v2: 'int %s(unsigned long long dptr)',
  cuMemcpyHtoD_v2: 'int %s(unsigned long long dst, const void *src, size_t bytes)',
  cuMemcpyDtoH_v2: 'int %s(void *dst, unsigned long long src, size_t bytes)',
  cuMemcpyDtoD_v2: 'int %s(unsigned long long dst, unsigned long long src, size_t bytes)',
  cuMemcpyHtoDAsync_v2: 'int %s(unsigned long long dst, const void *src, size_t bytes, void *stream)',
  cuMemcpyDtoHAsync_v2: 'int %s(void *dst, unsigned long long src, size_t bytes, void *stream)',
  cuMemsetD8_v2: 'int %s(unsigned long long dst, unsigned char value, size_t count)',
  cuMemsetD8Async: 'int %s(unsigned long long dst, unsigned char value, size_t count, void *stream)',
  cuMemGetInfo_v2: 'int %s(_Out_ size_t *free, _Out_ size_t *total)',
  cuPointerGetAttribute: 'int %s(void *data, int attribute, unsigned long long ptr)',
  cuStreamCreate: 'int %s(_Out_ void **stream, unsigned int flags)',
  cuStreamDestroy_v2: 'int %s(void *stream)',
  cuStreamSynchronize: 'int %s(void *stream)',
  cuEventCreate: 'int %s(_Out_ void **event, unsigned int flags)',
  cuEventRecord: 'int %s(void *event, void *stream)',
  cuEventSynchronize: 'int %s(void *event)',
  cuEventElapsedTime: 'int %s(_Out_ float *ms, void *start, void *end)',
  cuEventDestroy_v2: 'int %s(void *event)',
  cuModuleLoadData: 'int %s(_Out_ void **module, const void *image)',
  cuModuleUnload: 'int %s(void *module)',
  cuModuleGetFunction: 'int %s(_Out_ void **fn, void *module, const char *name)',
  cuModuleGetGlobal_v2: 'int %s(_Out_ unsigned long long *dptr, _Out_ size_t *bytes, void *module, const char *name)',
  cuFuncSetAttribute: 'int %s(void *fn, int attrib, int value)',
  cuFuncGetAttribute: 'int %s(_Out_ int *value, int attrib, void *fn)',
  cuLaunchKernelEx: 'int %s(const void *config, void *fn, void **params, void **extra)',
  cuTensorMapEncodeTiled:
    'int %s(void *tensorMap, int dataType, unsigned int rank, void *globalAddress, const uint64_t *globalDim, ' +
    'const uint64_t *globalStrides, const uint32_t *boxDim, const uint32_t *elementStrides, ' +
    'int interleave, int swizzle, int l2Promotion, int oobFill)',
  cuGetErrorName: 'int %s(int result, _Out_ const char **name)',
  cuGetErrorString: 'int %s(int result, _Out_ const char **description)',
};

/** Entry points whose symbol differs by driver age: the first one the library has wins. */
const ALTERNATIVES: Record<string, string[]> = {
  cuEventElapsedTime: ['cuEventElapsedTime_v2', 'cuEventElapsedTime'],
};

const DRIVER_FIX = 'install or update the NVIDIA driver (R525 or newer, for CUDA 12+); flash3 needs an H100/H200 (sm_90)';

let cached: { driver: Driver } | { error: CudaUnavailableError } | undefined;

/** The bound driver; throws CudaUnavailableError (the same one every time) when it cannot be loaded. */
export function loadDriver(): Driver {
  if (cached === undefined) {
    try {
      cached = { driver: bind() };
    } catch (error) {
      cached = { error: error instanceof CudaUnavailableError ? error : unavailable(`${LIBRARY} could not be bound`, error) };
    }
  }
  if ('error' in cached) throw cached.error;
  return cached.driver;
}

function unavailable(message: string, cause: unknown, fix = DRIVER_FIX): CudaUnavailableError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new CudaUnavailableError(`${message} (${detail})`, { fix, cause });
}

function bind(): Driver {
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (error) {
    throw unavailable('the koffi FFI addon could not be loaded', error, 'run `npm install` so that koffi and its prebuilt binary for this platform are present');
  }
  let lib: KoffiModule.LibraryHandle;
  try {
    lib = koffi.load(LIBRARY);
  } catch (error) {
    throw unavailable(`${LIBRARY} not found: no NVIDIA driver on this machine`, error);
  }
  const boundAs: Record<string, string> = {};
  const driver: Record<string, unknown> = { koffi, boundAs };
  for (const [name, prototype] of Object.entries(PROTOTYPES)) {
    const candidates = ALTERNATIVES[name] ?? [name];
    let lastError: unknown;
    for (const symbol of candidates) {
      try {
        driver[name] = lib.func(prototype.replace('%s', symbol));
        boundAs[name] = symbol;
        break;
      } catch (error) {
        lastError = error;
      }
    }
    if (!(name in driver)) {
      throw unavailable(`${LIBRARY} lacks ${candidates.join(' / ')}: the NVIDIA driver is too old`, lastError);
    }
  }
  return driver as unknown as Driver;
}

/** CUresult names whose failure leaves the context unusable ("sticky" errors). */
const STICKY = [
  'CUDA_ERROR_ILLEGAL_ADDRESS',
  'CUDA_ERROR_LAUNCH_FAILED',
  'CUDA_ERROR_MISALIGNED_ADDRESS',
  'CUDA_ERROR_ILLEGAL_INSTRUCTION',
  'CUDA_ERROR_HARDWARE_STACK_ERROR',
  'CUDA_ERROR_INVALID_PC',
  'CUDA_ERROR_ASSERT',
  'CUDA_ERROR_LAUNCH_TIMEOUT',
];

const FIXES: Record<string, string> = {
  CUDA_ERROR_OUT_OF_MEMORY: 'free memory or use smaller batches',
  CUDA_ERROR_NO_BINARY_FOR_GPU: 'the cubins are built for sm_90a (H100/H200); this GPU cannot run them',
  CUDA_ERROR_INVALID_VALUE: 'check the arguments named in the call',
  CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES:
    'the launch needs more registers, threads or shared memory than the GPU gives one block; check block size and sharedMemBytes',
  CUDA_ERROR_INVALID_CLUSTER_SIZE: 'the cluster must divide the grid and be at most 8 blocks (16 with non-portable sizes)',
  CUDA_ERROR_UNSUPPORTED_PTX_VERSION: 'the kernels were built by a newer nvcc than this driver supports; update the NVIDIA driver',
  CUDA_ERROR_INVALID_IMAGE: 'the cubin is corrupt or not a cubin; run `npm run build:kernels`',
  CUDA_ERROR_NOT_FOUND: 'the name is not in the cubin; run `npm run build:kernels` so cubins match this version of flash3',
  CUDA_ERROR_NO_DEVICE: DRIVER_FIX,
  CUDA_ERROR_INSUFFICIENT_DRIVER: DRIVER_FIX,
  CUDA_ERROR_INVALID_DEVICE: 'use a device ordinal below the number of GPUs (see `flash3 info`)',
};
for (const name of STICKY) FIXES[name] = 'the context is now unusable; restart the process and report the shape';

/** Throws the CudaError for a failed driver call; `call` names the entry point and its key arguments. */
export function check(call: string, result: number): void {
  if (result !== 0) throw cudaError(call, result);
}

export function cudaError(call: string, result: number): CudaError {
  const { name, description } = describeResult(result);
  const fix = FIXES[name];
  if (name === 'CUDA_ERROR_OUT_OF_MEMORY') return new OutOfMemoryError(call, result, name, description, fix);
  return new CudaError(call, result, name, description, fix);
}

/** The driver's own name and text for a CUresult, with placeholders if even that fails. */
export function describeResult(result: number): { name: string; description: string } {
  let name = `CUresult ${result}`;
  let description = 'unknown CUDA error';
  if (cached !== undefined && 'driver' in cached) {
    const driver = cached.driver;
    const nameOut: Out = [null];
    const textOut: Out = [null];
    if (driver.cuGetErrorName(result, nameOut) === 0 && typeof nameOut[0] === 'string') name = nameOut[0];
    if (driver.cuGetErrorString(result, textOut) === 0 && typeof textOut[0] === 'string') description = textOut[0];
  }
  return { name, description };
}

/** koffi returns 64-bit outputs as number or bigint depending on size; device pointers are always bigint here. */
export function asBigInt(value: unknown): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(value);
  if (value === null || value === undefined) return 0n;
  throw new TypeError(`expected a pointer-sized integer from the driver, got ${typeof value}`);
}

export function asNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  throw new TypeError(`expected a number from the driver, got ${typeof value}`);
}

/** A handle output that must be non-NULL (a created stream, a loaded module, ...). */
export function asHandle(call: string, value: unknown): Handle {
  const handle = asBigInt(value);
  if (handle === 0n) throw new CudaError(call, 0, 'CUDA_SUCCESS', 'the driver returned a NULL handle');
  return handle;
}

export function hex(ptr: bigint): string {
  return `0x${ptr.toString(16)}`;
}
