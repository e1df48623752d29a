// Auto-compaction: etcd's flag syntax and its periodic and revision schedules, on a synthetic clock.
#include "node/compactor.h"

#include <gtest/gtest.h>

namespace ckv::node {
namespace {

using Mode = AutoCompactionOptions::Mode;
constexpr int64_t kHourMs = 3600 * 1000;

TEST(AutoCompactionFlags, EtcdSyntax) {
  auto hours = parse_auto_compaction("periodic", "1");  // a bare number is hours in periodic mode
  ASSERT_TRUE(hours.is_ok());
  EXPECT_EQ(hours.value().mode, Mode::kPeriodic);
  EXPECT_EQ(hours.value().retention_ms, kHourMs);
  EXPECT_EQ(parse_auto_compaction("periodic", "30m").value().retention_ms, 30 * 60 * 1000);
  EXPECT_EQ(parse_auto_compaction("periodic", "1h30m").value().retention_ms, 90 * 60 * 1000);
  EXPECT_EQ(parse_auto_compaction("periodic", "1.5h").value().retention_ms, 90 * 60 * 1000);
  EXPECT_EQ(parse_auto_compaction("periodic", "250ms").value().retention_ms, 250);
  EXPECT_EQ(parse_auto_compaction("periodic", "0").value().mode, Mode::kOff);
  EXPECT_EQ(parse_auto_compaction("periodic", "").value().mode, Mode::kOff);
  auto revs = parse_auto_compaction("revision", "1000");
  ASSERT_TRUE(revs.is_ok());
  EXPECT_EQ(revs.value().mode, Mode::kRevision);
  EXPECT_EQ(revs.value().retention_revisions, 1000);
  EXPECT_EQ(parse_auto_compaction("revision", "0").value().mode, Mode::kOff);
  // etcd's own words for what it refuses.
  EXPECT_EQ(parse_auto_compaction("periodic", "abc").status().message(),
            "error parsing CompactionRetention: time: invalid duration \"abc\"");
  EXPECT_EQ(parse_auto_compaction("periodic", "10x").status().message(),
            "error parsing CompactionRetention: time: unknown unit in duration \"10x\"");
  EXPECT_EQ(parse_auto_compaction("periodic", "-1").status().message(),
            "error parsing CompactionRetention: time: missing unit in duration \"-1\"");
  EXPECT_EQ(parse_auto_compaction("weekly", "1").status().message(),
            "unknown auto-compaction-mode \"weekly\"");
  EXPECT_FALSE(parse_auto_compaction("periodic", "-1h").is_ok());
  EXPECT_FALSE(parse_auto_compaction("revision", "1h")
                   .is_ok());  // etcd reads it as 3.6e12 revisions; we refuse
  EXPECT_FALSE(parse_auto_compaction("periodic", "99999999999999999999h").is_ok());
}

// etcd 3.4's periodic compactor with retention 1 h: samples every 6 min and
// keeps 11 samples; the first compaction comes one hour after start, to the
// revision at start; then hourly, to its oldest sample, taken one hour and
// one sample interval (66 min) before (etcd's arithmetic: it samples
// before it waits).
TEST(Compactor, PeriodicCompactsToTheRevisionOfOneRetentionAgo) {
  Compactor c(parse_auto_compaction("periodic", "1h").value());
  const int64_t sample = kHourMs / 10;
  std::vector<std::pair<int64_t, int64_t>> compactions;  // (time, revision)
  int64_t compacted = -1;
  for (int64_t t = 0; t <= 3 * kHourMs; t += 1000) {
    const int64_t revision = 1 + t / 1000;  // one write a second
    if (auto rev = c.tick(t, revision, compacted, true)) {
      compactions.emplace_back(t, *rev);
      compacted = *rev;
    }
  }
  ASSERT_EQ(compactions.size(), 3u);
  EXPECT_EQ(compactions[0], (std::pair<int64_t, int64_t>{kHourMs, 1}));
  EXPECT_EQ(compactions[1],
            (std::pair<int64_t, int64_t>{2 * kHourMs, 1 + (kHourMs - sample) / 1000}));
  EXPECT_EQ(compactions[2],
            (std::pair<int64_t, int64_t>{3 * kHourMs, 1 + (2 * kHourMs - sample) / 1000}));
}

// Retention over an hour: compact every hour, to the revision of one retention ago.
TEST(Compactor, PeriodicWithLongRetentionCompactsHourly) {
  Compactor c(parse_auto_compaction("periodic", "10h").value());
  std::vector<std::pair<int64_t, int64_t>> compactions;
  int64_t compacted = -1;
  for (int64_t t = 0; t <= 12 * kHourMs; t += 60 * 1000) {
    if (auto rev = c.tick(t, 1 + t / 1000, compacted, true)) {
      compactions.emplace_back(t, *rev);
      compacted = *rev;
    }
  }
  const int64_t sample = kHourMs / 10;  // sampled every 6 min (the interval is capped at an hour)
  ASSERT_EQ(compactions.size(), 3u);    // at 10 h, 11 h, 12 h
  EXPECT_EQ(compactions[0].first, 10 * kHourMs);
  EXPECT_EQ(compactions[0].second, 1);
  EXPECT_EQ(compactions[1].first, 11 * kHourMs);
  EXPECT_EQ(compactions[1].second, 1 + (kHourMs - sample) / 1000);  // 10 h + 6 min before
  EXPECT_EQ(compactions[2].second, 1 + (2 * kHourMs - sample) / 1000);
}

// Only the leader proposes; every node samples, so a new leader compacts on
// schedule with the revisions it saw as a follower.
TEST(Compactor, FollowersSampleButNeverPropose) {
  Compactor c(parse_auto_compaction("periodic", "10m").value());
  const int64_t period = 10 * 60 * 1000;
  for (int64_t t = 0; t < 3 * period; t += 1000)
    EXPECT_FALSE(c.tick(t, 1 + t / 1000, -1, false).has_value());
  std::optional<int64_t> got;
  for (int64_t t = 3 * period; t < 3 * period + period / 5 && !got; t += 1000)
    got = c.tick(t, 1 + t / 1000, -1, true);
  ASSERT_TRUE(got.has_value());
  EXPECT_NEAR(static_cast<double>(*got), 1 + 2 * period / 1000,
              period / 10 / 1000 + 1);  // about one period ago
}

TEST(Compactor, RevisionModeEveryFiveMinutesKeepsTheLastN) {
  Compactor c(parse_auto_compaction("revision", "100").value());
  EXPECT_FALSE(c.tick(0, 50, -1, true).has_value());  // starts the clock
  EXPECT_FALSE(c.tick(Compactor::kRevisionCheckIntervalMs - 1, 500, -1, true).has_value());
  EXPECT_EQ(c.tick(Compactor::kRevisionCheckIntervalMs, 500, -1, true), 400);
  EXPECT_FALSE(
      c.tick(2 * Compactor::kRevisionCheckIntervalMs, 500, 400, true).has_value());  // nothing new
  EXPECT_FALSE(
      c.tick(3 * Compactor::kRevisionCheckIntervalMs, 90, 400, true).has_value());  // would be <= 0
  EXPECT_FALSE(
      c.tick(4 * Compactor::kRevisionCheckIntervalMs, 900, 400, false).has_value());  // not leader
  EXPECT_EQ(c.tick(5 * Compactor::kRevisionCheckIntervalMs, 900, 400, true), 800);
}

TEST(Compactor, OffNeverCompacts) {
  Compactor c(AutoCompactionOptions{});
  for (int64_t t = 0; t < 100 * kHourMs; t += kHourMs)
    EXPECT_FALSE(c.tick(t, 1000 + t, -1, true).has_value());
}

}  // namespace
}  // namespace ckv::node
