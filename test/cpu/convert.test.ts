import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bfloat16Bits,
  decode,
  e4m3Bits,
  e5m2Bits,
  encode,
  float16Bits,
  fromBfloat16Bits,
  fromE4m3Bits,
  fromE5m2Bits,
  fromFloat16Bits,
  roundArrayTo,
  roundTo,
} from '../../src/numerics/convert.js';
import { DTYPES } from '../../src/dtype.js';
import { DTypeError } from '../../src/errors.js';

const hex = (b: number): string => `0x${b.toString(16)}`;
const bits = (f: (x: number) => number, x: number, expected: number): void =>
  assert.equal(hex(f(x)), hex(expected), `encode(${x})`);

test('float16: hand-checked bit patterns', () => {
  bits(float16Bits, 1, 0x3c00);
  bits(float16Bits, -2, 0xc000);
  bits(float16Bits, 65504, 0x7bff);
  bits(float16Bits, 65519, 0x7bff); // below the halfway point to 65536
  bits(float16Bits, 65520, 0x7c00); // halfway rounds to even, which is past the max: inf
  bits(float16Bits, -1e6, 0xfc00);
  bits(float16Bits, Infinity, 0x7c00);
  bits(float16Bits, 2 ** -14, 0x0400); // smallest normal
  bits(float16Bits, 2 ** -24, 0x0001); // smallest subnormal
  bits(float16Bits, 2 ** -25, 0x0000); // tie between 0 and 2^-24: even is 0
  bits(float16Bits, 3 * 2 ** -26, 0x0001);
  bits(float16Bits, 3 * 2 ** -25, 0x0002); // tie between 1 and 2 ulps: even is 2
  bits(float16Bits, 2 ** -14 - 2 ** -25, 0x0400); // the largest subnormal's upper tie rounds up into the normals
  bits(float16Bits, 1 + 2 ** -11, 0x3c00); // tie, 1.0 is even
  bits(float16Bits, 1 + 3 * 2 ** -11, 0x3c02); // tie, 0x3c02 is even
  bits(float16Bits, 1 + 2 ** -11 + 2 ** -40, 0x3c01); // just above the tie
  bits(float16Bits, 0.1, 0x2e66);
  bits(float16Bits, -0, 0x8000);
  bits(float16Bits, NaN, 0x7e00);
  assert.equal(fromFloat16Bits(0x3c00), 1);
  assert.equal(fromFloat16Bits(0x7bff), 65504);
  assert.equal(fromFloat16Bits(0x0001), 2 ** -24);
  assert.equal(fromFloat16Bits(0x7c00), Infinity);
  assert.equal(fromFloat16Bits(0xfc00), -Infinity);
  assert.ok(Number.isNaN(fromFloat16Bits(0x7e00)));
  assert.ok(Object.is(fromFloat16Bits(0x8000), -0));
});

test('bfloat16: hand-checked bit patterns, rounding through float32 first', () => {
  bits(bfloat16Bits, 1, 0x3f80);
  bits(bfloat16Bits, -1, 0xbf80);
  bits(bfloat16Bits, 1 + 2 ** -8, 0x3f80); // tie to even
  bits(bfloat16Bits, 1 + 3 * 2 ** -8, 0x3f82); // tie to even
  bits(bfloat16Bits, 1 + 2 ** -8 + 2 ** -20, 0x3f81);
  // float32 rounding removes the 2^-30 first, leaving an exact tie that goes to even.
  bits(bfloat16Bits, 1 + 2 ** -8 + 2 ** -30, 0x3f80);
  bits(bfloat16Bits, 3.4028234663852886e38, 0x7f80); // float32 max rounds past bf16 max
  bits(bfloat16Bits, 3.3895313892515355e38, 0x7f7f); // bf16 max
  bits(bfloat16Bits, Infinity, 0x7f80);
  bits(bfloat16Bits, -Infinity, 0xff80);
  bits(bfloat16Bits, 2 ** -133, 0x0001); // smallest bf16 subnormal
  bits(bfloat16Bits, NaN, 0x7fc0);
  bits(bfloat16Bits, -0, 0x8000);
  assert.equal(fromBfloat16Bits(0x3f80), 1);
  assert.equal(fromBfloat16Bits(0xc000), -2);
  assert.equal(fromBfloat16Bits(0x7f80), Infinity);
  assert.ok(Number.isNaN(fromBfloat16Bits(0x7fc0)));
});

