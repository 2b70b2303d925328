/** flash3: FlashAttention-3-class exact attention for Hopper GPUs, with a float64 CPU backend. */
import { registerBackend } from './backend.js';
import { cpuBackend } from './cpu/backend.js';
// Registers the CUDA backend; the driver itself is loaded lazily, so this is safe without a GPU.
import './cuda/backend.js';

registerBackend(cpuBackend);

export { Tensor } from './tensor.js';
export type { CpuStorage, DeviceStorage, Location, RandnOptions, RawLayout, DevicePointerOptions } from './tensor.js';
export { attention } from './attention.js';
export { attentionBackward } from './backward.js';
export type { BackwardOptions } from './backward.js';
export type { AttentionResult, Fp8AttentionOptions } from './attention.js';
export { quantizeFp8, QuantizedTensor } from './fp8.js';
export type { QuantizeOptions, Fp8Scaling } from './fp8.js';
export type { AttentionOptions, BackendChoice } from './options.js';
export { listBackends } from './backend.js';
export type { BackendName, BackendStatus, BackwardResult } from './backend.js';
export { DTYPES } from './dtype.js';
export type { DType } from './dtype.js';
export {
  Flash3Error,
  DTypeError,
  ShapeError,
  StrideError,
  OptionError,
  UnsupportedError,
  DisposedError,
  FormatError,
  CudaUnavailableError,
  CudaError,
  OutOfMemoryError,
} from './errors.js';
export type { ErrorDetails } from './errors.js';
export { referenceAttention } from './cpu/reference.js';
export { tiledAttention } from './cpu/tiled.js';
export { attentionBackwardCpu } from './cpu/backward.js';
export type { Emulation } from './cpu/tiled.js';
export type { CpuProblem, CpuResult } from './cpu/problem.js';
