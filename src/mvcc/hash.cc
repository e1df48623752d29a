// etcd's HashKV over the MVCC store: a CRC-32C of the history a revision range can read (see store.h, HashCursor).
#include <algorithm>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/check.h"
#include "common/crc32c.h"
#include "mvcc/store.h"

namespace ckv::mvcc {

namespace {

// Where the hash starts, so that an empty store's hash names its definition.
constexpr std::string_view kHashDomain = "ckv-mvcc-hashkv-1";

void put_i64(std::string& out, int64_t v) { put_u64le(out, static_cast<uint64_t>(v)); }

void put_version(std::string& out, const KeyVersion& v) {
  put_i64(out, v.revision.main);
  put_i64(out, v.revision.sub);
  put_u8(out, v.tombstone ? 1 : 0);
  put_i64(out, v.create_revision);
  put_i64(out, v.version);
  put_i64(out, v.lease);
  put_string32(out, v.value);
}

}  // namespace

Result<Store::HashCursor> Store::begin_hash(int64_t rev) const {
  if (rev > 0 && rev <= compact_revision_) return Status(StatusCode::kInvalid, kErrCompacted);
  if (rev > current_revision_) return Status(StatusCode::kInvalid, kErrFutureRev);
  HashCursor c;
  c.revision = rev > 0 ? rev : current_revision_;
  c.compact_revision = compact_revision_;
  c.crc = crc32c(kHashDomain);
  return c;
}

bool Store::next_hash_chunk(HashCursor& c, size_t max_keys) const {
  KV_CHECK(max_keys >= 1, "a hash chunk of no keys");
  KV_CHECK(c.compact_revision == compact_revision_, "hash cursor from compaction %lld, store at %lld",
           static_cast<long long>(c.compact_revision), static_cast<long long>(compact_revision_));
  if (c.done) return false;
  auto it = c.started ? index_.upper_bound(c.last_key) : index_.begin();
  c.started = true;
  std::string buf;
  const std::string* visited = nullptr;  // the last key seen, covered or not: the next chunk starts after it
  for (size_t n = 0; n < max_keys && it != index_.end(); ++n, ++it) {
    visited = &it->first;
    const std::vector<KeyVersion>& hist = it->second;
    // Versions are sorted by revision: [first, last) are those above the
    // compaction and at or below c.revision; the one before first is what
    // the compaction keeps (unless a tombstone).
    const auto above = [](int64_t r) {
      return [r](const KeyVersion& v) { return v.revision.main > r; };
    };
    const auto first = std::find_if(hist.begin(), hist.end(), above(c.compact_revision));
    const auto last = std::find_if(first, hist.end(), above(c.revision));
    const bool kept = first != hist.begin() && !std::prev(first)->tombstone;
    if (first == last && !kept) continue;
    buf.clear();
    put_string32(buf, it->first);
    if (kept) put_version(buf, *std::prev(first));
    for (auto v = first; v != last; ++v) put_version(buf, *v);
    c.crc = crc32c(c.crc, buf.data(), buf.size());
  }
  if (visited != nullptr) c.last_key = *visited;
  if (it == index_.end()) c.done = true;
  return !c.done;
}

}  // namespace ckv::mvcc
