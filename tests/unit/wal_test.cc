// The WAL: replay after restart, truncation and drop-all records, roll-over and compaction, torn tails cut at every byte, damage refused.
#include "storage/wal/wal.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <gtest/gtest.h>
#include <sys/mount.h>

#include "storage/wal/wal_format.h"

namespace ckv::storage {
namespace {

using raft::Entry;
using raft::EntryType;
using raft::HardState;

constexpr uint64_t kSmallSegmentBytes = 4096;

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ckv_wal_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<std::unique_ptr<Wal>> try_open(uint64_t segment_bytes = kSmallSegmentBytes,
                                        bool expect_existing = false) {
    WalOptions o;
    o.segment_bytes = segment_bytes;
    o.expect_existing = expect_existing;
    return Wal::open(dir_.string(), o);
  }
  std::unique_ptr<Wal> open(uint64_t segment_bytes = kSmallSegmentBytes) {
    auto w = try_open(segment_bytes);
    EXPECT_TRUE(w.is_ok()) << w.status().to_string();
    return w.is_ok() ? std::move(w).value() : nullptr;
  }
  std::vector<Entry> load(Wal& w) {
    auto es = w.load_entries();
    EXPECT_TRUE(es.is_ok()) << es.status().to_string();
    return es.is_ok() ? es.value() : std::vector<Entry>{};
  }

