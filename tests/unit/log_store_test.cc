// LogStore: what persist() stores survives reopening; truncation, compaction and corruption behave.
#include "storage/log_store.h"

#include <gtest/gtest.h>
#include <lmdb.h>

#include <filesystem>

namespace ckv::storage {
namespace {

using raft::Entry;
using raft::EntryType;
using raft::HardState;

class LogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ckv_log_store_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<LogStore> open() {
    auto s = LogStore::open(dir_.string(), LogStoreOptions{uint64_t{1} << 30, true});
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return std::move(s).value();
  }

  static std::vector<Entry> entries(raft::Index from, raft::Index to, raft::Term term) {
    std::vector<Entry> out;
    for (raft::Index i = from; i <= to; ++i) out.push_back(Entry{term, i, EntryType::kNormal, "v" + std::to_string(i)});
    return out;
  }

  std::filesystem::path dir_;
};

// Figure 2 "persistent state": term, vote and log survive a restart.
TEST_F(LogStoreTest, PersistedStateSurvivesReopen) {
  {
    auto store = open();
    ASSERT_TRUE(store->persist(entries(1, 5, 1), HardState{3, 2, 4}, false).is_ok());
  }
  auto store = open();
  auto hs = store->load_hard_state();
  ASSERT_TRUE(hs.is_ok());
  EXPECT_EQ(hs.value(), (HardState{3, 2, 4}));
  auto es = store->load_entries();
  ASSERT_TRUE(es.is_ok());
  EXPECT_EQ(es.value(), entries(1, 5, 1));
}

// §5.3: a conflicting suffix is replaced by the leader's entries in the same transaction.
TEST_F(LogStoreTest, AppendTruncatesConflictingSuffix) {
  auto store = open();
  ASSERT_TRUE(store->persist(entries(1, 10, 1), std::nullopt, false).is_ok());
  ASSERT_TRUE(store->persist(entries(6, 7, 2), std::nullopt, false).is_ok());
  auto es = store->load_entries();
  ASSERT_TRUE(es.is_ok());
  auto want = entries(1, 5, 1);
  for (auto& e : entries(6, 7, 2)) want.push_back(e);
  EXPECT_EQ(es.value(), want);
}

// §7: compaction drops the prefix; installing a snapshot drops the whole log.
TEST_F(LogStoreTest, CompactAndDropAll) {
  auto store = open();
  ASSERT_TRUE(store->persist(entries(1, 10, 1), std::nullopt, false).is_ok());
  ASSERT_TRUE(store->compact(8).is_ok());
  auto es = store->load_entries();
  ASSERT_TRUE(es.is_ok());
  EXPECT_EQ(es.value(), entries(8, 10, 1));
  ASSERT_TRUE(store->persist(entries(20, 21, 3), HardState{3, 0, 19}, true).is_ok());
  es = store->load_entries();
  ASSERT_TRUE(es.is_ok());
  EXPECT_EQ(es.value(), entries(20, 21, 3));
}

TEST_F(LogStoreTest, EntryCodecRejectsCorruption) {
  const Entry e{7, 42, EntryType::kConfig, "payload"};
  const std::string bytes = encode_entry(e);
  auto back = decode_entry(42, bytes);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back.value(), e);
  std::string flipped = bytes;
  flipped.back() ^= 0x01;
  EXPECT_EQ(decode_entry(42, flipped).status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(decode_entry(42, bytes.substr(0, 3)).status().code(), StatusCode::kCorrupt);
}

TEST_F(LogStoreTest, MetaRecords) {
  auto store = open();
  auto missing = store->get_meta("identity");
  ASSERT_TRUE(missing.is_ok());
  EXPECT_FALSE(missing.value().has_value());
  ASSERT_TRUE(store->put_meta("identity", "node-a").is_ok());
  auto got = store->get_meta("identity");
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ(got.value(), std::optional<std::string>("node-a"));
}

}  // namespace
}  // namespace ckv::storage
