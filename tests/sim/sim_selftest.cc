// Unit tests of the simulator's own parts: the disk's crash model, the state machine's snapshots, the checker's teeth.
#include <gtest/gtest.h>

#include "invariants.h"
#include "sim_disk.h"
#include "sim_state_machine.h"

namespace ckv::sim {
namespace {

using raft::Entry;

std::vector<Entry> entries(raft::Index from, raft::Index to, raft::Term term) {
  std::vector<Entry> es;
  for (raft::Index i = from; i <= to; ++i)
    es.push_back(Entry{term, i, raft::EntryType::kNormal, "e" + std::to_string(i)});
  return es;
}

// A crash loses exactly what was not synced.
TEST(SimDiskTest, CrashDropsUnsyncedWrites) {
  SimDisk d;
  d.stage_entries(entries(1, 3, 1));
  d.stage_hard_state(raft::HardState{1, 1, 0});
  ASSERT_EQ(d.sync(), "");
  d.stage_entries(entries(4, 5, 1));
  d.stage_hard_state(raft::HardState{2, 2, 3});
  d.crash();
  raft::InitialState s = d.initial_state();
  EXPECT_EQ(s.entries.size(), 3u);
  EXPECT_EQ(s.hard_state, (raft::HardState{1, 1, 0}));
}

// raft.h: "first delete every stored entry with index >= rd.entries[0].index, then append".
TEST(SimDiskTest, AppendTruncatesConflictingSuffix) {
  SimDisk d;
  d.stage_entries(entries(1, 5, 1));
  ASSERT_EQ(d.sync(), "");
  d.stage_entries(entries(3, 3, 2));
  ASSERT_EQ(d.sync(), "");
  EXPECT_EQ(d.last_index(), 3u);
  EXPECT_EQ(d.term_at(3), 2u);
  EXPECT_EQ(d.term_at(2), 1u);
}

TEST(SimDiskTest, GapsAndIncompleteSnapshotsAreContractViolations) {
  SimDisk d;
  d.stage_entries(entries(2, 3, 1));
  EXPECT_NE(d.sync(), "");  // gap after index 0
  raft::SnapshotMeta meta{10, 3, {}, 8};
  d.stage_chunk(raft::SnapshotChunk{meta, 0, "abcd"});
  d.stage_install_snapshot(meta);
  EXPECT_NE(d.sync(), "");  // 4 of 8 bytes
}

TEST(SimDiskTest, SnapshotInstallDropsLogAndRestartStartsAfterIt) {
  SimDisk d;
  d.stage_entries(entries(1, 5, 1));
  raft::SnapshotMeta meta{7, 2, {}, 6};
  d.stage_chunk(raft::SnapshotChunk{meta, 0, "abc"});
  d.stage_chunk(raft::SnapshotChunk{meta, 3, "def"});
  d.stage_install_snapshot(meta);
  d.stage_entries(entries(8, 9, 2));
  ASSERT_EQ(d.sync(), "");
  raft::InitialState s = d.initial_state();
  EXPECT_EQ(s.snapshot.index, 7u);
  ASSERT_EQ(s.entries.size(), 2u);
  EXPECT_EQ(s.entries.front().index, 8u);
  EXPECT_EQ(d.snapshot_bytes(), "abcdef");
}

TEST(SimStateMachineTest, SnapshotRoundTripKeepsDigest) {
  SimStateMachine a;
  a.apply(Entry{1, 1, raft::EntryType::kNormal, encode_set("x", "1")});
  a.apply(Entry{1, 2, raft::EntryType::kNormal, encode_set("y", "2")});
  a.apply(Entry{2, 3, raft::EntryType::kNormal, encode_del("x")});
  SimStateMachine b;
  ASSERT_TRUE(b.restore(a.serialize(), raft::SnapshotMeta{3, 2, {}, 0}));
  EXPECT_EQ(b.digest(), a.digest());
  EXPECT_EQ(b.get("y"), "2");
  EXPECT_FALSE(b.get("x").has_value());
  EXPECT_FALSE(b.restore(a.serialize(), raft::SnapshotMeta{4, 2, {}, 0}));  // wrong index
}

// The digest is order-independent but content-sensitive.
TEST(SimStateMachineTest, DigestDependsOnContentOnly) {
  SimStateMachine a, b;
  a.apply(Entry{1, 1, raft::EntryType::kNormal, encode_set("x", "1")});
  a.apply(Entry{1, 2, raft::EntryType::kNormal, encode_set("y", "2")});
  b.apply(Entry{1, 1, raft::EntryType::kNormal, encode_set("y", "2")});
  b.apply(Entry{1, 2, raft::EntryType::kNormal, encode_set("x", "1")});
  EXPECT_EQ(a.digest(), b.digest());
  b.apply(Entry{1, 3, raft::EntryType::kNormal, encode_set("x", "3")});
  EXPECT_NE(a.digest(), b.digest());
}

// §5.4.1 / Figure 2: a granted vote must be durable before the reply leaves.
TEST(InvariantCheckerTest, CatchesVoteReplyBeforePersist) {
  InvariantChecker c;
  SimDisk d;
  raft::Message m;
  m.type = raft::MessageType::kVoteResp;
  m.from = 1;
  m.to = 2;
  m.term = 5;
  c.check_send(1, m, d);
  EXPECT_TRUE(c.failed());
  EXPECT_EQ(c.failed_invariant(), "Vote persisted before reply");

  InvariantChecker ok;
  d.stage_hard_state(raft::HardState{5, 2, 0});
  ASSERT_EQ(d.sync(), "");
  ok.check_send(1, m, d);
  EXPECT_FALSE(ok.failed());
}

TEST(InvariantCheckerTest, CatchesStaleLinearizableRead) {
  InvariantChecker c;
  c.check_read(1, 7, /*min_index=*/10, /*read_index=*/9, /*applied=*/9, "k", std::nullopt);
  EXPECT_TRUE(c.failed());
  EXPECT_EQ(c.failed_invariant(), "Linearizable read");
}

}  // namespace
}  // namespace ckv::sim
