/**
 * Loading cubins and launching their kernels with cuLaunchKernelEx (which, unlike cuLaunchKernel,
 * takes launch attributes such as the thread-block cluster shape Hopper kernels need).
 */
import { readFileSync } from 'node:fs';
import { CudaUnavailableError, DisposedError, OptionError, UnsupportedError } from '../errors.js';
import type { CudaContext, Stream } from './context.js';
import { asBigInt, asHandle, asNumber, check, type Handle, type Out } from './driver.js';

export type Dim3 = [number, number, number];

/** One kernel argument, by value. `bytes` is for structs passed by value (a CUtensorMap, a params struct). */
export type KernelArg =
  | { kind: 'u64' | 'i64' | 'ptr'; value: bigint }
  | { kind: 'i32' | 'u32' | 'f32'; value: number }
  | { kind: 'bytes'; value: Uint8Array; align: number };

export interface LaunchConfig {
  grid: Dim3;
  block: Dim3;
  /** Dynamic shared memory per block; above 48 KiB call setMaxDynamicSharedMemory first. */
  sharedMemBytes: number;
  /** Defaults to the legacy default stream. */
  stream?: Stream;
  /** Thread-block cluster shape; each entry must divide the grid's. */
  cluster?: Dim3;
  /**
   * Programmatic dependent launch: the kernel may start while the stream's previous kernel is
   * still running. Only for a kernel that runs `griddepcontrol.wait` before it touches anything
   * the previous kernel writes, or that writes what the previous kernel reads.
   */
  overlapsPrevious?: boolean;
}

/** CUfunction_attribute values from cuda.h, under the names flash3 uses. */
export const FUNCTION_ATTRIBUTES = {
  maxThreadsPerBlock: 0,
  sharedSizeBytes: 1,
  constSizeBytes: 2,
  localSizeBytes: 3,
  numRegs: 4,
  ptxVersion: 5,
  binaryVersion: 6,
  cacheModeCA: 7,
  maxDynamicSharedSizeBytes: 8,
  preferredSharedMemoryCarveout: 9,
  clusterSizeMustBeSet: 10,
  requiredClusterWidth: 11,
  requiredClusterHeight: 12,
  requiredClusterDepth: 13,
  nonPortableClusterSizeAllowed: 14,
  clusterSchedulingPolicyPreference: 15,
} as const;
export type FunctionAttribute = keyof typeof FUNCTION_ATTRIBUTES;

const BUILD_FIX = 'run `npm run build:kernels` (needs nvcc from CUDA 12.3+ for sm_90a)';

export class KernelModule {
  readonly context: CudaContext;
  readonly path: string;
  private current: Handle | null;
  private readonly functions = new Map<string, KernelFunction>();

  private constructor(context: CudaContext, path: string, handle: Handle) {
    this.context = context;
    this.path = path;
    this.current = handle;
  }

  static load(ctx: CudaContext, cubinPath: string): KernelModule {
    let image: Buffer;
    try {
      image = readFileSync(cubinPath);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const what = code === 'ENOENT' ? 'kernel file not found' : `kernel file unreadable (${code ?? String(error)})`;
      throw new CudaUnavailableError(`${what}: ${cubinPath}`, { param: 'cubinPath', fix: BUILD_FIX, cause: error });
    }
    ctx.makeCurrent();
    const out: Out = [null];
    check(`cuModuleLoadData(${cubinPath})`, ctx.driver.cuModuleLoadData(out, image));
    return new KernelModule(ctx, cubinPath, asHandle('cuModuleLoadData', out[0]));
  }

  get handle(): Handle {
    if (this.current === null) throw new DisposedError(`kernel module used after unload(): ${this.path}`);
    return this.current;
  }

  /** The kernel `name` (an `extern "C"` name, or the mangled one); looked up once per name. */
  getFunction(name: string): KernelFunction {
    let fn = this.functions.get(name);
    if (fn === undefined) {
      this.context.makeCurrent();
      const out: Out = [null];
      check(`cuModuleGetFunction(${JSON.stringify(name)} in ${this.path})`, this.context.driver.cuModuleGetFunction(out, this.handle, name));
      fn = new KernelFunction(this, name, asHandle('cuModuleGetFunction', out[0]));
      this.functions.set(name, fn);
    }
    return fn;
  }

