// Tile sizes and schedule per head dim. Block M is 64 rows per consumer warpgroup; the K/V ring
// depth is bounded by shared memory (227 KiB per CTA on H100/H200). Every entry uses
// intra-warpgroup overlap; pingpong only where it measured faster. Numbers: H200, bf16, paper
// grid (16k tokens, hidden 2048), TFLOPS, from scripts/tune.mjs runs logged in docs/perf-log.md.
#pragma once

namespace flash3 {

template <int HeadDim>
struct TileConfig;

// Q 16 + 2 x (K 16 + V 16) + O 16 KiB. Pingpong off: 428 vs 391 at 2k, 423 vs 411 at 16k causal.
// From seqlen_q 2048 the host picks TileConfigLong<64> instead.
template <>
struct TileConfig<64> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;
  static constexpr bool kPingpong = false;
  static constexpr bool kIntraOverlap = true;
  // Exact running max: a slack measured no faster here and raised bf16 RMSE by 20-24%.
  static constexpr int kMaxSlack = 0;
  static constexpr int kCtasPerSm = 1;
};

// Long sequences at head dim 64 (seqlen_q >= 2048, chosen in src/cuda/kernels.ts): three consumer
// warpgroups (block M 192, FA3's choice at this head dim), 160 registers each, no spill. H100, bf16,
// TFLOPS against the two-warpgroup tile in one run: 2k 436 vs 410, 8k 463 vs 427, 16k causal 448
// vs 420; but 512 full 355 vs 352 and 512 causal 197 vs 218 (512 is 2.67 blocks of 192: a third of
// the last block is padding). Block N 96: 406 at 2k, 457 at 8k; 64: 388, 430.
// (H200, session 1, when this build still spilled: 462 vs 440 at 8k.)
template <int HeadDim>
struct TileConfigLong;

template <>
struct TileConfigLong<64> : TileConfig<64> {
  static constexpr int kConsumerWarpgroups = 3;
};

// Q 32 + 2 x (K 32 + V 32) + O 32 KiB = 192 KiB. From seqlen_q 8192 the host picks
// TileConfigLong<128> instead. Pingpong on (session 4, interleaved rounds, medians, bf16): H100 491
// vs 467 at 512, 541 vs 502 at 1k, 560 vs 544 at 2k, 569 vs 558 at 4k, 404 vs 396 at 1k causal,
// 516 vs 518 at 4k causal; H200 +1-3% (fp16 within +-2%). (Session 1 on an H200, before the
// register savings, measured it off as equal or +1-3%.) 3 stages, O then staged in Q's place: H100
// -10 to -20% at 512-1k, -3 to -7% at 2k-4k, with or without pingpong.
template <>
struct TileConfig<128> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;
  static constexpr bool kPingpong = true;
  static constexpr bool kIntraOverlap = true;
  // Exact running max: a slack measured no faster here and raised bf16 RMSE by 20-24%.
  static constexpr int kMaxSlack = 0;
  static constexpr int kCtasPerSm = 1;
};

// Head dim 128 from seqlen_q 8192: block N 176 with pingpong (FA3's block N), O staged one panel
// per warpgroup at a time (Q 32 + 2 x (K 44 + V 44) + O 16 = 224 KiB; session 4: equal to O in
// Q's place at 8k-16k). H100, bf16, against the 128 x 128 tile in one run: 597-598
// vs 560-577 at 8k, 604-609 vs 578-585 at 16k, equal at 4k; 424-445 vs 463-476 at 2k causal and
// 401 vs 487 at 512. Without pingpong: 575-591 at 8k, 598-601 at 16k; block N 160 with pingpong
// 541-552 at 8k.
template <>
struct TileConfigLong<128> : TileConfig<128> {
  static constexpr int kBlockN = 176;
  static constexpr bool kPingpong = true;
};

// Unmasked problems, at head dim 128 from seqlen_q 2048 (before the long tile in the host's table)
// and at head dim 64 from 512 to 2047: three consumer warpgroups (block M 192) without
// intra-warpgroup overlap or pingpong, which fit in 160 registers because P is packed as S dies; the
// warp schedulers interleave the three warpgroups' softmax and GEMMs.
// Head dim 128: H100, bf16 (session 7), medians of 5 interleaved rounds against the default and
// long tiles: 593 vs 565 at 2k, 596 vs 568 at 4k, 619 vs 622 at 8k, 633 vs 617 at 16k; it loses at
// 512-1k (469 vs 480, 524 vs 534) and under the causal mask (254 vs 304 at 512, 457 vs 481 at 2k,
// 591 vs 611 at 16k), where the taller block pads and masks more. With pingpong: 530-583.
// The long tile's block N 176 spills 1096 B this way.
template <int HeadDim>
struct TileConfigTall;

