import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, registerDeviceTransfer, type DeviceStorage, type DeviceTransfer } from '../../src/tensor.js';
import { CudaUnavailableError, DTypeError, DisposedError, ShapeError } from '../../src/errors.js';
import { roundTo } from '../../src/numerics/convert.js';

/** Host memory posing as a device, to exercise the transfer paths without a GPU. */
function fakeDevice(): DeviceTransfer & { live: Map<bigint, Uint8Array>; frees: number } {
  let next = 0x1000n;
  const live = new Map<bigint, Uint8Array>();
  const fake = {
    live,
    frees: 0,
    alloc(bytes: number, device: number): DeviceStorage {
      const ptr = next;
      next += BigInt(bytes + 256);
      live.set(ptr, new Uint8Array(bytes));
      return {
        ptr,
        bytes,
        device,
        release: () => {
          assert.ok(live.delete(ptr), 'double free');
          fake.frees++;
        },
      };
    },
    upload(dst: DeviceStorage, byteOffset: number, src: ArrayBufferView) {
      const mem = live.get(dst.ptr);
      assert.ok(mem, 'upload to freed memory');
      mem.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), byteOffset);
    },
    download(src: DeviceStorage, byteOffset: number, dst: ArrayBufferView) {
      const mem = live.get(src.ptr);
      assert.ok(mem, 'download from freed memory');
      new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(mem.subarray(byteOffset, byteOffset + dst.byteLength));
    },
  };
  return fake;
}

test('fromArray rounds to the dtype and keeps shape, strides, numel', () => {
  const t = Tensor.fromArray([1, 1 + 2 ** -10, 3.14159, -2], [2, 2], 'bfloat16');
  assert.deepEqual(t.shape, [2, 2]);
  assert.deepEqual(t.strides, [2, 1]);
  assert.equal(t.numel, 4);
  assert.equal(t.location, 'cpu');
  assert.ok(t.isContiguous());
  assert.deepEqual([...t.toFloat64Array()], [1, 1, roundTo(3.14159, 'bfloat16'), -2]);
  assert.ok(t.raw instanceof Uint16Array);
  assert.throws(() => Tensor.fromArray([1, 2, 3], [2, 2]), { name: 'ShapeError', message: /3 values .*\[2, 2\].*Fix: pass exactly one value/ });
  assert.throws(() => Tensor.fromArray([1], [1], 'float128' as never), DTypeError);
  assert.throws(() => Tensor.fromArray([1], [-1]), ShapeError);
});

test('toString names dtype, shape and location', () => {
  assert.equal(String(Tensor.empty([2, 128, 8, 64], 'bfloat16')), 'Tensor(bfloat16, [2, 128, 8, 64], cpu)');
});

test('fromRaw is zero-copy and insists on the storage type of the dtype', () => {
  const raw = new Float32Array([1, 2, 3, 4, 5, 6]);
  const t = Tensor.fromRaw(raw, [2, 2], 'float32', { strides: [3, 1], offset: 1 });
  assert.deepEqual([...t.toFloat64Array()], [2, 3, 5, 6]);
  assert.equal(t.isContiguous(), false);
  raw[1] = 20;
  assert.equal(t.toFloat32Array()[0], 20);
  assert.throws(() => Tensor.fromRaw(raw, [6], 'bfloat16'), { name: 'DTypeError', message: /bfloat16 is stored as a Uint16Array, got a Float32Array.*Fix: pass a Uint16Array/ });
  assert.throws(() => Tensor.fromRaw(raw, [2, 3], 'float32', { offset: 1 }), { name: 'StrideError', message: /addresses element 6 .* 6 elements/ });
});

test('randn is deterministic in the seed and rounded to the dtype', () => {
  const a = Tensor.randn([4, 8], { dtype: 'float16', seed: 7 }).toFloat64Array();
  const b = Tensor.randn([4, 8], { dtype: 'float16', seed: 7 }).toFloat64Array();
  const c = Tensor.randn([4, 8], { dtype: 'float16', seed: 8 }).toFloat64Array();
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  for (const x of a) assert.equal(roundTo(x, 'float16'), x);
  const shifted = Tensor.randn([10000], { dtype: 'float64', seed: 1, std: 0.5, mean: 3 }).toFloat64Array();
  const mean = shifted.reduce((s, x) => s + x, 0) / shifted.length;
  assert.ok(Math.abs(mean - 3) < 0.05, `mean ${mean}`);
});

