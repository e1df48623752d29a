// Raft core unit tests for linearizable reads: thesis §6.4 ReadIndex on the leader and through followers.
#include <algorithm>
#include <optional>

#include <gtest/gtest.h>

#include "raft_fixture.h"

namespace ckv::raft::test {
namespace {

std::optional<ReadState> read_state(Network& net, NodeId id, uint64_t read_id) {
  for (const ReadState& rs : net.peer(id).read_states) {
    if (rs.id == read_id) return rs;
  }
  return std::nullopt;
}

bool failed(Network& net, NodeId id, uint64_t read_id) {
  const auto& f = net.peer(id).failed_reads;
  return std::find(f.begin(), f.end(), read_id) != f.end();
}

// Thesis §6.4: the leader records its commit index as the read index and serves the read once a heartbeat round confirms it still leads.
TEST(RaftReadIndex, LeaderServesReadAfterHeartbeatQuorum) {
  Network net(3);
  elect_1(net);
  ProposeResult w = net.raft(1).propose("w");
  ASSERT_TRUE(w.ok());
  net.deliver_all();
  ASSERT_EQ(net.raft(1).commit_index(), w.index);

  size_t mark = net.sent_mark();
  ASSERT_TRUE(net.raft(1).read_index(7));
  net.flush(1);
  EXPECT_FALSE(read_state(net, 1, 7).has_value()) << "served before confirming leadership";
  net.deliver_all();
  for (int i = 0; i < 2 && !read_state(net, 1, 7);
       ++i) {  // the round may ride on the next heartbeat
    net.tick(1);
    net.deliver_all();
  }
  auto rs = read_state(net, 1, 7);
  ASSERT_TRUE(rs.has_value());
  EXPECT_EQ(rs->index, w.index) << "read index = commit index when the read arrived";
  EXPECT_GE(net.count_sent(of_type(MessageType::kHeartbeat, 1, kNoNode), mark), 1u);
}

// Thesis §6.4 step 3: leadership is confirmed by a majority of heartbeat acknowledgements; a minority is not enough.
// Five nodes: the old leader still reaches node 2, whose acknowledgements alone must not confirm it.
TEST(RaftReadIndex, LeaderPartitionedFromMajorityNeverServesRead) {
  Network net(5);
  elect_1(net);
  net.cut(1, 3);
  net.cut(1, 4);
  net.cut(1, 5);
  ASSERT_TRUE(net.raft(1).read_index(42));
  for (int i = 0; i < 40; ++i) {
    net.tick_all();
    ASSERT_FALSE(read_state(net, 1, 42).has_value())
        << "served a read without a quorum after " << i << " ticks";
  }
  // Meanwhile a new leader may have committed writes the old one never saw.
  EXPECT_NE(net.leader(), 1u);
}

// raft.h Ready::failed_reads: a pending read on a leader that loses leadership is reported as failed, so the caller can retry elsewhere.
TEST(RaftReadIndex, PendingReadFailsWhenLeaderStepsDown) {
  Network net(3);
  elect_1(net);
  net.isolate(1);
  ASSERT_TRUE(net.raft(1).read_index(42));
  ASSERT_GE(net.tick_all_until([&] { return net.raft(1).role() != StateRole::kLeader; }, 40), 0);
  net.deliver_all();
  EXPECT_TRUE(failed(net, 1, 42));
  EXPECT_FALSE(read_state(net, 1, 42).has_value());
}

// Thesis §6.4 step 1: a new leader serves reads only once it has committed an entry of its term (until then it may not know the latest commit).
TEST(RaftReadIndex, NewLeaderWaitsForItsNoOpToCommit) {
  Network net(3);
  net.drop([](const Message& m) { return m.type == MessageType::kAppend && m.from == 1; });
  ASSERT_TRUE(net.tick_until_leader(1));
  Index noop = net.raft(1).last_index();
  ASSERT_LT(net.raft(1).commit_index(), noop);
  ASSERT_TRUE(net.raft(1).read_index(5));
  net.tick(1);
  net.deliver_all();  // heartbeats are acknowledged, but the no-op has not committed
  EXPECT_FALSE(read_state(net, 1, 5).has_value());
  net.clear_drops();
  for (int i = 0; i < 3; ++i) {
    net.tick(1);
    net.deliver_all();
  }
  auto rs = read_state(net, 1, 5);
  ASSERT_TRUE(rs.has_value());
  EXPECT_GE(rs->index, noop);
}

// Thesis §6.4.1: a follower asks the leader for a read index and receives the leader's commit index.
TEST(RaftReadIndex, FollowerReadGetsLeaderCommitIndex) {
  Network net(3);
  elect_1(net);
  ProposeResult w = net.raft(1).propose("w");
  ASSERT_TRUE(w.ok());
  net.deliver_all();
  ASSERT_EQ(net.raft(1).commit_index(), w.index);

  size_t mark = net.sent_mark();
  ASSERT_TRUE(net.raft(2).read_index(9));
  net.deliver_all();
  for (int i = 0; i < 2 && !read_state(net, 2, 9); ++i) {
    net.tick(1);
    net.deliver_all();
  }
  EXPECT_GE(net.count_sent(of_type(MessageType::kReadIndex, 2, 1), mark), 1u);
  auto rs = read_state(net, 2, 9);
  ASSERT_TRUE(rs.has_value());
  EXPECT_EQ(rs->index, net.raft(1).commit_index());
  EXPECT_GE(rs->index, w.index);
}

// A follower's read sent to a leader that then goes silent (crashed, or
// deposed) fails as soon as the follower follows someone else, not at its
// caller's deadline; a late answer from the old leader is then ignored.
TEST(RaftReadIndex, FollowerReadFailsWhenItsLeaderChanges) {
  Network net(3);
  elect_1(net);
  net.isolate(1);
  ASSERT_TRUE(net.raft(2).read_index(7));
  net.flush(2);
  std::vector<Message> asked = net.take_queue();  // the kReadIndex to 1, lost
  ASSERT_TRUE(std::any_of(asked.begin(), asked.end(), [](const Message& m) {
    return m.type == MessageType::kReadIndex && m.from == 2 && m.to == 1;
  }));
  EXPECT_FALSE(failed(net, 2, 7));
  ASSERT_GE(net.tick_all_until([&] {
    return net.raft(2).leader() != kNoNode && net.raft(2).leader() != 1;
  }, 200), 0);
  EXPECT_TRUE(failed(net, 2, 7));
  // The old leader's answer, arriving late, does not also succeed it.
  Message late;
  late.type = MessageType::kReadIndexResp;
  late.from = 1;
  late.to = 2;
  late.term = net.raft(2).term();
  late.context = 7;
  late.index = 1;
  net.inject(late);
  EXPECT_FALSE(read_state(net, 2, 7).has_value());
}

// Thesis §6.4.1: the follower's read index is the leader's commit index even when the follower itself lags behind it.
TEST(RaftReadIndex, FollowerReadIndexCoversWritesItHasNotApplied) {
  Network net(3);
  elect_1(net);
  net.cut(1, 2);
  ProposeResult w = net.raft(1).propose("w");
  ASSERT_TRUE(w.ok());
  net.deliver_all();
  ASSERT_EQ(net.raft(1).commit_index(), w.index);
  ASSERT_LT(net.raft(2).commit_index(), w.index);
  net.heal();
  ASSERT_TRUE(net.raft(2).read_index(11));
  net.deliver_all();
  for (int i = 0; i < 3 && !read_state(net, 2, 11); ++i) {
    net.tick(1);
    net.deliver_all();
  }
  auto rs = read_state(net, 2, 11);
  ASSERT_TRUE(rs.has_value());
  EXPECT_GE(rs->index, w.index) << "a read after an acknowledged write must see it";
}

// raft.h read_index: with no known leader there is no one to ask; the caller retries later.
TEST(RaftReadIndex, NoKnownLeaderReturnsFalse) {
  Network net(3);
  EXPECT_FALSE(net.raft(2).read_index(1));
}

// Thesis §6.4: a single-voter cluster needs no heartbeat round.
TEST(RaftReadIndex, SingleNodeServesReadImmediately) {
  Network net(1);
  ASSERT_TRUE(net.tick_until_leader(1));
  net.deliver_all();
  ASSERT_TRUE(net.raft(1).read_index(3));
  net.deliver_all();
  if (!read_state(net, 1, 3)) net.tick(1);
  auto rs = read_state(net, 1, 3);
  ASSERT_TRUE(rs.has_value());
  EXPECT_EQ(rs->index, net.raft(1).commit_index());
}

// Thesis §6.4: concurrent reads each get their own answer, none earlier than the commit index when they arrived.
TEST(RaftReadIndex, ConcurrentReadsAreAllServed) {
  Network net(3);
  elect_1(net);
  Index c0 = net.raft(1).commit_index();
  ASSERT_TRUE(net.raft(1).read_index(1));
  ASSERT_TRUE(net.raft(1).read_index(2));
  ProposeResult w = net.raft(1).propose("w");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(net.raft(1).read_index(3));
  ASSERT_TRUE(net.raft(3).read_index(4));
  net.deliver_all();
  for (int i = 0; i < 3; ++i) {
    net.tick(1);
    net.deliver_all();
  }
  for (uint64_t id : {1, 2, 3}) {
    auto rs = read_state(net, 1, id);
    ASSERT_TRUE(rs.has_value()) << "read " << id;
    EXPECT_GE(rs->index, c0);
  }
  auto rs4 = read_state(net, 3, 4);
  ASSERT_TRUE(rs4.has_value());
  EXPECT_GE(rs4->index, c0);
}

}  // namespace
}  // namespace ckv::raft::test
