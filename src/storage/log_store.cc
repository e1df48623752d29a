// LMDB-backed Raft log and hard state (see log_store.h).
#include "storage/log_store.h"

#include <lmdb.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/bytes.h"
#include "common/crc32c.h"

namespace ckv::storage {

namespace {

constexpr uint8_t kEntryFormat = 1;
constexpr uint8_t kHardStateFormat = 2;       // 1 was the unchecksummed 24-byte record
constexpr size_t kLegacyHardStateBytes = 24;  // term, vote, commit; no header
constexpr char kHardStateKey[] = "hard_state";
// LMDB reports a short write as EIO ("filesystem full?" in its source). If
// the filesystem has less than this free right after such a failure, the
// write ran out of space, not into a broken disk.
constexpr uint64_t kShortWriteSlackBytes = uint64_t{1} << 20;
// The smallest valid LMDB file: its two meta pages (4 KiB pages here).
constexpr uint64_t kMinLmdbFileBytes = 2 * 4096;

Status lmdb_error(const std::string& path, const char* what, int rc) {
  return Status(StatusCode::kIo, path + ": " + what + ": " + mdb_strerror(rc));
}

std::string docs_hint() { return " (see docs/operations.md, \"Damaged or missing files\")"; }

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

}  // namespace

std::string encode_hard_state(const raft::HardState& hs) {
  std::string body;
  put_u64le(body, hs.term);
  put_u64le(body, hs.vote);
  put_u64le(body, hs.commit);
  std::string out;
  put_u8(out, kHardStateFormat);
  put_u32le(out, crc32c(body));
  out += body;
  return out;
}

Result<raft::HardState> decode_hard_state(std::string_view bytes, bool* legacy) {
  raft::HardState hs;
  ByteReader r(bytes);
  *legacy = false;
  if (bytes.size() == kLegacyHardStateBytes) {
    // Written before hard state records had a header; read once, then rewritten.
    *legacy = true;
  } else {
    uint8_t format = 0;
    uint32_t crc = 0;
    if (!r.u8(format) || format != kHardStateFormat || !r.u32le(crc)) {
      return Status(StatusCode::kCorrupt, "hard state record: bad header");
    }
    if (crc32c(r.rest()) != crc) return Status(StatusCode::kCorrupt, "hard state record: checksum mismatch");
  }
  if (!r.u64le(hs.term) || !r.u64le(hs.vote) || !r.u64le(hs.commit) || !r.at_end()) {
    return Status(StatusCode::kCorrupt, "hard state record is malformed");
  }
  if (hs.term > kMaxStoredTerm) {
    return Status(StatusCode::kCorrupt, "hard state term " + std::to_string(hs.term) + " is above the ceiling " +
                                            std::to_string(kMaxStoredTerm));
  }
  return hs;
}

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
  if (e.term > kMaxStoredTerm) {
    return Status(StatusCode::kCorrupt, "log entry " + std::to_string(index) + ": term " + std::to_string(e.term) +
                                            " is above the ceiling");
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
  const std::string path = dir + "/" + kLogStoreFileName;
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status(StatusCode::kIo, path + ": stat: " + std::strerror(errno));
    if (options.expect_existing) {
      return Status(StatusCode::kCorrupt, "the log store " + path +
                                              " is missing: this member lost its state and must be replaced" +
                                              docs_hint());
    }
  } else if (options.expect_existing && static_cast<uint64_t>(st.st_size) < kMinLmdbFileBytes) {
    // LMDB would take an empty file for a new one and start an empty log.
    return Status(StatusCode::kCorrupt, "the log store " + path + " is truncated to " + std::to_string(st.st_size) +
                                            " bytes: this member lost its state and must be replaced" + docs_hint());
  }
  auto h = std::make_unique<Handles>();
  int rc = mdb_env_create(&h->env);
  if (rc != 0) return lmdb_error(path, "mdb_env_create", rc);
  if ((rc = mdb_env_set_maxdbs(h->env, 2)) != 0) return lmdb_error(path, "set_maxdbs", rc);
  if ((rc = mdb_env_set_mapsize(h->env, options.map_size_bytes)) != 0) return lmdb_error(path, "set_mapsize", rc);
  // NOSUBDIR: one file we name; NOTLS: transactions are not tied to threads.
  unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
  if (!options.sync) flags |= MDB_NOSYNC;
  if ((rc = mdb_env_open(h->env, path.c_str(), flags, 0644)) != 0) return lmdb_error(path, "open", rc);
  {
    // Before any page is touched (LMDB maps the file: reading a page past
    // the end of a truncated file is SIGBUS): the file must reach LMDB's last
    // page. mdb_env_open only read the two meta pages, with read().
    MDB_envinfo info;
    MDB_stat est;
    int fd = -1;
    if ((rc = mdb_env_info(h->env, &info)) != 0) return lmdb_error(path, "env info", rc);
    if ((rc = mdb_env_stat(h->env, &est)) != 0) return lmdb_error(path, "env stat", rc);
    if ((rc = mdb_env_get_fd(h->env, &fd)) != 0) return lmdb_error(path, "env fd", rc);
    struct stat fst{};
    if (::fstat(fd, &fst) != 0) return Status(StatusCode::kIo, path + ": fstat: " + std::strerror(errno));
    const uint64_t need = (static_cast<uint64_t>(info.me_last_pgno) + 1) * est.ms_psize;
    if (static_cast<uint64_t>(fst.st_size) < need) {
      return Status(StatusCode::kCorrupt, "the log store " + path + " is truncated: " +
                                              std::to_string(fst.st_size) + " bytes, but its pages reach " +
                                              std::to_string(need) + docs_hint());
    }
  }
  Txn txn;
  if ((rc = txn.begin(h->env, 0)) != 0) return lmdb_error(path, "begin", rc);
  if ((rc = mdb_dbi_open(txn.get(), "log", MDB_CREATE, &h->log)) != 0) return lmdb_error(path, "open log db", rc);
  if ((rc = mdb_dbi_open(txn.get(), "meta", MDB_CREATE, &h->meta)) != 0) return lmdb_error(path, "open meta db", rc);
  if ((rc = txn.commit()) != 0) return lmdb_error(path, "commit", rc);
  auto store = std::unique_ptr<LogStore>(new LogStore(path, std::move(h)));
  store->dir_ = dir;
  return store;
}

