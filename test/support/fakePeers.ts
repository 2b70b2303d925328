/**
 * A stand-in for bench/peers.py speaking its line protocol, so PeerServer is tested without torch:
 *   node fakePeers.js ok|fatal|die
 * ok: answers every request (FA2 refuses head dim 256); fatal: refuses to start; die: exits
 * after its greeting, with a last word on stderr.
 */
import { createInterface } from 'node:readline';

const mode = process.argv[2] ?? 'ok';
const say = (obj: unknown) => process.stdout.write(JSON.stringify(obj) + '\n');

if (mode === 'fatal') {
  say({ fatal: "ModuleNotFoundError: No module named 'torch'" });
  process.exit(1);
}
say({ torch: '9.9.9', cudnn: 91900, device: 'Fake GPU' });
if (mode === 'die') {
  process.stderr.write('Traceback: CUDA error: an illegal memory access was encountered\n');
  process.exit(3);
}
createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line) as { op: string; backend?: string; point?: { seqlen: number; headDim: number }; iterations?: number };
  if (req.op === 'scaled_mm') return say({ tflops: 1234 });
  if (req.op !== 'time' || !req.point) return say({ error: `unknown op ${req.op}` });
  if (req.backend === 'flash' && req.point.headDim === 256) return say({ error: 'FlashAttention only supports head dimension at most 256' });
  say({ ms: req.point.seqlen / 1000 + (req.backend === 'cudnn' ? 0.1 : 0.2) + (req.iterations ?? 0) / 1e6 });
});
