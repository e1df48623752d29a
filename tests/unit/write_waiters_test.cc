// Unit tests for the write waiters: which outcome a client gets for its proposal.
#include "node/write_waiters.h"

#include <optional>

#include <gtest/gtest.h>

namespace ckv::node {
namespace {

using Clock = WriteWaiters::Clock;

struct Outcome {
  std::optional<Result<WriteResult>> got;
  WriteWaiters::Callback cb() {
    return [this](Result<WriteResult> r) { got.emplace(std::move(r)); };
  }
};

const auto kLater = Clock::now() + std::chrono::hours(1);

TEST(WriteWaiters, SameTermAtTheIndexIsSuccess) {
  WriteWaiters w;
  Outcome o;
  w.add(5, 2, kLater, o.cb());
  WriteResult r;
  r.duplicate = true;
  w.applied(5, 2, std::move(r));
  ASSERT_TRUE(o.got.has_value());
  ASSERT_TRUE(o.got->is_ok());
  EXPECT_EQ(o.got->value().index, 5u);
  EXPECT_TRUE(o.got->value().duplicate);  // the state machine's result is handed over
  EXPECT_EQ(w.size(), 0u);
}

TEST(WriteWaiters, AnotherTermAtTheIndexIsADefiniteFailure) {
  WriteWaiters w;
  Outcome o;
  w.add(5, 2, kLater, o.cb());
  w.applied(5, 3, WriteResult{});
  ASSERT_TRUE(o.got.has_value());
  EXPECT_EQ(o.got->status().code(), StatusCode::kUnavailable);
}

// Item 15 of the hardening issue: a leader that lost its entry at index 5
// (term 2), was elected again and proposed at index 5 (term 4) kept the old
// waiter; the new client never got an answer. The old one's outcome is
// unknown, not "not applied": another node may still hold its entry and a
// later leader commit it (a reviewer's 5-node interleaving).
TEST(WriteWaiters, ReusedIndexAnswersTheOldWaiterAndKeepsTheNewOne) {
  WriteWaiters w;
  Outcome old_write;
  Outcome new_write;
  w.add(5, 2, kLater, old_write.cb());
  w.add(5, 4, kLater, new_write.cb());
  ASSERT_TRUE(old_write.got.has_value());
  EXPECT_EQ(old_write.got->status().code(), StatusCode::kTimeout);
  EXPECT_FALSE(new_write.got.has_value());
  w.applied(5, 4, WriteResult{});
  ASSERT_TRUE(new_write.got.has_value());
  EXPECT_TRUE(new_write.got->is_ok());
}

TEST(WriteWaiters, TimeoutSnapshotAndShutdownAreUnknownOutcomes) {
  WriteWaiters w;
  Outcome expired;
  Outcome covered;
  Outcome pending;
  const auto now = Clock::now();
  w.add(3, 1, now, expired.cb());
  w.add(4, 1, kLater, covered.cb());
  w.add(9, 1, kLater, pending.cb());
  w.expire(now);
  ASSERT_TRUE(expired.got.has_value());
  EXPECT_EQ(expired.got->status().code(), StatusCode::kTimeout);
  w.snapshot_installed(8);
  ASSERT_TRUE(covered.got.has_value());
  EXPECT_EQ(covered.got->status().code(), StatusCode::kTimeout);
  EXPECT_FALSE(pending.got.has_value());
  w.fail_all();
  ASSERT_TRUE(pending.got.has_value());
  EXPECT_EQ(pending.got->status().code(), StatusCode::kTimeout);
  EXPECT_EQ(w.size(), 0u);
}

}  // namespace
}  // namespace ckv::node
