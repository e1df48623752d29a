// LogStore: what persist() stores survives reopening; truncation, compaction and corruption behave.
#include "storage/log_store.h"

#include <gtest/gtest.h>
#include <lmdb.h>

#include <filesystem>
#include <fstream>

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

// Issue 7 item 11: the hard state has a checksum, so a changed vote is caught.
TEST_F(LogStoreTest, ChangedVoteIsCaughtByTheChecksum) {
  {
    auto store = open();
    ASSERT_TRUE(store->persist({}, HardState{5, 2, 0}, false).is_ok());
    auto raw = store->get_meta("hard_state");
    ASSERT_TRUE(raw.is_ok() && raw.value().has_value());
    std::string bytes = *raw.value();
    ASSERT_EQ(bytes.size(), 29u);  // format, crc, term, vote, commit
    bytes[5 + 8] ^= 0x01;          // the vote's low byte: 2 -> 3
    ASSERT_TRUE(store->put_meta("hard_state", bytes).is_ok());
  }
  auto store = open();
  auto hs = store->load_hard_state();
  ASSERT_FALSE(hs.is_ok());
  EXPECT_EQ(hs.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(hs.status().message().find("raft.mdb"), std::string::npos) << hs.status().message();
  EXPECT_NE(hs.status().message().find("checksum"), std::string::npos) << hs.status().message();
}

// A record in the old 24-byte format is read once and rewritten with a checksum.
TEST_F(LogStoreTest, LegacyHardStateIsMigrated) {
  {
    auto store = open();
    std::string legacy;
    for (uint64_t v : {uint64_t{7}, uint64_t{3}, uint64_t{0}}) {
      for (int i = 0; i < 8; ++i) legacy.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
    ASSERT_TRUE(store->put_meta("hard_state", legacy).is_ok());
  }
  auto store = open();
  auto hs = store->load_hard_state();
  ASSERT_TRUE(hs.is_ok()) << hs.status().to_string();
  EXPECT_EQ(hs.value(), (HardState{7, 3, 0}));
  EXPECT_TRUE(store->legacy_hard_state_migrated());
  auto raw = store->get_meta("hard_state");
  ASSERT_TRUE(raw.is_ok() && raw.value().has_value());
  EXPECT_EQ(*raw.value(), encode_hard_state(HardState{7, 3, 0}));
}

// Issue 7 item 3: a term near 2^64 in storage is damage, not a term to increment.
TEST_F(LogStoreTest, TermAboveTheCeilingIsCorrupt) {
  bool legacy = false;
  EXPECT_EQ(decode_hard_state(encode_hard_state(HardState{kMaxStoredTerm + 1, 0, 0}), &legacy).status().code(),
            StatusCode::kCorrupt);
  EXPECT_TRUE(decode_hard_state(encode_hard_state(HardState{kMaxStoredTerm, 0, 0}), &legacy).is_ok());
  EXPECT_EQ(decode_entry(1, encode_entry(Entry{~uint64_t{0}, 1, EntryType::kNormal, "x"})).status().code(),
            StatusCode::kCorrupt);
}

// Issue 7 item 11: a truncated raft.mdb is reported before any page is read
// (without the size check, reading the log dies of SIGBUS).
TEST_F(LogStoreTest, TruncatedFileIsCorruptNotSigbus) {
  const std::string path = (dir_ / "raft.mdb").string();
  {
    auto store = open();
    std::vector<Entry> big;
    for (raft::Index i = 1; i <= 200; ++i) big.push_back(Entry{1, i, EntryType::kNormal, std::string(2000, 'x')});
    ASSERT_TRUE(store->persist(big, HardState{1, 0, 200}, false).is_ok());
  }
  const auto size = std::filesystem::file_size(path);
  ASSERT_GT(size, 64u * 1024);
  std::filesystem::resize_file(path, size / 2);
  LogStoreOptions o;
  o.map_size_bytes = uint64_t{1} << 30;
  auto s = LogStore::open(dir_.string(), o);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(s.status().message().find(path), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("truncated"), std::string::npos) << s.status().message();
}

// A data dir known to hold state (node_meta exists) with its raft.mdb
// deleted or emptied is lost state, not a new empty log.
TEST_F(LogStoreTest, MissingOrEmptyStoreIsCorruptWhenExpected) {
  LogStoreOptions o;
  o.map_size_bytes = uint64_t{1} << 30;
  o.expect_existing = true;
  auto missing = LogStore::open(dir_.string(), o);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(missing.status().message().find("is missing"), std::string::npos) << missing.status().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "raft.mdb"));  // and nothing was created
  std::ofstream(dir_ / "raft.mdb").close();
  auto empty = LogStore::open(dir_.string(), o);
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(empty.status().message().find("truncated"), std::string::npos) << empty.status().message();
}

}  // namespace
}  // namespace ckv::storage
