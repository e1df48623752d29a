// Migration of a data dir written by the LMDB log store into the WAL: once, complete, and safe to interrupt at each step.
#include "storage/open_log.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "storage/log_store.h"

namespace ckv::storage {
namespace {

using raft::Entry;
using raft::EntryType;
using raft::HardState;

class OpenLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ckv_open_log_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A data dir as the previous version left it: raft.mdb with a compacted
  // log (entries 11..60), a hard state and the node identity.
  void make_lmdb_dir() {
    auto store = LogStore::open(dir_.string(), LogStoreOptions{uint64_t{1} << 30, true, false});
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    ASSERT_TRUE(store.value()->persist(log_, HardState{3, 2, 55}, false).is_ok());
    ASSERT_TRUE(
        store.value()->persist(entries(41, 60, 3), std::nullopt, false).is_ok());  // §5.3 overwrite
    ASSERT_TRUE(store.value()->compact(11).is_ok());
    ASSERT_TRUE(store.value()->put_meta("identity", "n1").is_ok());
  }
  static std::vector<Entry> entries(raft::Index from, raft::Index to, raft::Term term) {
    std::vector<Entry> out;
    for (raft::Index i = from; i <= to; ++i) {
      out.push_back(Entry{term, i, i % 10 == 0 ? EntryType::kConfig : EntryType::kNormal,
                          "v" + std::to_string(i)});
    }
    return out;
  }
  std::vector<Entry> want() const {
    auto w = entries(11, 40, 1);
    for (auto& e : entries(41, 60, 3)) w.push_back(e);
    return w;
  }
  void expect_migrated(LogStorage& s) {
    EXPECT_EQ(s.load_hard_state().value(), (HardState{3, 2, 55}));
    auto es = s.load_entries();
    ASSERT_TRUE(es.is_ok()) << es.status().to_string();
    EXPECT_EQ(es.value(), want());
    EXPECT_EQ(s.get_meta("identity").value(), std::optional<std::string>("n1"));
    EXPECT_FALSE(std::filesystem::exists(dir_ / kLmdbFileName));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "raft.mdb-lock"));
    EXPECT_TRUE(std::filesystem::exists(dir_ / kLmdbMigratedName));
    EXPECT_FALSE(std::filesystem::exists(dir_ / kWalMigratingDirName));
  }
  Result<std::unique_ptr<LogStorage>> open(bool expect_existing = true) {
    WalOptions o;
    o.segment_bytes = 4096;
    o.expect_existing = expect_existing;
    return open_log_storage(dir_.string(), o);
  }

  std::filesystem::path dir_;
  std::vector<Entry> log_ = entries(1, 50, 1);
};

TEST_F(OpenLogTest, LmdbDataDirIsMigratedOnce) {
  make_lmdb_dir();
  {
    auto s = open();
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    expect_migrated(*s.value());
    ASSERT_TRUE(s.value()->persist(entries(61, 61, 4), HardState{4, 2, 60}, false).is_ok());
  }
  // The next start opens the WAL as it is: raft.mdb.pre-wal is not read again.
  auto s = open();
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  auto es = s.value()->load_entries();
  ASSERT_TRUE(es.is_ok());
  auto w = want();
  w.push_back(entries(61, 61, 4)[0]);
  EXPECT_EQ(es.value(), w);
  EXPECT_EQ(s.value()->load_hard_state().value(), (HardState{4, 2, 60}));
}

// Cut before step 2: a half-built wal.migrating/ is discarded and the
// migration starts again from raft.mdb.
TEST_F(OpenLogTest, InterruptedBeforeTheWalTookOverStartsAgain) {
  make_lmdb_dir();
  std::filesystem::create_directories(dir_ / kWalMigratingDirName / "wal");
  std::filesystem::copy_file(dir_ / kLmdbFileName, dir_ / kWalMigratingDirName / "wal" / "junk");
  auto s = open();
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  expect_migrated(*s.value());
}

// Cut between steps 2 and 3: the WAL is complete and is the truth; raft.mdb
// (here changed after the copy, to prove it) is only retired.
TEST_F(OpenLogTest, InterruptedAfterTheWalTookOverOnlyRetiresRaftMdb) {
  make_lmdb_dir();
  const auto saved = dir_ / "raft.mdb.saved";
  std::filesystem::copy_file(dir_ / kLmdbFileName, saved);
  {
    auto s = open();
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  }
  std::filesystem::remove(dir_ / kLmdbMigratedName);
  std::filesystem::rename(saved, dir_ / kLmdbFileName);
  {
    auto store = LogStore::open(dir_.string(), LogStoreOptions{uint64_t{1} << 30, true, true});
    ASSERT_TRUE(store.is_ok());
    ASSERT_TRUE(store.value()->persist(entries(61, 70, 9), HardState{9, 9, 70}, false).is_ok());
  }
  auto s = open();
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  expect_migrated(*s.value());
}

// A damaged raft.mdb is refused as before (kCorrupt naming it), and no WAL
// is made from it.
TEST_F(OpenLogTest, DamagedRaftMdbIsRefusedNotMigrated) {
  make_lmdb_dir();
  std::filesystem::resize_file(dir_ / kLmdbFileName, 4096);
  auto s = open();
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(s.status().message().find("raft.mdb"), std::string::npos) << s.status().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / kWalDirName));
}

TEST_F(OpenLogTest, NewDataDirGetsAWal) {
  auto s = open(false);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_TRUE(std::filesystem::exists(dir_ / kWalDirName / "meta"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / kLmdbFileName));
}

}  // namespace
}  // namespace ckv::storage