  /** Device address and size of the `__device__`/`__constant__` variable `name` in this module. */
  global(name: string): { ptr: bigint; bytes: number } {
    this.context.makeCurrent();
    const ptr: Out = [0];
    const bytes: Out = [0];
    check(
      `cuModuleGetGlobal_v2(${JSON.stringify(name)} in ${this.path})`,
      this.context.driver.cuModuleGetGlobal_v2(ptr, bytes, this.handle, name),
    );
    return { ptr: asBigInt(ptr[0]), bytes: asNumber(bytes[0]) };
  }

  /** The value of a 4-byte integer global, e.g. a launch constant compiled into the cubin. */
  readGlobalInt32(name: string): number {
    const { ptr, bytes } = this.global(name);
    if (bytes !== 4) {
      throw new UnsupportedError(`global ${name} in ${this.path} is ${bytes} bytes, not a 32-bit integer`, { param: 'name', value: name, fix: BUILD_FIX });
    }
    const value = new Int32Array(1);
    this.context.download(ptr, value);
    return value[0];
  }

  /** Idempotent; its functions must not be launched afterwards. */
  unload(): void {
    if (this.current === null) return;
    const handle = this.current;
    this.current = null;
    this.functions.clear();
    this.context.makeCurrent();
    check(`cuModuleUnload(${this.path})`, this.context.driver.cuModuleUnload(handle));
  }
}

// Layouts from cuda.h (x86-64): CUlaunchConfig is 7 x u32, pad to 8, hStream, attrs pointer, u32
// numAttrs, pad = 56 bytes; CUlaunchAttribute is u32 id, 4 bytes pad, 64-byte value union = 72.
const CONFIG_BYTES = 56;
const ATTRIBUTE_BYTES = 72;
const ATTRIBUTES_OFFSET = 64;
const LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = 4;
const LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
/** The launch block is aligned to this, so `bytes` arguments may ask for up to this alignment. */
const MAX_ALIGN = 128;
/** Dynamic shared memory a kernel may use without opting in. */
const DEFAULT_DYNAMIC_SMEM = 48 * 1024;

const U32_MAX = 2 ** 32 - 1;

function alignUp(offset: number, align: number): number {
  return Math.ceil(offset / align) * align;
}

function checkDim3(param: string, dims: unknown): asserts dims is Dim3 {
  if (!Array.isArray(dims) || dims.length !== 3 || !dims.every((d) => Number.isInteger(d) && d >= 1 && d <= U32_MAX)) {
    throw new OptionError('must be three positive integers [x, y, z]', { param, value: dims });
  }
}

function argLayout(arg: KernelArg, index: number): { size: number; align: number } {
  const param = `args[${index}]`;
  switch (arg.kind) {
    case 'u64':
    case 'ptr':
      if (typeof arg.value !== 'bigint' || arg.value < 0n || arg.value >= 1n << 64n) {
        throw new OptionError(`${arg.kind} argument must be a bigint in [0, 2^64)`, { param, value: arg.value });
      }
      return { size: 8, align: 8 };
    case 'i64':
      if (typeof arg.value !== 'bigint' || arg.value < -(1n << 63n) || arg.value >= 1n << 63n) {
        throw new OptionError('i64 argument must be a bigint in [-2^63, 2^63)', { param, value: arg.value });
      }
      return { size: 8, align: 8 };
    case 'i32':
      if (!Number.isInteger(arg.value) || arg.value < -(2 ** 31) || arg.value >= 2 ** 31) {
        throw new OptionError('i32 argument must be an integer in [-2^31, 2^31)', { param, value: arg.value });
      }
      return { size: 4, align: 4 };
    case 'u32':
      if (!Number.isInteger(arg.value) || arg.value < 0 || arg.value > U32_MAX) {
        throw new OptionError('u32 argument must be an integer in [0, 2^32)', { param, value: arg.value });
      }
      return { size: 4, align: 4 };
    case 'f32':
      if (typeof arg.value !== 'number') throw new OptionError('f32 argument must be a number', { param, value: arg.value });
      return { size: 4, align: 4 };
    case 'bytes': {
      const { value, align } = arg;
      if (!(value instanceof Uint8Array) || value.byteLength === 0) {
        throw new OptionError('bytes argument must be a non-empty Uint8Array', { param });
      }
      if (!Number.isInteger(align) || align < 1 || align > MAX_ALIGN || (align & (align - 1)) !== 0) {
        throw new OptionError(`bytes argument alignment must be a power of two up to ${MAX_ALIGN}`, { param: `${param}.align`, value: align });
      }
      return { size: value.byteLength, align };
    }
    default:
      throw new OptionError('unknown kernel argument kind', {
        param: `${param}.kind`,
        value: (arg as { kind: unknown }).kind,
        fix: "use 'u64', 'i64', 'ptr', 'i32', 'u32', 'f32' or 'bytes'",
      });
  }
}

