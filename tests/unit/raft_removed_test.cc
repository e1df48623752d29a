// Raft::set_removed: a node told it was removed sends no (pre-)vote requests, yet still votes and follows a leader.
#include <gtest/gtest.h>

#include "raft/raft.h"

namespace ckv::raft {
namespace {

Membership three() {
  return Membership{{{1, MemberRole::kVoter, ""}, {2, MemberRole::kVoter, ""}, {3, MemberRole::kVoter, ""}}};
}

// Ticks r n times, draining its Readies; returns how many vote requests it sent.
size_t vote_requests_after_ticks(Raft& r, int n) {
  size_t votes = 0;
  for (int t = 0; t < n; ++t) {
    r.tick();
    while (r.has_ready()) {
      Ready rd = r.ready();
      for (const Message& m : rd.messages) {
        votes += (m.type == MessageType::kPreVote || m.type == MessageType::kVote) ? 1 : 0;
      }
      r.advance(rd);
    }
  }
  return votes;
}

Raft make(NodeId id) {
  Options o;
  o.id = id;
  o.election_ticks = 10;
  return Raft(o, bootstrap_state(three()));
}

TEST(RaftRemoved, AVoterCutOffPreVotesButARemovedOneSendsNothing) {
  Raft cut_off = make(3);
  EXPECT_GT(vote_requests_after_ticks(cut_off, 200), 0u);  // without the flag: pre-votes forever
  EXPECT_EQ(cut_off.role(), StateRole::kPreCandidate);
  cut_off.set_removed(true);  // the campaign in progress ends too
  EXPECT_EQ(cut_off.role(), StateRole::kFollower);
  EXPECT_EQ(vote_requests_after_ticks(cut_off, 200), 0u);
  Raft removed = make(3);
  removed.set_removed(true);
  EXPECT_EQ(vote_requests_after_ticks(removed, 200), 0u);
  EXPECT_EQ(removed.role(), StateRole::kFollower);
  EXPECT_EQ(removed.term(), 1u);
  // TimeoutNow from a leader does not make it campaign either.
  Message timeout_now;
  timeout_now.type = MessageType::kTimeoutNow;
  timeout_now.from = 1;
  timeout_now.to = 3;
  timeout_now.term = 1;
  removed.step(timeout_now);
  EXPECT_EQ(vote_requests_after_ticks(removed, 1), 0u);
  // Cleared, it campaigns again.
  removed.set_removed(false);
  EXPECT_GT(vote_requests_after_ticks(removed, 200), 0u);
}

TEST(RaftRemoved, ARemovedNodeStillGrantsVotes) {
  Raft removed = make(3);
  removed.set_removed(true);
  Message vote;
  vote.type = MessageType::kVote;
  vote.from = 1;
  vote.to = 3;
  vote.term = 2;
  vote.log_index = 1;
  vote.log_term = 1;
  removed.step(vote);
  bool granted = false;
  while (removed.has_ready()) {
    Ready rd = removed.ready();
    for (const Message& m : rd.messages) granted = granted || (m.type == MessageType::kVoteResp && !m.reject);
    removed.advance(rd);
  }
  EXPECT_TRUE(granted);
}

}  // namespace
}  // namespace ckv::raft
