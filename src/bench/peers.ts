/**
 * PyTorch SDPA's cuDNN and FA2 backends as contenders in flash3's bench: bench/peers.py runs as a
 * child process for the whole bench and times one run at a time on request, so its runs can
 * alternate with flash3's (src/bench/interleave.ts). Absent python3 or torch gives a reason, not
 * an error: the bench then prints flash3 alone.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BenchPoint } from './grid.js';
import type { TimingOptions } from './cudaTiming.js';
import type { ContenderResult } from './interleave.js';

export const PEERS_SCRIPT = fileURLToPath(new URL('../../../bench/peers.py', import.meta.url));

export type PeerBackend = 'cudnn' | 'flash';
export const PEER_BACKENDS: readonly PeerBackend[] = ['cudnn', 'flash'];

export interface PeerTimes {
  cudnnMs: number | null;
  flashMs: number | null;
  errors: Partial<Record<PeerBackend, string>>;
}

export interface PeerVersions {
  torch: string;
  cudnn: number;
  device: string;
}

export type PeersResult = ({ ok: true; times: PeerTimes[]; scaledMmTflops?: number } & PeerVersions) | { ok: false; reason: string };

/** A shape the peer refused, or a run that failed: the bench reports it next to the point. */
export class PeerRefusal extends Error {}

type Reply = Record<string, unknown>;

/**
 * The running peers script. Requests go one at a time (the bench awaits each), so replies come
 * back in order; if the process dies, every pending and later request fails with its last words.
 */
export class PeerServer {
  private readonly pending: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private dead: string | null = null;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly versions: PeerVersions,
  ) {}

  /** Starts the script (by default `python3 bench/peers.py`); resolves to the reason when it cannot serve. */
  static start(command: readonly string[] = ['python3', PEERS_SCRIPT]): Promise<PeerServer | { reason: string }> {
    return new Promise((resolveStart) => {
      let child: ChildProcessWithoutNullStreams;
      try {
        child = spawn(command[0], command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
      } catch (e) {
        resolveStart({ reason: `${command[0]} not runnable: ${(e as Error).message}` });
        return;
      }
      let server: PeerServer | null = null;
      let stderr = '';
      const fail = (reason: string) => {
        if (server) server.die(reason);
        else resolveStart({ reason });
      };
      child.on('error', (e) => fail(`${command[0]} not runnable: ${e.message}`));
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-4000);
      });
      child.on('exit', (code, signal) => {
        const last = stderr.trim().split('\n').slice(-1)[0];
        fail(`peers script ended (${last || (signal ? `signal ${signal}` : `exit ${code}`)})`);
      });
      // A closed pipe (the script died mid-write) surfaces through 'exit'; don't let it throw here.
      child.stdin.on('error', () => {});
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        let reply: Reply;
        try {
          reply = JSON.parse(line) as Reply;
        } catch {
          fail(`peers script gave an unreadable answer: ${line.slice(0, 120)}`);
          child.kill();
          return;
        }
        if (server) {
          server.pending.shift()?.resolve(reply);
        } else if (typeof reply.fatal === 'string') {
          resolveStart({ reason: reply.fatal });
        } else {
          server = new PeerServer(child, { torch: String(reply.torch), cudnn: Number(reply.cudnn), device: String(reply.device) });
          resolveStart(server);
        }
      });
    });
  }

  private die(reason: string): void {
    if (this.dead !== null) return;
    this.dead = reason;
    for (const p of this.pending.splice(0)) p.reject(new Error(reason));
  }

  private request(req: Reply): Promise<Reply> {
    if (this.dead !== null) return Promise.reject(new Error(this.dead));
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.child.stdin.write(JSON.stringify(req) + '\n');
    });
  }

  /** Median ms per call of `backend` at `p`; a shape the backend refuses throws PeerRefusal. */
  async time(backend: PeerBackend, p: BenchPoint, dtype: 'bfloat16' | 'float16', timing: TimingOptions, backward = false): Promise<number> {
    const { batch, seqlen, heads, headDim, causal } = p;
    const reply = await this.request({ op: 'time', backend, dtype, backward, point: { batch, seqlen, heads, headDim, causal }, ...timing });
    if (typeof reply.ms === 'number') return reply.ms;
    throw new PeerRefusal(typeof reply.error === 'string' ? reply.error : `unexpected reply ${JSON.stringify(reply).slice(0, 120)}`);
  }

  /** torch._scaled_mm (e4m3, 8192³) TFLOPS, the FP8 bench's ceiling; null where torch could not run it. */
  async scaledMmTflops(timing: TimingOptions): Promise<number | null> {
    const reply = await this.request({ op: 'scaled_mm', ...timing });
    return typeof reply.tflops === 'number' ? reply.tflops : null;
  }

  /** Ends the script (closing its stdin); resolves when it has exited. */
  close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.stdin.end();
    });
  }
}

/** The peers' entries of an interleaved point (contenders named 'cudnn' and 'flash'). */
export function interleavedPeerTimes(results: Map<string, ContenderResult>): PeerTimes {
  const times: PeerTimes = { cudnnMs: null, flashMs: null, errors: {} };
  for (const backend of PEER_BACKENDS) {
    const r = results.get(backend);
    if (r === undefined) continue;
    if ('ms' in r) times[backend === 'cudnn' ? 'cudnnMs' : 'flashMs'] = r.ms;
    else times.errors[backend] = r.error;
  }
  return times;
}