  static std::vector<Entry> entries(raft::Index from, raft::Index to, raft::Term term,
                                    size_t bytes = 0) {
    std::vector<Entry> out;
    for (raft::Index i = from; i <= to; ++i) {
      std::string data = "v" + std::to_string(i);
      if (bytes > data.size()) data.resize(bytes, static_cast<char>('a' + i % 26));
      out.push_back(Entry{term, i, EntryType::kNormal, data});
    }
    return out;
  }
  std::filesystem::path segment(uint64_t seq) const {
    char name[32];
    std::snprintf(name, sizeof name, "%016llx.wal", static_cast<unsigned long long>(seq));
    return dir_ / "wal" / name;
  }
  static std::string read(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  static void write(const std::filesystem::path& p, const std::string& data) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  // The offset just after the last record: walks the frames' lengths up to the zeros.
  static size_t data_end(const std::string& file) {
    size_t pos = wal::kSegmentHeaderBytes;
    while (pos + wal::kRecordHeaderBytes <= file.size()) {
      uint32_t len = 0;
      for (int i = 3; i >= 0; --i)
        len = (len << 8) | static_cast<unsigned char>(file[pos + static_cast<size_t>(i)]);
      if (len == 0) break;
      pos += wal::kRecordHeaderBytes + len;
    }
    return pos;
  }

  std::filesystem::path dir_;
};

// Figure 2 "persistent state": term, vote and log survive a restart.
TEST_F(WalTest, PersistedStateSurvivesReopen) {
  {
    auto w = open();
    ASSERT_TRUE(w->persist(entries(1, 5, 1), HardState{3, 2, 4}, false).is_ok());
    ASSERT_TRUE(w->persist({}, HardState{3, 2, 5}, false).is_ok());
    ASSERT_TRUE(w->put_meta("identity", "node-a").is_ok());
  }
  auto w = open();
  EXPECT_EQ(w->load_hard_state().value(), (HardState{3, 2, 5}));
  EXPECT_EQ(load(*w), entries(1, 5, 1));
  EXPECT_EQ(w->get_meta("identity").value(), std::optional<std::string>("node-a"));
  EXPECT_FALSE(w->get_meta("other").value().has_value());
  EXPECT_EQ(w->repaired_bytes(), 0u);
}

// One fdatasync per persist() (issue 10), none when only the commit index
// moves (volatile, Figure 2), one again for a vote or term change or a
// batch that rolls over to a new segment.
TEST_F(WalTest, OneSyncPerPersistNoneForCommitOnly) {
  auto w = open();
  ASSERT_TRUE(w->persist(entries(1, 3, 1), HardState{1, 1, 0}, false).is_ok());
  EXPECT_EQ(w->batch_syncs(), 1u);
  ASSERT_TRUE(w->persist({}, HardState{1, 1, 3}, false).is_ok());
  EXPECT_EQ(w->batch_syncs(), 1u);
  ASSERT_TRUE(w->persist({}, HardState{2, 1, 3}, false).is_ok());
  EXPECT_EQ(w->batch_syncs(), 2u);
  ASSERT_TRUE(w->persist({}, HardState{2, 3, 3}, false).is_ok());
  EXPECT_EQ(w->batch_syncs(), 3u);
  ASSERT_TRUE(w->persist({}, std::nullopt, true).is_ok());
  EXPECT_EQ(w->batch_syncs(), 4u);
  const size_t segments = w->segment_count();
  ASSERT_TRUE(w->persist(entries(10, 30, 2, 300), std::nullopt, false).is_ok());
  EXPECT_GT(w->segment_count(), segments);
  EXPECT_EQ(w->batch_syncs(), 5u);
  w.reset();
  w = open();
  EXPECT_EQ(w->load_hard_state().value(), (HardState{2, 3, 3}));
}

// A full disk (a small tmpfs; needs root, else skipped): a new segment
// cannot be made, so a small batch goes into the current segment's last
// block; when even that is full, a batch that only moves the commit index
// is dropped (volatile, like a crash losing it), anything else is kNoSpace
// and nothing of it counts; once space returns, writing resumes.
TEST_F(WalTest, FullDiskUsesTheLastBlockThenDropsOnlyCommitOnlyBatches) {
  const std::filesystem::path mnt = dir_ / "small";
  std::filesystem::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs (needs root): " << std::strerror(errno);
  }
  struct Unmount {
    std::filesystem::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  WalOptions o;
  o.segment_bytes = kSmallSegmentBytes;
  auto w = Wal::open(mnt.string(), o);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  // One batch bigger than a segment: the file ends inside a partly used page.
  ASSERT_TRUE(w.value()->persist(entries(1, 1, 1, 2 * kSmallSegmentBytes), HardState{1, 1, 0}, false).is_ok());
  {
    std::ofstream filler(mnt / "filler", std::ios::binary);
    const std::string page(4096, 'f');
    while (filler.write(page.data(), static_cast<std::streamsize>(page.size())) && filler.flush()) {
    }
  }
  {
    std::ofstream filler(mnt / "filler2", std::ios::binary);
    while (filler.put('f') && filler.flush()) {
    }
  }
  // A vote change fits in the last page of the current segment.
  ASSERT_TRUE(w.value()->persist({}, HardState{2, 3, 1}, false).is_ok());
  // Commit-only batches: written while the page has room, then dropped, never an error.
  for (raft::Index c = 1; c <= 200; ++c) {
    ASSERT_TRUE(w.value()->persist({}, HardState{2, 3, c}, false).is_ok()) << c;
  }
  // A term change or an entry with the disk really full: kNoSpace.
  Status s = w.value()->persist(entries(2, 2, 2, 100), HardState{3, 0, 200}, false);
  ASSERT_EQ(s.code(), StatusCode::kNoSpace) << s.to_string();
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.message();
  std::filesystem::remove(mnt / "filler");
  ASSERT_TRUE(w.value()->persist(entries(2, 2, 2, 100), HardState{3, 0, 200}, false).is_ok());
  w.value().reset();
  auto again = Wal::open(mnt.string(), o);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  auto want = entries(1, 1, 1, 2 * kSmallSegmentBytes);
  want.push_back(entries(2, 2, 2, 100)[0]);
  EXPECT_EQ(load(*again.value()), want);
  EXPECT_EQ(again.value()->load_hard_state().value(), (HardState{3, 0, 200}));
}

// §5.3: a conflicting suffix is replaced; the truncate record replays it after a restart.
TEST_F(WalTest, TruncationIsReplayed) {
  auto want = entries(1, 5, 1);
  for (auto& e : entries(6, 7, 2)) want.push_back(e);
  {
    auto w = open();
    ASSERT_TRUE(w->persist(entries(1, 10, 1), std::nullopt, false).is_ok());
    ASSERT_TRUE(w->persist(entries(6, 7, 2), std::nullopt, false).is_ok());
    EXPECT_EQ(load(*w), want);
  }
  auto w = open();
  EXPECT_EQ(load(*w), want);
  ASSERT_TRUE(w->persist(entries(8, 8, 2), std::nullopt, false)
                  .is_ok());  // appends after the replayed tail
  want.push_back(entries(8, 8, 2)[0]);
  EXPECT_EQ(load(*w), want);
}

// §7: installing a snapshot drops the whole log; the drop-all record replays it.
TEST_F(WalTest, DropAllIsReplayed) {
  {
    auto w = open();
    ASSERT_TRUE(w->persist(entries(1, 10, 1), HardState{1, 0, 10}, false).is_ok());
    ASSERT_TRUE(w->persist(entries(20, 21, 3), HardState{3, 0, 19}, true).is_ok());
  }
  auto w = open();
  EXPECT_EQ(load(*w), entries(20, 21, 3));
  EXPECT_EQ(w->load_hard_state().value(), (HardState{3, 0, 19}));
  ASSERT_TRUE(w->persist({}, std::nullopt, true).is_ok());
  EXPECT_TRUE(load(*w).empty());
}

TEST_F(WalTest, BatchesRollOverToNewSegments) {
  {
    auto w = open();
    for (raft::Index i = 1; i <= 100; ++i)
      ASSERT_TRUE(w->persist(entries(i, i, 1, 200), HardState{1, 0, i}, false).is_ok());
    EXPECT_GT(w->segment_count(), 4u);
    // A batch bigger than a whole segment goes into one segment, which grows.
    ASSERT_TRUE(
        w->persist(entries(101, 101, 1, 3 * kSmallSegmentBytes), std::nullopt, false).is_ok());
  }
  EXPECT_TRUE(std::filesystem::exists(segment(1)));
  auto w = open();
  auto want = entries(1, 100, 1, 200);
  want.push_back(entries(101, 101, 1, 3 * kSmallSegmentBytes)[0]);
  EXPECT_EQ(load(*w), want);
  EXPECT_EQ(w->load_hard_state().value(), (HardState{1, 0, 100}));
}

// Compaction deletes whole segments below the point and never the hard
// state: each segment's first batch carries it.
TEST_F(WalTest, CompactionDeletesWholeSegments) {
  auto w = open();
  ASSERT_TRUE(w->persist({}, HardState{4, 7, 0}, false).is_ok());  // only in segment 1
  for (raft::Index i = 1; i <= 100; ++i)
    ASSERT_TRUE(w->persist(entries(i, i, 4, 200), std::nullopt, false).is_ok());
  const size_t before = w->segment_count();
  ASSERT_TRUE(w->compact(90).is_ok());
  EXPECT_LT(w->segment_count(), before);
  EXPECT_FALSE(std::filesystem::exists(segment(1)));
  EXPECT_EQ(load(*w), entries(90, 100, 4, 200));
  w.reset();
  w = open();
  EXPECT_EQ(load(*w), entries(90, 100, 4, 200));
  EXPECT_EQ(w->load_hard_state().value(), (HardState{4, 7, 0}));
  size_t files = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir_ / "wal"))
    files += f.path().extension() == ".wal";
  EXPECT_EQ(files, w->segment_count());
}