test('float8 e4m3fn: hand-checked bit patterns, saturation, NaN', () => {
  bits(e4m3Bits, 448, 0x7e);
  bits(e4m3Bits, -448, 0xfe);
  bits(e4m3Bits, 1, 0x38);
  bits(e4m3Bits, -1, 0xb8);
  bits(e4m3Bits, 2 ** -6, 0x08); // smallest normal
  bits(e4m3Bits, 2 ** -9, 0x01); // smallest subnormal
  bits(e4m3Bits, 0.5 * 2 ** -9, 0x00); // tie between 0 and 2^-9
  bits(e4m3Bits, 1.0625, 0x38); // tie between 1 and 1.125
  bits(e4m3Bits, 1.1875, 0x3a); // tie between 1.125 and 1.25
  bits(e4m3Bits, 464, 0x7e); // saturates (and is also the tie that rounds to 448)
  bits(e4m3Bits, 1000, 0x7e);
  bits(e4m3Bits, Infinity, 0x7e);
  bits(e4m3Bits, -Infinity, 0xfe);
  bits(e4m3Bits, NaN, 0x7f);
  const noSat = (x: number): number => e4m3Bits(x, false);
  bits(noSat, 464, 0x7e); // rounds to 448: no overflow
  bits(noSat, 465, 0x7f); // rounds past 448: NaN, e4m3fn has no infinity
  bits(noSat, -1000, 0x7f);
  bits(noSat, Infinity, 0x7f);
  assert.equal(fromE4m3Bits(0x7e), 448);
  assert.equal(fromE4m3Bits(0x38), 1);
  assert.equal(fromE4m3Bits(0x07), 7 * 2 ** -9);
  assert.ok(Number.isNaN(fromE4m3Bits(0x7f)));
  assert.ok(Number.isNaN(fromE4m3Bits(0xff)));
});

test('float8 e5m2: hand-checked bit patterns, saturation, inf and NaN', () => {
  bits(e5m2Bits, 1, 0x3c);
  bits(e5m2Bits, -1, 0xbc);
  bits(e5m2Bits, 57344, 0x7b);
  bits(e5m2Bits, 2 ** -16, 0x01);
  bits(e5m2Bits, 2 ** -14, 0x04);
  bits(e5m2Bits, 1.125, 0x3c); // tie between 1 and 1.25
  bits(e5m2Bits, 1.375, 0x3e); // tie between 1.25 and 1.5
  bits(e5m2Bits, 61440, 0x7b);
  bits(e5m2Bits, Infinity, 0x7b);
  bits(e5m2Bits, -Infinity, 0xfb);
  bits(e5m2Bits, NaN, 0x7e);
  const noSat = (x: number): number => e5m2Bits(x, false);
  bits(noSat, 61440, 0x7c); // tie between 57344 and 2^16 goes to the even one, 2^16: inf
  bits(noSat, 61439, 0x7b);
  bits(noSat, -Infinity, 0xfc);
  bits(noSat, NaN, 0x7e);
  assert.equal(fromE5m2Bits(0x7b), 57344);
  assert.equal(fromE5m2Bits(0x7c), Infinity);
  assert.equal(fromE5m2Bits(0xfc), -Infinity);
  for (const b of [0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff]) assert.ok(Number.isNaN(fromE5m2Bits(b)), hex(b));
});