function writeArg(view: DataView, bytes: Uint8Array, offset: number, arg: KernelArg): void {
  switch (arg.kind) {
    case 'u64':
    case 'ptr':
      view.setBigUint64(offset, arg.value, true);
      break;
    case 'i64':
      view.setBigInt64(offset, arg.value, true);
      break;
    case 'i32':
      view.setInt32(offset, arg.value, true);
      break;
    case 'u32':
      view.setUint32(offset, arg.value, true);
      break;
    case 'f32':
      view.setFloat32(offset, arg.value, true);
      break;
    case 'bytes':
      bytes.set(arg.value, offset);
      break;
  }
}

export class KernelFunction {
  readonly module: KernelModule;
  readonly name: string;
  readonly handle: Handle;
  /** What setMaxDynamicSharedMemory last set; undefined means not known yet. */
  private dynamicSmemLimit: number | undefined;

  /** @internal Use KernelModule.getFunction. */
  constructor(module: KernelModule, name: string, handle: Handle) {
    this.module = module;
    this.name = name;
    this.handle = handle;
  }

  private get context(): CudaContext {
    return this.module.context;
  }

  /** Opts the kernel in to `bytes` of dynamic shared memory per block (needed above 48 KiB). */
  setMaxDynamicSharedMemory(bytes: number): void {
    if (!Number.isInteger(bytes) || bytes < 0) {
      throw new OptionError('dynamic shared memory must be a non-negative integer of bytes', { param: 'bytes', value: bytes });
    }
    const limit = this.context.maxSharedMemoryPerBlockOptin;
    if (bytes > limit) {
      throw new UnsupportedError(`kernel ${this.name} wants more shared memory per block than ${this.context.name} has (${limit} bytes)`, {
        param: 'bytes',
        value: bytes,
        fix: 'use a configuration with smaller tiles',
      });
    }
    void this.module.handle; // throws DisposedError once the module is unloaded
    this.context.makeCurrent();
    check(
      `cuFuncSetAttribute(${this.name}, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, ${bytes})`,
      this.context.driver.cuFuncSetAttribute(this.handle, FUNCTION_ATTRIBUTES.maxDynamicSharedSizeBytes, bytes),
    );
    this.dynamicSmemLimit = bytes;
  }

  attribute(name: FunctionAttribute): number {
    const attrib = FUNCTION_ATTRIBUTES[name];
    if (attrib === undefined) {
      throw new OptionError('unknown function attribute', { param: 'name', value: name, fix: `use one of ${Object.keys(FUNCTION_ATTRIBUTES).join(', ')}` });
    }
    void this.module.handle;
    this.context.makeCurrent();
    const out: Out = [0];
    check(`cuFuncGetAttribute(${this.name}, ${name})`, this.context.driver.cuFuncGetAttribute(out, attrib, this.handle));
    return asNumber(out[0]);
  }

