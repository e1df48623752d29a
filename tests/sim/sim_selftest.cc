// Unit tests of the simulator's own parts: the disk's crash model, the state machine's snapshots, the checker's teeth.
#include <set>

#include <gtest/gtest.h>

#include "byzantine.h"
#include "fault_profile.h"
#include "invariants.h"
#include "raft/message_checks.h"
#include "sim_disk.h"
#include "sim_fs.h"
#include "storage/file_system.h"
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
  d.stage_drop_log();  // the WAL batch after the adopted snapshot file
  d.stage_entries(entries(8, 9, 2));
  ASSERT_EQ(d.sync(), "");
  raft::InitialState s = d.initial_state();
  EXPECT_EQ(s.snapshot.index, 7u);
  ASSERT_EQ(s.entries.size(), 2u);
  EXPECT_EQ(s.entries.front().index, 8u);
  EXPECT_EQ(d.snapshot_bytes(), "abcdef");
}

TEST(SimDiskTest, RecoverAcceptsTheDurableStateOrAWrittenPrefixAndNothingElse) {
  SimDisk d;
  d.stage_entries(entries(1, 3, 1));
  d.stage_hard_state(raft::HardState{1, 1, 0});
  ASSERT_EQ(d.sync(), "");
  d.stage_hard_state(raft::HardState{1, 1, 2});
  d.write_unsynced();                  // a commit-only batch
  d.stage_entries(entries(4, 4, 1));  // the batch a crash struck inside
  d.crash();
  EXPECT_EQ(d.written_batches(), 2u);
  std::vector<Entry> three = entries(1, 3, 1);
  // Losing an entry the storage promised is refused; so is one never written.
  EXPECT_NE(d.recover(raft::HardState{1, 1, 0}, entries(1, 2, 1)), "");
  EXPECT_NE(d.recover(raft::HardState{1, 1, 0}, entries(1, 5, 1)), "");
  EXPECT_NE(d.recover(raft::HardState{2, 1, 0}, three), "");
  // The second batch survived but not the first: no prefix gives that.
  std::vector<Entry> four = entries(1, 4, 1);
  EXPECT_NE(d.recover(raft::HardState{1, 1, 0}, four), "");
  EXPECT_EQ(d.recover(raft::HardState{1, 1, 2}, four), "");
  EXPECT_EQ(d.last_index(), 4u);
  EXPECT_EQ(d.written_batches(), 0u);
}

TEST(MemFileSystemTest, CrashKeepsSyncedBytesAndSyncedNames) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.create_dir("/d").is_ok());
  ASSERT_TRUE(fs.sync_dir("/").is_ok());
  auto fd = fs.open("/d/f", storage::OpenMode::kCreateNew);
  ASSERT_TRUE(fd.is_ok());
  size_t n = 0;
  ASSERT_TRUE(fs.pwrite(fd.value(), "synced", 0, "/d/f", &n).is_ok());
  ASSERT_TRUE(fs.fdatasync(fd.value(), "/d/f").is_ok());
  ASSERT_TRUE(fs.sync_dir("/d").is_ok());
  ASSERT_TRUE(fs.pwrite(fd.value(), "-and-not-synced", 6, "/d/f", &n).is_ok());
  auto g = fs.open("/d/g", storage::OpenMode::kCreateNew);  // name never synced
  ASSERT_TRUE(g.is_ok());
  // Over many seeds: the synced prefix always stays, the rest varies.
  std::set<std::string> seen;
  int g_lost = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    MemFileSystem copy = fs;
    SimRng rng(seed);
    copy.crash(rng);
    auto f = storage::read_whole_file(copy, "/d/f", 1 << 20);
    ASSERT_TRUE(f.is_ok());
    ASSERT_EQ(f.value().substr(0, 6), "synced") << "seed " << seed;
    seen.insert(f.value());
    auto gs = copy.file_size("/d/g");
    ASSERT_TRUE(gs.is_ok());
    if (!gs.value()) ++g_lost;
  }
  EXPECT_TRUE(seen.count("synced"));
  EXPECT_TRUE(seen.count("synced-and-not-synced"));
  EXPECT_GT(seen.size(), 4u);  // torn prefixes and garbage too
  EXPECT_GT(g_lost, 0);
  EXPECT_LT(g_lost, 200);
}

TEST(MemFileSystemTest, PowerCutFailsThatCallAndEveryLaterOneUntilTheCrash) {
  MemFileSystem fs;
  auto fd = fs.open("/f", storage::OpenMode::kCreateNew);
  ASSERT_TRUE(fd.is_ok());
  fs.cut_power_after(2);
  size_t n = 0;
  EXPECT_TRUE(fs.pwrite(fd.value(), "a", 0, "/f", &n).is_ok());
  EXPECT_FALSE(fs.fdatasync(fd.value(), "/f").is_ok());
  EXPECT_TRUE(fs.powered_off());
  EXPECT_FALSE(fs.file_size("/f").is_ok());
  SimRng rng(1);
  fs.crash(rng);
  EXPECT_FALSE(fs.powered_off());
  EXPECT_TRUE(fs.file_size("/f").is_ok());
}