// Replay keeps only the entries at or above the compaction point (wal.cc,
// Replayed), yet still knows the whole log's end: where the next append
// must go, and a truncation that reaches below the point.
TEST_F(WalTest, ReplayKnowsTheLogBelowTheCompactionPoint) {
  {
    auto w = open();
    for (raft::Index i = 1; i <= 100; ++i)
      ASSERT_TRUE(w->persist(entries(i, i, 4, 200), std::nullopt, false).is_ok());
    ASSERT_TRUE(w->compact(90).is_ok());
  }
  {
    auto w = open();
    EXPECT_EQ(load(*w), entries(90, 100, 4, 200));
    // A gap after the last entry (100) is refused; a leader's overwrite
    // from below the point truncates everything kept.
    EXPECT_FALSE(w->persist(entries(102, 102, 5), std::nullopt, false).is_ok());
    ASSERT_TRUE(w->persist(entries(85, 86, 5), std::nullopt, false).is_ok());
    EXPECT_TRUE(load(*w).empty());
  }
  auto w = open();
  EXPECT_TRUE(load(*w).empty()) << "86 is below the compaction point";
  EXPECT_FALSE(w->persist(entries(90, 90, 5), std::nullopt, false).is_ok()) << "the log ends at 86";
  ASSERT_TRUE(w->persist(entries(87, 91, 5), std::nullopt, false).is_ok());
  EXPECT_EQ(load(*w), entries(90, 91, 5));
  w.reset();
  w = open();
  EXPECT_EQ(load(*w), entries(90, 91, 5));
}

// A crash during roll-over or compaction leaves a segment file the metadata
// does not list: removed at open, never read.
TEST_F(WalTest, UnlistedSegmentFilesAreRemoved) {
  {
    auto w = open();
    ASSERT_TRUE(w->persist(entries(1, 3, 1), HardState{1, 0, 3}, false).is_ok());
  }
  write(segment(2), std::string(kSmallSegmentBytes, 'x'));
  auto w = open();
  EXPECT_FALSE(std::filesystem::exists(segment(2)));
  EXPECT_EQ(load(*w), entries(1, 3, 1));
}

TEST_F(WalTest, MissingWalIsCorruptWhenExpected) {
  auto w = try_open(kSmallSegmentBytes, true);
  ASSERT_FALSE(w.is_ok());
  EXPECT_EQ(w.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(w.status().message().find("is missing"), std::string::npos) << w.status().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "wal"));  // nothing created in its place
}

TEST_F(WalTest, MissingOrTruncatedSegmentIsCorrupt) {
  {
    auto w = open();
    for (raft::Index i = 1; i <= 40; ++i)
      ASSERT_TRUE(w->persist(entries(i, i, 1, 200), std::nullopt, false).is_ok());
  }
  const std::string saved = read(segment(1));
  for (uint64_t size : {kSmallSegmentBytes / 2, uint64_t{100}, uint64_t{0}}) {
    std::filesystem::resize_file(segment(1), size);
    auto w = try_open();
    ASSERT_FALSE(w.is_ok()) << size;
    EXPECT_EQ(w.status().code(), StatusCode::kCorrupt);
    EXPECT_NE(w.status().message().find(segment(1).string()), std::string::npos)
        << w.status().message();
    EXPECT_NE(w.status().message().find("truncated"), std::string::npos) << w.status().message();
  }
  std::filesystem::remove(segment(1));
  auto w = try_open();
  ASSERT_FALSE(w.is_ok());
  EXPECT_NE(w.status().message().find("is missing"), std::string::npos) << w.status().message();
  write(segment(1), saved);
  EXPECT_TRUE(try_open().is_ok());
}

