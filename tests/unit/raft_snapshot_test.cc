// Raft core unit tests for log compaction and InstallSnapshot (Raft §7), including chunked transfer and restart from a snapshot.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "raft_fixture.h"

namespace ckv::raft::test {
namespace {

void small_snapshots(Options& o) {
  o.snapshot_chunk_bytes = 64;
  o.snapshot_trailing_entries = 0;
}

std::vector<std::string> values(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(prefix + (i < 10 ? "0" : "") + std::to_string(i));
  return out;
}

Index propose_all(Network& net, NodeId leader, const std::vector<std::string>& vs) {
  Index last = 0;
  for (const std::string& v : vs) {
    ProposeResult r = net.raft(leader).propose(v);
    EXPECT_TRUE(r.ok()) << to_string(r.error);
    last = r.index;
    net.deliver_all();
  }
  return last;
}

bool tick_leader_until(Network& net, NodeId leader, const std::function<bool()>& pred,
                       int max_ticks = 100) {
  return net.tick_node_until(leader, pred, max_ticks);
}

// ---------------------------------------------------------------------------
// Compaction.

// §7 / raft.h snapshot_taken: with no trailing entries the log is compacted through the snapshot index.
TEST(RaftCompaction, SnapshotTakenCompactsTheLog) {
  Network net(3, small_snapshots);
  elect_1(net);
  Index last = propose_all(net, 1, values("v", 10));
  Index snap = net.take_snapshot(1);
  EXPECT_EQ(snap, last);
  EXPECT_EQ(net.raft(1).snapshot().index, snap);
  EXPECT_EQ(net.raft(1).first_index(), snap + 1);
  EXPECT_EQ(net.raft(1).last_index(), last);
  EXPECT_TRUE(net.storage(1).entries.empty());
  // The log goes on after the snapshot.
  Index next = propose_all(net, 1, {"after"});
  EXPECT_EQ(next, snap + 1);
  EXPECT_EQ(net.raft(1).commit_index(), next);
}

// raft.h snapshot_trailing_entries: that many entries stay behind the snapshot for slightly lagging followers.
TEST(RaftCompaction, TrailingEntriesAreKept) {
  Network net(3, [](Options& o) { o.snapshot_trailing_entries = 5; });
  elect_1(net);
  propose_all(net, 1, values("v", 20));
  Index snap = net.take_snapshot(1);
  EXPECT_LE(net.raft(1).first_index(), snap - 5 + 1);
  EXPECT_GT(net.raft(1).first_index(), 1u) << "something was compacted";
  ASSERT_FALSE(net.storage(1).entries.empty());
  EXPECT_EQ(net.storage(1).entries.front().index, net.raft(1).first_index());
}

// raft.h snapshot_trailing_entries: a follower lagging by fewer entries than are kept catches up from the log, without a snapshot.
TEST(RaftCompaction, SlightlyLaggingFollowerCatchesUpFromLog) {
  Network net(3, [](Options& o) { o.snapshot_trailing_entries = 100; });
  elect_1(net);
  propose_all(net, 1, values("a", 10));
  net.isolate(3);
  Index last = propose_all(net, 1, values("b", 10));
  net.take_snapshot(1);
  net.heal();
  size_t mark = net.sent_mark();
  ASSERT_TRUE(tick_leader_until(net, 1, [&] { return net.raft(3).commit_index() == last; }));
  EXPECT_EQ(net.count_sent(of_type(MessageType::kSnapshot), mark), 0u);
}

// ---------------------------------------------------------------------------
// InstallSnapshot.

// §7: a follower behind the leader's compacted log receives the snapshot in several chunks, installs it and catches up.
// raft.h Ready contract: one Ready installs at most one snapshot, and holds
// no chunk of another. A chunk of a second snapshot that arrived after the
// first completed, before the Ready was taken, used to be written into the
// incoming file the first one was about to be installed from (swarm seed
// 907451): the fixture's MemStorage reports that mix-up.
TEST(RaftInstallSnapshot, ChunkOfANewerSnapshotWaitsUntilTheCompletedOneIsInstalled) {
  Network net(3);
  elect_1(net);
  const Term t = net.raft(1).term();
  auto chunk = [&](Index index, const std::string& data, bool done) {
    Message m;
    m.type = MessageType::kSnapshot;
    m.from = 1;
    m.to = 2;
    m.term = t;
    m.snapshot = SnapshotMeta{index, t, voters({1, 2, 3}), data.size()};
    m.data = data;
    m.data_length = data.size();
    m.done = done;
    return m;
  };
  EXPECT_EQ(net.raft(2).step(chunk(100, "1:a", true)), nullptr);
  EXPECT_EQ(net.raft(2).step(chunk(200, "1:b2:cc", false)), nullptr);
  net.flush(2);
  EXPECT_EQ(net.storage(2).snapshot.index, 100u);
  EXPECT_EQ(net.storage(2).snapshot_data, "1:a");
  EXPECT_EQ(net.fsm(2).commands, (std::vector<std::string>{"a"}));
}

TEST(RaftInstallSnapshot, ChunkedSnapshotCatchesUpLaggingFollower) {
  Network net(3, small_snapshots);
  elect_1(net);
  net.isolate(3);
  Index last = propose_all(net, 1, values("value-", 20));
  ASSERT_EQ(net.raft(1).commit_index(), last);
  Index snap = net.take_snapshot(1);
  const std::string& snap_bytes = net.storage(1).snapshot_data;
  ASSERT_GT(snap_bytes.size(), 3 * 64u) << "the snapshot must need several chunks";
  ASSERT_GT(net.raft(1).first_index(), net.raft(3).last_index() + 1)
      << "3 cannot catch up from the log";

  net.heal();
  size_t mark = net.sent_mark();
  ASSERT_TRUE(tick_leader_until(net, 1, [&] { return net.raft(3).snapshot().index == snap; }));

  // The transfer: more than one chunk, each within snapshot_chunk_bytes, covering the snapshot in order.
  std::vector<Message> chunks = net.sent_matching(of_type(MessageType::kSnapshot, 1, 3), mark);
  EXPECT_GT(chunks.size(), 1u);
  uint64_t next_offset = 0;
  bool done = false;
  for (const Message& m : chunks) {
    EXPECT_LE(m.data_length, 64u);
    EXPECT_EQ(m.data.size(), m.data_length) << "harness filled data";
    EXPECT_EQ(m.snapshot.index, snap);
    EXPECT_EQ(m.snapshot.size_bytes, snap_bytes.size());
    if (m.offset == next_offset) next_offset += m.data_length;
    done |= m.done;
  }
  EXPECT_EQ(next_offset, snap_bytes.size());
  EXPECT_TRUE(done);
  EXPECT_GE(
      net.count_sent(
          [](const Message& m) { return m.type == MessageType::kSnapshotResp && m.done; }, mark),
      1u);

  // The follower holds the same snapshot and state.
  EXPECT_EQ(net.storage(3).snapshot_data, snap_bytes);
  EXPECT_EQ(net.raft(3).snapshot().membership, voters({1, 2, 3}));
  EXPECT_EQ(net.fsm(3).commands, values("value-", 20));
  EXPECT_GE(net.raft(3).commit_index(), snap);

  // And replication continues from there.
  Index after = propose_all(net, 1, {"after"});
  ASSERT_TRUE(tick_leader_until(net, 1, [&] { return net.raft(3).commit_index() == after; }));
  EXPECT_EQ(net.fsm(3).commands, net.fsm(1).commands);
  EXPECT_EQ(net.raft(3).last_index(), net.raft(1).last_index());
}

// §7 + raft.h tick "snapshot resends": a lost chunk is sent again and the install completes.
TEST(RaftInstallSnapshot, LostChunkIsResent) {
  Network net(3, small_snapshots);
  elect_1(net);
  net.isolate(3);
  propose_all(net, 1, values("value-", 20));
  Index snap = net.take_snapshot(1);
  net.heal();
  bool lost = false;
  net.drop([&lost](const Message& m) {
    if (lost || m.type != MessageType::kSnapshot || m.offset == 0) return false;
    lost = true;
    return true;
  });
  ASSERT_TRUE(tick_leader_until(
      net, 1, [&] { return net.raft(3).snapshot().index == snap; }, 200));
  EXPECT_TRUE(lost) << "the test must actually lose a chunk";
  EXPECT_EQ(net.fsm(3).commands, values("value-", 20));
}

// §7: a follower that installed a snapshot restarts from it (snapshot + log), not from an empty state.
TEST(RaftInstallSnapshot, FollowerRestartsFromInstalledSnapshot) {
  Network net(3, small_snapshots);
  elect_1(net);
  net.isolate(3);
  propose_all(net, 1, values("value-", 20));
  Index snap = net.take_snapshot(1);
  net.heal();
  ASSERT_TRUE(tick_leader_until(net, 1, [&] { return net.raft(3).snapshot().index == snap; }));
  Index after = propose_all(net, 1, {"after"});
  ASSERT_TRUE(tick_leader_until(net, 1, [&] { return net.raft(3).commit_index() == after; }));

  net.restart(3);
  EXPECT_EQ(net.raft(3).snapshot().index, snap);
  EXPECT_EQ(net.raft(3).last_index(), after);
  EXPECT_EQ(net.raft(3).membership(), voters({1, 2, 3}));
  std::vector<std::string> want = values("value-", 20);
  want.push_back("after");
  EXPECT_EQ(net.fsm(3).commands, want);
}

// §7 + thesis §4.2.1: a learner that joins after compaction receives the snapshot (with the configuration at its index) and then the log.
TEST(RaftInstallSnapshot, NewLearnerAfterCompactionGetsSnapshotThenLog) {
  Network net(3, small_snapshots);
  elect_1(net);
  propose_all(net, 1, values("value-", 20));
  Index snap = net.take_snapshot(1);
  net.add(4, InitialState{}, small_snapshots);
  ProposeResult r =
      net.raft(1).propose_conf_change(ConfChange{ConfChangeType::kAddLearner, 4, "ctx"});
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  net.deliver_all();
  ASSERT_TRUE(tick_leader_until(net, 1, [&] { return net.raft(4).commit_index() >= r.index; }));
  EXPECT_EQ(net.raft(4).snapshot().index, snap);
  EXPECT_TRUE(net.raft(4).membership().is_learner(4));
  EXPECT_EQ(net.raft(4).membership().voters(), (std::vector<NodeId>{1, 2, 3}));
  EXPECT_EQ(net.fsm(4).commands, net.fsm(1).commands);
  EXPECT_EQ(net.raft(4).leader(), 1u);
}

// §7: a leader restarted after compacting rebuilds from snapshot + log, keeps every committed entry, and the cluster goes on.
TEST(RaftInstallSnapshot, LeaderRestartFromSnapshotKeepsCommittedState) {
  Network net(3, small_snapshots);
  elect_1(net);
  propose_all(net, 1, values("a", 10));
  Index snap = net.take_snapshot(1);
  propose_all(net, 1, values("b", 5));
  net.tick(1);
  net.deliver_all();
  std::vector<std::string> want = values("a", 10);
  for (const std::string& v : values("b", 5)) want.push_back(v);

  net.restart(1);
  EXPECT_EQ(net.raft(1).snapshot().index, snap);
  EXPECT_EQ(net.raft(1).first_index(), snap + 1);
  EXPECT_EQ(net.fsm(1).commands, want);

  ASSERT_GE(net.tick_all_until([&] { return net.leader() != kNoNode; }, 300), 0);
  NodeId l = net.leader();
  Index c = propose_all(net, l, {"c"});
  net.tick_all();
  want.push_back("c");
  for (NodeId id : {1, 2, 3}) {
    EXPECT_EQ(net.raft(id).commit_index(), c) << "node " << id;
    EXPECT_EQ(net.fsm(id).commands, want) << "node " << id;
  }
}

// §7: a follower that crashes in the middle of a chunked transfer forgets the partial snapshot; the transfer starts over and completes.
TEST(RaftInstallSnapshot, FollowerRestartedMidTransferStillInstalls) {
  Network net(3, small_snapshots);
  elect_1(net);
  net.isolate(3);
  propose_all(net, 1, values("value-", 20));
  Index snap = net.take_snapshot(1);
  net.heal();
  // Chunks beyond the first two are lost: the transfer stalls half way.
  net.drop([](const Message& m) { return m.type == MessageType::kSnapshot && m.offset >= 128; });
  net.tick_node_until(
      1, [&] { return net.storage(3).incoming_data.size() >= 128; }, 50);
  ASSERT_EQ(net.storage(3).incoming_data.size(), 128u) << "two chunks arrived";
  ASSERT_NE(net.raft(3).snapshot().index, snap);
  net.restart(3);
  net.clear_drops();
  ASSERT_TRUE(tick_leader_until(
      net, 1, [&] { return net.raft(3).snapshot().index == snap; }, 200));
  EXPECT_EQ(net.storage(3).snapshot_data, net.storage(1).snapshot_data);
  EXPECT_EQ(net.fsm(3).commands, values("value-", 20));
}

}  // namespace
}  // namespace ckv::raft::test
