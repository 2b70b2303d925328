/** Shared by the GPU suites: why they skip on a machine without a usable CUDA GPU. */
// The package entry registers the backends; the probe below must see the CUDA one.
import '../../src/index.js';
import { getBackend } from '../../src/backend.js';

const probe = getBackend('cuda')?.probe() ?? { ok: false as const, reason: 'cuda backend not registered' };

/** `false` where the CUDA backend is usable, else the reason (node:test prints it). */
export const gpuSkip: string | false = probe.ok ? false : `no usable CUDA GPU (${probe.reason}); GPU tests run on the GPU machine`;
