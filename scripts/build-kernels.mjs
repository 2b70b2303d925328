// Builds every kernel (forward variants, backward, FP8 quantization) into dist/kernels/*.cubin with nvcc for sm_90a, and fails
// when ptxas reports register spills or a stack frame (local memory in the hot loop), or wgmma
// serialized or waits injected by ptxas (C7510-C7519: a kernel that still runs, much slower). Without
// nvcc it says so and exits 0: the CPU backend needs no kernels.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'dist', 'kernels');

const VARIANTS = [];
for (const element of ['bf16', 'fp16']) for (const headDim of [64, 128, 256]) VARIANTS.push({ element, headDim });
// FP8 forward: e4m3 inputs, one build per output type (flash_fwd_e4m3_<out>_hd<d>), and the
// accuracy mode with a two-term Q (e4m3x2).
for (const out of ['bf16', 'fp16']) {
  for (const headDim of [64, 128, 256]) VARIANTS.push({ element: `e4m3_${out}`, headDim }, { element: `e4m3x2_${out}`, headDim });
}
// Long-sequence tiles (TileConfigLong, TileConfigFp8Long in kernels/fwd/tile_config.cuh; the host
// picks them by seqlen_q: SEQUENCE_TILES in src/cuda/kernels.ts).
const LONG = { bf16: [64, 128, 256], fp16: [64, 128, 256], e4m3_bf16: [64, 128], e4m3_fp16: [64, 128], e4m3x2_bf16: [64, 128], e4m3x2_fp16: [64, 128] };
for (const [element, headDims] of Object.entries(LONG)) {
  for (const headDim of headDims) VARIANTS.push({ element, headDim, schedule: 'long', defines: ['-DFLASH3_LONG_TILE'] });
}
// The FP8 tile of the longest sequences at head dim 64 (TileConfigFp8Wide; SEQUENCE_TILES in src/cuda/kernels.ts).
for (const element of ['e4m3_bf16', 'e4m3_fp16', 'e4m3x2_bf16', 'e4m3x2_fp16']) VARIANTS.push({ element, headDim: 64, schedule: 'wide', defines: ['-DFLASH3_WIDE_TILE'] });
// The three-warpgroup tile of unmasked problems (TileConfigTall; SEQUENCE_TILES in src/cuda/kernels.ts).
for (const element of ['bf16', 'fp16']) {
  for (const headDim of [64, 128]) VARIANTS.push({ element, headDim, schedule: 'tall', defines: ['-DFLASH3_TALL_TILE'] });
}
// Three CTAs per SM for short masked problems (TileConfigTrio; SEQUENCE_TILES in src/cuda/kernels.ts).
for (const element of ['bf16', 'fp16']) VARIANTS.push({ element, headDim: 64, schedule: 'trio', defines: ['-DFLASH3_TRIO_TILE'] });
// Soft-capping (kernels/fwd/softcap.cuh) in builds of its own, the default tile only: the host
// picks them when softcap is set (forwardVariantFor, planBackward).
for (const element of ['bf16', 'fp16']) {
  for (const headDim of [64, 128, 256]) VARIANTS.push({ element, headDim, schedule: 'softcap', defines: ['-DFLASH3_SOFTCAP=1'] });
}
// Kernels other than the forward, one cubin per source file (the backward: per dtype and head dim).
const SOURCES = [{ name: 'quantize_fp8', file: 'quantize_fp8.cu' }];
for (const element of ['bf16', 'fp16']) {
  for (const headDim of [64, 128, 256]) {
    const defines = [`-DFLASH3_ELEMENT=${element}`, `-DFLASH3_HEADDIM=${headDim}`];
    // The deterministic mode and soft-capping are builds of their own (src/cuda/backward.ts picks them).
    for (const [suffix, extra] of [['', []], ['_softcap', ['-DFLASH3_SOFTCAP=1']]]) {
      SOURCES.push({ name: `flash_bwd_${element}_hd${headDim}${suffix}`, file: 'flash_bwd.cu', defines: [...defines, ...extra] });
      SOURCES.push({ name: `flash_bwd_${element}_hd${headDim}${suffix}_det`, file: 'flash_bwd.cu', defines: [...defines, ...extra, '-DFLASH3_DETERMINISTIC=1'] });
    }
  }
}
// Tuning builds: --extra NAME:ELEMENT:HEADDIM:MACRO=V,MACRO=V (e.g. bn176:bf16:128:BLOCK_N=176)
// adds flash_fwd_<element>_hd<d>_<NAME>.cubin with FLASH3_<MACRO> overrides, for `flash3 bench --variant`.
for (let i = process.argv.indexOf('--extra'); i > 0; i = process.argv.indexOf('--extra', i + 1)) {
  const [schedule, element, headDim, overrides = ''] = process.argv[i + 1].split(':');
  const defines = overrides.split(',').filter(Boolean).map((kv) => `-DFLASH3_${kv}`);
  VARIANTS.push({ element, headDim: Number(headDim), schedule, defines });
}
// Backward tuning builds: --extra-bwd NAME:ELEMENT:HEADDIM:MACRO=V,... adds flash_bwd_<element>_hd<d>_<NAME>.cubin
// and its deterministic build (<NAME>_det) with FLASH3_<MACRO> overrides, for `scripts/tune.mjs --backward`.
for (let i = process.argv.indexOf('--extra-bwd'); i > 0; i = process.argv.indexOf('--extra-bwd', i + 1)) {
  const [name, element, headDim, overrides = ''] = process.argv[i + 1].split(':');
  const defines = overrides.split(',').filter(Boolean).map((kv) => `-DFLASH3_${kv}`);
  const base = [`-DFLASH3_ELEMENT=${element}`, `-DFLASH3_HEADDIM=${headDim}`, ...defines];
  SOURCES.push({ name: `flash_bwd_${element}_hd${headDim}_${name}`, file: 'flash_bwd.cu', defines: base });
  SOURCES.push({ name: `flash_bwd_${element}_hd${headDim}_${name}_det`, file: 'flash_bwd.cu', defines: [...base, '-DFLASH3_DETERMINISTIC=1'] });
}
// The ablation of the scheduling ideas (docs/perf-log.md), at the head dim FA3's ablation used.
// 'sync' is the baseline without warp specialisation: the consumers load their own K/V a block ahead.
for (const [schedule, ws, pingpong, overlap] of [['sync', 0, 0, 0], ['ws', 1, 0, 0], ['ws-pingpong', 1, 1, 0], ['ws-overlap', 1, 0, 1], ['ws-pingpong-overlap', 1, 1, 1]]) {
  const defines = [`-DFLASH3_WARP_SPECIALIZED=${ws}`, `-DFLASH3_PINGPONG=${pingpong}`, `-DFLASH3_INTRA_OVERLAP=${overlap}`];
  VARIANTS.push({ element: 'bf16', headDim: 128, schedule, defines });
}

