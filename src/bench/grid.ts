/**
 * The FlashAttention-3 paper's benchmark grid: 16k tokens in total (batch = 16384 / seqlen)
 * and hidden size 2048 (heads = 2048 / headDim), forward FLOPs 4·b·h·s²·d, halved when causal.
 */
export interface BenchPoint {
  headDim: number;
  causal: boolean;
  seqlen: number;
  batch: number;
  heads: number;
}

export const PAPER_SEQLENS = [512, 1024, 2048, 4096, 8192, 16384];
export const PAPER_HEAD_DIMS = [64, 128, 256];

export function paperGrid(headDims = PAPER_HEAD_DIMS, seqlens = PAPER_SEQLENS, causals = [false, true], tokens = 16384, hidden = 2048): BenchPoint[] {
  const points: BenchPoint[] = [];
  for (const headDim of headDims) {
    for (const causal of causals) {
      for (const seqlen of seqlens) {
        points.push({ headDim, causal, seqlen, batch: Math.max(1, Math.floor(tokens / seqlen)), heads: Math.max(1, Math.floor(hidden / headDim)) });
      }
    }
  }
  return points;
}

export function forwardFlops(p: BenchPoint): number {
  const full = 4 * p.batch * p.heads * p.seqlen * p.seqlen * p.headDim;
  return p.causal ? full / 2 : full;
}

export function tflops(p: BenchPoint, ms: number): number {
  return forwardFlops(p) / (ms * 1e-3) / 1e12;
}

export function seqlenLabel(s: number): string {
  return s >= 1024 && s % 1024 === 0 ? `${s / 1024}k` : String(s);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
