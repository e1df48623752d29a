// The MVCC snapshot format: versioned, CRC-32C-checked; the decoder trusts nothing it reads.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/check.h"
#include "common/crc32c.h"
#include "mvcc/store.h"

// Layout (all integers little-endian; revisions and counters as two's-complement u64):
//   u32 magic kSnapshotMagic, u32 format version kSnapshotFormat
//   i64 current_revision, i64 compact_revision, u64 key count
//   per key, in ascending key order:
//     string32 key, u32 version count (>= 1)
//     per version, oldest first:
//       i64 main, i64 sub, u8 flags (bit 0: tombstone), i64 create_revision,
//       i64 version, i64 lease, string32 value
//   u32 CRC-32C of every byte before it
// The decoder checks the CRC first, then every invariant the store relies on
// (sorted keys and revisions, version arithmetic, the compaction boundary),
// so a restored store is one the store itself could have produced. It never
// sizes an allocation from a count it read: containers grow only as bytes
// that back them are actually consumed.

namespace ckv::mvcc {
namespace {

constexpr uint32_t kSnapshotMagic = 0x4356'4d31;  // "1MVC" in memory order
constexpr uint32_t kSnapshotFormat = 1;
constexpr uint8_t kFlagTombstone = 0x1;
constexpr size_t kCrcBytes = 4;
// The smallest encoded version: five i64 fields, the flags byte, an empty string32.
constexpr size_t kMinVersionBytes = 5 * 8 + 1 + 4;

Status corrupt(const std::string& why) {
  return Status(StatusCode::kCorrupt, "mvcc snapshot: " + why);
}

void put_i64(std::string& out, int64_t v) { put_u64le(out, static_cast<uint64_t>(v)); }

bool get_i64(ByteReader& r, int64_t& v) {
  uint64_t u = 0;
  if (!r.u64le(u)) return false;
  v = static_cast<int64_t>(u);
  return true;
}

}  // namespace

// Friend of Store: reads and writes its private index.
class SnapshotCodec {
 public:
  // The versions of hist that a snapshot at revision `rev` with compaction
  // point `compact` holds, [first, last): none above rev, and below compact
  // only what compaction keeps (see Store::compact_key). Usually all of
  // them; less only for keys written after a stream began, or while a
  // compaction's versions are still being dropped.
  static std::pair<size_t, size_t> retained(const std::vector<KeyVersion>& hist, int64_t rev,
                                            int64_t compact) {
    auto after = [&](int64_t at) {
      return static_cast<size_t>(
          std::upper_bound(hist.begin(), hist.end(), at,
                           [](int64_t a, const KeyVersion& v) { return a < v.revision.main; }) -
          hist.begin());
    };
    const size_t last = after(rev);
    size_t first = 0;
    if (const size_t upto = after(compact); upto > 0) {
      first = hist[upto - 1].tombstone ? upto : upto - 1;
    }
    return {std::min(first, last), last};
  }

  static Store::SnapshotCursor cursor(const Store& s) {
    Store::SnapshotCursor c;
    c.revision = s.current_revision_;
    c.compact_revision = s.compact_revision_;
    if (s.pending_compaction_ < 0) {
      c.key_count = s.index_.size();  // with no versions left to drop every key holds something
      c.counted = true;
    }
    return c;
  }

  // Counts the keys a snapshot holds, max_keys at a time; true when done.
  static bool count_chunk(const Store& s, Store::SnapshotCursor& c, size_t max_keys) {
    auto it = c.count_started ? s.index_.upper_bound(c.count_resume) : s.index_.begin();
    c.count_started = true;
    for (size_t n = 0; it != s.index_.end() && n < max_keys; ++it, ++n) {
      auto [first, last] = retained(it->second, c.revision, c.compact_revision);
      c.key_count += first < last ? 1 : 0;
      c.count_resume = it->first;
    }
    c.counted = it == s.index_.end();
    return c.counted;
  }

