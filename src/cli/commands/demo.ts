/** `flash3 demo` (npm start): one attention call on the best backend here, checked against float64. */
import { attention } from '../../attention.js';
import { cpuProblemOf, relativeError } from '../../check/compare.js';
import { referenceAttention } from '../../cpu/reference.js';
import type { DType } from '../../dtype.js';
import { resolveOptions } from '../../options.js';
import { validateAttentionInputs } from '../../problem.js';
import { Tensor } from '../../tensor.js';
import { shortDType, type Command } from '../args.js';
import { pickBackend } from '../backends.js';
import { duration, sci, tuple } from '../format.js';
import { formatTable } from '../table.js';

interface DemoProblem {
  dtype: DType;
  shape: [number, number, number, number];
  causal: boolean;
  /** Relative error bound, ~10 units of the output dtype's rounding (bf16: 2^-9), so only a real bug fails. */
  tolerance: number;
}

const PROBLEMS: Record<'cuda' | 'cpu', DemoProblem> = {
  cuda: { dtype: 'bfloat16', shape: [2, 1024, 8, 128], causal: true, tolerance: 2e-2 },
  cpu: { dtype: 'float32', shape: [1, 256, 4, 64], causal: true, tolerance: 1e-5 },
};

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Run one attention call on the best backend here and check it against the float64 reference.',
  usage: 'flash3 demo',
  details: 'CUDA (when usable): bf16, batch 2, seqlen 1024, 8 heads, head dim 128, causal. CPU: fp32, batch 1, seqlen 256, 4 heads, head dim 64, causal.',
  flags: {},
  run() {
    const pick = pickBackend('auto');
    const onGpu = pick.name === 'cuda';
    const p = PROBLEMS[pick.name];
    console.log(`flash3 demo: using the ${pick.name} backend (${pick.why})`);

    const host = [0, 1, 2].map((i) => Tensor.randn(p.shape, { dtype: p.dtype, seed: 42 + i }));
    // On the GPU the inputs go to the device first, so the time is the kernel, not the upload.
    const inputs = onGpu ? host.map((t) => t.cuda()) : host;
    const [q, k, v] = inputs;
    const run = () => attention(q, k, v, { causal: p.causal, backend: pick.name });
    try {
      if (onGpu) {
        // The first call loads the kernel module; time the second.
        const warm = run();
        warm.out.dispose();
        warm.lse.dispose();
      }
      const t0 = performance.now();
      const { out, lse } = run();
      const elapsed = performance.now() - t0;
      lse.dispose();
      let err: number;
      try {
        const opts = resolveOptions({ causal: p.causal }, p.shape[3]);
        const ref = referenceAttention(cpuProblemOf(host[0], host[1], host[2], validateAttentionInputs(host[0], host[1], host[2]), opts));
        err = relativeError(out.toFloat64Array(), ref.out);
      } finally {
        out.dispose();
      }
      const pass = err < p.tolerance;
      console.log(
        formatTable(
          ['backend', 'dtype', 'shape (b, s, h, d)', 'mask', 'time', 'rel error vs float64', 'result'],
          [[pick.name, shortDType(p.dtype), tuple(p.shape), p.causal ? 'causal' : 'full', duration(elapsed), sci(err), pass ? 'PASS' : `FAIL (> ${sci(p.tolerance)})`]],
        ),
      );
      console.log(
        onGpu
          ? 'Next: `flash3 bench --peers` for the FA3 paper grid against cuDNN and FA2, `flash3 check` to validate every backend.'
          : 'Next: `flash3 check` validates every backend; `flash3 bench` times the CPU reference here and the FA3 paper grid on an H100/H200.',
      );
      return pass ? 0 : 1;
    } finally {
      for (const t of new Set([...host, ...inputs])) t.dispose();
    }
  },
};
