/** `flash3 info`: what this install can do here, and if the GPU path can't run, why not. */
import { existsSync, readFileSync } from 'node:fs';
import { listBackends } from '../../backend.js';
import { probeCuda, type CudaProbe } from '../../cuda/context.js';
import { KERNEL_DIR, missingCubins } from '../../cuda/kernels.js';
import { boolFlag, type Command } from '../args.js';
import '../backends.js';
import { bytes } from '../format.js';
import { packageVersion } from '../package.js';
import { formatTable } from '../table.js';

interface PtxasReport {
  registers: number;
  stackBytes: number;
  spillStores: number;
  spillLoads: number;
}

interface KernelInfo {
  dir: string;
  built: boolean;
  missing: string[];
  /** build-kernels.mjs's per-cubin ptxas report, when the build wrote one. */
  ptxas: Record<string, PtxasReport> | null;
  ptxasError?: string;
}

function kernelInfo(): KernelInfo {
  const missing = missingCubins();
  const info: KernelInfo = { dir: KERNEL_DIR, built: missing.length === 0, missing, ptxas: null };
  const manifest = `${KERNEL_DIR}manifest.json`;
  if (existsSync(manifest)) {
    try {
      info.ptxas = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, PtxasReport>;
    } catch (e) {
      info.ptxasError = `${manifest} is unreadable: ${(e as Error).message}`;
    }
  }
  return info;
}

function cudaLines(cuda: CudaProbe): string[] {
  if (!cuda.ok) return [`CUDA: unavailable: ${cuda.reason}`];
  const rows = cuda.devices.map((d) => [d.ordinal, d.name, d.sms, `${d.cc[0]}.${d.cc[1]}`, bytes(d.memory)]);
  return [
    `CUDA: driver supports CUDA ${cuda.driverVersion}, ${cuda.devices.length} device(s)`,
    formatTable(['#', 'name', 'SMs', 'compute capability', 'memory'], rows),
  ];
}

function kernelLines(k: KernelInfo): string[] {
  const lines = [
    k.built
      ? `kernels: built (${k.dir})`
      : `kernels: not built: ${k.missing.length} cubin(s) missing from ${k.dir}; run \`npm run build:kernels\` with nvcc 12.3+`,
  ];
  if (k.ptxas) {
    const rows = Object.entries(k.ptxas).map(([name, r]) => [name, r.registers, r.spillStores, r.spillLoads, r.stackBytes]);
    lines.push(formatTable(['kernel', 'registers', 'spill stores (B)', 'spill loads (B)', 'stack (B)'], rows));
  } else if (k.ptxasError) {
    lines.push(`ptxas report: ${k.ptxasError}`);
  } else {
    lines.push('ptxas report: none (dist/kernels/manifest.json is written by `npm run build:kernels`)');
  }
  return lines;
}

export const infoCommand: Command = {
  name: 'info',
  summary: 'Show the version, the backends and why any is unavailable, the CUDA devices, and whether the kernels are built.',
  usage: 'flash3 info [--json]',
  flags: { json: { type: 'boolean', description: 'print the same facts as one JSON object' } },
  run(values) {
    const backends = listBackends();
    const cuda = probeCuda();
    const kernels = kernelInfo();
    const facts = { version: packageVersion(), node: process.version, platform: `${process.platform} ${process.arch}`, backends, cuda, kernels };
    if (boolFlag(values, 'json')) {
      console.log(JSON.stringify(facts, null, 2));
      return 0;
    }
    const out = [
      `flash3 ${facts.version} (Node ${facts.node}, ${facts.platform})`,
      '',
      'backends:',
      formatTable(['backend', 'available', 'detail'], backends.map((b) => [b.name, b.available ? 'yes' : 'no', b.detail])),
      '',
      ...cudaLines(cuda),
      '',
      ...kernelLines(kernels),
    ];
    console.log(out.join('\n'));
    return 0;
  },
};
