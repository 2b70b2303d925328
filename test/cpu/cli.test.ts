/**
 * The flash3 command line as users and outside tools see it: a child process, its exit status,
 * stdout and stderr. Needs no GPU; CUDA-only paths are checked for saying why they can't run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { maxAbsDiffLse, relativeError } from '../../src/check/compare.js';
import { referenceAttention } from '../../src/cpu/reference.js';
import { probeCuda } from '../../src/cuda/context.js';
import { readNpy, writeNpy } from '../../src/io/npy.js';
import { randn } from '../../src/numerics/random.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'flash3-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function flash3(...args: string[]): Run {
  const env = { ...process.env };
  delete env.FLASH3_DEBUG;
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function fround(x: Float64Array): Float64Array {
  return x.map(Math.fround);
}

describe('flash3 info', () => {
  it('lists the cpu backend and says why cuda is or is not usable', () => {
    const r = flash3('info');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\| cpu +\| yes/);
    assert.match(r.stdout, /\| cuda +\|/);
    const cuda = probeCuda();
    if (cuda.ok) assert.ok(r.stdout.includes(cuda.devices[0].name));
    else assert.ok(r.stdout.includes(cuda.reason), `stdout lacks the CUDA reason "${cuda.reason}"`);
    assert.match(r.stdout, /^flash3 \d+\.\d+\.\d+/);
  });

  it('--json gives the same facts as an object', () => {
    const r = flash3('info', '--json');
    assert.equal(r.status, 0, r.stderr);
    const facts = JSON.parse(r.stdout);
    assert.ok(facts.backends.some((b: { name: string; available: boolean }) => b.name === 'cpu' && b.available));
    assert.equal(typeof facts.cuda.ok, 'boolean');
    assert.equal(typeof facts.kernels.built, 'boolean');
  });
});

describe('usage errors', () => {
  it('an unknown command exits 2 with a suggestion', () => {
    const r = flash3('chek');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'chek'.*did you mean 'check'/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('an unknown flag exits 2 on one line naming it, with a suggestion', () => {
    const r = flash3('run', '--ot', 'x.npy');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown flag --ot \(did you mean --out\?\)/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const b = flash3('bench', '--seqlens', '512');
    assert.equal(b.status, 2);
    assert.match(b.stderr, /did you mean --seqlen\?/);
  });

  it('a flag missing its value exits 2', () => {
    const r = flash3('run', '--q', '--k', 'k.npy');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--q needs a value/);
  });

  it('--help prints the command help and exits 0', () => {
    const r = flash3('run', '--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /usage: flash3 run/);
    assert.match(r.stdout, /--lse FILE/);
  });
});

describe('flash3 run', () => {
  const [b, sq, sk, hq, hkv, d] = [2, 37, 50, 4, 2, 64];
  const q = fround(randn(b * sq * hq * d, 11));
  const k = fround(randn(b * sk * hkv * d, 12));
  const v = fround(randn(b * sk * hkv * d, 13));
  const path = (name: string) => join(dir, name);
  writeNpy(path('q.npy'), q, [b, sq, hq, d], 'float32');
  writeNpy(path('k.npy'), k, [b, sk, hkv, d], 'float32');
  writeNpy(path('v.npy'), v, [b, sk, hkv, d], 'float32');
  writeNpy(path('k_bad.npy'), randn(b * sk * hkv * 32, 14), [b, sk, hkv, 32], 'float32');

  it('computes causal GQA attention from .npy files, matching the float64 reference', () => {
    const r = flash3('run', '--q', path('q.npy'), '--k', path('k.npy'), '--v', path('v.npy'), '--out', path('out.npy'), '--lse', path('lse.npy'), '--causal');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 1);
    assert.match(r.stdout, /cpu/);
    assert.match(r.stdout, /\d ms/);

    const ref = referenceAttention({
      batch: b, seqlenQ: sq, seqlenK: sk, headsQ: hq, headsKv: hkv, headDim: d, headDimV: d,
      q, k, v, softmaxScale: 1 / Math.sqrt(d), windowLeft: -1, windowRight: 0, softcap: 0,
    });
    const out = readNpy(path('out.npy'));
    const lse = readNpy(path('lse.npy'));
    assert.equal(out.dtype, 'float32');
    assert.deepEqual(out.shape, [b, sq, hq, d]);
    assert.equal(lse.dtype, 'float32');
    assert.deepEqual(lse.shape, [b, hq, sq]);
    assert.ok(relativeError(out.data, ref.out) < 1e-6, `out error ${relativeError(out.data, ref.out)}`);
    assert.ok(maxAbsDiffLse(lse.data, ref.lse) < 1e-6, `lse error ${maxAbsDiffLse(lse.data, ref.lse)}`);
  });

  it('a missing input file exits 1 naming the flag, without a stack trace', () => {
    const r = flash3('run', '--q', path('q.npy'), '--k', path('nope.npy'), '--v', path('v.npy'), '--out', path('o.npy'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^flash3: --k: no such file/);
    assert.ok(!r.stderr.includes('    at '), r.stderr);
  });

  it('mismatched shapes exit 1 naming the parameter', () => {
    const r = flash3('run', '--q', path('q.npy'), '--k', path('k_bad.npy'), '--v', path('v.npy'), '--out', path('o.npy'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^flash3: --k \(.*k_bad\.npy\): k has headDim 32 but q has 64/);
    assert.ok(!r.stderr.includes('    at '), r.stderr);
  });

  it('a missing required flag exits 2', () => {
    const r = flash3('run', '--q', path('q.npy'), '--k', path('k.npy'), '--v', path('v.npy'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--out is required/);
  });

  const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  const skip = numpy.status === 0 ? false : 'python3 with numpy is not available';
  it('reads what numpy writes and writes what numpy reads (float16/32/64 inputs)', { skip }, () => {
    const npDir = mkdtempSync(join(dir, 'np-'));
    const write = spawnSync('python3', ['-c', NUMPY_WRITE, npDir], { encoding: 'utf8' });
    assert.equal(write.status, 0, write.stderr);
    const r = flash3('run', '--q', join(npDir, 'q.npy'), '--k', join(npDir, 'k.npy'), '--v', join(npDir, 'v.npy'), '--out', join(npDir, 'out.npy'), '--lse', join(npDir, 'lse.npy'), '--causal');
    assert.equal(r.status, 0, r.stderr);
    const check = spawnSync('python3', ['-c', NUMPY_CHECK, npDir], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stderr);
    const { outErr, lseErr, outShape, lseShape } = JSON.parse(check.stdout);
    assert.deepEqual(outShape, [2, 33, 4, 64]);
    assert.deepEqual(lseShape, [2, 4, 33]);
    // k is float64 in the file and rounded to float32 by --dtype fp32, so allow float32 rounding.
    assert.ok(outErr < 1e-5, `out error vs numpy ${outErr}`);
    assert.ok(lseErr < 1e-5, `lse error vs numpy ${lseErr}`);
  });
});

const NUMPY_WRITE = `
import sys, numpy as np
d = sys.argv[1]
r = np.random.default_rng(0)
np.save(d + '/q.npy', r.standard_normal((2, 33, 4, 64)).astype(np.float32))
np.save(d + '/k.npy', r.standard_normal((2, 47, 2, 64)))
np.save(d + '/v.npy', r.standard_normal((2, 47, 2, 64)).astype(np.float16))
`;

const NUMPY_CHECK = `
import sys, json, numpy as np
d = sys.argv[1]
q, k, v = (np.load(d + '/' + n + '.npy').astype(np.float64) for n in 'qkv')
b, sq, hq, hd = q.shape
sk, hk = k.shape[1], k.shape[2]
k = np.repeat(k, hq // hk, axis=2)
v = np.repeat(v, hq // hk, axis=2)
s = np.einsum('bqhd,bkhd->bhqk', q, k) / np.sqrt(hd)
i = np.arange(sq)[:, None]
j = np.arange(sk)[None, :]
s = np.where(j <= i + sk - sq, s, -np.inf)
m = s.max(-1, keepdims=True)
p = np.exp(s - m)
l = p.sum(-1, keepdims=True)
ref = np.einsum('bhqk,bkhd->bqhd', p / l, v)
ref_lse = (m + np.log(l))[..., 0]
out = np.load(d + '/out.npy')
lse = np.load(d + '/lse.npy')
assert out.dtype == np.float32 and lse.dtype == np.float32
print(json.dumps({
  'outErr': float(np.linalg.norm(out - ref) / np.linalg.norm(ref)),
  'lseErr': float(np.abs(lse - ref_lse).max()),
  'outShape': list(out.shape),
  'lseShape': list(lse.shape),
}))
`;

describe('flash3 check', () => {
  it('--backend cpu --quick passes', () => {
    const r = flash3('check', '--backend', 'cpu', '--quick', '--seed', '5');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /PASS/);
    assert.doesNotMatch(r.stdout, /FAIL/);
    for (const dtype of ['fp32', 'bf16', 'fp16']) assert.match(r.stdout, new RegExp(`\\| cpu +\\| ${dtype} `));
  });

  it('--backend cuda without a usable GPU exits 1 with the reason', { skip: probeCuda().ok ? 'a GPU is present' : false }, () => {
    const r = flash3('check', '--backend', 'cuda', '--quick');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^flash3: .*CUDA backend is unavailable/);
  });
});

describe('flash3 bench', () => {
  it('times the CPU reference, prints a table and writes JSON and SVG', () => {
    const json = join(dir, 'bench.json');
    const svg = join(dir, 'bench.svg');
    const r = flash3('bench', '--backend', 'cpu', '--seqlen', '64,128', '--warmup', '0', '--iters', '1', '--reps', '1', '--json', json, '--svg', svg);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /CPU reference/);
    assert.match(r.stdout, /\| head dim \| causal \| seqlen \|/);
    // The table comes last.
    assert.match(r.stdout.trimEnd().split('\n').at(-1)!, /^\| +64 \| yes +\| +128 \|/);

    const report = JSON.parse(readFileSync(json, 'utf8'));
    assert.equal(report.backend, 'cpu');
    assert.equal(report.rows.length, 4);
    for (const row of report.rows) {
      assert.equal(row.headDim, 64);
      assert.ok(row.flash3Ms > 0 && row.flash3Tflops > 0);
      assert.equal(row.cudnnTflops, null);
      assert.equal(row.flashTflops, null);
      for (const key of ['causal', 'seqlen', 'batch', 'heads', 'cudnnMs', 'flashMs']) assert.ok(key in row, key);
    }
    const text = readFileSync(svg, 'utf8');
    assert.match(text, /^<\?xml[^]*<svg [^]*<\/svg>\n$/);
    assert.equal(text.match(/class="panel"/g)?.length, 2, 'one panel per (head dim, causal)');
    assert.equal(text.match(/class="bar"/g)?.length, 4);
  });
});

describe('flash3 fp8-error', () => {
  it('prints the five methods and block scaling + Hadamard beats per-tensor scaling', () => {
    const r = flash3('fp8-error', '--seqlen', '256', '--heads', '2', '--headdim', '64');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /CPU emulation/);
    const rmse = (method: string) => {
      const line = r.stdout.split('\n').find((l) => l.startsWith(`| ${method} `));
      assert.ok(line, `no row for ${method}`);
      return Number(line.split('|')[2]);
    };
    const values = ['fp16', 'bf16', 'fp8 per-tensor scaling (baseline)', 'fp8 block scaling', 'fp8 block scaling + Hadamard'].map(rmse);
    assert.ok(values.every((x) => Number.isFinite(x) && x > 0), String(values));
    assert.ok(values[2] > values[4], `per-tensor ${values[2]} <= block + Hadamard ${values[4]}`);
    assert.ok(values[0] < values[1] && values[1] < values[4], 'fp16 < bf16 < fp8');
  });
});

describe('flash3 demo', () => {
  it('runs, checks against the reference and passes', () => {
    const r = flash3('demo');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /using the (cpu|cuda) backend/);
    assert.match(r.stdout, /PASS/);
    assert.match(r.stdout, /flash3 bench/);
  });
});