function findNvcc() {
  const candidates = ['nvcc'];
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']) {
    if (home) candidates.push(join(home, 'bin', 'nvcc'));
  }
  for (const c of candidates) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return c;
  }
  return null;
}

// Forward variants: `element` is bf16, fp16, e4m3_<out type> or e4m3x2_<out type> (two-term Q).
function forwardJob({ element, headDim, schedule, defines = [] }) {
  const [input, out] = element.split('_');
  const fp8 = input === 'e4m3x2' ? ['-DFLASH3_ELEMENT=e4m3', '-DFLASH3_Q_TERMS=2'] : [`-DFLASH3_ELEMENT=${input}`];
  return {
    name: `flash_fwd_${element}_hd${headDim}${schedule ? `_${schedule}` : ''}`,
    file: 'flash_fwd.cu',
    defines: [...fp8, ...(out ? [`-DFLASH3_OUT=${out}`] : []), `-DFLASH3_HEADDIM=${headDim}`, ...defines],
  };
}

function compile(nvcc, { name, file, defines = [] }) {
  const args = [
    '-cubin', '-gencode=arch=compute_90a,code=sm_90a', '-O3', '-std=c++17', '-Xptxas', '-v',
    ...defines, '-o', join(outDir, `${name}.cubin`), join(root, 'kernels', file),
  ];
  return new Promise((resolve) => {
    const child = spawn(nvcc, args, { cwd: join(root, 'kernels') });
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    child.on('close', (code) => resolve({ name, code, log }));
  });
}

// ptxas -v lines: "Used N registers", "N bytes stack frame, N bytes spill stores, N bytes spill loads",
// once per kernel of the cubin; the worst kernel counts.
function parseReport(log) {
  const num = (re) => Math.max(...[...log.matchAll(new RegExp(re, 'g'))].map((m) => Number(m[1])));
  return {
    registers: num(/Used (\d+) registers/),
    stackBytes: num(/(\d+) bytes stack frame/),
    spillStores: num(/(\d+) bytes spill stores/),
    spillLoads: num(/(\d+) bytes spill loads/),
  };
}

async function main() {
  generateWgmmaWrappers();
  const nvcc = findNvcc();
  if (!nvcc) {
    console.log('flash3: nvcc not found (set CUDA_HOME); skipping the CUDA kernels. The CPU backend works without them.');
    return;
  }
  mkdirSync(outDir, { recursive: true });
  // Tuning builds of earlier runs would otherwise linger and be checked (and carried) as if current.
  for (const f of readdirSync(outDir)) if (f.endsWith('.cubin')) rmSync(join(outDir, f));
  const started = Date.now();
  const queue = [...VARIANTS.map(forwardJob), ...SOURCES];
  const results = [];
  const jobs = Math.max(1, Math.min(cpus().length, 4));
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      while (queue.length) results.push(await compile(nvcc, queue.shift()));
    }),
  );
  const manifest = {};
  const problems = [];
  for (const r of results.sort((a, b) => a.name.localeCompare(b.name))) {
    if (r.code !== 0) {
      problems.push(`${r.name}: nvcc exited with ${r.code}\n${r.log}`);
      continue;
    }
    const report = parseReport(r.log);
    manifest[r.name] = report;
    if (report.spillStores > 0 || report.spillLoads > 0 || report.stackBytes > 0 || /C7508|C751[0-9]|warning/i.test(r.log)) {
      problems.push(`${r.name}: ptxas reports local memory or a warning (${JSON.stringify(report)})\n${r.log}`);
    }
  }
  writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  for (const [name, rep] of Object.entries(manifest)) {
    console.log(`  ${name}: ${rep.registers} registers, ${rep.spillStores} B spills, ${rep.stackBytes} B stack`);
  }
  console.log(`flash3: built ${Object.keys(manifest).length} cubins in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (problems.length) {
    console.error(problems.join('\n\n'));
    process.exit(1);
  }
}

function generateWgmmaWrappers() {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'gen-wgmma.mjs')], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

await main();