  /** Queues the kernel; errors inside it surface at the next synchronizing call. */
  launch(cfg: LaunchConfig, args: KernelArg[]): void {
    checkDim3('cfg.grid', cfg.grid);
    checkDim3('cfg.block', cfg.block);
    const { grid, block, cluster, sharedMemBytes, overlapsPrevious = false } = cfg;
    if (!Number.isInteger(sharedMemBytes) || sharedMemBytes < 0 || sharedMemBytes > U32_MAX) {
      throw new OptionError('sharedMemBytes must be a non-negative integer', { param: 'cfg.sharedMemBytes', value: sharedMemBytes });
    }
    if (cluster !== undefined) {
      checkDim3('cfg.cluster', cluster);
      if (cluster.some((c, i) => grid[i] % c !== 0)) {
        throw new OptionError('each cluster dimension must divide the grid dimension', {
          param: 'cfg.cluster',
          value: cluster,
          fix: `pick a cluster that divides grid [${grid.join(', ')}]`,
        });
      }
    }
    if (sharedMemBytes > DEFAULT_DYNAMIC_SMEM) {
      this.dynamicSmemLimit ??= this.attribute('maxDynamicSharedSizeBytes');
      if (sharedMemBytes > this.dynamicSmemLimit) {
        throw new OptionError(`kernel ${this.name} is opted in to only ${this.dynamicSmemLimit} bytes of dynamic shared memory`, {
          param: 'cfg.sharedMemBytes',
          value: sharedMemBytes,
          fix: `call setMaxDynamicSharedMemory(${sharedMemBytes}) before launching`,
        });
      }
    }
    const layouts = args.map(argLayout);
    const stream = cfg.stream ? cfg.stream.handle : 0n;
    void this.module.handle;

    // One native block holds the config, its attributes, the void*[] and every argument's bytes:
    // the config embeds absolute addresses, so it cannot live in a movable JS buffer.
    const attributes: [number, number[]][] = [];
    if (cluster) attributes.push([LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION, cluster]);
    if (overlapsPrevious) attributes.push([LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, [1]]);
    const numAttrs = attributes.length;
    const paramsOffset = alignUp(ATTRIBUTES_OFFSET + numAttrs * ATTRIBUTE_BYTES, 8);
    let cursor = paramsOffset + 8 * args.length;
    const offsets = layouts.map(({ size, align }) => {
      cursor = alignUp(cursor, align);
      const at = cursor;
      cursor += size;
      return at;
    });
    const total = Math.max(cursor, CONFIG_BYTES);

    const koffi = this.context.driver.koffi;
    const raw = koffi.alloc('uint8_t', total + MAX_ALIGN) as bigint;
    try {
      const pad = (MAX_ALIGN - Number(raw % BigInt(MAX_ALIGN))) % MAX_ALIGN;
      const base = raw + BigInt(pad);
      const buffer = koffi.view(raw, total + MAX_ALIGN);
      const view = new DataView(buffer, pad, total);
      const bytes = new Uint8Array(buffer, pad, total);
      bytes.fill(0);

      grid.forEach((d, i) => view.setUint32(4 * i, d, true));
      block.forEach((d, i) => view.setUint32(12 + 4 * i, d, true));
      view.setUint32(24, sharedMemBytes, true);
      view.setBigUint64(32, stream, true);
      view.setBigUint64(40, numAttrs > 0 ? base + BigInt(ATTRIBUTES_OFFSET) : 0n, true);
      view.setUint32(48, numAttrs, true);
      attributes.forEach(([id, values], a) => {
        const at = ATTRIBUTES_OFFSET + a * ATTRIBUTE_BYTES;
        view.setUint32(at, id, true);
        values.forEach((d, i) => view.setUint32(at + 8 + 4 * i, d, true));
      });
      args.forEach((arg, i) => {
        view.setBigUint64(paramsOffset + 8 * i, base + BigInt(offsets[i]), true);
        writeArg(view, bytes, offsets[i], arg);
      });

      this.context.makeCurrent();
      const shape = `grid [${grid}], block [${block}], smem ${sharedMemBytes}${cluster ? `, cluster [${cluster}]` : ''}${overlapsPrevious ? ', overlapping the previous kernel' : ''}, ${args.length} args`;
      check(
        `cuLaunchKernelEx(${this.name}: ${shape})`,
        this.context.driver.cuLaunchKernelEx(base, this.handle, base + BigInt(paramsOffset), null),
      );
    } finally {
      koffi.free(raw);
    }
  }
}