template <>
struct TileConfigTall<128> : TileConfig<128> {
  static constexpr int kConsumerWarpgroups = 3;
  static constexpr bool kPingpong = false;
  static constexpr bool kIntraOverlap = false;
};

// Masked problems at head dim 64 from 512 to 2047 query rows: three CTAs per SM of one consumer
// warpgroup each (block M 64, block N 64, intra-warpgroup overlap; Q 8 + 2 x (K 8 + V 8) + O 8 KiB
// a CTA; the launch's 80 registers a thread leave the consumer 136, spill-free). A causal tile's
// time is its warpgroup's chain of S, softmax and P V, not the SM's pipes (docs/perf-log.md,
// session 10: halving the diagonal block's work for one warpgroup gained nothing), so more chains
// per SM, each with its own overlap, hide each other's latency. H200, bf16 (session 11), medians
// of 5 interleaved rounds: 252.9 at 512 causal and 297.6 at 1k causal, against 236.9 and 288.6 for
// two CTAs of two warpgroups (block N 64, no overlap: it spilled 48 B with it in 104 registers;
// session 10: +3-4% over the default tile) and 235.8 / 283.6 for the table's choice then; without
// overlap 244.0, 283.3. It loses at 2k causal (334 vs 350 for the long tile) and unmasked (327 vs
// 340 at 512, 352 vs 388 at 1k). Block N 128 does not compile in 80 registers (its wgmma needs
// 90); four CTAs spill (48 B in 64). FP8 this way: equal at 512 causal, -5 to -13% elsewhere.
template <int HeadDim>
struct TileConfigTrio;

template <>
struct TileConfigTrio<64> : TileConfig<64> {
  static constexpr int kConsumerWarpgroups = 1;
  static constexpr int kBlockN = 64;
  static constexpr int kCtasPerSm = 3;
};

// Head dim 64, H100 bf16 (session 7), against the default tile in one run: 374 vs 355 at 512, 403 vs
// 393 at 1k, 454 vs 450 at 2k (the long tile there, three warpgroups with overlap); causal 200 vs 230
// at 512, 264 vs 300 at 1k. Block N 192 on two warpgroups instead: 286, 336, 388.
template <>
struct TileConfigTall<64> : TileConfig<64> {
  static constexpr int kConsumerWarpgroups = 3;
  static constexpr bool kIntraOverlap = false;
};

// Q 64 + 2 x (K 32 + V 32) + O 32 KiB = 224 KiB, O staged two panels per warpgroup at a time (in
// Q's place before session 4: 474 vs 524 at 512, 545 vs 591 at 1k, H100). Pingpong on: 615 vs 600 at 8k.
// From seqlen_q 2048 the host picks TileConfigLong<256> instead.
template <>
struct TileConfig<256> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 64;
  static constexpr int kStages = 2;
  static constexpr bool kPingpong = true;
  static constexpr bool kIntraOverlap = true;
  // Running max moves only past a slack of 8 (log2), so most blocks skip the O rescale (4 FMULs per
  // exponential at this block N): +2-5% (H200), at the price of P's largest element no longer being
  // exactly 1: bf16 RMSE 2.36e-4 -> 2.69e-4 on the outlier inputs of `flash3 fp8-error`.
  static constexpr int kMaxSlack = 8;
  static constexpr int kCtasPerSm = 1;
};

// Head dim 256 from seqlen_q 2048: block N 80 (FA3's choice), Q 64 + 2 x (K 40 + V 40) = 224 KiB,
// spill-free since session 3 (it spilled 72 B with overlap in session 1). O has no room of its own:
// it is staged in the last key block's V stage, two panels per warpgroup at a time (session 4,
// H100, against O in Q's place: 669 vs 624 at 2k, 666 vs 643 at 4k, 710 vs 695 at 16k, 2k causal
// 495 vs 490; fp16 639 vs 612 at 2k). H100, bf16, against block
// N 64 in one run: 709-715 vs 628-642 at 8k, 695-724 vs 633-652 at 16k, 690-707 vs 638-646 at 16k
// causal, 630-650 vs 595-626 at 2k. Without pingpong: 673-684 at 8k, 707-709 at 16k. Below 2k it
// loses (bench, against block N 64 in another run): 225 vs 254 at 512 causal, 347 vs 373 at 1k.
template <>
struct TileConfigLong<256> : TileConfig<256> {
  static constexpr int kBlockN = 80;
};

