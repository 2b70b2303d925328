import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNpy, readNpy, serializeNpy, writeNpy } from '../../src/io/npy.js';
import { FormatError, ShapeError, DTypeError } from '../../src/errors.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

/** Builds a .npy file by hand; `pad` lets a test mimic writers that don't align like numpy. */
function npy(header: string, data: Uint8Array, major = 1, pad = true): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  let text = header;
  if (pad) while ((prefix + text.length + 1) % 64 !== 0) text += ' ';
  text += '\n';
  const out = new Uint8Array(prefix + text.length + data.length);
  out.set(MAGIC);
  out[6] = major;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, text.length, true);
  else view.setUint32(8, text.length, true);
  out.set(new TextEncoder().encode(text), prefix);
  out.set(data, prefix + text.length);
  return out;
}

function bytesOf(values: number[], kind: 'f2' | 'f4' | 'f8', littleEndian: boolean): Uint8Array {
  const size = kind === 'f2' ? 2 : kind === 'f4' ? 4 : 8;
  const out = new Uint8Array(values.length * size);
  const v = new DataView(out.buffer);
  values.forEach((x, k) => {
    if (kind === 'f2') v.setUint16(k * 2, x, littleEndian); // x is raw half bits here
    else if (kind === 'f4') v.setFloat32(k * 4, x, littleEndian);
    else v.setFloat64(k * 8, x, littleEndian);
  });
  return out;
}

test('matches numpy byte for byte: np.save(np.arange(6, dtype=np.float32).reshape(2, 3))', () => {
  const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const expected = [
    ...MAGIC, 1, 0, 118, 0,
    ...Array.from(header, (c) => c.charCodeAt(0)),
    ...new Array<number>(128 - 10 - header.length - 1).fill(0x20), 0x0a,
    ...bytesOf([0, 1, 2, 3, 4, 5], 'f4', true),
  ];
  const got = serializeNpy(new Float64Array([0, 1, 2, 3, 4, 5]), [2, 3], 'float32');
  assert.deepEqual(Array.from(got), expected);
  const back = parseNpy(Uint8Array.from(expected));
  assert.equal(back.dtype, 'float32');
  assert.deepEqual(back.shape, [2, 3]);
  assert.deepEqual(Array.from(back.data), [0, 1, 2, 3, 4, 5]);
});

