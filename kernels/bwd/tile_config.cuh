// Backward tiles per head dim. Each consumer warpgroup keeps dK and dV in registers for 64 keys
// and up to 128 head-dim columns: at head dim 64/128 the warpgroups own 64 keys each of the CTA's
// key block; at 256 they share the CTA's 64 keys and split the columns (BwdKernel::kSplitColumns).
#pragma once

namespace flash3 {

template <int HeadDim>
struct BwdTileConfig;

// Schedules (BwdKernel): 0 in order, a barrier of both warpgroups a step; 1 dS^T handed over
// through mbarriers with dQ a step late; 2 that with GEMM turns. Session 5, H100, bf16, TFLOPS at
// 2k / 16k full, 2k / 16k causal, two interleaved rounds against the session-4 build (before the
// shared-memory accesses became LDS/STS/STSM, which then added 2-8% at every head dim).
// kPersistent (default mode; the deterministic twin stays per item, its producer warp spills): one
// CTA per SM, the next item's K/V loaded under the last item's epilogue. Session 24, H100, 3
// rounds: d=64 512 full 271 -> 281, 1k causal 252 -> 259, 4k full 404 -> 418, 2k full equal;
// d=128 512 causal equal, 16k full 532 -> 540; d=256 512 full 244 -> 254.

// K 16 + V 16 + 2 x (Q 8 + dO 8) + dS 2 x 16 KiB. One dQ piece a step, so in order only (the
// handoff needs one per warpgroup). Overlap: 327 / 381-386 / 268-270 / 380-382 vs 312 / 365-366 /
// 258-260 / 363 (without it: 323-324 / 382 / 266-268 / 376-379). dQ from registers (session 8,
// against bulk reductions staged in shared memory, 5 interleaved rounds): 386 / 451 / 301 / 441 vs
// 368 / 413 / 290 / 429, deterministic 288 / 343 / 251 / 360 vs 255 / 287 / 214 / 288 (a turn per
// warpgroup and step, not a release fence over both warpgroups at the step's barrier). 3 stages:
// equal.
template <>
struct BwdTileConfig<64> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kStages = 2;
  static constexpr int kSchedule = 0;
  static constexpr bool kOverlapGrads = true;
  static constexpr bool kPersistent = true;
};

// K 32 + V 32 + 2 x (Q 16 + dO 16) + dS 3 x 16 KiB = 176 KiB (the measurements before session 8
// had 2 x 16 KiB more, dQ staging tiles). Handoff with turns and overlap: 437-446 / 502-503 /
// 351-353 / 464-465 vs 429-438 / 490-496 / 348 / 445-451, but the deterministic mode loses 5%
// (1.29-1.39x the default's time, was 1.17-1.31x). In order: 434-442 /
// 501-502 / 353-356 / 457-458; in order with overlap: -5 to -7%; handoff without turns: equal or
// lower with or without overlap; turns without overlap: -5%; two turns a step (dQ in the second
// batch): 441-445 at 16k. dQ from registers (session 8, 5 interleaved rounds): 458 / 508 / 367 /
// 501 vs 444 / 497 / 353 / 497 staged, deterministic equal (331 / 405 vs 332 / 395); the 32 KiB it
// frees for a third stage: +0.2 to +1.3%, -1.9% at 2k causal.
template <>
struct BwdTileConfig<128> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kStages = 2;
  static constexpr int kSchedule = 2;
  static constexpr bool kOverlapGrads = true;
  static constexpr bool kPersistent = true;
};

// Block N 64: K 32 + V 32 + 2 x (Q 32 + dO 32) + dS 2 x 8 KiB = 208 KiB; two warpgroups along the
// keys (block N 128) would need 128 KiB for K and V alone, so the two split the columns instead
// (BwdKernel::kSplitColumns), dQ added from registers. (One warpgroup, two passes in turn: 0.67-0.84x
// cuDNN, session 6; with overlap it spilled 8 B at 248 registers.)
template <>
struct BwdTileConfig<256> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kStages = 2;
  static constexpr int kSchedule = 0;
  static constexpr bool kOverlapGrads = false;
  static constexpr bool kPersistent = true;
};

}  // namespace flash3
