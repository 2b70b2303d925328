/**
 * Which backends the CLI can use. Loading the CUDA backend must never fail on a machine
 * without a GPU (its driver binding loads lazily); what is unavailable says why via its probe.
 */
import { getBackend, type BackendName, type ProbeResult } from '../backend.js';
import { CudaUnavailableError } from '../errors.js';
import '../index.js';
import '../cuda/backend.js';

export function probeBackend(name: BackendName): ProbeResult {
  const b = getBackend(name);
  if (!b) return { ok: false, reason: `the ${name} backend is not registered` };
  try {
    return b.probe();
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

export interface BackendPick {
  name: BackendName;
  /** Why this one: shown to the user so nobody benchmarks the CPU by accident. */
  why: string;
}

/** 'auto' is CUDA when it works here, else the CPU; an explicit 'cuda' that cannot work throws with the reason. */
export function pickBackend(requested: 'auto' | BackendName): BackendPick {
  if (requested === 'cpu') return { name: 'cpu', why: 'requested with --backend cpu' };
  const cuda = probeBackend('cuda');
  if (cuda.ok) return { name: 'cuda', why: requested === 'cuda' ? 'requested with --backend cuda' : `CUDA is available (${cuda.detail})` };
  if (requested === 'cuda') {
    throw new CudaUnavailableError(`the CUDA backend is unavailable: ${cuda.reason}`, {
      param: '--backend',
      value: 'cuda',
      fix: 'run on a machine with an H100/H200 and built kernels, or pass --backend cpu',
    });
  }
  return { name: 'cpu', why: `CUDA is unavailable: ${cuda.reason}` };
}
