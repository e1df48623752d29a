// Unit tests for src/node/snapshot_policy.h: the entry count alone for small states, and the log's share of a large one.
#include "node/snapshot_policy.h"

#include <gtest/gtest.h>

namespace ckv::node {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

TEST(SnapshotPolicy, ZeroThresholdNeverSnapshots) {
  const SnapshotPolicy p{0};
  EXPECT_FALSE(p.due(1'000'000, 1'000 * kMiB, 0));
  EXPECT_FALSE(p.due(1'000'000, 1'000 * kMiB, 100 * kMiB));
}

TEST(SnapshotPolicy, SmallStatesSnapshotOnTheEntryCountAlone) {
  const SnapshotPolicy p{8192};
  EXPECT_FALSE(p.due(8191, 0, 0));
  EXPECT_TRUE(p.due(8192, 0, 0));  // no snapshot yet
  EXPECT_TRUE(p.due(8192, 10, SnapshotPolicy::kSizeRuleFloorBytes - 1));
}

TEST(SnapshotPolicy, ALargeStateWaitsForAQuarterOfItsSizeInLog) {
  const SnapshotPolicy p{8192};
  const uint64_t state = 60 * kMiB;
  EXPECT_FALSE(p.due(8192, uint64_t{8192} * 300,
                     state));  // 2.3 MiB of log: rewriting 60 MiB for it is too dear
  EXPECT_FALSE(p.due(1'000'000, 15 * kMiB - 1, state));
  EXPECT_TRUE(p.due(8192, 15 * kMiB, state));
  EXPECT_FALSE(p.due(8191, 100 * kMiB, state));  // the entry count still applies
}

TEST(SnapshotPolicy, TheLogWaitedForIsCapped) {
  const SnapshotPolicy p{8192};
  const uint64_t state =
      uint64_t{64} * 1024 * kMiB;  // 64 GiB: a quarter would be 16 GiB of log in memory
  EXPECT_FALSE(p.due(8192, SnapshotPolicy::kLogBytesCap - 1, state));
  EXPECT_TRUE(p.due(8192, SnapshotPolicy::kLogBytesCap, state));
}

}  // namespace
}  // namespace ckv::node