  static bool next_chunk(const Store& s, Store::SnapshotCursor& c, size_t max_keys, std::string& out) {
    if (c.done) return false;
    if (!c.counted) {
      // Appends nothing: the header needs the count first.
      count_chunk(s, c, std::max<size_t>(max_keys, 1));
      return true;
    }
    const size_t start = out.size();
    Store::Index::const_iterator it;
    if (!c.header_written) {
      put_u32le(out, kSnapshotMagic);
      put_u32le(out, kSnapshotFormat);
      put_i64(out, c.revision);
      put_i64(out, c.compact_revision);
      put_u64le(out, c.key_count);
      c.header_written = true;
      it = s.index_.begin();
    } else {
      it = s.index_.upper_bound(c.last_key);
    }
    Store::Index::const_iterator last_written = s.index_.end();
    for (size_t n = 0; it != s.index_.end() && n < std::max<size_t>(max_keys, 1); ++it) {
      const auto& [key, hist] = *it;
      auto [first, last] = retained(hist, c.revision, c.compact_revision);
      if (first == last) continue;  // created after the stream began
      put_string32(out, key);
      put_u32le(out, static_cast<uint32_t>(last - first));
      for (size_t i = first; i < last; ++i) {
        const KeyVersion& v = hist[i];
        put_i64(out, v.revision.main);
        put_i64(out, v.revision.sub);
        put_u8(out, v.tombstone ? kFlagTombstone : 0);
        put_i64(out, v.create_revision);
        put_i64(out, v.version);
        put_i64(out, v.lease);
        put_string32(out, v.value);
      }
      ++n;
      ++c.keys_written;
      last_written = it;
    }
    if (last_written != s.index_.end()) c.last_key = last_written->first;
    c.crc = crc32c(c.crc, out.data() + start, out.size() - start);
    if (it != s.index_.end()) return true;
    // store.h: keys present at the start keep their versions at or below
    // it, and keys added later have none, so exactly key_count were written.
    KV_CHECK(c.keys_written == c.key_count, "snapshot stream wrote %llu keys, expected %llu",
             static_cast<unsigned long long>(c.keys_written), static_cast<unsigned long long>(c.key_count));
    put_u32le(out, c.crc);
    c.done = true;
    return false;
  }

  static std::string encode(const Store& s) {
    std::string out;
    Store::SnapshotCursor c = cursor(s);
    while (!c.counted) count_chunk(s, c, SIZE_MAX);
    while (next_chunk(s, c, SIZE_MAX, out)) {
    }
    return out;
  }

  static Result<Store> decode(std::string_view bytes, StoreOptions options,
                              const Store::LeasedKeySink& on_leased_key) {
    if (bytes.size() < kCrcBytes) return corrupt("too short");
    const std::string_view body = bytes.substr(0, bytes.size() - kCrcBytes);
    ByteReader crc_reader(bytes.substr(body.size()));
    uint32_t want = 0;
    if (!crc_reader.u32le(want) || want != crc32c(body)) return corrupt("checksum mismatch");

    ByteReader r(body);
    uint32_t magic = 0, format = 0;
    if (!r.u32le(magic) || magic != kSnapshotMagic) return corrupt("bad magic");
    if (!r.u32le(format) || format != kSnapshotFormat) return corrupt("unknown format version");
    Store s(options);
    uint64_t key_count = 0;
    if (!get_i64(r, s.current_revision_) || !get_i64(r, s.compact_revision_) ||
        !r.u64le(key_count)) {
      return corrupt("truncated header");
    }
    if (s.current_revision_ < 1) return corrupt("revision below 1");
    if (s.compact_revision_ < -1 || s.compact_revision_ > s.current_revision_)
      return corrupt("bad compact revision");

    const std::string* prev_key = nullptr;
    for (uint64_t k = 0; k < key_count; ++k) {
      std::string key;
      uint32_t n = 0;
      if (!r.string32(key) || !r.u32le(n)) return corrupt("truncated key");
      if (key.empty()) return corrupt("empty key");
      if (prev_key != nullptr && !(*prev_key < key)) return corrupt("keys out of order");
      if (n == 0) return corrupt("key without versions");
      std::vector<KeyVersion> hist;
      // Sized from the count only as far as the bytes left could back it
      // (see the layout note: a hostile count must not size an allocation).
      hist.reserve(std::min<size_t>(n, r.remaining() / kMinVersionBytes));
      for (uint32_t i = 0; i < n; ++i) {
        KeyVersion v;
        uint8_t flags = 0;
        if (!get_i64(r, v.revision.main) || !get_i64(r, v.revision.sub) || !r.u8(flags) ||
            !get_i64(r, v.create_revision) || !get_i64(r, v.version) || !get_i64(r, v.lease) ||
            !r.string32(v.value)) {
          return corrupt("truncated version");
        }
        if ((flags & ~kFlagTombstone) != 0) return corrupt("unknown flags");
        v.tombstone = (flags & kFlagTombstone) != 0;
        if (Status st = check_version(s, hist, v); !st.is_ok()) return st;
        s.bytes_ += Store::version_cost(v);
        hist.push_back(std::move(v));
      }
      s.bytes_ += Store::key_cost(key);
      // Keys are strictly increasing (checked above), so each goes at the
      // end: the hint makes the insert constant time instead of a descent
      // comparing long common prefixes (a restart's largest cost, issue 10).
      auto it = s.index_.emplace_hint(s.index_.end(), std::move(key), std::move(hist));
      prev_key = &it->first;
      // As Store::for_each_leased_key: the live newest version's lease.
      if (const KeyVersion& last = it->second.back(); on_leased_key && !last.tombstone && last.lease != 0) {
        on_leased_key(it->first, last.lease);
      }
    }
    if (!r.at_end()) return corrupt("trailing bytes");
    return s;
  }