test('view shares storage, reads strided data in logical order and is bounds-checked', () => {
  const base = Tensor.fromArray(Array.from({ length: 24 }, (_, i) => i), [2, 3, 4], 'float64');
  const cols = base.view([2, 3, 2], [12, 4, 1], 2);
  assert.deepEqual([...cols.toFloat64Array()], [2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23]);
  assert.deepEqual([...base.view([6, 4]).toFloat64Array()], [...base.toFloat64Array()]);
  assert.throws(() => base.view([2, 3, 4], [12, 4, 1], 1), { name: 'StrideError', message: /addresses element 24 but the storage holds 24/ });
  assert.throws(() => base.view([2, 12], [12, 2]), {
    name: 'StrideError',
    message: /last dimension must be contiguous.*view\.strides\[1\] = 2.*Fix: call \.contiguous\(\)/,
  });
  assert.throws(() => cols.view([12]), { name: 'StrideError', message: /non-contiguous.*Fix: call \.contiguous\(\)/ });
  const packed = cols.contiguous();
  assert.ok(packed.isContiguous());
  assert.deepEqual(packed.toFloat64Array(), cols.toFloat64Array());
});

test('narrow dtypes decode through strided views', () => {
  const values = Array.from({ length: 12 }, (_, i) => (i - 6) / 4);
  const t = Tensor.fromArray(values, [3, 4], 'float8_e4m3');
  const v = t.view([3, 2], [4, 1], 1);
  assert.deepEqual([...v.toFloat64Array()], [1, 2, 5, 6, 9, 10].map((i) => roundTo(values[i], 'float8_e4m3')));
  assert.deepEqual([...v.toFloat32Array()], [...v.toFloat64Array()]);
});

test('dispose is idempotent and any later use throws DisposedError naming the tensor', () => {
  const t = Tensor.fromArray([1, 2, 3, 4], [2, 2], 'float16');
  const view = t.view([4]);
  t.dispose();
  t.dispose();
  assert.equal(t.disposed, true);
  assert.equal(String(t), 'Tensor(float16, [2, 2], cpu, disposed)');
  const used = /Tensor\(float16, \[2, 2\], cpu, disposed\) was used after dispose\(\)/;
  assert.throws(() => t.toFloat64Array(), { name: 'DisposedError', message: used });
  assert.throws(() => t.view([4]), DisposedError);
  assert.throws(() => t.storage, DisposedError);
  assert.throws(() => t.cpu(), DisposedError);
  assert.deepEqual([...view.toFloat64Array()], [1, 2, 3, 4], 'a view keeps the shared storage alive');
});

test('cuda() and cpu() need a registered device transfer', () => {
  const t = Tensor.fromArray([1, 2], [2]);
  assert.throws(() => t.cuda(), { name: 'CudaUnavailableError', message: /needs the CUDA backend.*Fix:/ });
  assert.throws(() => Tensor.empty([2], 'float32', 'cuda'), CudaUnavailableError);
});