Status LogStore::error(const char* what, int rc) const {
  if (rc == ENOSPC || rc == MDB_MAP_FULL) {
    return Status(StatusCode::kNoSpace, path_ + ": " + what + ": " + std::strerror(ENOSPC) +
                                            (rc == MDB_MAP_FULL ? " (LMDB map size reached)" : ""));
  }
  if (rc == EIO) {
    struct statvfs vfs{};
    // root may also write the filesystem's reserved blocks (f_bfree), others only f_bavail.
    if (::statvfs(dir_.c_str(), &vfs) == 0 &&
        static_cast<uint64_t>(::geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail) * vfs.f_frsize <
            kShortWriteSlackBytes) {
      return Status(StatusCode::kNoSpace, path_ + ": " + what + ": " + std::strerror(ENOSPC) +
                                              " (LMDB reported a short write on a full filesystem)");
    }
  }
  return lmdb_error(path_, what, rc);
}

Result<raft::HardState> LogStore::load_hard_state() {
  auto v = get_meta(kHardStateKey);
  if (!v.is_ok()) return v.status();
  if (!v.value()) return raft::HardState{};
  bool legacy = false;
  auto hs = decode_hard_state(*v.value(), &legacy);
  if (!hs.is_ok()) return Status(StatusCode::kCorrupt, path_ + ": " + hs.status().message() + docs_hint());
  if (legacy) {
    if (Status s = persist({}, hs.value(), false); !s.is_ok()) return s;
    migrated_hard_state_ = true;
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
  if (rc != 0) return error("begin", rc);
  if (drop_all && (rc = mdb_drop(txn.get(), h_->log, 0)) != 0) return error("drop log", rc);
  if (!entries.empty()) {
    // §5.3: entries from the first new index on are replaced. (The cursor
    // closes at the end of this block, before the commit frees it.)
    Cursor cur;
    if ((rc = cur.open(txn.get(), h_->log)) != 0) return error("cursor", rc);
    std::string first = u64_key(entries.front().index);
    MDB_val k = as_val(first);
    MDB_val v;
    for (rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      if ((rc = mdb_cursor_del(cur.get(), 0)) != 0) return error("truncate", rc);
    }
    if (rc != MDB_NOTFOUND) return error("truncate scan", rc);
    for (const raft::Entry& e : entries) {
      const std::string key = u64_key(e.index);
      const std::string val = encode_entry(e);
      MDB_val mk = as_val(key);
      MDB_val mv = as_val(val);
      // Keys ascend past everything stored, so MDB_APPEND (no tree search) is valid.
      if ((rc = mdb_put(txn.get(), h_->log, &mk, &mv, MDB_APPEND)) != 0) return error("append", rc);
    }
  }
  if (hard_state) {
    const std::string key = kHardStateKey;
    const std::string val = encode_hard_state(*hard_state);
    MDB_val mk = as_val(key);
    MDB_val mv = as_val(val);
    if ((rc = mdb_put(txn.get(), h_->meta, &mk, &mv, 0)) != 0) return error("put hard state", rc);
  }
  if ((rc = txn.commit()) != 0) return error("commit", rc);
  return Status::ok();
}

Status LogStore::compact(raft::Index first_to_keep) {
  Txn txn;
  int rc = txn.begin(h_->env, 0);
  if (rc != 0) return error("begin", rc);
  {
    // The cursor must be closed before the commit: LMDB frees a write
    // transaction's cursors when it ends, and closing one after is a double free.
    Cursor cur;
    if ((rc = cur.open(txn.get(), h_->log)) != 0) return error("cursor", rc);
    MDB_val k;
    MDB_val v;
    for (rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      if (key_u64(as_view(k)) >= first_to_keep) break;
      if ((rc = mdb_cursor_del(cur.get(), 0)) != 0) return error("compact", rc);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return error("compact scan", rc);
  }
  if ((rc = txn.commit()) != 0) return error("commit", rc);
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
  if (rc != 0) return error("begin", rc);
  MDB_val k = as_val(key);
  MDB_val v = as_val(value);
  if ((rc = mdb_put(txn.get(), h_->meta, &k, &v, 0)) != 0) return error("put meta", rc);
  if ((rc = txn.commit()) != 0) return error("commit", rc);
  return Status::ok();
}

}  // namespace ckv::storage
