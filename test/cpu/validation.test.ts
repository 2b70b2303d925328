import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveOptions } from '../../src/options.js';
import { validateAttentionInputs } from '../../src/problem.js';
import { Tensor, registerDeviceTransfer } from '../../src/tensor.js';
import { DTypeError, DisposedError, Flash3Error, OptionError, ShapeError, UnsupportedError } from '../../src/errors.js';
import type { DType } from '../../src/dtype.js';

const zeros = (shape: number[], dtype: DType = 'float32'): Tensor => Tensor.empty(shape, dtype);

test('options: defaults and causal folding into the window', () => {
  assert.deepEqual(resolveOptions(undefined, 64), { softmaxScale: 0.125, windowLeft: -1, windowRight: -1, softcap: 0, backend: 'auto', causal: false });
  assert.deepEqual(resolveOptions({ causal: true }, 64), { softmaxScale: 0.125, windowLeft: -1, windowRight: 0, softcap: 0, backend: 'auto', causal: true });
  const local = resolveOptions({ causal: true, windowSize: [128, 16] }, 64);
  assert.deepEqual([local.windowLeft, local.windowRight, local.causal], [128, 0, false]);
  assert.equal(resolveOptions({ windowSize: [-1, 0] }, 64).causal, true);
  const full = resolveOptions({ softmaxScale: 0.5, softcap: 30, backend: 'cpu', windowSize: [4, 4], causal: undefined }, 128);
  assert.deepEqual(full, { softmaxScale: 0.5, windowLeft: 4, windowRight: 4, softcap: 30, backend: 'cpu', causal: false });
});

test('options: unknown names suggest the closest known one', () => {
  assert.throws(() => resolveOptions({ casual: true }, 64), {
    name: 'OptionError',
    message: /unknown option "casual" \(options\.casual = true\)\. Fix: did you mean "causal"\?/,
  });
  assert.throws(() => resolveOptions({ scale: 1 }, 64), { name: 'OptionError', message: /unknown option "scale".*known options are softmaxScale, causal/ });
  assert.throws(() => resolveOptions({ backend: 'CUDA' }, 64), { name: 'OptionError', message: /options\.backend = "CUDA".*did you mean "cuda"/ });
});

test('options: each value is range-checked and named', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ softmaxScale: NaN }, /softmaxScale must be a finite number > 0 \(options\.softmaxScale = NaN\)\. Fix: pass e\.g\. 1\/sqrt\(headDim\) = 0\.125/],
    [{ softmaxScale: -1 }, /options\.softmaxScale = -1/],
    [{ softmaxScale: Infinity }, /options\.softmaxScale = Infinity/],
    [{ softmaxScale: '0.1' }, /options\.softmaxScale = "0\.1"/],
    [{ windowSize: [1.5, 0] }, /options\.windowSize = \[1\.5, 0\].*Fix: pass \[left, right\]/],
    [{ windowSize: [-2, 0] }, /options\.windowSize = \[-2, 0\]/],
    [{ windowSize: [4] }, /options\.windowSize = \[4\]/],
    [{ softcap: -1 }, /options\.softcap = -1.*Fix:/],
    [{ softcap: NaN }, /options\.softcap = NaN/],
    [{ causal: 'yes' }, /options\.causal = "yes"/],
    [{ backend: 'tpu' }, /options\.backend = "tpu".*auto, cpu, cuda/],
    [[1, 2], /options must be a plain object/],
    ['causal', /options = "causal"/],
  ];
  for (const [options, message] of cases) assert.throws(() => resolveOptions(options, 64), (e: unknown) => e instanceof OptionError && message.test(e.message));
});

test('inputs: a valid GQA problem resolves its shape', () => {
  const shape = validateAttentionInputs(zeros([2, 5, 8, 64], 'bfloat16'), zeros([2, 7, 2, 64], 'bfloat16'), zeros([2, 7, 2, 32], 'bfloat16'));
  assert.deepEqual(shape, { batch: 2, seqlenQ: 5, seqlenK: 7, headsQ: 8, headsKv: 2, headDim: 64, headDimV: 32, dtype: 'bfloat16', location: 'cpu', device: -1 });
});

