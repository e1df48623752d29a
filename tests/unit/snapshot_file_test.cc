// Snapshot files: round trip, atomic naming, and a clear error naming the file when corrupt.
#include "storage/snapshot_file.h"
#include "storage/log_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ckv::storage {
namespace {

class SnapshotFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ckv_snapshot_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static raft::Membership members() {
    return raft::Membership{{{1, raft::MemberRole::kVoter, "a"}, {2, raft::MemberRole::kLearner, "b"}}};
  }

  std::filesystem::path dir_;
};

// A payload writer that writes `bytes` in two pieces.
PayloadWriter payload(std::string bytes) {
  return [bytes = std::move(bytes)](const PayloadSink& sink) {
    if (Status s = sink(std::string_view(bytes).substr(0, bytes.size() / 2)); !s.is_ok()) return s;
    return sink(std::string_view(bytes).substr(bytes.size() / 2));
  };
}

TEST_F(SnapshotFileTest, TermAboveTheCeilingIsCorrupt) {
  auto written = write_snapshot_file(dir_.string(), 42, kMaxStoredTerm + 1, members(), payload("a=1"));
  ASSERT_TRUE(written.is_ok()) << written.status().to_string();
  auto loaded = read_snapshot_file(written.value().path);
  ASSERT_FALSE(loaded.is_ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(loaded.status().message().find("above the ceiling"), std::string::npos) << loaded.status().message();
  EXPECT_NE(loaded.status().message().find(written.value().path), std::string::npos);
}

TEST_F(SnapshotFileTest, RoundTrip) {
  const std::string bytes = "state" + std::string(100000, 'x') + std::string(1, '\0');
  auto written = write_snapshot_file(dir_.string(), 42, 7, members(), payload(bytes));
  ASSERT_TRUE(written.is_ok()) << written.status().to_string();
  EXPECT_EQ(written.value().meta.size_bytes, std::filesystem::file_size(written.value().path));
  auto loaded = read_snapshot_file(written.value().path);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded.value().payload, bytes);
  EXPECT_FALSE(loaded.value().legacy_map.has_value());
  EXPECT_EQ(loaded.value().meta, written.value().meta);
}

// CKVSNAP1 files (users' data dirs from before the MVCC store) are still read, as a map.
TEST_F(SnapshotFileTest, LegacyFormatIsReadAsAMap) {
  KvMap map{{"a", "1"}, {"b", std::string(100000, 'x')}, {"", ""}};
  auto written = write_legacy_snapshot_file(dir_.string(), 42, 7, members(), map);
  ASSERT_TRUE(written.is_ok()) << written.status().to_string();
  auto loaded = read_snapshot_file(written.value().path);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  ASSERT_TRUE(loaded.value().legacy_map.has_value());
  EXPECT_EQ(*loaded.value().legacy_map, map);
  EXPECT_TRUE(loaded.value().payload.empty());
  EXPECT_EQ(loaded.value().meta, written.value().meta);
}

// A payload writer's failure (a full disk, say) leaves no file behind.
TEST_F(SnapshotFileTest, FailedPayloadLeavesNothing) {
  auto written = write_snapshot_file(dir_.string(), 3, 1, members(), [](const PayloadSink& sink) {
    (void)sink("part");
    return Status(StatusCode::kNoSpace, "full");
  });
  EXPECT_EQ(written.status().code(), StatusCode::kNoSpace);
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(SnapshotFileTest, LatestIsByIndexAndOthersAreRemoved) {
  auto s1 = write_snapshot_file(dir_.string(), 9, 1, members(), payload(""));
  auto s2 = write_snapshot_file(dir_.string(), 100, 2, members(), payload(""));
  ASSERT_TRUE(s1.is_ok() && s2.is_ok());
  std::ofstream(dir_ / "snapshot-junk.tmp") << "partial";
  auto latest = find_latest_snapshot(dir_.string());
  ASSERT_TRUE(latest.is_ok());
  EXPECT_EQ(latest.value(), s2.value().path);
  ASSERT_TRUE(remove_other_snapshots(dir_.string(), s2.value().path).is_ok());
  EXPECT_FALSE(std::filesystem::exists(s1.value().path));
  EXPECT_TRUE(std::filesystem::exists(s2.value().path));
  // Temp files may belong to a write in progress: only the start-up cleanup removes them.
  EXPECT_TRUE(std::filesystem::exists(dir_ / "snapshot-junk.tmp"));
  ASSERT_TRUE(remove_stale_temp_files(dir_.string()).is_ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "snapshot-junk.tmp"));
  EXPECT_TRUE(std::filesystem::exists(s2.value().path));
}

