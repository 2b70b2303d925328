/**
 * Ground truth: exact attention in float64 with a two-pass (max-subtracted) softmax over the
 * allowed keys of each row. Everything else in flash3 is checked against this, so it favours
 * plain arithmetic; the only tricks are for speed (4 query rows at a time, V transposed).
 */
import { type CpuProblem, type CpuResult, firstKey, gatherHead, lastKey, lseIndex, validateProblem } from './problem.js';

/** Query rows handled together, so each K and V element loaded serves four rows. */
const ROWS = 4;

export function referenceAttention(p: CpuProblem): CpuResult {
  validateProblem(p);
  const { batch, seqlenQ: sq, seqlenK: sk, headsQ, headsKv, headDim: d, headDimV: dv, softmaxScale, softcap } = p;
  const out = new Float64Array(batch * sq * headsQ * dv);
  const lse = new Float64Array(batch * headsQ * sq);
  const group = headsQ / headsKv;
  const qRows = new Float64Array(ROWS * d);
  const probs = new Float64Array(ROWS * sk); // scores, then unnormalized probabilities
  const acc = new Float64Array(ROWS * dv);
  const sums = new Float64Array(ROWS);

  for (let b = 0; b < batch; b++) {
    for (let kh = 0; kh < headsKv; kh++) {
      const k = gatherHead(p.k, sk, headsKv, d, b, kh);
      // V transposed to (headDimV, seqlenK) turns P·V into the same row-by-row dots as Q·Kᵀ.
      const vt = transpose(gatherHead(p.v, sk, headsKv, dv, b, kh), sk, dv);
      // Query heads kh*group .. (kh+1)*group-1 are exactly those whose kv head is kh.
      for (let h = kh * group; h < (kh + 1) * group; h++) {
        for (let i0 = 0; i0 < sq; i0 += ROWS) {
          const nr = Math.min(ROWS, sq - i0);
          // Union of the rows' key ranges; each row's own range is applied below.
          const lo = firstKey(p, i0);
          const hi = lastKey(p, i0 + nr - 1);
          qRows.fill(0);
          for (let r = 0; r < nr; r++) {
            const src = ((b * sq + i0 + r) * headsQ + h) * d;
            qRows.set(p.q.subarray(src, src + d), r * d);
          }
          if (lo <= hi) dots4(qRows, d, k, d, 0, d, lo, hi + 1, probs, sk);

          for (let r = 0; r < ROWS; r++) {
            const row = r * sk;
            const rowLo = Math.max(lo, firstKey(p, i0 + r));
            const rowHi = Math.min(hi, lastKey(p, i0 + r));
            let max = -Infinity;
            for (let j = rowLo; j <= rowHi; j++) {
              let s = softmaxScale * probs[row + j];
              if (softcap > 0) s = softcap * Math.tanh(s / softcap);
              probs[row + j] = s;
              if (s > max) max = s;
            }
            let sum = 0;
            for (let j = rowLo; j <= rowHi; j++) {
              const w = Math.exp(probs[row + j] - max);
              probs[row + j] = w;
              sum += w;
            }
            // Keys other rows of the group see but this one doesn't weigh nothing in P·V.
            if (lo <= hi) {
              probs.fill(0, row + lo, row + Math.min(hi + 1, Math.max(lo, rowLo)));
              probs.fill(0, row + Math.max(lo, Math.min(hi, rowHi) + 1), row + hi + 1);
            }
            sums[r] = sum;
            if (r < nr) lse[lseIndex(p, b, h, i0 + r)] = rowLo <= rowHi ? max + Math.log(sum) : -Infinity;
          }

          if (lo > hi) continue; // no row sees a key: out stays 0
          dots4(probs, sk, vt, sk, lo, hi + 1, 0, dv, acc, dv);
          for (let r = 0; r < nr; r++) {
            const dst = ((b * sq + i0 + r) * headsQ + h) * dv;
            // A row with no key has sum 0 and acc 0: keep out 0 rather than 0/0.
            const inv = sums[r] > 0 ? 1 / sums[r] : 0;
            for (let c = 0; c < dv; c++) out[dst + c] = acc[r * dv + c] * inv;
          }
        }
      }
    }
  }
  return { out, lse };
}

function transpose(x: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = x[r * cols + c];
  return t;
}

/**
 * out[r·outStride + t] = Σ_{c ∈ [from, to)} a[r·aStride + c] · b[t·bStride + c] for the four
 * rows r of `a` and t ∈ [t0, t1). Two b rows at a time: eight independent accumulators keep
 * the FPU busy and each load feeds two or four multiply-adds.
 */
function dots4(
  a: Float64Array,
  aStride: number,
  b: Float64Array,
  bStride: number,
  from: number,
  to: number,
  t0: number,
  t1: number,
  out: Float64Array,
  outStride: number,
): void {
  const a1 = aStride;
  const a2 = 2 * aStride;
  const a3 = 3 * aStride;
  const o1 = outStride;
  const o2 = 2 * outStride;
  const o3 = 3 * outStride;
  let t = t0;
  for (; t + 1 < t1; t += 2) {
    const x0 = t * bStride;
    const y0 = x0 + bStride;
    let p0 = 0, p1 = 0, p2 = 0, p3 = 0, s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let c = from; c < to; c++) {
      const x = b[x0 + c];
      const y = b[y0 + c];
      const q0 = a[c];
      const q1 = a[a1 + c];
      const q2 = a[a2 + c];
      const q3 = a[a3 + c];
      p0 += q0 * x;
      p1 += q1 * x;
      p2 += q2 * x;
      p3 += q3 * x;
      s0 += q0 * y;
      s1 += q1 * y;
      s2 += q2 * y;
      s3 += q3 * y;
    }
    out[t] = p0;
    out[o1 + t] = p1;
    out[o2 + t] = p2;
    out[o3 + t] = p3;
    out[t + 1] = s0;
    out[o1 + t + 1] = s1;
    out[o2 + t + 1] = s2;
    out[o3 + t + 1] = s3;
  }
  if (t < t1) {
    const x0 = t * bStride;
    let p0 = 0, p1 = 0, p2 = 0, p3 = 0;
    for (let c = from; c < to; c++) {
      const x = b[x0 + c];
      p0 += a[c] * x;
      p1 += a[a1 + c] * x;
      p2 += a[a2 + c] * x;
      p3 += a[a3 + c] * x;
    }
    out[t] = p0;
    out[o1 + t] = p1;
    out[o2 + t] = p2;
    out[o3 + t] = p3;
  }
}

/** Σ a[ao+c]·b[bo+c] for c < n, unrolled by 4 with independent partial sums. */
export function dot(a: Float64Array, ao: number, b: Float64Array, bo: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n4 = n - (n % 4);
  let c = 0;
  for (; c < n4; c += 4) {
    s0 += a[ao + c] * b[bo + c];
    s1 += a[ao + c + 1] * b[bo + c + 1];
    s2 += a[ao + c + 2] * b[bo + c + 2];
    s3 += a[ao + c + 3] * b[bo + c + 3];
  }
  for (; c < n; c++) s0 += a[ao + c] * b[bo + c];
  return s0 + s1 + (s2 + s3);
}
