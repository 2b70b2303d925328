// Backward tiles per head dim. Each consumer warpgroup owns 64 keys of the CTA's key block and
// keeps their dK and dV in registers for up to 128 head-dim columns; wider heads run the query
// loop once per 128 columns (recomputing S and dP), which keeps every accumulator in registers.
#pragma once

namespace flash3 {

template <int HeadDim>
struct BwdTileConfig;

// K 16 + V 16 + 2 x (Q 8 + dO 8) + dS 2 x 16 KiB.
template <>
struct BwdTileConfig<64> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kStages = 2;
};

// K 32 + V 32 + 2 x (Q 16 + dO 16) + dS 2 x 16 KiB = 160 KiB.
template <>
struct BwdTileConfig<128> {
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kStages = 2;
};

// Block N 64: K 32 + V 32 + 2 x (Q 32 + dO 32) + dS 2 x 8 KiB = 208 KiB; two warpgroups (block N
// 128) would need 128 KiB for K and V alone.
template <>
struct BwdTileConfig<256> {
  static constexpr int kConsumerWarpgroups = 1;
  static constexpr int kStages = 2;
};

}  // namespace flash3