TEST_F(WalTest, TermAboveTheCeilingIsCorrupt) {
  {
    auto w = open();
    ASSERT_TRUE(w->persist(entries(1, 1, 1), HardState{kMaxStoredTerm + 1, 0, 0}, false).is_ok());
    ASSERT_TRUE(w->persist(entries(2, 2, 1), std::nullopt, false).is_ok());
  }
  auto w = try_open();
  ASSERT_FALSE(w.is_ok());
  EXPECT_EQ(w.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(w.status().message().find("above the ceiling"), std::string::npos)
      << w.status().message();
  std::filesystem::remove_all(dir_ / "wal");
  {
    auto w2 = open();
    ASSERT_TRUE(
        w2->persist({Entry{kMaxStoredTerm + 1, 1, EntryType::kNormal, "x"}}, std::nullopt, false)
            .is_ok());
  }
  EXPECT_EQ(try_open().status().code(), StatusCode::kCorrupt);
}

// Damage anywhere before the last batch, one flipped byte at every offset,
// is refused with the file and offset: never replayed as a shorter log.
TEST_F(WalTest, DamageBeforeTheLastBatchIsRefusedAtEveryByte) {
  {
    auto w = open();
    for (raft::Index i = 1; i <= 8; ++i)
      ASSERT_TRUE(w->persist(entries(i, i, 1, 20), HardState{1, 1, i}, false).is_ok());
  }
  std::string file = read(segment(1));
  const size_t end = data_end(file);
  const size_t last_batch = end - (wal::entry_record_bytes(entries(8, 8, 1, 20)[0]) +
                                   wal::kHardStateRecordBytes + wal::kCommitRecordBytes);
  for (size_t at = 0; at < last_batch; ++at) {
    std::string bad = file;
    bad[at] ^= 0x20;
    write(segment(1), bad);
    auto w = try_open();
    ASSERT_FALSE(w.is_ok()) << "flip at " << at << " was accepted";
    ASSERT_EQ(w.status().code(), StatusCode::kCorrupt);
    ASSERT_NE(w.status().message().find(segment(1).string() + ": offset "), std::string::npos)
        << w.status().message();
  }
  write(segment(1), file);
  auto w = open();
  EXPECT_EQ(load(*w), entries(1, 8, 1, 20));
}

// The changed-vote attack: a flipped byte inside the last batch whose own
// commit record is intact is damage, not a torn write.
TEST_F(WalTest, FlippedByteInACompleteLastBatchIsRefused) {
  {
    auto w = open();
    ASSERT_TRUE(w->persist(entries(1, 2, 1), HardState{5, 2, 0}, false).is_ok());
  }
  std::string file = read(segment(1));
  const size_t end = data_end(file);
  const size_t vote =
      end - wal::kCommitRecordBytes - wal::kHardStateRecordBytes + wal::kRecordHeaderBytes + 1 + 8;
  file[vote] ^= 0x01;
  write(segment(1), file);
  auto w = try_open();
  ASSERT_FALSE(w.is_ok());
  EXPECT_EQ(w.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(w.status().message().find("checksum mismatch"), std::string::npos)
      << w.status().message();
}

// The crash-point test: the last batch cut at every byte offset, the rest
// zeros (preallocated space) or garbage. Replay yields exactly the complete
// batches; the torn bytes are cut off, so a batch appended afterwards
// replays too.
TEST_F(WalTest, TornLastBatchIsCutAtEveryByteOffset) {
  const auto last = entries(4, 6, 2, 150);
  {
    auto w = open();
    ASSERT_TRUE(w->persist(entries(1, 3, 1, 100), HardState{1, 1, 2}, false).is_ok());
    ASSERT_TRUE(w->persist(last, HardState{2, 1, 3}, false).is_ok());
  }
  const std::string full = read(segment(1));
  const size_t end = data_end(full);
  size_t start = end - wal::kCommitRecordBytes - wal::kHardStateRecordBytes;
  for (const Entry& e : last) start -= wal::entry_record_bytes(e);
  std::mt19937_64 rng(7);
  for (int garbage = 0; garbage < 2; ++garbage) {
    for (size_t cut = start; cut <= end; ++cut) {
      std::string torn = full.substr(0, cut);
      for (size_t i = cut; i < full.size(); ++i)
        torn.push_back(garbage ? static_cast<char>(rng()) : '\0');
      // The byte at the cut must differ from what the complete write had (a
      // random byte matches it 1 time in 256, and the batch is then whole).
      if (garbage && cut < end && torn[cut] == full[cut]) torn[cut] = static_cast<char>(~full[cut]);
      write(segment(1), torn);
      auto w = try_open();
      ASSERT_TRUE(w.is_ok()) << "cut at " << cut << (garbage ? " + garbage: " : ": ")
                             << w.status().to_string();
      auto want = entries(1, 3, 1, 100);
      HardState hs{1, 1, 2};
      // Cut inside the commit record's zero high bytes, zero-filled: the
      // file is byte for byte the complete one.
      const bool whole = torn.compare(0, end, full, 0, end) == 0;
      if (whole) {
        want.insert(want.end(), last.begin(), last.end());
        hs = HardState{2, 1, 3};
      }
      const auto got_entries = load(*w.value());
      ASSERT_EQ(got_entries, want)
          << "cut at " << cut << (garbage ? " + garbage" : "") << ": " << got_entries.size()
          << " entries, want " << want.size() << ", end " << end;
      ASSERT_EQ(w.value()->load_hard_state().value(), hs) << "cut at " << cut;
      ASSERT_EQ(w.value()->repaired_bytes() > 0, (cut > start && !whole) || garbage)
          << "cut at " << cut;
      if (cut % 7 == 0 || cut == end) {
        const raft::Index next = want.back().index + 1;
        ASSERT_TRUE(w.value()->persist(entries(next, next, 3), std::nullopt, false).is_ok());
        w.value().reset();
        auto again = try_open();
        ASSERT_TRUE(again.is_ok()) << "cut at " << cut << ": " << again.status().to_string();
        want.push_back(entries(next, next, 3)[0]);
        ASSERT_EQ(load(*again.value()), want) << "cut at " << cut;
      }
    }
  }
}

// Pages of the last batch written out of order by a crash: its commit
// record made it, an aligned block inside it did not (zeros). A torn write.
TEST_F(WalTest, LastBatchWithAnUnwrittenBlockIsTorn) {
  {
    auto w = open(1 << 20);
    ASSERT_TRUE(w->persist(entries(1, 1, 1), HardState{1, 1, 1}, false).is_ok());
    ASSERT_TRUE(w->persist(entries(2, 2, 1, 3000), HardState{1, 1, 2}, false).is_ok());
  }
  std::string file = read(segment(1));
  std::fill(file.begin() + 1024, file.begin() + 1536, '\0');
  write(segment(1), file);
  auto w = try_open(1 << 20);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(load(*w.value()), entries(1, 1, 1));
  EXPECT_EQ(w.value()->load_hard_state().value(), (HardState{1, 1, 1}));
}

// A commit-only batch is written without a sync; the next batch's sync may
// then keep its own pages and lose the commit-only one's (pages reach the
// disk in any order). That is a torn tail, not damage: the later batch's
// "synced to" shows it was written before the lost bytes were durable. Had
// the lost batch been synced (it holds entries), the same loss is damage.
TEST_F(WalTest, UnsyncedBatchLostUnderALaterOneIsATornTailButASyncedOneIsDamage) {
  for (const bool middle_synced : {false, true}) {
    std::filesystem::remove_all(dir_ / "wal");
    size_t lost_from = 0;
    size_t lost_to = 0;
    {
      auto w = open();
      ASSERT_TRUE(w->persist(entries(1, 2, 1), HardState{1, 1, 0}, false).is_ok());
      lost_from = data_end(read(segment(1)));
      if (middle_synced) {
        ASSERT_TRUE(w->persist(entries(3, 3, 1), HardState{1, 1, 2}, false).is_ok());
      } else {
        ASSERT_TRUE(w->persist({}, HardState{1, 1, 2}, false).is_ok());
      }
      lost_to = data_end(read(segment(1)));
      ASSERT_TRUE(w->persist(entries(middle_synced ? 4 : 3, 4, 1), std::nullopt, false).is_ok());
    }
    std::string file = read(segment(1));
    std::fill(file.begin() + static_cast<std::ptrdiff_t>(lost_from),
              file.begin() + static_cast<std::ptrdiff_t>(lost_to), '\0');
    write(segment(1), file);
    auto w = try_open();
    if (middle_synced) {
      ASSERT_FALSE(w.is_ok()) << "a synced batch lost under a later one was accepted";
      EXPECT_EQ(w.status().code(), StatusCode::kCorrupt);
      EXPECT_NE(w.status().message().find("offset " + std::to_string(lost_from)),
                std::string::npos)
          << w.status().message();
      continue;
    }
    ASSERT_TRUE(w.is_ok()) << w.status().to_string();
    EXPECT_EQ(load(*w.value()), entries(1, 2, 1));
    EXPECT_EQ(w.value()->load_hard_state().value(), (HardState{1, 1, 0}));
    EXPECT_GT(w.value()->repaired_bytes(), 0u);
    // The cut-off later batch is gone for good: appending and reopening works.
    ASSERT_TRUE(w.value()->persist(entries(3, 3, 2), HardState{2, 1, 2}, false).is_ok());
    w.value().reset();
    auto again = open();
    auto want = entries(1, 2, 1);
    want.push_back(entries(3, 3, 2)[0]);
    EXPECT_EQ(load(*again), want);
  }
}

// A lost 512-byte sector under a record header that straddles two sectors:
// only the header's first bytes read as zeros, the rest (and the batch's
// commit record) made it. The batch is torn, not damaged.
TEST_F(WalTest, LostSectorUnderAStraddlingRecordHeaderIsTorn) {
  // Header 32 + entry record 26 + data + hard state 33 + commit 33 = 509.
  constexpr size_t kData = 509 - 32 - 26 - wal::kHardStateRecordBytes - wal::kCommitRecordBytes;
  {
    auto w = open();
    ASSERT_TRUE(w->persist(entries(1, 1, 1, kData), HardState{1, 1, 0}, false).is_ok());
    ASSERT_EQ(data_end(read(segment(1))), 509u);
    ASSERT_TRUE(w->persist({}, HardState{2, 1, 1}, false).is_ok());  // a term change: synced
  }
  std::string file = read(segment(1));
  std::fill(file.begin() + 509, file.begin() + 512, '\0');  // sector 0 as it was before
  write(segment(1), file);
  auto w = try_open();
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(load(*w.value()), entries(1, 1, 1, kData));
  EXPECT_EQ(w.value()->load_hard_state().value(), (HardState{1, 1, 0}));
}

// A segment's first batch may fill it (no roll-over happens before a
// segment's first batch) and a batch written on a full disk may run up to
// its end, leaving fewer zeros than a record header after the last commit.
// Those zeros are preallocated space, not a cut-short header: once a newer
// segment exists the older one must still open (sim seeds 203384 and
// 204170 ended segments 3 and 7 bytes short of 4096 and refused to restart).
TEST_F(WalTest, SegmentFilledToWithinARecordHeaderOfItsEndReopens) {
  const HardState hs{1, 1, 0};
  // Header 32 + entry record 26 + data + hard state 33 + commit 33.
  const size_t overhead = wal::kSegmentHeaderBytes + wal::entry_record_bytes(Entry{}) +
                          wal::kHardStateRecordBytes + wal::kCommitRecordBytes;
  for (size_t gap = 0; gap <= wal::kRecordHeaderBytes; ++gap) {
    SCOPED_TRACE("gap " + std::to_string(gap));
    std::filesystem::remove_all(dir_ / "wal");
    const auto first = entries(1, 1, 1, kSmallSegmentBytes - gap - overhead);
    {
      auto w = open();
      ASSERT_TRUE(w->persist(first, hs, false).is_ok());
      ASSERT_EQ(data_end(read(segment(1))), kSmallSegmentBytes - gap);
      ASSERT_EQ(std::filesystem::file_size(segment(1)), kSmallSegmentBytes);
    }
    {  // The newest segment: a clean end, nothing to cut.
      auto scan = wal::scan_segment(read(segment(1)), 0, true);
      ASSERT_TRUE(scan.is_ok()) << scan.status().to_string();
      EXPECT_FALSE(scan.value().torn) << scan.value().stop_reason;
      auto w = open();
      ASSERT_NE(w, nullptr);
      EXPECT_EQ(w->repaired_bytes(), 0u);
      EXPECT_EQ(load(*w), first);
      ASSERT_TRUE(w->persist(entries(2, 2, 1), std::nullopt, false).is_ok());
      EXPECT_EQ(w->segment_count(), 2u);
    }
    auto want = first;
    want.push_back(entries(2, 2, 1)[0]);
    auto w = open();  // segment 1 is no longer the newest
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(load(*w), want);
    EXPECT_EQ(w->load_hard_state().value(), hs);
    w.reset();
    if (gap == 0) continue;
    // Damage stays damage: a nonzero byte there was never written by the WAL.
    std::string file = read(segment(1));
    file[kSmallSegmentBytes - 1] = 'x';
    write(segment(1), file);
    auto bad = try_open();
    ASSERT_FALSE(bad.is_ok());
    EXPECT_EQ(bad.status().code(), StatusCode::kCorrupt);
    EXPECT_NE(bad.status().message().find("offset " + std::to_string(kSmallSegmentBytes - gap) +
                                          ": "),
              std::string::npos)
        << bad.status().message();
  }
}

// Seeded fuzzing of whole segment files: random flips, zeroed or garbage
// spans, cuts. open() never crashes; when it accepts the file, it replays
// all batches or all but the last (a torn tail), nothing else.
TEST_F(WalTest, FuzzedSegmentsReplayAllOrAllButTheLastBatch) {
  {
    auto w = open();
    for (raft::Index i = 1; i <= 10; ++i)
      ASSERT_TRUE(w->persist(entries(i, i, 1, 30), HardState{1, 0, i}, false).is_ok());
  }
  const std::string file = read(segment(1));
  const size_t end = data_end(file);
  std::mt19937_64 rng(20261201);
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bad = file;
    const int kind = static_cast<int>(rng() % 3);
    const size_t at = rng() % (end + 64);
    const size_t len = 1 + rng() % 64;
    for (size_t i = at; i < std::min(bad.size(), at + (kind == 0 ? 1 : len)); ++i) {
      bad[i] = kind == 0   ? static_cast<char>(bad[i] ^ (1 << (rng() % 8)))
               : kind == 1 ? '\0'
                           : static_cast<char>(rng());
    }
    write(segment(1), bad);
    auto w = try_open();
    if (!w.is_ok()) {
      ASSERT_EQ(w.status().code(), StatusCode::kCorrupt) << w.status().to_string();
      continue;
    }
    ++accepted;
    const auto got = load(*w.value());
    ASSERT_TRUE(got == entries(1, 10, 1, 30) || got == entries(1, 9, 1, 30))
        << "iteration " << iter << ": " << got.size() << " entries";
  }
  EXPECT_GT(accepted, 0);
  // The pure decoders on random bytes: no crash, no acceptance of noise.
  for (int iter = 0; iter < 2000; ++iter) {
    std::string noise(rng() % 200, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    EXPECT_FALSE(wal::decode_meta(noise).is_ok());
    EXPECT_FALSE(wal::scan_segment(noise, 0, true).is_ok());
    std::string valid_header = wal::encode_segment_header({1, 42}) + noise;
    (void)wal::scan_segment(valid_header, 0, iter % 2 == 0);
  }
}

// The real file system, with every pwrite to a segment file recorded.
class RecordingFileSystem final : public FileSystem {
 public:
  struct Write {
    std::string path;
    uint64_t offset = 0;
    uint64_t bytes = 0;
    bool zeros = false;
  };
  std::vector<Write> writes;

  Result<int> open(const std::string& path, OpenMode mode) override { return real_.open(path, mode); }
  void close(int fd) override { real_.close(fd); }
  Status pwrite(int fd, std::string_view data, uint64_t offset, const std::string& path,
                size_t* written) override {
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ".wal") == 0) {
      const bool zeros = data.find_first_not_of('\0') == std::string_view::npos;
      writes.push_back(Write{path, offset, data.size(), zeros});
    }
    return real_.pwrite(fd, data, offset, path, written);
  }
  Result<size_t> pread(int fd, char* buf, size_t n, uint64_t offset,
                       const std::string& path) override {
    return real_.pread(fd, buf, n, offset, path);
  }
  Status fdatasync(int fd, const std::string& path) override { return real_.fdatasync(fd, path); }
  Status fsync(int fd, const std::string& path) override { return real_.fsync(fd, path); }
  Status preallocate(int fd, uint64_t bytes, const std::string& path) override {
    return real_.preallocate(fd, bytes, path);
  }
  void start_writeback(int fd, uint64_t offset, uint64_t bytes) override {
    real_.start_writeback(fd, offset, bytes);
  }
  Result<std::optional<uint64_t>> file_size(const std::string& path) override {
    return real_.file_size(path);
  }
  Status create_dir(const std::string& path) override { return real_.create_dir(path); }
  Result<std::vector<std::string>> list_dir(const std::string& path) override {
    return real_.list_dir(path);
  }
  Status rename(const std::string& from, const std::string& to) override {
    return real_.rename(from, to);
  }
  Status unlink(const std::string& path) override { return real_.unlink(path); }
  Status sync_dir(const std::string& path) override { return real_.sync_dir(path); }

 private:
  FileSystem& real_ = posix_file_system();
};

