/**
 * The CUDA backend: Hopper (sm_90) GPUs through the driver API. Host tensors are uploaded,
 * computed on and downloaded; device tensors stay on the device and results come back there.
 * Every launch is followed by a synchronize so a device fault surfaces here, as a CudaError
 * naming the call, rather than at some later unrelated call.
 */
import { registerBackend, type Backend, type BackwardInputs, type Fp8Inputs, type Fp8OutDType, type ProbeResult } from '../backend.js';
import { QuantizedTensor, registerDeviceQuantizer, type ResolvedQuantize } from '../fp8.js';
import { randomSigns } from '../numerics/hadamard.js';
import { UnsupportedError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { ProblemShape } from '../problem.js';
import { registerDeviceTransfer, Tensor } from '../tensor.js';
import { CudaContext, probeCuda } from './context.js';
import { gradientsOnDevice } from './backward.js';
import { planForward } from './forward.js';
import { launchDescaleAll, launchQuantize, MAX_TRANSPOSE_ROWS, vtSeqlenPad } from './quantize.js';
import { FORWARD_HEAD_DIMS, missingCubins, type KernelElement, type Variant } from './kernels.js';

let probed: ProbeResult | undefined;

function probe(): ProbeResult {
  if (probed) return probed;
  const cuda = probeCuda();
  if (!cuda.ok) return (probed = { ok: false, reason: cuda.reason });
  const hopper = cuda.devices.find((d) => d.cc[0] === 9 && d.cc[1] === 0);
  if (!hopper) {
    const seen = cuda.devices.map((d) => `${d.name} (sm_${d.cc[0]}${d.cc[1]})`).join(', ');
    return (probed = { ok: false, reason: `no Hopper (sm_90) GPU: found ${seen}` });
  }
  const missing = missingCubins();
  if (missing.length) {
    return (probed = { ok: false, reason: `kernels not built (missing ${missing[0]}); run \`npm run build:kernels\` with nvcc 12.3+` });
  }
  return (probed = { ok: true, detail: `${hopper.name}, ${hopper.sms} SMs, sm_90, driver ${cuda.driverVersion}` });
}

function supports(shape: ProblemShape): string | null {
  if (shape.dtype !== 'bfloat16' && shape.dtype !== 'float16') return `dtype ${shape.dtype} (the CUDA kernels take float16 or bfloat16)`;
  if (!(FORWARD_HEAD_DIMS as readonly number[]).includes(shape.headDim)) return `head dim ${shape.headDim} (the CUDA kernels take ${FORWARD_HEAD_DIMS.join(', ')})`;
  if (shape.headDimV !== shape.headDim) return `v head dim ${shape.headDimV} differs from q/k head dim ${shape.headDim}`;
  return null;
}

/** A tensor wrapped with fromDevicePointer may claim the wrong device: ask the driver. */
function checkResidence(ctx: CudaContext, name: string, t: Tensor): void {
  let owner: number;
  try {
    owner = ctx.deviceOfPointer(t.devicePointer);
  } catch (cause) {
    throw new UnsupportedError(`${name} is not CUDA device memory the driver knows`, {
      param: name,
      fix: 'pass memory allocated with cuMemAlloc/cudaMalloc (or Tensor.cuda()) in this process',
      cause,
    });
  }
  if (owner !== ctx.ordinal) {
    throw new UnsupportedError(`${name} lives on CUDA device ${owner} but the problem runs on device ${ctx.ordinal}`, {
      param: name,
      fix: `create ${name} with device ${ctx.ordinal}, or move it there first`,
    });
  }
}

function supportsFp8(shape: ProblemShape, opts: ResolvedOptions): string | null {
  if (!(FORWARD_HEAD_DIMS as readonly number[]).includes(shape.headDim)) return `head dim ${shape.headDim} (the FP8 kernels take ${FORWARD_HEAD_DIMS.join(', ')})`;
  if (shape.headDimV !== shape.headDim) return `v head dim ${shape.headDimV} differs from q/k head dim ${shape.headDim}`;
  if (opts.softcap !== 0) return 'softcap with FP8 inputs (the FP8 kernels do not soft-cap; the 16-bit ones do)';
  return null;
}

/** Runs `body` on device copies of host tensors (device tensors as they are, residence checked), disposing the copies. */
function onDevice<T>(shape: ProblemShape, named: [string, Tensor][], body: (ctx: CudaContext, device: number, tensors: Tensor[]) => T): T {
  const onHost = shape.location === 'cpu';
  const device = onHost ? 0 : shape.device;
  const ctx = CudaContext.get(device);
  const uploaded: Tensor[] = [];
  try {
    const tensors = named.map(([name, t]) => {
      if (!onHost) {
        checkResidence(ctx, name, t);
        return t;
      }
      const d = t.cuda(device);
      uploaded.push(d);
      return d;
    });
    return body(ctx, device, tensors);
  } finally {
    for (const t of uploaded) t.dispose();
  }
}

/**
 * Allocates out and lse on the device poisoned with NaN, runs `launch` (which waits for its
 * kernels), and returns them where the caller's inputs live.
 */
function withOutputs(ctx: CudaContext, shape: ProblemShape, device: number, outDtype: KernelElement, launch: (out: Tensor, lse: Tensor) => void) {
  const out = Tensor.empty([shape.batch, shape.seqlenQ, shape.headsQ, shape.headDimV], outDtype, 'cuda', device);
  const lse = Tensor.empty([shape.batch, shape.headsQ, shape.seqlenQ], 'float32', 'cuda', device);
  try {
    // All-ones bytes are NaN in every float format: an element the kernel fails to write cannot pass for a result.
    ctx.memset8(out.devicePointer, 0xff, out.numel * 2);
    ctx.memset8(lse.devicePointer, 0xff, lse.numel * 4);
    launch(out, lse);
  } catch (e) {
    out.dispose();
    lse.dispose();
    throw e;
  }
  if (shape.location !== 'cpu') return { out, lse };
  try {
    return { out: out.cpu(), lse: lse.cpu() };
  } finally {
    out.dispose();
    lse.dispose();
  }
}

/**
 * FP8 forward: V is re-laid out as V^T (keys contiguous, P-register order) by one pass of the
 * quantization kernel, then the e4m3 forward runs on Q, K, V^T and the descales. `variant`: a
 * build other than the tile table's choice (scripts/tune.mjs checks tuning builds with it).
 */
export function forwardFp8({ q, k, v }: Fp8Inputs, shape: ProblemShape, opts: ResolvedOptions, outDtype: Fp8OutDType, variant: Variant = 'default') {
  const named: [string, Tensor][] = [
    ['q', q.data], ['k', k.data], ['v', v.data], ['q.descale', q.descale], ['k.descale', k.descale], ['v.descale', v.descale],
  ];
  return onDevice(shape, named, (ctx, device, [qd, kd, vd, qs, ks, vs]) => {
    const seqlenPad = vtSeqlenPad(shape.seqlenK);
    const vt = ctx.alloc(shape.batch * shape.headsKv * shape.headDim * seqlenPad);
    try {
      launchQuantize(ctx, { x: vd, out: vt.ptr, descale: 0n, blockRows: MAX_TRANSPOSE_ROWS, mode: 'copy', transposed: true, signs: null });
      ctx.synchronize();
      return withOutputs(ctx, shape, device, outDtype, (out, lse) => {
        const fp8 = {
          vt: { ptr: vt.ptr, seqlenPad, headDim: shape.headDim, heads: shape.headsKv, batch: shape.batch },
          descale: { q: qs.devicePointer, k: ks.devicePointer, v: vs.devicePointer, qRows: q.blockRows, kRows: k.blockRows },
        };
        launchPlan(planForward(ctx, { q: qd, k: kd, v: fp8, out, lse }, shape, opts, variant), ctx);
      });
    } finally {
      vt.free();
    }
  });
}

function quantizeOnDevice(x: Tensor, o: ResolvedQuantize): QuantizedTensor {
  const ctx = CudaContext.get(x.device);
  checkResidence(ctx, 'x', x);
  const [b, s, h, d] = x.shape;
  const data = Tensor.empty([b, s, h, d * o.terms], 'float8_e4m3', 'cuda', x.device);
  const descale = Tensor.empty([b, h, Math.ceil(s / o.blockRows)], 'float32', 'cuda', x.device);
  try {
    const base = { x, out: data.devicePointer, descale: descale.devicePointer, blockRows: o.blockRows, transposed: false, signs: o.hadamard ? randomSigns(d, o.seed) : null, terms: o.terms };
    if (o.scaling === 'block') {
      launchQuantize(ctx, { ...base, mode: 'block', powerOfTwoScales: o.powerOfTwoScales });
    } else {
      launchQuantize(ctx, { ...base, mode: 'amax' });
      launchDescaleAll(ctx, descale.devicePointer, descale.numel);
      launchQuantize(ctx, { ...base, mode: 'use-descale' });
    }
    ctx.synchronize();
    return new QuantizedTensor(data, descale, o.blockRows, o.hadamard ? o.seed : null, o.terms);
  } catch (e) {
    data.dispose();
    descale.dispose();
    throw e;
  }
}

function launchPlan(plan: ReturnType<typeof planForward>, ctx: CudaContext): void {
  try {
    plan.launch();
    ctx.synchronize();
  } finally {
    plan.dispose();
  }
}

function forward(q: Tensor, k: Tensor, v: Tensor, shape: ProblemShape, opts: ResolvedOptions) {
  return onDevice(shape, [['q', q], ['k', k], ['v', v]], (ctx, device, [dq, dk, dv]) =>
    withOutputs(ctx, shape, device, shape.dtype as KernelElement, (out, lse) =>
      launchPlan(planForward(ctx, { q: dq, k: dk, v: dv, out, lse }, shape, opts), ctx),
    ),
  );
}

function backward(q: Tensor, k: Tensor, v: Tensor, grads: BackwardInputs, shape: ProblemShape, opts: ResolvedOptions) {
  const named: [string, Tensor][] = [['q', q], ['k', k], ['v', v], ['out', grads.out], ['dout', grads.dout], ['lse', grads.lse]];
  return onDevice(shape, named, (ctx, device, [qd, kd, vd, out, dout, lse]) =>
    gradientsOnDevice(ctx, device, { q: qd, k: kd, v: vd, out, dout, lse }, shape, opts, grads.deterministic ?? false),
  );
}

export const cudaBackend: Backend = { name: 'cuda', probe, supports, forward, backward, supportsFp8, forwardFp8 };

registerBackend(cudaBackend);
registerDeviceQuantizer(quantizeOnDevice);

registerDeviceTransfer({
  alloc(bytes, device) {
    const buffer = CudaContext.get(device).alloc(bytes);
    return { ptr: buffer.ptr, bytes, device, release: () => buffer.free() };
  },
  upload(dst, byteOffset, src) {
    CudaContext.get(dst.device).upload(dst.ptr + BigInt(byteOffset), src);
  },
  download(src, byteOffset, dst) {
    CudaContext.get(src.device).download(src.ptr + BigInt(byteOffset), dst);
  },
});
