/**
 * The driver binding against a real GPU: context facts, memory, events, pointer ownership,
 * error mapping, tensor maps and kernel launches (by value structs, clusters, overlapping
 * launches, TMA).
 * Skipped as a whole where probeCuda() finds no usable GPU.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { CudaContext, Event, Stream, probeCuda } from '../../src/cuda/context.js';
import { KernelModule } from '../../src/cuda/module.js';
import { encodeTensorMapTiled } from '../../src/cuda/tensormap.js';
import { CudaError, CudaUnavailableError, OptionError, OutOfMemoryError, StrideError } from '../../src/errors.js';

const probe = probeCuda();
const skip = probe.ok ? false : `no CUDA GPU: ${probe.reason}; GPU tests run on the GPU machine`;

describe('CUDA driver binding', { skip }, () => {
  let ctx: CudaContext;
  before(() => {
    ctx = CudaContext.get(0);
  });

  test('context properties describe a Hopper GPU', () => {
    assert.equal(ctx.ordinal, 0);
    assert.ok(ctx.name.length > 0, 'device name');
    assert.deepEqual(ctx.computeCapability, [9, 0], `expected sm_90, got ${ctx.computeCapability.join('.')}`);
    assert.ok(ctx.multiprocessorCount > 0);
    assert.ok(ctx.maxSharedMemoryPerBlockOptin >= 200 * 1024, `opt-in shared memory ${ctx.maxSharedMemoryPerBlockOptin}`);
    assert.ok(ctx.totalMemory > 16 * 2 ** 30, `total memory ${ctx.totalMemory}`);
    assert.match(ctx.driverVersion, /^\d+\.\d+$/);
    assert.equal(CudaContext.get(0), ctx, 'cached per ordinal');
    const { free, total } = ctx.memInfo();
    assert.ok(free > 0 && free <= total, `memInfo ${free}/${total}`);
  });

  test('alloc, upload and download round-trip random bytes', () => {
    const bytes = 1024 * 1024 + 3;
    const buf = ctx.alloc(bytes);
    try {
      assert.equal(typeof buf.ptr, 'bigint');
      assert.equal(buf.ptr % 256n, 0n, 'allocations are 256-byte aligned');
      const src = randomBytes(bytes);
      ctx.upload(buf.ptr, src);
      const dst = new Uint8Array(bytes);
      ctx.download(buf.ptr, dst);
      assert.ok(Buffer.from(dst).equals(src), 'bytes differ after round trip');

      // Views with offsets, of other element types, and through a stream.
      const floats = new Float32Array([1.5, -2, 3.25, 1e-20]);
      ctx.upload(buf.ptr + 64n, floats);
      const back = new Float32Array(6);
      ctx.download(buf.ptr + 64n, back.subarray(1, 5));
      assert.deepEqual(Array.from(back), [0, 1.5, -2, 3.25, Math.fround(1e-20), 0]);
      const stream = new Stream(ctx);
      ctx.upload(buf.ptr, src.subarray(0, 4096), stream);
      const viaStream = new Uint8Array(4096);
      ctx.download(buf.ptr, viaStream, stream);
      assert.ok(Buffer.from(viaStream).equals(src.subarray(0, 4096)));
      stream.destroy();
      stream.destroy();
    } finally {
      buf.free();
    }
  });

  test('memset8 fills bytes, with and without a stream', () => {
    const buf = ctx.alloc(4096);
    try {
      ctx.memset8(buf.ptr, 0xab, 4096);
      ctx.memset8(buf.ptr + 100n, 0x01, 10);
      const stream = new Stream(ctx);
      ctx.memset8(buf.ptr + 4000n, 0x7f, 96, stream);
      stream.synchronize();
      stream.destroy();
      const out = new Uint8Array(4096);
      ctx.download(buf.ptr, out);
      out.forEach((v, i) => {
        const want = i >= 100 && i < 110 ? 0x01 : i >= 4000 ? 0x7f : 0xab;
        if (v !== want) assert.fail(`byte ${i} is ${v}, want ${want}`);
      });
    } finally {
      buf.free();
    }
  });

  test('events time a device-to-device copy', () => {
    const bytes = 256 * 1024 * 1024;
    const a = ctx.alloc(bytes);
    const b = ctx.alloc(bytes);
    const start = new Event(ctx);
    const end = new Event(ctx);
    try {
      ctx.memset8(a.ptr, 3, bytes);
      start.record();
      ctx.copyDeviceToDevice(b.ptr, a.ptr, bytes);
      end.record();
      end.synchronize();
      const ms = Event.elapsedMs(start, end);
      assert.ok(ms > 0, `elapsed ${ms} ms`);
      const probeBytes = new Uint8Array(16);
      ctx.download(b.ptr + BigInt(bytes - 16), probeBytes);
      assert.ok(probeBytes.every((v) => v === 3));
    } finally {
      start.destroy();
      end.destroy();
      end.destroy();
      a.free();
      b.free();
    }
  });

  test('deviceOfPointer and ownsPointer know device memory from other addresses', () => {
    const buf = ctx.alloc(1024);
    try {
      assert.equal(ctx.deviceOfPointer(buf.ptr), ctx.ordinal);
      assert.equal(ctx.deviceOfPointer(buf.ptr + 100n), ctx.ordinal, 'interior pointer');
      assert.equal(ctx.ownsPointer(buf.ptr), true);
      assert.equal(ctx.ownsPointer(16n), false);
      assert.throws(() => ctx.deviceOfPointer(16n), CudaError);
    } finally {
      buf.free();
    }
  });

  test('an impossible allocation throws OutOfMemoryError and the context still works', () => {
    assert.throws(
      () => ctx.alloc(2 ** 50),
      (error: unknown) => error instanceof OutOfMemoryError && error instanceof CudaError && error.resultName === 'CUDA_ERROR_OUT_OF_MEMORY',
    );
    const buf = ctx.alloc(256);
    try {
      const src = randomBytes(256);
      ctx.upload(buf.ptr, src);
      const dst = new Uint8Array(256);
      ctx.download(buf.ptr, dst);
      assert.ok(Buffer.from(dst).equals(src));
      ctx.synchronize();
    } finally {
      buf.free();
    }
  });

  test('freeing twice is harmless', () => {
    const buf = ctx.alloc(1024);
    buf.free();
    buf.free();
    assert.equal(buf.freed, true);
    ctx.alloc(0).free();
  });

  test('tensor maps encode, and bad layouts never reach the driver', () => {
    const rows = 1024;
    const cols = 128;
    const buf = ctx.alloc(rows * cols * 2);
    try {
      const good = {
        dtype: 'bfloat16' as const,
        globalAddress: buf.ptr,
        globalDims: [cols, rows],
        globalStridesBytes: [cols * 2],
        boxDims: [64, 128],
        swizzle: '128B' as const,
        l2Promotion: '256B' as const,
      };
      const map = encodeTensorMapTiled(ctx, good);
      assert.equal(map.byteLength, 128);
      assert.ok(map.some((b) => b !== 0), 'tensor map is all zero');
      assert.throws(() => encodeTensorMapTiled(ctx, { ...good, globalStridesBytes: [250] }), StrideError);
      assert.throws(() => encodeTensorMapTiled(ctx, { ...good, globalAddress: buf.ptr + 8n }), StrideError);
      assert.throws(() => encodeTensorMapTiled(ctx, { ...good, boxDims: [128, 128] }), OptionError);
      assert.throws(() => encodeTensorMapTiled(ctx, { ...good, boxDims: [64, 512] }), OptionError);
    } finally {
      buf.free();
    }
  });

  test('a missing cubin names the file and the build command', () => {
    assert.throws(
      () => KernelModule.load(ctx, '/nonexistent/flash3_missing.cubin'),
      (error: unknown) =>
        error instanceof CudaUnavailableError && /flash3_missing\.cubin/.test(error.message) && /build:kernels/.test(error.message),
    );
  });

  describe('kernel launches (cubin built here with nvcc)', () => {
    let module: KernelModule | undefined;
    let why = '';
    before(() => {
      const built = buildTestCubin();
      if ('cubin' in built) module = KernelModule.load(ctx, built.cubin);
      else why = built.skip;
    });

    test('by-value struct, u64, f32 and pointer arguments', (t) => {
      if (!module) return t.skip(why);
      const fn = module.getFunction('scale_by_value');
      assert.ok(fn.attribute('numRegs') > 0);
      assert.ok(fn.attribute('maxThreadsPerBlock') >= 256);
      const n = 1000;
      const input = Float32Array.from({ length: n }, (_, i) => i - 500);
      const inBuf = ctx.alloc(n * 4);
      const outBuf = ctx.alloc(n * 4);
      const tagBuf = ctx.alloc(8);
      try {
        ctx.upload(inBuf.ptr, input);
        // struct ScaleParams { const float *in; float *out; int n; float scale; } = 24 bytes, 8-aligned.
        const params = new Uint8Array(24);
        const view = new DataView(params.buffer);
        view.setBigUint64(0, inBuf.ptr, true);
        view.setBigUint64(8, outBuf.ptr, true);
        view.setInt32(16, n, true);
        view.setFloat32(20, 2.5, true);
        const tag = 0x1234_5678_9abc_def0n;
        fn.launch({ grid: [Math.ceil(n / 256), 1, 1], block: [256, 1, 1], sharedMemBytes: 0 }, [
          { kind: 'bytes', value: params, align: 8 },
          { kind: 'u64', value: tag },
          { kind: 'f32', value: 0.25 },
          { kind: 'ptr', value: tagBuf.ptr },
        ]);
        ctx.synchronize();
        const out = new Float32Array(n);
        ctx.download(outBuf.ptr, out);
        out.forEach((v, i) => {
          if (v !== input[i] * 2.5 + 0.25) assert.fail(`out[${i}] = ${v}, want ${input[i] * 2.5 + 0.25}`);
        });
        const tagOut = new BigUint64Array(1);
        ctx.download(tagBuf.ptr, tagOut);
        assert.equal(tagOut[0], tag);
        assert.throws(
          () => fn.launch({ grid: [1, 1, 1], block: [32, 1, 1], sharedMemBytes: 100 * 1024 }, []),
          OptionError,
          'more than 48 KiB of dynamic shared memory without opting in',
        );
      } finally {
        inBuf.free();
        outBuf.free();
        tagBuf.free();
      }
    });

    test('cluster dimension reaches the kernel', (t) => {
      if (!module) return t.skip(why);
      const fn = module.getFunction('cluster_ranks');
      const blocks = 8;
      const out = ctx.alloc(blocks * 4);
      try {
        const stream = new Stream(ctx);
        fn.launch({ grid: [blocks, 1, 1], block: [32, 1, 1], sharedMemBytes: 0, cluster: [2, 1, 1], stream }, [{ kind: 'ptr', value: out.ptr }]);
        stream.synchronize();
        stream.destroy();
        const ranks = new Uint32Array(blocks);
        ctx.download(out.ptr, ranks);
        assert.deepEqual(Array.from(ranks), Array.from({ length: blocks }, (_, i) => (i % 2) | (2 << 16)));
        fn.launch({ grid: [blocks, 1, 1], block: [32, 1, 1], sharedMemBytes: 0 }, [{ kind: 'ptr', value: out.ptr }]);
        ctx.synchronize();
        ctx.download(out.ptr, ranks);
        assert.deepEqual(Array.from(ranks), new Array(blocks).fill(1 << 16), 'no cluster: each block alone');
      } finally {
        out.free();
      }
    });

    test('a launch that overlaps the previous kernel still sees its writes after griddepcontrol.wait', (t) => {
      if (!module) return t.skip(why);
      const writer = module.getFunction('pdl_writer');
      const reader = module.getFunction('pdl_reader');
      const n = 1 << 20;
      const buf = ctx.alloc(n * 4);
      const out = ctx.alloc(n * 4);
      try {
        const stream = new Stream(ctx);
        const got = new Int32Array(n);
        for (const value of [7, -3]) {
          writer.launch({ grid: [64, 1, 1], block: [256, 1, 1], sharedMemBytes: 0, stream }, [
            { kind: 'ptr', value: buf.ptr },
            { kind: 'i32', value: n },
            { kind: 'i32', value },
          ]);
          reader.launch({ grid: [64, 1, 1], block: [256, 1, 1], sharedMemBytes: 0, stream, overlapsPrevious: true }, [
            { kind: 'ptr', value: buf.ptr },
            { kind: 'ptr', value: out.ptr },
            { kind: 'i32', value: n },
          ]);
          stream.synchronize();
          ctx.download(out.ptr, got);
          assert.ok(got.every((x) => x === value), `reader saw ${got.find((x) => x !== value)} where the writer wrote ${value}`);
        }
        stream.destroy();
      } finally {
        buf.free();
        out.free();
      }
    });

    test('a TMA load through an encoded tensor map (with 64 KiB dynamic shared memory)', (t) => {
      if (!module) return t.skip(why);
      const fn = module.getFunction('tma_tile');
      const smem = 64 * 1024;
      fn.setMaxDynamicSharedMemory(smem);
      assert.equal(fn.attribute('maxDynamicSharedSizeBytes'), smem);
      const [width, height, boxW, boxH] = [64, 32, 16, 8];
      const src = Float32Array.from({ length: width * height }, (_, i) => i + 1);
      const global = ctx.alloc(src.byteLength);
      const out = ctx.alloc(boxW * boxH * 4);
      try {
        ctx.upload(global.ptr, src);
        const map = encodeTensorMapTiled(ctx, {
          dtype: 'float32',
          globalAddress: global.ptr,
          globalDims: [width, height],
          globalStridesBytes: [width * 4],
          boxDims: [boxW, boxH],
          swizzle: 'none',
        });
        const tile = new Float32Array(boxW * boxH);
        for (const [x0, y0] of [
          [16, 8],
          [56, 28], // partly out of bounds: TMA fills zeros
        ]) {
          fn.launch({ grid: [1, 1, 1], block: [128, 1, 1], sharedMemBytes: smem }, [
            { kind: 'bytes', value: map, align: 64 },
            { kind: 'ptr', value: out.ptr },
            { kind: 'i32', value: x0 },
            { kind: 'i32', value: y0 },
            { kind: 'i32', value: boxW * boxH },
          ]);
          ctx.synchronize();
          ctx.download(out.ptr, tile);
          for (let r = 0; r < boxH; r++) {
            for (let c = 0; c < boxW; c++) {
              const [x, y] = [x0 + c, y0 + r];
              const want = x < width && y < height ? src[y * width + x] : 0;
              if (tile[r * boxW + c] !== want) assert.fail(`tile at (${x0}, ${y0}) [${r}][${c}] = ${tile[r * boxW + c]}, want ${want}`);
            }
          }
        }
      } finally {
        global.free();
        out.free();
      }
    });
  });
});

const TEST_KERNELS = String.raw`
#include <cuda.h>

struct ScaleParams { const float *in; float *out; int n; float scale; };

extern "C" __global__ void scale_by_value(ScaleParams p, unsigned long long tag, float add, unsigned long long *tagOut) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < p.n) p.out[i] = p.in[i] * p.scale + add;
  if (i == 0) *tagOut = tag;
}

extern "C" __global__ void cluster_ranks(unsigned int *out) {
  unsigned int rank, size;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
  asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(size));
  if (threadIdx.x == 0) out[blockIdx.x] = rank | (size << 16);
}

// A slow writer that lets its dependent launch at once, and a reader launched to overlap it: the
// driver must accept the launch attribute, and the reader's griddepcontrol.wait must hold its reads
// back until the writes are in (without the wait it would read before the writer's sleep ends).
extern "C" __global__ void pdl_writer(int *buf, int n, int value) {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  for (int i = 0; i < 200; ++i) __nanosleep(1000);
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) buf[i] = value;
}

extern "C" __global__ void pdl_reader(const int *buf, int *out, int n) {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = buf[i];
}

extern "C" __global__ void tma_tile(const __grid_constant__ CUtensorMap map, float *out, int x0, int y0, int boxElems) {
  extern __shared__ __align__(128) float tile[];
  __shared__ __align__(8) unsigned long long bar;
  unsigned tileAddr = (unsigned)__cvta_generic_to_shared(tile);
  unsigned barAddr = (unsigned)__cvta_generic_to_shared(&bar);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(barAddr) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(barAddr), "r"(boxElems * 4) : "memory");
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
                 :: "r"(tileAddr), "l"(&map), "r"(x0), "r"(y0), "r"(barAddr) : "memory");
  }
  unsigned done = 0;
  while (!done) {
    asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n\tselp.u32 %0, 1, 0, p;\n}"
                 : "=r"(done) : "r"(barAddr) : "memory");
  }
  for (int i = threadIdx.x; i < boxElems; i += blockDim.x) out[i] = tile[i];
}
`;

/** Compiles the test kernels for sm_90a; a missing nvcc skips the launch tests, a failing one fails them. */
function buildTestCubin(): { cubin: string } | { skip: string } {
  const candidates = [process.env.NVCC, 'nvcc', '/usr/local/cuda/bin/nvcc'].filter((c): c is string => !!c);
  const nvcc = candidates.find((c) => (c.includes('/') ? existsSync(c) : spawnSync(c, ['--version']).status === 0));
  if (!nvcc) return { skip: 'nvcc not found (set NVCC=/path/to/nvcc to run the launch tests)' };
  const dir = mkdtempSync(join(tmpdir(), 'flash3-driver-test-'));
  const source = join(dir, 'kernels.cu');
  const cubin = join(dir, 'kernels.cubin');
  writeFileSync(source, TEST_KERNELS);
  const result = spawnSync(nvcc, ['-cubin', '-gencode=arch=compute_90a,code=sm_90a', '-o', cubin, source], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (result.status !== 0) throw new Error(`nvcc failed building the test kernels:\n${result.stderr || result.error}`);
  return { cubin };
}
