/**
 * Without an NVIDIA driver the CUDA backend must report why, not crash: probeCuda() answers
 * ok:false with a reason and loadDriver() throws CudaUnavailableError. Skipped where a GPU works.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { probeCuda } from '../../src/cuda/context.js';
import { loadDriver } from '../../src/cuda/driver.js';
import { CudaUnavailableError } from '../../src/errors.js';

const probe = probeCuda();
const skip = probe.ok ? `a CUDA GPU is present (${probe.devices.map((d) => d.name).join(', ')})` : false;

test('probeCuda reports ok:false with a reason and never throws', { skip }, () => {
  const again = probeCuda();
  assert.equal(again.ok, false);
  if (again.ok) return;
  assert.equal(typeof again.reason, 'string');
  assert.ok(again.reason.length > 10, `reason: ${again.reason}`);
});

test('loadDriver throws CudaUnavailableError, the same way every time', { skip }, (t) => {
  let first: unknown;
  try {
    loadDriver();
  } catch (error) {
    first = error;
  }
  // A driver without a usable GPU (cuInit fails) still loads; probeCuda covers that case.
  if (first === undefined) return t.skip('libcuda.so.1 loads here, but no GPU is usable');
  assert.ok(first instanceof CudaUnavailableError, `got ${String(first)}`);
  assert.equal(first.code, 'FLASH3_CUDA_UNAVAILABLE');
  assert.match(first.message, /libcuda\.so\.1|koffi/);
  assert.ok(first.fix, 'has a fix');
  assert.throws(() => loadDriver(), (error: unknown) => error === first, 'the failure is cached');
});
