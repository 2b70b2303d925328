/**
 * The CUDA backend: Hopper (sm_90) GPUs through the driver API. Host tensors are uploaded,
 * computed on and downloaded; device tensors stay on the device and results come back there.
 * Every launch is followed by a synchronize so a device fault surfaces here, as a CudaError
 * naming the call, rather than at some later unrelated call.
 */
import { registerBackend, type Backend, type ProbeResult } from '../backend.js';
import { UnsupportedError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { ProblemShape } from '../problem.js';
import { registerDeviceTransfer, Tensor } from '../tensor.js';
import { CudaContext, probeCuda } from './context.js';
import { cudaBackward } from './backward.js';
import { planForward } from './forward.js';
import { FORWARD_HEAD_DIMS, missingCubins } from './kernels.js';

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

function supports(shape: ProblemShape, opts: ResolvedOptions): string | null {
  if (shape.dtype !== 'bfloat16' && shape.dtype !== 'float16') return `dtype ${shape.dtype} (the CUDA kernels take float16 or bfloat16)`;
  if (!(FORWARD_HEAD_DIMS as readonly number[]).includes(shape.headDim)) return `head dim ${shape.headDim} (the CUDA kernels take ${FORWARD_HEAD_DIMS.join(', ')})`;
  if (shape.headDimV !== shape.headDim) return `v head dim ${shape.headDimV} differs from q/k head dim ${shape.headDim}`;
  if (opts.softcap !== 0) return 'softcap (not implemented in the CUDA kernels)';
  return null;
}

/** A tensor wrapped with fromDevicePointer may claim the wrong device: ask the driver. */
export function checkResidence(ctx: CudaContext, name: string, t: Tensor): void {
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

function forward(q: Tensor, k: Tensor, v: Tensor, shape: ProblemShape, opts: ResolvedOptions) {
  const onHost = shape.location === 'cpu';
  const device = onHost ? 0 : shape.device;
  const ctx = CudaContext.get(device);
  const uploaded: Tensor[] = [];
  const toDevice = (t: Tensor) => {
    if (!onHost) return t;
    const d = t.cuda(device);
    uploaded.push(d);
    return d;
  };
  try {
    const [dq, dk, dv] = [toDevice(q), toDevice(k), toDevice(v)];
    if (!onHost) for (const [name, t] of [['q', dq], ['k', dk], ['v', dv]] as const) checkResidence(ctx, name, t);
    const out = Tensor.empty([shape.batch, shape.seqlenQ, shape.headsQ, shape.headDimV], shape.dtype, 'cuda', device);
    const lse = Tensor.empty([shape.batch, shape.headsQ, shape.seqlenQ], 'float32', 'cuda', device);
    try {
      // All-ones bytes are NaN in every float format: an element the kernel fails to write cannot pass for a result.
      ctx.memset8(out.devicePointer, 0xff, out.numel * 2);
      ctx.memset8(lse.devicePointer, 0xff, lse.numel * 4);
      const plan = planForward(ctx, { q: dq, k: dk, v: dv, out, lse }, shape, opts);
      try {
        plan.launch();
        ctx.synchronize();
      } finally {
        plan.dispose();
      }
    } catch (e) {
      out.dispose();
      lse.dispose();
      throw e;
    }
    if (!onHost) return { out, lse };
    try {
      return { out: out.cpu(), lse: lse.cpu() };
    } finally {
      out.dispose();
      lse.dispose();
    }
  } finally {
    for (const t of uploaded) t.dispose();
  }
}

export const cudaBackend: Backend = { name: 'cuda', probe, supports, forward, backward: cudaBackward };

registerBackend(cudaBackend);

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