// Issue 7 item 14: a local snapshot finishing while the leader's snapshot is
// still arriving in chunks must not delete the incoming file (the adopt at
// the last chunk then failed and the node aborted).
TEST_F(SnapshotFileTest, RemovingOldSnapshotsKeepsTheIncomingTransfer) {
  auto incoming_src = write_snapshot_file(dir_.string(), 50, 2, members(), payload("from=leader"));
  ASSERT_TRUE(incoming_src.is_ok());
  const std::string incoming = (dir_ / kIncomingSnapshotName).string();
  std::filesystem::rename(incoming_src.value().path, incoming);  // as if its chunks were all received
  auto local = write_snapshot_file(dir_.string(), 20, 1, members(), payload("local=1"));
  ASSERT_TRUE(local.is_ok());
  ASSERT_TRUE(remove_other_snapshots(dir_.string(), local.value().path).is_ok());
  ASSERT_TRUE(std::filesystem::exists(incoming));
  auto adopted = adopt_snapshot_file(dir_.string(), incoming);
  ASSERT_TRUE(adopted.is_ok()) << adopted.status().to_string();
  EXPECT_EQ(adopted.value().file.meta.index, 50u);
}

// A truncated or bit-flipped file is reported as corrupt, naming the file.
TEST_F(SnapshotFileTest, CorruptionIsReportedWithThePath) {
  auto written = write_snapshot_file(dir_.string(), 5, 1, members(), payload("k=v"));
  ASSERT_TRUE(written.is_ok());
  const std::string path = written.value().path;
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
  auto loaded = read_snapshot_file(path);
  ASSERT_FALSE(loaded.is_ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(loaded.status().message().find(path), std::string::npos);
}

TEST_F(SnapshotFileTest, AdoptMovesAVerifiedTempFileIntoPlace) {
  auto written = write_snapshot_file(dir_.string(), 12, 3, members(), payload("k=v"));
  ASSERT_TRUE(written.is_ok());
  const std::string incoming = (dir_ / "incoming.tmp").string();
  std::filesystem::rename(written.value().path, incoming);
  auto adopted = adopt_snapshot_file(dir_.string(), incoming);
  ASSERT_TRUE(adopted.is_ok()) << adopted.status().to_string();
  EXPECT_EQ(adopted.value().file.path, written.value().path);
  EXPECT_EQ(adopted.value().file.meta.index, 12u);
  EXPECT_EQ(adopted.value().snapshot.payload, "k=v");
}

// A snapshot whose payload the state machine refuses is not moved into place.
TEST_F(SnapshotFileTest, AdoptRefusedByTheVerifierMovesNothing) {
  auto written = write_snapshot_file(dir_.string(), 12, 3, members(), payload("k=v"));
  ASSERT_TRUE(written.is_ok());
  const std::string incoming = (dir_ / "incoming.tmp").string();
  std::filesystem::rename(written.value().path, incoming);
  auto adopted = adopt_snapshot_file(dir_.string(), incoming, [](const LoadedSnapshot& l) {
    return l.payload == "k=v" ? Status(StatusCode::kCorrupt, "bad store") : Status::ok();
  });
  EXPECT_EQ(adopted.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(adopted.status().message().find("bad store"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(written.value().path));
  EXPECT_TRUE(std::filesystem::exists(incoming));
}

}  // namespace
}  // namespace ckv::storage