// Zeros written ahead (wal.h): every batch lands in blocks written before
// (so its fdatasync changes no extent), zeros never land on a batch, they
// are written only when less than a chunk ahead (one pwrite per chunk of
// log, no burst of chunks after a roll-over or a restart), and the same
// holds in the next segment and after a reopen.
TEST_F(WalTest, BatchesLandOnZerosWrittenAheadAndZerosNeverOnBatches) {
  constexpr uint64_t kSegment = uint64_t{1} << 20;  // chunks of 64 KiB
  constexpr uint64_t kChunk = kSegment / 16;
  RecordingFileSystem fs;
  WalOptions o;
  o.segment_bytes = kSegment;
  o.fs = &fs;
  raft::Index next = 1;
  auto write_batches = [&](int n) {
    auto w = Wal::open(dir_.string(), o);
    ASSERT_TRUE(w.is_ok()) << w.status().to_string();
    for (int k = 0; k < n; ++k, ++next)  // ~2 KiB each
      ASSERT_TRUE(w.value()->persist(entries(next, next, 1, 2000), HardState{1, 1, next}, false).is_ok());
  };
  write_batches(400);  // ~820 KiB: segment 1
  write_batches(400);  // after a reopen, into segment 2
  struct Track {
    uint64_t zeroed_end = 0;
    uint64_t data_end = 0;
    size_t zero_writes = 0;
  };
  std::map<std::string, Track> per_segment;
  size_t batches = 0;
  for (size_t k = 0; k < fs.writes.size(); ++k) {
    const auto& wr = fs.writes[k];
    SCOPED_TRACE("write " + std::to_string(k) + " to " + wr.path + " at " + std::to_string(wr.offset));
    auto [it, created] = per_segment.try_emplace(wr.path);
    Track& t = it->second;
    if (created) {
      EXPECT_EQ(wr.offset, 0u);
      EXPECT_EQ(wr.bytes, kChunk) << "the header and the first chunk, in one write";
      t.zeroed_end = wr.bytes;
      t.data_end = wal::kSegmentHeaderBytes;
    } else if (wr.zeros && wr.offset >= t.data_end && wr.offset == t.zeroed_end) {
      ++t.zero_writes;
      EXPECT_LT(t.zeroed_end, t.data_end + kChunk) << "zeros written while a chunk or more ahead";
      EXPECT_EQ(wr.bytes, std::min(kChunk, kSegment - wr.offset));
      t.zeroed_end = wr.offset + wr.bytes;
    } else if (wr.zeros && wr.offset >= t.data_end) {
      // The reopen's first chunk starts where the log ends.
      EXPECT_LT(wr.offset, t.zeroed_end);
      EXPECT_EQ(wr.bytes, kChunk);
      ++t.zero_writes;
      t.zeroed_end = std::max(t.zeroed_end, wr.offset + wr.bytes);
    } else {
      EXPECT_FALSE(wr.zeros) << "zeros over a batch";
      ++batches;
      EXPECT_EQ(wr.offset, t.data_end) << "batches are appended";
      t.data_end = wr.offset + wr.bytes;
      EXPECT_LE(t.data_end, t.zeroed_end) << "a batch beyond the zeros written ahead";
    }
  }
  EXPECT_EQ(batches, 800u);
  ASSERT_EQ(per_segment.size(), 2u);
  for (const auto& [path, t] : per_segment) {
    SCOPED_TRACE(path);
    EXPECT_GE(t.zeroed_end, std::min(kSegment, t.data_end + kChunk)) << "less than a chunk ahead at the end";
    // About one chunk per chunk of log: ~820 KiB, or what segment 2 took.
    EXPECT_LE(t.zero_writes, t.data_end / kChunk + 2);
  }
  auto w = Wal::open(dir_.string(), o);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(load(*w.value()), entries(1, 800, 1, 2000));
  EXPECT_EQ(w.value()->repaired_bytes(), 0u);
}