// FP8 (e4m3 inputs, 16-bit output). Block N is one swizzle row of V^T (128 keys). H200, TFLOPS:
// - head dim 256: 128 x 128 with overlap, spill-free since a thread keeps one Q descale and Q's
//   descriptors are not hoisted out of the loop. H100 (session 3, with a 12 B spill still): 1064-1086
//   at 16k, 932-939 at 1k, 886-908 at 4k causal against 996-1006, 849-869, 844-851 without overlap;
//   pingpong instead: 976-985, 819-826, 777-798; 128 x 64 with overlap 868-872, 720-724, 714-715.
//   (H200, session 2: without overlap 1009-1027 at 16k, 898 at 1k; 128 x 64 with both 880-905, 760.)
// - head dim 128: overlap with pingpong. H100, session 4 (V descales folded into P), medians of
//   interleaved rounds: 828 vs 817 at 16k, 699 vs 686 at 1k, 706 vs 696 at 4k causal; 3 stages
//   813, 687, 692. (Session 2, O rescaled every block: pingpong 753 vs 766-773, no overlap 710.)
// - head dim 64: 445-459 at 16k; pingpong 398, 3 stages equal.
// - Computing part of the exponentials on the FMA pipe (a degree-3 fit of 2^x) instead of MUFU lost
//   5-15% at every head dim: the softmax is bound by issue slots, not by MUFU.
// From seqlen_q 2048 the host picks TileConfigFp8Long at head dims 64 and 128 (head dim 64 from
// 16384: TileConfigFp8Wide).
template <int HeadDim>
struct TileConfigFp8 {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;
  // Head dim 64 with pingpong lost (398 vs 445-459); head dim 256 with it spills (92 B).
  static constexpr bool kPingpong = HeadDim == 128;
  static constexpr bool kIntraOverlap = true;
  // Exact running max: with a slack, a row's largest P (1, exact in e4m3) would be rounded.
  static constexpr int kMaxSlack = 0;
  static constexpr int kCtasPerSm = 1;
};

// FP8 at head dim 64 from seqlen_q 2048: three consumer warpgroups (block M 192), no spill once a
// thread keeps one Q descale for its two rows. H100, against two warpgroups in one run: 567 vs 432
// at 8k, 578 vs 436 at 16k, 374 vs 341 at 2k causal; block N 64 lost 10-18%. At 512-1k causal
// (202 and 272 against 231 and 297 in an earlier run) the 192-row blocks pad and lose.
template <int HeadDim>
struct TileConfigFp8Long;

template <>
struct TileConfigFp8Long<64> : TileConfigFp8<64> {
  static constexpr int kConsumerWarpgroups = 3;
};

// FP8 at head dim 64 from seqlen_q 16384, when K and V are scaled in blocks that 160 divides (the
// host falls back to TileConfigFp8Long otherwise; attention()'s on-the-fly quantization blocks them
// by 160 here): block N 160 (FA3's 192 x 160), V^T in two panels of 128 keys, the second a quarter
// used. Against TileConfigFp8Long in one run, medians of 5 interleaved rounds: H200 (session 13)
// 625 vs 600 at 16k, 519 vs 525 at 2k; H100 (session 14) 581 vs 559 at 16k causal, 596 vs 600 at
// 8k, 555 vs 553 at 4k, 401 vs 397 at 2k causal.
template <int HeadDim>
struct TileConfigFp8Wide;

template <>
struct TileConfigFp8Wide<64> : TileConfigFp8Long<64> {
  static constexpr int kBlockN = 160;
};

// FP8 at head dim 128 from seqlen_q 2048: three consumer warpgroups as at head dim 64, which fit in
// 160 registers only without intra-warpgroup overlap (with it: 144 B spilled); their scheduling is
// left to the warp schedulers (pingpong off). H100 (session 6), against the two-warpgroup tile in
// one run: 914 vs 820 at 16k, 839 vs 742 at 2k, 620 vs 618 at 2k causal; with pingpong 814 and 751.
template <>
struct TileConfigFp8Long<128> : TileConfigFp8<128> {
  static constexpr int kConsumerWarpgroups = 3;
  static constexpr bool kPingpong = false;
  static constexpr bool kIntraOverlap = false;
};

}  // namespace flash3
