// Unit tests for forwarded writes' waiters and the origin tag codec (node/forward_waiters.h).
#include "node/forward_waiters.h"

#include <optional>
#include <random>

#include <gtest/gtest.h>

#include "fsm/command.h"

namespace ckv::node {
namespace {

using Clock = ForwardWaiters::Clock;
const auto kLater = Clock::now() + std::chrono::hours(1);

struct Outcome {
  std::optional<Result<WriteResult>> got;
  ForwardWaiters::Callback cb() {
    return [this](Result<WriteResult> r) { got.emplace(std::move(r)); };
  }
};

TEST(OriginTag, RoundTripsAndLeavesUntaggedCommandsAlone) {
  fsm::Command c;
  c.request = mvcc::PutRequest{"k", "v"};
  const std::string cmd = fsm::encode_command(c);
  const Origin o{0x1122334455667788ULL, 42, 7};
  const std::string tagged = encode_tagged(o, cmd);
  auto t = decode_tagged(tagged);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->origin, o);
  EXPECT_EQ(t->command, cmd);
  EXPECT_TRUE(fsm::decode_command(t->command).has_value());
  // A leader's own entries (command formats 1 and 2) are not tagged...
  EXPECT_FALSE(decode_tagged(cmd).has_value());
  EXPECT_FALSE(decode_tagged(fsm::encode_legacy_set("k", "v")).has_value());
  // ... and a tagged entry is no command: an older node stops on it rather than misreading it.
  EXPECT_FALSE(fsm::decode_command(tagged).has_value());
  // Every truncation of the tag is refused, never read past its end.
  for (size_t n = 0; n < kOriginTagBytes; ++n) EXPECT_FALSE(decode_tagged(tagged.substr(0, n)).has_value()) << n;
}

TEST(OriginTag, RandomBytesNeverCrashTheDecoder) {
  std::mt19937_64 rng(2026);
  for (int i = 0; i < 20000; ++i) {
    std::string data(rng() % 64, '\0');
    for (char& ch : data) ch = static_cast<char>(rng());
    if (!data.empty() && rng() % 2) data[0] = static_cast<char>(kOriginTagFormat);
    auto t = decode_tagged(data);
    if (t) {
      EXPECT_EQ(t->command.size() + kOriginTagBytes, data.size());
      (void)fsm::decode_command(t->command);
    }
  }
}

TEST(ForwardWaiters, OwnAppliedEntryIsSuccessWithItsResult) {
  ForwardWaiters w(10, 1000);
  Outcome o;
  w.add(1, 5, 100, kLater, o.cb());
  WriteResult r;
  r.index = 9;
  r.duplicate = true;
  w.applied(1, std::move(r));
  ASSERT_TRUE(o.got && o.got->is_ok());
  EXPECT_EQ(o.got->value().index, 9u);
  EXPECT_TRUE(o.got->value().duplicate);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.bytes(), 0u);
  w.applied(1, WriteResult{});  // applied again (nothing causes it): nobody is answered twice
}

TEST(ForwardWaiters, RefusalIsADefiniteFailureNamedByForwardId) {
  ForwardWaiters w(10, 1000);
  Outcome a, b;
  w.add(1, 5, 10, kLater, a.cb());
  w.add(2, 6, 10, kLater, b.cb());
  w.refused(6, Status(StatusCode::kNotLeader, "not applied"));
  EXPECT_FALSE(a.got.has_value());
  ASSERT_TRUE(b.got.has_value());
  EXPECT_EQ(b.got->status().code(), StatusCode::kNotLeader);
  w.refused(6, Status(StatusCode::kNotLeader, "again"));  // a repeated refusal finds nobody
  w.refused(99, Status(StatusCode::kNotLeader, "never sent"));
  EXPECT_EQ(w.size(), 1u);
}

TEST(ForwardWaiters, DeadlineShutdownAndSnapshotAreOutcomeUnknown) {
  ForwardWaiters w(10, 1000);
  Outcome soon, late, stop;
  const auto now = Clock::now();
  w.add(1, 1, 10, now, soon.cb());
  w.add(2, 2, 10, now + std::chrono::hours(1), late.cb());
  w.expire(now + std::chrono::milliseconds(1), " (why)");
  ASSERT_TRUE(soon.got.has_value());
  EXPECT_EQ(soon.got->status().code(), StatusCode::kTimeout);
  EXPECT_NE(soon.got->status().message().find("outcome unknown (why)"), std::string::npos);
  EXPECT_FALSE(late.got.has_value());
  w.snapshot_installed();
  ASSERT_TRUE(late.got.has_value());
  EXPECT_EQ(late.got->status().code(), StatusCode::kTimeout);
  w.add(3, 3, 10, kLater, stop.cb());
  w.fail_all();
  ASSERT_TRUE(stop.got.has_value());
  EXPECT_EQ(stop.got->status().code(), StatusCode::kTimeout);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.bytes(), 0u);
}

TEST(ForwardWaiters, LimitsOnCountAndBytes) {
  ForwardWaiters w(2, 100);
  EXPECT_TRUE(w.has_room(1000)) << "one write always fits when none waits";
  Outcome o1, o2;
  w.add(1, 1, 60, kLater, o1.cb());
  EXPECT_FALSE(w.has_room(41));
  EXPECT_TRUE(w.has_room(40));
  w.add(2, 2, 10, kLater, o2.cb());
  EXPECT_FALSE(w.has_room(1)) << "count limit";
  w.applied(1, WriteResult{});
  EXPECT_TRUE(w.has_room(90));
  EXPECT_EQ(w.bytes(), 10u);
}

}  // namespace
}  // namespace ckv::node