TEST(MemFileSystemTest, RenameIsOneAtomicChange) {
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    MemFileSystem fs;
    ASSERT_TRUE(fs.create_dir("/d").is_ok());
    ASSERT_TRUE(fs.sync_dir("/").is_ok());
    ASSERT_TRUE(storage::write_file_atomically(fs, "/d", "meta", "old").is_ok());
    auto fd = fs.open("/d/meta.tmp", storage::OpenMode::kCreateTrunc);
    ASSERT_TRUE(fd.is_ok());
    size_t n = 0;
    ASSERT_TRUE(fs.pwrite(fd.value(), "new", 0, "/d/meta.tmp", &n).is_ok());
    ASSERT_TRUE(fs.fsync(fd.value(), "/d/meta.tmp").is_ok());
    ASSERT_TRUE(fs.rename("/d/meta.tmp", "/d/meta").is_ok());
    SimRng rng(seed);
    fs.crash(rng);
    auto m = storage::read_whole_file(fs, "/d/meta", 100);
    ASSERT_TRUE(m.is_ok()) << "seed " << seed;
    EXPECT_TRUE(m.value() == "old" || m.value() == "new") << m.value();
  }
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

// Swarm profiles are a function of the seed (replay) and stay within what
// the simulator can run: the action rates fit in 1000, ranges are ordered.
TEST(FaultProfileTest, DrawIsDeterministicAndSane) {
  EXPECT_FALSE(FaultProfile{}.swarm);
  bool some_fault_off = false;
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    FaultProfile p = FaultProfile::draw(seed);
    EXPECT_EQ(p.describe(), FaultProfile::draw(seed).describe());
    EXPECT_TRUE(p.swarm);
    uint32_t total = p.write_pm + p.read_pm + p.crash_pm + p.arm_crash_pm + p.partition_pm +
                     p.network_pm + p.membership_pm + p.transfer_pm + p.batch_pm;
    EXPECT_LE(total, 1000u) << seed;
    EXPECT_LE(p.step_min_ms, p.step_max_ms);
    EXPECT_LE(p.down_min_ms, p.down_max_ms);
    EXPECT_LE(p.heal_min_ms, p.heal_max_ms);
    EXPECT_LE(p.defer_min_us, p.defer_max_us);
    EXPECT_LE(p.snap_gap_min, p.snap_gap_max);
    EXPECT_GE(p.snap_gap_min, 1u);
    EXPECT_GE(p.election_ticks, 3);
    EXPECT_GT(p.shape_weight[0] + p.shape_weight[1] + p.shape_weight[2] + p.shape_weight[3], 0u);
    EXPECT_TRUE(p.min_voters_left <= 3);
    some_fault_off = some_fault_off || p.crash_pm == 0 || p.partition_pm == 0;
  }
  EXPECT_TRUE(some_fault_off);  // swarm testing switches faults off for some seeds
  EXPECT_NE(FaultProfile::draw(1).describe(), FaultProfile::draw(2).describe());
}

// The forgeries whose invalidity shows in the message alone must fail the
// core's shape check (raft/message_checks.h); the others are judged against
// the receiver's state (its log, its leader's progress) inside the core.
TEST(ByzantineTest, StatelessForgeriesFailTheShapeCheck) {
  ForgeTarget t;
  t.to = 1;
  t.term = 7;
  t.last_index = 40;
  t.last_term = 6;
  t.commit = 30;
  t.leader = 2;
  t.members = {1, 2, 3};
  t.outsider = 1'000'000;
  SimRng rng(42);
  for (Forgery f : {Forgery::kHugeTerm, Forgery::kAppendNotContiguous,
                    Forgery::kEntryTermAboveMessage, Forgery::kSnapshotGarbage}) {
    for (int k = 0; k < 200; ++k) {
      raft::Message m = forge(rng, f, t);
      EXPECT_EQ(m.to, t.to);
      EXPECT_NE(raft::check_message_shape(m), nullptr) << to_string(f) << " #" << k;
    }
  }
  Forgery parsed;
  EXPECT_TRUE(parse_forgery("commit-beyond-log", parsed));
  EXPECT_EQ(parsed, Forgery::kCommitBeyondLog);
  EXPECT_FALSE(parse_forgery("nonsense", parsed));
}

}  // namespace
}  // namespace ckv::sim
