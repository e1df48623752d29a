// MVCC snapshot codec: exact round trips, and a seeded fuzz of the decoder with hostile bytes.
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "mvcc/store.h"

namespace ckv::mvcc {
namespace {

constexpr int kFuzzIterations = 20000;
const std::string kAll("\0", 1);

// A store with some history: overwrites, deletes, a txn, a compaction.
Store sample_store() {
  Store s;
  for (int i = 0; i < 30; ++i) {
    PutRequest p;
    p.key = "k" + std::to_string(i % 7);
    p.value = std::string(static_cast<size_t>(i), 'v');
    p.lease = i % 3;
    EXPECT_TRUE(s.put(p).is_ok());
    if (i % 5 == 4) {
      DeleteRangeRequest d;
      d.key = "k" + std::to_string((i + 2) % 7);
      EXPECT_TRUE(s.delete_range(d).is_ok());
    }
  }
  TxnRequest t;
  PutRequest a;
  a.key = "t1";
  a.value = "x";
  PutRequest b;
  b.key = "t2";
  t.success = {op_put(a), op_put(b)};
  EXPECT_TRUE(s.txn(t).is_ok());
  EXPECT_TRUE(s.compact({s.revision() - 10, false}).is_ok());
  return s;
}

// Replaces the trailing CRC so a mutation reaches the parser behind it.
void fix_crc(std::string& bytes) {
  if (bytes.size() < 4) return;
  bytes.resize(bytes.size() - 4);
  put_u32le(bytes, crc32c(bytes));
}

TEST(MvccSnapshot, RoundTripIsExactAndAnswersIdentically) {
  Store s = sample_store();
  const std::string bytes = s.encode_snapshot();
  auto restored = Store::decode_snapshot(bytes);
  ASSERT_TRUE(restored.is_ok()) << restored.status().to_string();
  EXPECT_TRUE(restored.value() == s);
  EXPECT_EQ(restored->encode_snapshot(), bytes);
  EXPECT_EQ(restored->revision(), s.revision());
  EXPECT_EQ(restored->compact_revision(), s.compact_revision());
  for (int64_t at = s.compact_revision(); at <= s.revision(); ++at) {
    RangeRequest r;
    r.key = kAll;
    r.range_end = kAll;
    r.revision = at;
    EXPECT_EQ(restored->range(r).value(), s.range(r).value()) << "at " << at;
  }
  // Both go on identically too.
  PutRequest p;
  p.key = "k1";
  p.value = "after";
  EXPECT_EQ(restored->put(p).value(), s.put(p).value());
}

TEST(MvccSnapshot, EmptyStoreRoundTrips) {
  Store s;
  auto restored = Store::decode_snapshot(s.encode_snapshot());
  ASSERT_TRUE(restored.is_ok());
  EXPECT_EQ(restored->revision(), 1);
  EXPECT_EQ(restored->compact_revision(), -1);
}

TEST(MvccSnapshot, CorruptionIsDetected) {
  const std::string bytes = sample_store().encode_snapshot();
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    auto r = Store::decode_snapshot(bad);
    ASSERT_FALSE(r.is_ok()) << "flip at " << i;
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  }
  EXPECT_FALSE(Store::decode_snapshot(bytes.substr(0, bytes.size() - 1)).is_ok());
  EXPECT_FALSE(Store::decode_snapshot("").is_ok());
}

TEST(MvccSnapshot, HugeCountsDoNotAllocate) {
  // A valid header claiming 2^64-1 keys, then nothing: fails at once.
  std::string b;
  put_u32le(b, 0x4356'4d31);
  put_u32le(b, 1);
  put_u64le(b, 5);
  put_u64le(b, static_cast<uint64_t>(-1));
  put_u64le(b, ~uint64_t{0});
  fix_crc(b += "0000");
  EXPECT_FALSE(Store::decode_snapshot(b).is_ok());
  // One key claiming 4 GiB of versions and a 4 GiB value.
  std::string c;
  put_u32le(c, 0x4356'4d31);
  put_u32le(c, 1);
  put_u64le(c, 5);
  put_u64le(c, static_cast<uint64_t>(-1));
  put_u64le(c, 1);
  put_string32(c, "k");
  put_u32le(c, 0xffffffff);
  for (int i = 0; i < 6; ++i) put_u64le(c, 2);
  put_u32le(c, 0xffffffff);
  fix_crc(c += "0000");
  EXPECT_FALSE(Store::decode_snapshot(c).is_ok());
}

TEST(MvccSnapshot, InvariantViolationsAreRejected) {
  // Hand-built snapshots that pass the CRC but describe impossible stores.
  auto one_key = [](int64_t cur, int64_t compact, std::vector<KeyVersion> hist) {
    std::string b;
    put_u32le(b, 0x4356'4d31);
    put_u32le(b, 1);
    put_u64le(b, static_cast<uint64_t>(cur));
    put_u64le(b, static_cast<uint64_t>(compact));
    put_u64le(b, 1);
    put_string32(b, "k");
    put_u32le(b, static_cast<uint32_t>(hist.size()));
    for (const auto& v : hist) {
      put_u64le(b, static_cast<uint64_t>(v.revision.main));
      put_u64le(b, static_cast<uint64_t>(v.revision.sub));
      put_u8(b, v.tombstone ? 1 : 0);
      put_u64le(b, static_cast<uint64_t>(v.create_revision));
      put_u64le(b, static_cast<uint64_t>(v.version));
      put_u64le(b, static_cast<uint64_t>(v.lease));
      put_string32(b, v.value);
    }
    put_u32le(b, crc32c(b));
    return b;
  };
  KeyVersion v1{{2, 0}, false, 2, 1, 0, "a"};
  KeyVersion v2{{3, 0}, false, 2, 2, 0, "b"};
  KeyVersion tomb{{4, 0}, true, 0, 0, 0, ""};
  EXPECT_TRUE(Store::decode_snapshot(one_key(4, -1, {v1, v2, tomb})).is_ok());
  EXPECT_FALSE(Store::decode_snapshot(one_key(2, -1, {v1, v2})).is_ok());  // future revision
  EXPECT_FALSE(Store::decode_snapshot(one_key(4, -1, {v2, v1})).is_ok());  // out of order
  EXPECT_FALSE(Store::decode_snapshot(one_key(4, -1, {v1, v1})).is_ok());  // repeated revision
  EXPECT_FALSE(Store::decode_snapshot(one_key(4, -1, {tomb})).is_ok());    // tombstone first
  EXPECT_FALSE(
      Store::decode_snapshot(one_key(4, 3, {v1, v2, tomb})).is_ok());  // two below compaction
  EXPECT_TRUE(Store::decode_snapshot(one_key(4, 3, {v2, tomb})).is_ok());
  KeyVersion bad_version = v2;
  bad_version.version = 5;
  EXPECT_FALSE(Store::decode_snapshot(one_key(4, -1, {v1, bad_version})).is_ok());
  EXPECT_FALSE(Store::decode_snapshot(one_key(4, 5, {v1})).is_ok());  // compacted above current
}

TEST(MvccSnapshot, FuzzedBytesNeverCrashAndAcceptedOnesAreCanonical) {
  const std::string base = sample_store().encode_snapshot();
  std::mt19937_64 rng(20261201);
  int accepted = 0;
  for (int i = 0; i < kFuzzIterations; ++i) {
    std::string b = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % b.size();
      switch (rng() % 5) {
        case 0:
          b[at] = static_cast<char>(rng());
          break;
        case 1:
          b.resize(at);
          break;
        case 2:
          b.insert(at, 1 + rng() % 8, static_cast<char>(rng()));
          break;
        case 3:
          b.erase(at, 1 + rng() % 16);
          break;
        case 4:
          b[at] = static_cast<char>(b[at] ^ (1 << (rng() % 8)));
          break;
      }
      if (b.empty()) b.push_back('\0');
    }
    if (rng() % 4 != 0) fix_crc(b);  // mostly let mutations reach the parser
    auto r = Store::decode_snapshot(b);
    if (!r.is_ok()) continue;
    ++accepted;
    // Whatever decodes is a store we could have written: it re-encodes to the
    // same bytes and answers queries.
    EXPECT_EQ(r->encode_snapshot(), b) << "iteration " << i;
    RangeRequest q;
    q.key = kAll;
    q.range_end = kAll;
    EXPECT_TRUE(r->range(q).is_ok());
  }
  RecordProperty("accepted", accepted);
}

// Incremental compaction (the node's mode): reads below the compaction
// fail at once; the versions go in steps, which pause while a snapshot
// stream is open. A stream opened mid-pass counts its keys in chunks first
// and equals encode_snapshot() at its start, whatever is written meanwhile.
TEST(MvccSnapshot, StreamOpenedDuringAnIncrementalCompactionIsTheStateAtItsStart) {
  StoreOptions incremental;
  incremental.incremental_compaction = true;
  Store s(incremental);
  Store sync;  // the same requests, compacting synchronously
  auto both_put = [&](const std::string& k, const std::string& v) {
    PutRequest p;
    p.key = k;
    p.value = v;
    ASSERT_TRUE(s.put(p).is_ok());
    ASSERT_TRUE(sync.put(p).is_ok());
  };
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 500; ++i) both_put("k" + std::to_string(i), "v" + std::to_string(round));
  }
  DeleteRangeRequest d{"k1", "k2", false};
  ASSERT_TRUE(s.delete_range(d).is_ok());
  ASSERT_TRUE(sync.delete_range(d).is_ok());
  const CompactionRequest c{s.revision(), false};
  ASSERT_TRUE(s.compact(c).is_ok());
  ASSERT_TRUE(sync.compact(c).is_ok());
  RangeRequest old_read;
  old_read.key = "k3";
  old_read.revision = 2;
  EXPECT_EQ(s.range(old_read).status().message(), kErrCompacted);  // before any step
  EXPECT_TRUE(s.compact_step(100));                                // part of the pass
  EXPECT_TRUE(s.compaction_pending());
  const std::string at_start = s.encode_snapshot();
  EXPECT_EQ(at_start, sync.encode_snapshot());  // dropped or not, the snapshot is the same
  Store::SnapshotCursor cur = s.begin_snapshot_stream();
  EXPECT_FALSE(cur.counted);
  std::string streamed;
  for (int i = 0; s.next_snapshot_chunk(cur, 64, streamed); ++i) {
    both_put("k" + std::to_string(i % 700), "during");  // new keys too
    if (i == 20) {
      const CompactionRequest again{s.revision(), false};
      ASSERT_TRUE(s.compact(again).is_ok());
      ASSERT_TRUE(sync.compact(again).is_ok());
    }
    EXPECT_FALSE(s.compact_step(100));  // paused while the stream is open
  }
  s.end_snapshot_stream();
  EXPECT_EQ(streamed, at_start);
  while (s.compact_step(100)) {
  }
  EXPECT_FALSE(s.compaction_pending());
  EXPECT_TRUE(s == sync);  // once the pass is done, exactly the synchronously compacted store
}

}  // namespace
}  // namespace ckv::mvcc
