// Tile sizes per head dim. Block M is 64 rows per consumer warpgroup; the K/V ring depth is
// bounded by shared memory (227 KiB per CTA on H100/H200).
#pragma once

namespace flash3 {

template <int HeadDim>
struct TileConfig;

// Q 16 KiB + 2 stages x (K 16 + V 16) KiB = 80 KiB. Three consumer warpgroups (block M 192, as
// FA3 uses) spilled 64 bytes at their 160-register budget (ptxas, CUDA 13.0): two for now.
template <>
struct TileConfig<64> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;
};

// Q 32 KiB + 2 stages x (K 32 + V 32) KiB = 160 KiB.
template <>
struct TileConfig<128> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 128;
  static constexpr int kStages = 2;
};

// Q 64 KiB + 2 stages x (K 32 + V 32) KiB = 192 KiB. Block N 80 (224 KiB, FA3's choice) spilled
// 72 bytes with intra-warpgroup overlap at 240 registers (O alone is 128 of them); 64 does not.
template <>
struct TileConfig<256> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kBlockN = 64;
  static constexpr int kStages = 2;
};

}  // namespace flash3
