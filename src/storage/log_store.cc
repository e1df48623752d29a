// LMDB-backed Raft log and hard state (see log_store.h).
#include "storage/log_store.h"

#include <lmdb.h>

#include "common/bytes.h"
#include "common/crc32c.h"

namespace ckv::storage {

namespace {

constexpr uint8_t kEntryFormat = 1;
constexpr char kHardStateKey[] = "hard_state";

Status lmdb_error(const std::string& path, const char* what, int rc) {
  return Status(StatusCode::kIo, path + ": " + what + ": " + mdb_strerror(rc));
}

MDB_val as_val(const std::string& s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view as_view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

// A read or write transaction, aborted unless commit() succeeded: no half-written batch.
class Txn {
 public:
  Txn() = default;
  ~Txn() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  int begin(MDB_env* env, unsigned flags) { return mdb_txn_begin(env, nullptr, flags, &txn_); }
  int commit() {
    const int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;  // committed or, on failure, freed by LMDB
    return rc;
  }
  MDB_txn* get() const { return txn_; }

 private:
  MDB_txn* txn_ = nullptr;
};

class Cursor {
 public:
  Cursor() = default;
  ~Cursor() {
    if (c_ != nullptr) mdb_cursor_close(c_);
  }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  int open(MDB_txn* txn, MDB_dbi dbi) { return mdb_cursor_open(txn, dbi, &c_); }
  MDB_cursor* get() const { return c_; }

 private:
  MDB_cursor* c_ = nullptr;
};

std::string encode_hard_state(const raft::HardState& hs) {
  std::string out;
  put_u64le(out, hs.term);
  put_u64le(out, hs.vote);
  put_u64le(out, hs.commit);
  return out;
}

}  // namespace

std::string encode_entry(const raft::Entry& e) {
  std::string body;
  body.reserve(9 + e.data.size());
  put_u64le(body, e.term);
  put_u8(body, static_cast<uint8_t>(e.type));
  body += e.data;
  std::string out;
  out.reserve(5 + body.size());
  put_u8(out, kEntryFormat);
  put_u32le(out, crc32c(body));
  out += body;
  return out;
}

Result<raft::Entry> decode_entry(raft::Index index, std::string_view bytes) {
  ByteReader r(bytes);
  uint8_t format = 0;
  uint32_t crc = 0;
  raft::Entry e;
  uint8_t type = 0;
  if (!r.u8(format) || format != kEntryFormat || !r.u32le(crc)) {
    return Status(StatusCode::kCorrupt, "log entry " + std::to_string(index) + ": bad header");
  }
  if (crc32c(r.rest()) != crc) {
    return Status(StatusCode::kCorrupt, "log entry " + std::to_string(index) + ": checksum mismatch");
  }
  if (!r.u64le(e.term) || !r.u8(type) || type > 1) {
    return Status(StatusCode::kCorrupt, "log entry " + std::to_string(index) + ": bad body");
  }
  e.index = index;
  e.type = static_cast<raft::EntryType>(type);
  e.data.assign(r.rest());
  return e;
}

struct LogStore::Handles {
  MDB_env* env = nullptr;
  MDB_dbi log = 0;
  MDB_dbi meta = 0;
  ~Handles() {
    if (env != nullptr) mdb_env_close(env);
  }
};

LogStore::LogStore(std::string path, std::unique_ptr<Handles> h) : path_(std::move(path)), h_(std::move(h)) {}
LogStore::~LogStore() = default;

Result<std::unique_ptr<LogStore>> LogStore::open(const std::string& dir, const LogStoreOptions& options) {
  const std::string path = dir + "/raft.mdb";
  auto h = std::make_unique<Handles>();
  int rc = mdb_env_create(&h->env);
  if (rc != 0) return lmdb_error(path, "mdb_env_create", rc);
  if ((rc = mdb_env_set_maxdbs(h->env, 2)) != 0) return lmdb_error(path, "set_maxdbs", rc);
  if ((rc = mdb_env_set_mapsize(h->env, options.map_size_bytes)) != 0) return lmdb_error(path, "set_mapsize", rc);
  // NOSUBDIR: one file we name; NOTLS: transactions are not tied to threads.
  unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
  if (!options.sync) flags |= MDB_NOSYNC;
  if ((rc = mdb_env_open(h->env, path.c_str(), flags, 0644)) != 0) return lmdb_error(path, "open", rc);
  Txn txn;
  if ((rc = txn.begin(h->env, 0)) != 0) return lmdb_error(path, "begin", rc);
  if ((rc = mdb_dbi_open(txn.get(), "log", MDB_CREATE, &h->log)) != 0) return lmdb_error(path, "open log db", rc);
  if ((rc = mdb_dbi_open(txn.get(), "meta", MDB_CREATE, &h->meta)) != 0) return lmdb_error(path, "open meta db", rc);
  if ((rc = txn.commit()) != 0) return lmdb_error(path, "commit", rc);
  return std::unique_ptr<LogStore>(new LogStore(path, std::move(h)));
}

Result<raft::HardState> LogStore::load_hard_state() {
  auto v = get_meta(kHardStateKey);
  if (!v.is_ok()) return v.status();
  raft::HardState hs;
  if (!v.value()) return hs;
  ByteReader r(*v.value());
  if (!r.u64le(hs.term) || !r.u64le(hs.vote) || !r.u64le(hs.commit) || !r.at_end()) {
    return Status(StatusCode::kCorrupt, path_ + ": hard state record is malformed");
  }
  return hs;
}

Result<std::vector<raft::Entry>> LogStore::load_entries() {
  Txn txn;
  int rc = txn.begin(h_->env, MDB_RDONLY);
  if (rc != 0) return lmdb_error(path_, "begin", rc);
  Cursor cur;
  if ((rc = cur.open(txn.get(), h_->log)) != 0) return lmdb_error(path_, "cursor", rc);
  std::vector<raft::Entry> out;
  MDB_val k;
  MDB_val v;
  for (rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    const raft::Index index = key_u64(as_view(k));
    if (k.mv_size != 8 || (!out.empty() && index != out.back().index + 1)) {
      return Status(StatusCode::kCorrupt, path_ + ": log has a gap before index " + std::to_string(index));
    }
    auto e = decode_entry(index, as_view(v));
    if (!e.is_ok()) return Status(StatusCode::kCorrupt, path_ + ": " + e.status().message());
    out.push_back(std::move(e).value());
  }
  if (rc != MDB_NOTFOUND) return lmdb_error(path_, "scan", rc);
  return out;
}

Status LogStore::persist(const std::vector<raft::Entry>& entries, const std::optional<raft::HardState>& hard_state,
                         bool drop_all) {
  if (entries.empty() && !hard_state && !drop_all) return Status::ok();
  Txn txn;
  int rc = txn.begin(h_->env, 0);
  if (rc != 0) return lmdb_error(path_, "begin", rc);
  if (drop_all && (rc = mdb_drop(txn.get(), h_->log, 0)) != 0) return lmdb_error(path_, "drop log", rc);
  if (!entries.empty()) {
    // §5.3: entries from the first new index on are replaced. (The cursor
    // closes at the end of this block, before the commit frees it.)
    Cursor cur;
    if ((rc = cur.open(txn.get(), h_->log)) != 0) return lmdb_error(path_, "cursor", rc);
    std::string first = u64_key(entries.front().index);
    MDB_val k = as_val(first);
    MDB_val v;
    for (rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      if ((rc = mdb_cursor_del(cur.get(), 0)) != 0) return lmdb_error(path_, "truncate", rc);
    }
    if (rc != MDB_NOTFOUND) return lmdb_error(path_, "truncate scan", rc);
    for (const raft::Entry& e : entries) {
      const std::string key = u64_key(e.index);
      const std::string val = encode_entry(e);
      MDB_val mk = as_val(key);
      MDB_val mv = as_val(val);
      // Keys ascend past everything stored, so MDB_APPEND (no tree search) is valid.
      if ((rc = mdb_put(txn.get(), h_->log, &mk, &mv, MDB_APPEND)) != 0) return lmdb_error(path_, "append", rc);
    }
  }
  if (hard_state) {
    const std::string key = kHardStateKey;
    const std::string val = encode_hard_state(*hard_state);
    MDB_val mk = as_val(key);
    MDB_val mv = as_val(val);
    if ((rc = mdb_put(txn.get(), h_->meta, &mk, &mv, 0)) != 0) return lmdb_error(path_, "put hard state", rc);
  }
  if ((rc = txn.commit()) != 0) return lmdb_error(path_, "commit", rc);
  return Status::ok();
}

Status LogStore::compact(raft::Index first_to_keep) {
  Txn txn;
  int rc = txn.begin(h_->env, 0);
  if (rc != 0) return lmdb_error(path_, "begin", rc);
  {
    // The cursor must be closed before the commit: LMDB frees a write
    // transaction's cursors when it ends, and closing one after is a double free.
    Cursor cur;
    if ((rc = cur.open(txn.get(), h_->log)) != 0) return lmdb_error(path_, "cursor", rc);
    MDB_val k;
    MDB_val v;
    for (rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      if (key_u64(as_view(k)) >= first_to_keep) break;
      if ((rc = mdb_cursor_del(cur.get(), 0)) != 0) return lmdb_error(path_, "compact", rc);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_error(path_, "compact scan", rc);
  }
  if ((rc = txn.commit()) != 0) return lmdb_error(path_, "commit", rc);
  return Status::ok();
}

Result<std::optional<std::string>> LogStore::get_meta(const std::string& key) {
  Txn txn;
  int rc = txn.begin(h_->env, MDB_RDONLY);
  if (rc != 0) return lmdb_error(path_, "begin", rc);
  MDB_val k = as_val(key);
  MDB_val v;
  rc = mdb_get(txn.get(), h_->meta, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string>();
  if (rc != 0) return lmdb_error(path_, "get meta", rc);
  return std::optional<std::string>(std::string(as_view(v)));
}

Status LogStore::put_meta(const std::string& key, const std::string& value) {
  Txn txn;
  int rc = txn.begin(h_->env, 0);
  if (rc != 0) return lmdb_error(path_, "begin", rc);
  MDB_val k = as_val(key);
  MDB_val v = as_val(value);
  if ((rc = mdb_put(txn.get(), h_->meta, &k, &v, 0)) != 0) return lmdb_error(path_, "put meta", rc);
  if ((rc = txn.commit()) != 0) return lmdb_error(path_, "commit", rc);
  return Status::ok();
}

}  // namespace ckv::storage