test('device round trip through a registered transfer frees memory when the last tensor goes', () => {
  const dev = fakeDevice();
  registerDeviceTransfer(dev);
  try {
    const host = Tensor.fromArray(Array.from({ length: 24 }, (_, i) => i), [2, 3, 4], 'bfloat16');
    const strided = host.view([2, 3, 2], [12, 4, 1], 1);
    const d = strided.cuda(0);
    assert.equal(d.location, 'cuda');
    assert.equal(String(d), 'Tensor(bfloat16, [2, 3, 2], cuda:0)');
    assert.ok(d.isContiguous());
    assert.equal(dev.live.size, 1);
    const dView = d.view([2, 3, 1], [6, 2, 1], 1);
    assert.deepEqual([...dView.toFloat64Array()], [2, 6, 10, 14, 18, 22]);
    assert.equal(dView.devicePointer, (d.storage as DeviceStorage).ptr + 2n);
    const back = d.cpu();
    assert.equal(back.location, 'cpu');
    assert.deepEqual(back.toFloat64Array(), strided.toFloat64Array());
    d.dispose();
    assert.equal(dev.frees, 0, 'the view still references the memory');
    dView.dispose();
    dView.dispose();
    assert.equal(dev.frees, 1);
    assert.equal(dev.live.size, 0);

    const e = Tensor.empty([4, 4], 'float32', 'cuda');
    assert.equal((e.storage as DeviceStorage).bytes, 64);
    e.dispose();
    assert.equal(dev.frees, 2);
  } finally {
    registerDeviceTransfer(null);
  }
});

test('fromDevicePointer wraps memory without a GPU and dispose calls onDispose once, never freeing', () => {
  let calls = 0;
  const t = Tensor.fromDevicePointer(0xdead0000n, [2, 16, 4, 64], 'bfloat16', { device: 1, onDispose: () => calls++ });
  assert.equal(t.location, 'cuda');
  assert.equal(t.device, 1);
  assert.equal(t.devicePointer, 0xdead0000n);
  assert.equal((t.storage as DeviceStorage).bytes, 2 * 16 * 4 * 64 * 2);
  assert.equal((t.storage as DeviceStorage).release, undefined);
  const v = t.view([2, 16, 4, 32], [4096, 256, 64, 1], 32);
  assert.equal(v.devicePointer, 0xdead0000n + 64n);
  assert.throws(() => t.toFloat64Array(), CudaUnavailableError);
  t.dispose();
  assert.equal(calls, 0, 'the view still uses the memory');
  v.dispose();
  t.dispose();
  assert.equal(calls, 1);
  assert.throws(() => Tensor.fromDevicePointer(0n, [2], 'float32'), { name: 'OptionError', message: /ptr = 0n/ });
});

test('npy round trip through Tensor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flash3-tensor-'));
  try {
    const t = Tensor.randn([2, 3, 4], { dtype: 'bfloat16', seed: 3 });
    const strided = t.view([2, 3, 2], [12, 4, 1], 2);
    const p32 = join(dir, 'a.npy');
    strided.toNpy(p32);
    const back = Tensor.fromNpy(p32);
    assert.equal(back.dtype, 'float32');
    assert.deepEqual(back.shape, [2, 3, 2]);
    assert.deepEqual(back.toFloat64Array(), strided.toFloat64Array(), 'bf16 values are exact in float32');
    const asBf16 = Tensor.fromNpy(p32, 'bfloat16');
    assert.equal(asBf16.dtype, 'bfloat16');
    assert.deepEqual(asBf16.toFloat64Array(), strided.toFloat64Array());
    const p16 = join(dir, 'b.npy');
    Tensor.fromArray([0.1, 2, -3.5], [3], 'float32').toNpy(p16, 'float16');
    const half = Tensor.fromNpy(p16);
    assert.equal(half.dtype, 'float16');
    assert.deepEqual([...half.toFloat64Array()], [roundTo(0.1, 'float16'), 2, -3.5]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('device memory of a tensor dropped without dispose() is freed once it is collected', () => {
  // A child process, because forcing a collection needs --expose-gc.
  const script = `
    const { Tensor, registerDeviceTransfer } = await import(${JSON.stringify(new URL('../../src/tensor.js', import.meta.url).href)});
    let frees = 0;
    registerDeviceTransfer({ alloc: (bytes, device) => ({ ptr: 0x1000n, bytes, device, release: () => frees++ }), upload() {}, download() {} });
    (() => { Tensor.fromArray([1, 2, 3], [3]).cuda(); })();
    for (let i = 0; i < 50 && frees === 0; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
    process.stdout.write(String(frees));
  `;
  const run = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(run.stderr, '');
  assert.equal(run.stdout, '1');
});
