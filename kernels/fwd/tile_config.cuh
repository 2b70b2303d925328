// Tile sizes and schedule per head dim. Block M is 64 rows per consumer warpgroup; the K/V ring
// depth is bounded by shared memory (227 KiB per CTA on H100/H200). Every entry uses
// intra-warpgroup overlap; pingpong only where it measured faster. Numbers: H200, bf16, paper
// grid (16k tokens, hidden 2048), TFLOPS, from scripts/tune.mjs runs logged in docs/perf-log.md.
#pragma once

namespace flash3 {

template <int HeadDim>
struct TileConfig;

// Q 16 + 2 x (K 16 + V 16) + O 16 KiB. Three consumer warpgroups (block M 192, FA3's choice)
// spill at 160 registers each (64 B at block N 128, 16 B at 96); the spilling 192 x 96 build still
// measured 462 vs 440 at 8k. Pingpong off: 428 vs 391 at 2k, 423 vs 411 at 16k causal.
template <>
struct TileConfig<64> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;
  static constexpr bool kPingpong = false;
};

// Q 32 + 2 x (K 32 + V 32) + O 32 KiB = 192 KiB. Block N 160/176 and 3 stages measured within
// noise of 128 (600-613 at 8k). Pingpong off: equal or +1-3% at 1k-16k.
template <>
struct TileConfig<128> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;
  static constexpr bool kPingpong = false;
};

// Q 64 + 2 x (K 32 + V 32) KiB = 192 KiB; O is staged in Q's place. Block N 80 (224 KiB, FA3's
// choice) spilled 72 B with overlap at 240 registers; without overlap it measured 600 vs 619 at 8k.
// Pingpong on: 615 vs 600 at 8k.
template <>
struct TileConfig<256> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 64;
  static constexpr int kStages = 2;
  static constexpr bool kPingpong = true;
};

// FP8 (e4m3 inputs, 16-bit output). Block N is one swizzle row of V^T: 128 keys, or 64 at head
// dim 256, where 128 with overlap spills 164 B at 240 registers (without overlap it fits).
template <int HeadDim>
struct TileConfigFp8 {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = HeadDim == 256 ? 64 : 128;
  static constexpr int kStages = 2;
  static constexpr bool kPingpong = HeadDim == 256;
};

}  // namespace flash3