test('every float16 / e4m3 / e5m2 bit pattern decodes and re-encodes to itself', () => {
  const cases: [string, number, (b: number) => number, (x: number) => number][] = [
    ['float16', 1 << 16, fromFloat16Bits, float16Bits],
    ['e4m3', 256, fromE4m3Bits, (x) => e4m3Bits(x)],
    ['e4m3 no-sat', 256, fromE4m3Bits, (x) => e4m3Bits(x, false)],
    ['e5m2', 256, fromE5m2Bits, (x) => e5m2Bits(x, false)],
  ];
  for (const [name, count, dec, enc] of cases) {
    let checked = 0;
    for (let b = 0; b < count; b++) {
      const x = dec(b);
      if (Number.isNaN(x)) continue;
      if (enc(x) !== b) assert.fail(`${name}: ${hex(b)} -> ${x} -> ${hex(enc(x))}`);
      checked++;
    }
    assert.ok(checked > count * 0.9, `${name} checked ${checked}`);
  }
  // bf16: every finite pattern too (the same 65536 loop is cheap).
  for (let b = 0; b < 1 << 16; b++) {
    const x = fromBfloat16Bits(b);
    if (!Number.isNaN(x) && bfloat16Bits(x) !== b) assert.fail(`bf16 ${hex(b)}`);
  }
});

test('float16 rounding agrees with midpoints between neighbouring codes', () => {
  // Midpoints of consecutive finite codes must go to the even code; nudged ones to the nearer.
  for (let b = 0; b < 0x7bff; b++) {
    const lo = fromFloat16Bits(b);
    const hi = fromFloat16Bits(b + 1);
    const mid = (lo + hi) / 2;
    const even = b % 2 === 0 ? b : b + 1;
    if (float16Bits(mid) !== even) assert.fail(`mid of ${hex(b)}`);
    if (float16Bits(mid - (hi - lo) / 1024) !== b) assert.fail(`below mid of ${hex(b)}`);
    if (float16Bits(mid + (hi - lo) / 1024) !== b + 1) assert.fail(`above mid of ${hex(b)}`);
  }
});

test('roundTo and roundArrayTo', () => {
  assert.equal(roundTo(0.1, 'float64'), 0.1);
  assert.equal(roundTo(0.1, 'float32'), Math.fround(0.1));
  assert.equal(roundTo(0.1, 'float16'), fromFloat16Bits(0x2e66));
  assert.equal(roundTo(1 + 3 * 2 ** -8, 'bfloat16'), 1 + 2 * 2 ** -7);
  assert.equal(roundTo(500, 'float8_e4m3'), 448);
  assert.equal(roundTo(1e6, 'float8_e5m2'), 57344);
  const a = Float64Array.from([0.1, -3.3, 1e-9, 70000, NaN]);
  const same = roundArrayTo(a, 'float16');
  assert.equal(same, a);
  assert.deepEqual(Array.from(a.slice(0, 4)), [fromFloat16Bits(0x2e66), roundTo(-3.3, 'float16'), 0, Infinity]);
  assert.ok(Number.isNaN(a[4]));
});

test('encode/decode: storage types and round trips for every dtype', () => {
  const values = Float64Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
  const kinds: Record<string, string> = {
    float64: 'Float64Array',
    float32: 'Float32Array',
    float16: 'Uint16Array',
    bfloat16: 'Uint16Array',
    float8_e4m3: 'Uint8Array',
    float8_e5m2: 'Uint8Array',
  };
  for (const dtype of DTYPES) {
    const raw = encode(values, dtype);
    assert.equal(raw.constructor.name, kinds[dtype], dtype);
    const back = decode(raw, dtype);
    for (let i = 0; i < values.length; i++) {
      if (back[i] !== roundTo(values[i], dtype)) assert.fail(`${dtype}[${i}]: ${back[i]} vs ${roundTo(values[i], dtype)}`);
    }
  }
  const special = Float64Array.from([NaN, Infinity, -Infinity, -0]);
  assert.deepEqual(Array.from(encode(special, 'bfloat16')), [0x7fc0, 0x7f80, 0xff80, 0x8000]);
  assert.deepEqual(Array.from(encode(special, 'float16')), [0x7e00, 0x7c00, 0xfc00, 0x8000]);
  assert.deepEqual(Array.from(encode(special, 'float8_e4m3')), [0x7f, 0x7e, 0xfe, 0x80]);
  assert.throws(() => decode(new Uint8Array(2), 'float16'), DTypeError);
});