 private:
  // The invariants Store's writes and compaction maintain, for the version
  // `v` that follows `hist` of one key.
  static Status check_version(const Store& s, const std::vector<KeyVersion>& hist,
                              const KeyVersion& v) {
    if (v.revision.main < 2 || v.revision.main > s.current_revision_)
      return corrupt("revision out of range");
    if (v.revision.sub < 0) return corrupt("negative sub-revision");
    if (!hist.empty() && !(hist.back().revision < v.revision))
      return corrupt("revisions out of order");
    // Compaction keeps at most the newest version at or below its revision,
    // and only a live one.
    if (v.revision.main <= s.compact_revision_ && (!hist.empty() || v.tombstone)) {
      return corrupt("version below the compacted revision");
    }
    if (v.tombstone) {
      if (hist.empty() || hist.back().tombstone) return corrupt("tombstone without a live version");
      if (v.create_revision != 0 || v.version != 0 || v.lease != 0 || !v.value.empty()) {
        return corrupt("tombstone with fields");
      }
      return Status::ok();
    }
    if (hist.empty()) {
      // Its earlier versions may be compacted away: any consistent life so far.
      if (v.version < 1 || v.create_revision < 2 || v.create_revision > v.revision.main) {
        return corrupt("bad first version");
      }
    } else if (hist.back().tombstone) {
      if (v.version != 1 || v.create_revision != v.revision.main)
        return corrupt("bad version after a delete");
    } else if (v.version != hist.back().version + 1 ||
               v.create_revision != hist.back().create_revision) {
      return corrupt("bad version sequence");
    }
    return Status::ok();
  }
};

std::string Store::encode_snapshot() const { return SnapshotCodec::encode(*this); }

Store::SnapshotCursor Store::begin_snapshot_stream() {
  KV_CHECK(!streaming_, "a snapshot stream is already open");
  streaming_ = true;
  return SnapshotCodec::cursor(*this);
}

bool Store::next_snapshot_chunk(SnapshotCursor& c, size_t max_keys, std::string& out) const {
  return SnapshotCodec::next_chunk(*this, c, max_keys, out);
}

void Store::end_snapshot_stream() {
  KV_CHECK(streaming_, "no snapshot stream is open");
  streaming_ = false;
  if (!options_.incremental_compaction) {
    while (compact_step(SIZE_MAX)) {
    }
  }
}

Result<Store> Store::decode_snapshot(std::string_view bytes, StoreOptions options,
                                     const LeasedKeySink& on_leased_key) {
  return SnapshotCodec::decode(bytes, options, on_leased_key);
}

}  // namespace ckv::mvcc