test('inputs: every mistake is a typed error naming the tensor, the value and the fix', () => {
  const q = zeros([2, 5, 8, 64]);
  const k = zeros([2, 7, 2, 64]);
  const v = zeros([2, 7, 2, 64]);
  const cases: Array<[() => unknown, new (...a: never[]) => Flash3Error, RegExp]> = [
    [() => validateAttentionInputs(new Float32Array(4), k, v), ShapeError, /q must be a flash3 Tensor, got Float32Array\(4\).*Fix: wrap the data/],
    [() => validateAttentionInputs(q, null, v), ShapeError, /k must be a flash3 Tensor, got null/],
    [() => validateAttentionInputs(q, k, zeros([14, 2, 64])), ShapeError, /v must have rank 4.*v\.shape = \[14, 2, 64\].*Fix: reshape v/],
    [() => validateAttentionInputs(zeros([2, 0, 8, 64]), k, v), ShapeError, /q has an empty seqlen dimension \(q\.shape\[1\] = 0\).*Fix:/],
    [() => validateAttentionInputs(q, zeros([2, 7, 2, 64], 'float16'), v), DTypeError, /k has dtype float16 but q has float32 \(k\.dtype = "float16"\).*Fix: .*convert k to float32/],
    [() => validateAttentionInputs(q, k, zeros([2, 7, 2, 64], 'bfloat16')), DTypeError, /v has dtype bfloat16.*v\.dtype/],
    [() => validateAttentionInputs(q, zeros([3, 7, 2, 64]), v), ShapeError, /k has batch size 3 but q has 2 \(k\.shape\[0\] = 3\).*Fix: give k and q the same batch size/],
    [() => validateAttentionInputs(q, k, zeros([2, 6, 2, 64])), ShapeError, /v has seqlen 6 but k has 7 \(v\.shape\[1\] = 6\)/],
    [() => validateAttentionInputs(q, k, zeros([2, 7, 4, 64])), ShapeError, /v has number of heads 4 but k has 2 \(v\.shape\[2\] = 4\)/],
    [() => validateAttentionInputs(q, zeros([2, 7, 2, 32]), v), ShapeError, /k has headDim 32 but q has 64 \(k\.shape\[3\] = 32\)/],
    [
      () => validateAttentionInputs(zeros([2, 5, 6, 64]), zeros([2, 7, 4, 64]), zeros([2, 7, 4, 64])),
      ShapeError,
      /heads not divisible: q has 6 heads but k and v have 4 \(q\.shape\[2\] = 6\)\. Fix: .*give k and v 1 or 2 or 3 or 6 heads, or q a multiple of 4/,
    ],
  ];
  for (const [call, cls, message] of cases) assert.throws(call, (e: unknown) => e instanceof cls && message.test((e as Error).message));
});

test('inputs: disposed tensors are rejected before their storage is touched', () => {
  const k = zeros([1, 4, 1, 8]);
  k.dispose();
  assert.throws(() => validateAttentionInputs(zeros([1, 4, 1, 8]), k, zeros([1, 4, 1, 8])), {
    name: 'DisposedError',
    message: /k is Tensor\(float32, \[1, 4, 1, 8\], cpu, disposed\) \(k\)\. Fix: pass k before disposing it/,
  });
  assert.ok(new DisposedError('x') instanceof Flash3Error);
});

test('inputs: a non-contiguous last dimension is a StrideError telling how to fix it', () => {
  // Tensor refuses such layouts itself; the validator repeats the check for tensors built elsewhere.
  const base = zeros([1, 4, 1, 16]);
  assert.throws(() => base.view([1, 4, 1, 8], [64, 16, 16, 2]), {
    name: 'StrideError',
    message: /last dimension must be contiguous.*Fix: call \.contiguous\(\) \/ pass a view whose last dimension is contiguous/,
  });
  const fake = Object.create(Tensor.prototype, {
    shape: { value: [1, 4, 1, 8] },
    strides: { value: [64, 16, 16, 2] },
    dtype: { value: 'float32' },
    disposed: { value: false },
  }) as Tensor;
  assert.throws(() => validateAttentionInputs(fake, zeros([1, 4, 1, 8]), zeros([1, 4, 1, 8])), {
    name: 'StrideError',
    message: /q's last dimension is not contiguous \(stride 2\) \(q\.strides\[3\] = 2\)\. Fix: call \.contiguous\(\)/,
  });
});

test('inputs: q, k and v must live on one device', () => {
  registerDeviceTransfer(null);
  const k = Tensor.fromDevicePointer(0x1000n, [1, 4, 1, 8], 'float32');
  assert.throws(() => validateAttentionInputs(zeros([1, 4, 1, 8]), k, zeros([1, 4, 1, 8])), (e: unknown) =>
    e instanceof UnsupportedError && /k is Tensor\(float32, \[1, 4, 1, 8\], cuda:0\) but q is .*cpu.*Fix: move q, k and v to one device/.test(e.message),
  );
});