TEST_F(WalTest, ZeroAheadOffWritesTheHeaderAlone) {
  RecordingFileSystem fs;
  WalOptions o;
  o.segment_bytes = uint64_t{1} << 20;
  o.fs = &fs;
  o.zero_ahead = false;
  auto w = Wal::open(dir_.string(), o);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  for (raft::Index i = 1; i <= 50; ++i)
    ASSERT_TRUE(w.value()->persist(entries(i, i, 1, 2000), std::nullopt, false).is_ok());
  ASSERT_EQ(fs.writes.size(), 51u);
  EXPECT_EQ(fs.writes.front().bytes, wal::kSegmentHeaderBytes);
  for (const auto& wr : fs.writes) EXPECT_FALSE(wr.zeros);
}

// A crash can tear the zeros written ahead like any write and leave junk
// past zeros after the last batch. open() zeroes it: batches written over
// it later would otherwise end in front of junk, and once the segment is
// no longer the newest, that is damage (kCorrupt) at the next start. (The
// restart here has zero-ahead off, as with -wal-zero-ahead=false: with it
// on, the zeros written ahead would also cover the junk before the batches
// reach it.)
TEST_F(WalTest, JunkPastZerosAfterTheLastBatchIsZeroedAtOpen) {
  constexpr uint64_t kSegment = 65536;
  {
    auto w = open(kSegment);
    for (raft::Index i = 1; i <= 10; ++i)
      ASSERT_TRUE(w->persist(entries(i, i, 1, 1000), HardState{1, 1, i}, false).is_ok());
  }
  std::string file = read(segment(1));
  const size_t end = data_end(file);
  const size_t junk_at = end + 3000;
  std::mt19937 rng(7);
  for (size_t i = junk_at; i < kSegment; ++i) file[i] = static_cast<char>(rng() | 1);
  write(segment(1), file);
  WalOptions no_zeros;
  no_zeros.segment_bytes = kSegment;
  no_zeros.zero_ahead = false;
  {
    auto opened = Wal::open(dir_.string(), no_zeros);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    auto& w = opened.value();
    EXPECT_EQ(w->repaired_bytes(), kSegment - end);
    EXPECT_EQ(load(*w), entries(1, 10, 1, 1000));
    const std::string after = read(segment(1));
    EXPECT_EQ(after.find_first_not_of('\0', end), std::string::npos);
    // Over where the junk was, then into a second segment.
    raft::Index i = 11;
    for (; w->segment_count() < 2; ++i)
      ASSERT_TRUE(w->persist(entries(i, i, 1, 1000), HardState{1, 1, i}, false).is_ok());
    ASSERT_TRUE(w->persist(entries(i, i, 1, 1000), HardState{1, 1, i}, false).is_ok());
  }
  auto w = try_open(kSegment);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  const auto got = load(*w.value());
  ASSERT_GT(got.size(), 60u);
  EXPECT_EQ(got, entries(1, got.size(), 1, 1000));
}

TEST_F(WalTest, MetaFileRoundTripAndDamage) {
  wal::WalMeta m;
  m.first_index = 17;
  m.segments = {{3, 4096}, {4, 1 << 20}};
  m.records["identity"] = "n1";
  const std::string bytes = wal::encode_meta(m);
  auto back = wal::decode_meta(bytes);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back.value().first_index, 17u);
  EXPECT_EQ(back.value().segments.size(), 2u);
  EXPECT_EQ(back.value().records.at("identity"), "n1");
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x04;
    EXPECT_FALSE(wal::decode_meta(bad).is_ok()) << i;
  }
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(wal::decode_meta(bytes.substr(0, n)).is_ok()) << n;
}

}  // namespace
}  // namespace ckv::storage