test('data starts on a 64-byte boundary for any shape', () => {
  for (const shape of [[], [0], [1], [7], [3, 5], [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [123456789012, 0]]) {
    const n = shape.reduce((p, d) => p * d, 1);
    const buf = serializeNpy(new Float32Array(n), shape, 'float16');
    const headerLen = buf[8] | (buf[9] << 8);
    assert.equal((10 + headerLen) % 64, 0, `shape ${shape}`);
    assert.equal(buf[10 + headerLen - 1], 0x0a);
    assert.deepEqual(parseNpy(buf).shape, shape);
  }
});

test('float32 round trip is exact for float32 values and rounds float64 ones', () => {
  const values = new Float32Array(24).map((_, k) => Math.fround((k - 11) * 0.37));
  const back = parseNpy(serializeNpy(values, [2, 3, 4], 'float32'));
  assert.deepEqual(back.shape, [2, 3, 4]);
  assert.deepEqual(Array.from(back.data), Array.from(values));
  const specials = new Float64Array([0.1, -0, Infinity, -Infinity, NaN, 1e-46]);
  const back2 = parseNpy(serializeNpy(specials, [6], 'float32')).data;
  assert.equal(back2[0], Math.fround(0.1));
  assert.ok(Object.is(back2[1], -0));
  assert.deepEqual(Array.from(back2.subarray(2)), [Infinity, -Infinity, NaN, 0]);
});

test('float16 round trip rounds to nearest even', () => {
  const cases: [number, number][] = [
    [1, 1],
    [1 + 2 ** -11, 1], // tie, stays even
    [1 + 3 * 2 ** -11, 1 + 2 ** -9], // tie, rounds up to even
    [1 + 2 ** -11 + 2 ** -30, 1 + 2 ** -10], // just above the tie
    [65504, 65504],
    [65519.99, 65504],
    [65520, Infinity],
    [-1e9, -Infinity],
    [2 ** -24, 2 ** -24], // smallest subnormal
    [2 ** -25, 0], // tie with zero, zero is even
    [3 * 2 ** -26, 2 ** -24],
    [2 ** -14 - 2 ** -26, 2 ** -14], // subnormal rounding up into the normals
    [2047.5, 2048], // mantissa carry into the exponent
    [0.1, 0.0999755859375],
    [-0, -0],
  ];
  const back = parseNpy(serializeNpy(new Float64Array(cases.map((c) => c[0])), [cases.length], 'float16'));
  assert.equal(back.dtype, 'float16');
  cases.forEach(([x, want], k) => assert.ok(Object.is(back.data[k], want), `${x} -> ${back.data[k]}, want ${want}`));
  assert.ok(Number.isNaN(parseNpy(serializeNpy(new Float64Array([NaN]), [1], 'float16')).data[0]));
});

test('parses version 2.0 headers, float64 and float16 data', () => {
  const f8 = parseNpy(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", bytesOf([0.1, 2, -3], 'f8', true), 2));
  assert.deepEqual([f8.dtype, f8.shape, Array.from(f8.data)], ['float64', [3], [0.1, 2, -3]]);
  const f2 = parseNpy(npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", bytesOf([0x3c00, 0xc000], 'f2', true)));
  assert.deepEqual([f2.dtype, Array.from(f2.data)], ['float16', [1, -2]]);
});

test('parses version 3.0 (utf-8) headers and unpadded headers in any key order', () => {
  const a = parseNpy(npy('{"shape": (2L,), "fortran_order": False, "descr": "=f4"}', bytesOf([1.5, 2.5], 'f4', true), 3, false));
  assert.deepEqual([a.shape, Array.from(a.data)], [[2], [1.5, 2.5]]);
});

test('scalars and empty arrays', () => {
  const s = parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", bytesOf([7], 'f4', true)));
  assert.deepEqual([s.shape, Array.from(s.data)], [[], [7]]);
  const e = parseNpy(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (0, 4), }", new Uint8Array()));
  assert.deepEqual([e.shape, e.data.length], [[0, 4], 0]);
});

test('big-endian data is byte swapped', () => {
  const values = [1.25, -3, 1e30];
  for (const [descr, kind] of [['>f4', 'f4'], ['>f8', 'f8']] as const) {
    const a = parseNpy(npy(`{'descr': '${descr}', 'fortran_order': False, 'shape': (3,), }`, bytesOf(values, kind, false)));
    assert.deepEqual(Array.from(a.data), kind === 'f4' ? values.map(Math.fround) : values);
  }
  const h = parseNpy(npy("{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }", bytesOf([0x3555], 'f2', false)));
  assert.equal(h.data[0], 0.333251953125);
});

test('fortran order is transposed to C order', () => {
  // C-order a[i][j][k] = 100i + 10j + k, shape (2, 3, 4), stored with i varying fastest.
  const shape = [2, 3, 4];
  const fortran: number[] = [];
  for (let k = 0; k < 4; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 2; i++) fortran.push(100 * i + 10 * j + k);
  const a = parseNpy(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }", bytesOf(fortran, 'f4', true)));
  const c: number[] = [];
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) c.push(100 * i + 10 * j + k);
  assert.deepEqual(a.shape, shape);
  assert.deepEqual(Array.from(a.data), c);
});

test('rejects integer, complex and structured dtypes with a conversion hint', () => {
  for (const descr of ['<i8', '|u1', '<c8', '|b1', '<M8[ns]']) {
    assert.throws(
      () => parseNpy(npy(`{'descr': '${descr}', 'fortran_order': False, 'shape': (1,), }`, new Uint8Array(16))),
      (e: unknown) =>
        e instanceof FormatError &&
        e.message.includes(`got '${descr}'`) &&
        e.message.includes("'<f4'") &&
        e.message.includes('astype(np.float32)'),
    );
  }
  assert.throws(
    () => parseNpy(npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", new Uint8Array(4))),
    /structured dtype/,
  );
});

test('rejects bad magic, bad versions, malformed headers and truncated files', () => {
  const good = serializeNpy(new Float64Array(6), [2, 3], 'float32');
  assert.throws(() => parseNpy(new Uint8Array()), (e) => e instanceof FormatError && /empty file/.test(e.message));
  assert.throws(() => parseNpy(new TextEncoder().encode('PK\x03\x04 zip')), (e) => e instanceof FormatError && /magic/.test(e.message));
  const v9 = good.slice();
  v9[6] = 9;
  assert.throws(() => parseNpy(v9), /version 9\.0/);
  assert.throws(() => parseNpy(good.subarray(0, good.length - 1)), (e) => e instanceof FormatError && /needs 24 bytes, file has 23/.test(e.message));
  assert.throws(() => parseNpy(good.subarray(0, 50)), (e) => e instanceof FormatError && /truncated/.test(e.message));
  assert.throws(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", new Uint8Array(24))), FormatError);
  assert.throws(() => parseNpy(npy("{'descr': '<f4', 'shape': (1,)}", new Uint8Array(4))), /lacks/);
  assert.throws(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", new Uint8Array(4))), /non-negative/);
});

test('serializeNpy validates its arguments', () => {
  assert.throws(() => serializeNpy(new Float64Array(5), [2, 3], 'float32'), ShapeError);
  assert.throws(() => serializeNpy(new Float64Array(1), [1.5], 'float32'), ShapeError);
  assert.throws(() => serializeNpy(new Float64Array(1), [1], 'float64' as 'float32'), DTypeError);
});

test('readNpy / writeNpy go through the file system and name the file in errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flash3-npy-'));
  try {
    const path = join(dir, 'a.npy');
    writeNpy(path, new Float32Array([1, 2, 3, 4]), [2, 2], 'float16');
    const a = readNpy(path);
    assert.deepEqual([a.dtype, a.shape, Array.from(a.data)], ['float16', [2, 2], [1, 2, 3, 4]]);
    writeFileSync(path, 'nope');
    assert.throws(() => readNpy(path), (e) => e instanceof FormatError && e.message.startsWith(`${path}: `));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

test('interoperates with numpy', { skip: hasNumpy ? false : 'python3 with numpy not available' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'flash3-npy-'));
  try {
    // numpy writes a variety of layouts; we read them back.
    const script = `
import numpy as np, sys
d = sys.argv[1]
a = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
np.save(d + '/f8.npy', a)
np.save(d + '/f4_big.npy', a.astype('>f4'))
np.save(d + '/f2.npy', a.astype(np.float16))
np.save(d + '/fortran.npy', np.asfortranarray(a.astype(np.float32)))
np.save(d + '/i8.npy', np.arange(3))
w = np.load(d + '/ours.npy')
assert w.dtype == np.float32 and w.shape == (2, 3, 4), (w.dtype, w.shape)
assert (w == (np.arange(24).reshape(2, 3, 4) / 7).astype(np.float32)).all()
h = np.load(d + '/ours16.npy')
assert h.dtype == np.float16 and (h == (np.arange(24).reshape(2, 3, 4) / 7).astype(np.float16)).all()
open(d + '/numpy16.npy', 'wb').write(open(d + '/f2.npy', 'rb').read())
`;
    const values = new Float64Array(24).map((_, k) => k / 7);
    writeNpy(join(dir, 'ours.npy'), values, [2, 3, 4], 'float32');
    writeNpy(join(dir, 'ours16.npy'), values, [2, 3, 4], 'float16');
    const r = spawnSync('python3', ['-c', script, dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const f8 = readNpy(join(dir, 'f8.npy'));
    assert.deepEqual([f8.dtype, f8.shape, Array.from(f8.data)], ['float64', [2, 3, 4], Array.from(values)]);
    for (const name of ['f4_big', 'fortran']) {
      const a = readNpy(join(dir, `${name}.npy`));
      assert.deepEqual([a.dtype, a.shape, Array.from(a.data)], ['float32', [2, 3, 4], Array.from(values, Math.fround)], name);
    }
    // numpy's own float16 rounding agrees with ours bit for bit, and so does the file layout.
    assert.deepEqual(readFileSync(join(dir, 'ours16.npy')), readFileSync(join(dir, 'f2.npy')));
    assert.throws(() => readNpy(join(dir, 'i8.npy')), /got '<i8'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
