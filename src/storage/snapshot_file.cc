// Snapshot files (see snapshot_file.h).
#include "storage/snapshot_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "storage/log_store.h"

namespace ckv::storage {

namespace {

constexpr char kMagic[] = "CKVSNAP2";
constexpr char kLegacyMagic[] = "CKVSNAP1";
constexpr size_t kMagicLen = 8;
constexpr size_t kBufferBytes = 1 << 20;
constexpr uint32_t kMaxMembershipBytes = 1 << 20;

Status corrupt(const std::string& path, const std::string& what) {
  return Status(StatusCode::kCorrupt, "snapshot file " + path + " is corrupt: " + what);
}

std::string snapshot_name(raft::Index index, raft::Term term) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "snapshot-%020" PRIu64 "-%" PRIu64 ".snap", index, term);
  return buf;
}

// Buffered writer that keeps a running CRC of what it wrote.
class FileWriter {
 public:
  explicit FileWriter(std::string path) : path_(std::move(path)) {}
  ~FileWriter() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  Status open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return fd_ < 0 ? io_error(path_, "open") : Status::ok();
  }
  Status write(std::string_view s) {
    crc_ = crc32c(crc_, s.data(), s.size());
    size_ += s.size();
    buf_.append(s);
    return buf_.size() >= kBufferBytes ? flush() : Status::ok();
  }
  Status finish() {
    std::string trailer;
    put_u32le(trailer, crc_);
    buf_ += trailer;
    size_ += trailer.size();
    if (Status s = flush(); !s.is_ok()) return s;
    if (::fsync(fd_) != 0) return io_error(path_, "fsync");
    if (::close(fd_) != 0) {
      fd_ = -1;
      return io_error(path_, "close");
    }
    fd_ = -1;
    return Status::ok();
  }
  uint64_t size() const { return size_; }

 private:
  Status flush() {
    if (Status s = write_all(fd_, buf_, path_); !s.is_ok()) return s;
    buf_.clear();
    return Status::ok();
  }

  std::string path_;
  int fd_ = -1;
  std::string buf_;
  uint32_t crc_ = 0;
  uint64_t size_ = 0;
};

bool parse_name(const std::string& name, raft::Index& index) {
  unsigned long long i = 0;
  unsigned long long t = 0;
  char tail[8] = {};
  if (std::sscanf(name.c_str(), "snapshot-%20llu-%llu.%5s", &i, &t, tail) != 3) return false;
  if (std::strcmp(tail, "snap") != 0) return false;
  index = i;
  return true;
}

}  // namespace

Status io_error(const std::string& path, const char* what) {
  return Status(errno == ENOSPC ? StatusCode::kNoSpace : StatusCode::kIo,
                path + ": " + what + ": " + std::strerror(errno));
}

Status write_all(int fd, std::string_view data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error(path, "write");
    off += static_cast<size_t>(n);
  }
  return Status::ok();
}

Status read_all(int fd, const std::string& path, std::string& out, size_t max_bytes) {
  char buf[1 << 16];
  while (out.size() <= max_bytes) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error(path, "read");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return Status::ok();
}

Status read_whole_file(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path, "open");
  // Sized once from fstat and read straight into place: a snapshot of a
  // million keys is ~100 MB, and growing the buffer 64 KiB at a time
  // copied it several times over (issue 10). read_all then picks up
  // anything the file grew by meanwhile.
  struct stat st {};
  Status s = ::fstat(fd, &st) == 0 ? Status::ok() : io_error(path, "fstat");
  const size_t start = out.size();
  size_t got = 0;
  if (s.is_ok() && st.st_size > 0) {
    const auto want = static_cast<size_t>(st.st_size);
    out.resize(start + want);
    while (got < want) {
      const ssize_t n = ::read(fd, out.data() + start + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        s = io_error(path, "read");
        break;
      }
      if (n == 0) break;  // shrank since fstat
      got += static_cast<size_t>(n);
    }
    out.resize(start + got);
  }
  if (s.is_ok()) s = read_all(fd, path, out);
  ::close(fd);
  return s;
}

Status sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error(dir, "open dir");
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc != 0 ? io_error(dir, "fsync dir") : Status::ok();
}

namespace {

// The atomic write (snapshot_file.h): .tmp, fsync, rename, fsync dir. body
// writes everything after the header.
Result<SnapshotFile> write_file(const std::string& dir, const std::string& final_path, raft::Index index,
                                raft::Term term, const raft::Membership& membership, const char* magic,
                                const std::function<Status(FileWriter&)>& body) {
  const std::string tmp_path = final_path + ".tmp";
  // A failed write (a full disk) must not leave a partial file eating the space.
  struct RemoveOnFailure {
    const std::string& path;
    bool done = false;
    ~RemoveOnFailure() {
      if (!done) ::unlink(path.c_str());
    }
  } cleanup{tmp_path};
  FileWriter w(tmp_path);
  if (Status s = w.open(); !s.is_ok()) return s;
  std::string header(magic, kMagicLen);
  put_u64le(header, index);
  put_u64le(header, term);
  put_string32(header, raft::encode_membership(membership));
  if (Status s = w.write(header); !s.is_ok()) return s;
  if (Status s = body(w); !s.is_ok()) return s;
  if (Status s = w.finish(); !s.is_ok()) return s;
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) return io_error(final_path, "rename");
  cleanup.done = true;
  if (Status s = sync_dir(dir); !s.is_ok()) return s;
  return SnapshotFile{final_path, raft::SnapshotMeta{index, term, membership, w.size()}};
}

}  // namespace

Result<SnapshotFile> write_snapshot_file(const std::string& dir, raft::Index index, raft::Term term,
                                         const raft::Membership& membership, const PayloadWriter& payload) {
  return write_file(dir, dir + "/" + snapshot_name(index, term), index, term, membership, kMagic,
                    [&](FileWriter& w) { return payload([&](std::string_view piece) { return w.write(piece); }); });
}

Result<SnapshotFile> write_snapshot_file_at(const std::string& path, raft::Index index, raft::Term term,
                                            const raft::Membership& membership, const PayloadWriter& payload) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return write_file(dir.empty() ? "." : dir, path, index, term, membership, kMagic,
                    [&](FileWriter& w) { return payload([&](std::string_view piece) { return w.write(piece); }); });
}

Result<SnapshotFile> write_legacy_snapshot_file(const std::string& dir, raft::Index index, raft::Term term,
                                                const raft::Membership& membership, const KvMap& map) {
  return write_file(dir, dir + "/" + snapshot_name(index, term), index, term, membership, kLegacyMagic,
                    [&](FileWriter& w) {
    std::string rec;
    put_u64le(rec, map.size());
    for (const auto& [k, v] : map) {
      put_string32(rec, k);
      put_string32(rec, v);
      if (Status s = w.write(rec); !s.is_ok()) return s;
      rec.clear();
    }
    return w.write(rec);
  });
}

namespace {

// parse_snapshot_bytes; with `owned` (the buffer `data` views), a CKVSNAP2
// payload is cut out of that buffer in place instead of copied.
Result<LoadedSnapshot> parse_snapshot(const std::string& path, std::string_view data, std::string* owned);

}  // namespace

Result<LoadedSnapshot> read_snapshot_file(const std::string& path) {
  std::string data;
  if (Status s = read_whole_file(path, data); !s.is_ok()) return s;
  return parse_snapshot(path, data, &data);
}

Result<LoadedSnapshot> parse_snapshot_bytes(const std::string& path, std::string_view data) {
  return parse_snapshot(path, data, nullptr);
}

namespace {

Result<LoadedSnapshot> parse_snapshot(const std::string& path, std::string_view data, std::string* owned) {
  const bool current = data.size() >= kMagicLen && data.compare(0, kMagicLen, kMagic, kMagicLen) == 0;
  const bool legacy = data.size() >= kMagicLen && data.compare(0, kMagicLen, kLegacyMagic, kMagicLen) == 0;
  if (data.size() < kMagicLen + 4 || (!current && !legacy)) {
    return corrupt(path, "not a snapshot file (bad magic or too short)");
  }
  ByteReader tail(std::string_view(data).substr(data.size() - 4));
  uint32_t want_crc = 0;
  tail.u32le(want_crc);
  if (crc32c(0, data.data(), data.size() - 4) != want_crc) return corrupt(path, "checksum mismatch (truncated?)");

  ByteReader r(std::string_view(data).substr(kMagicLen, data.size() - kMagicLen - 4));
  LoadedSnapshot out;
  std::string mbytes;
  if (!r.u64le(out.meta.index) || !r.u64le(out.meta.term) || !r.string32(mbytes, kMaxMembershipBytes)) {
    return corrupt(path, "bad header");
  }
  // Like the log store's records (log_store.h): a stored term above the ceiling is damage.
  if (out.meta.term > kMaxStoredTerm) {
    return corrupt(path, "term " + std::to_string(out.meta.term) + " is above the ceiling " +
                             std::to_string(kMaxStoredTerm));
  }
  auto membership = raft::decode_membership(mbytes);
  if (!membership) return corrupt(path, "bad membership");
  out.meta.membership = std::move(*membership);
  out.meta.size_bytes = data.size();
  if (current) {
    if (owned == nullptr) {
      out.payload.assign(r.rest());
      return out;
    }
    // The header before the payload and the CRC after it are dropped from
    // the file's own buffer: one move of the bytes, no second buffer.
    const size_t begin = static_cast<size_t>(r.rest().data() - data.data());
    const size_t length = r.rest().size();
    out.payload = std::move(*owned);
    out.payload.resize(begin + length);
    out.payload.erase(0, begin);
    return out;
  }
  uint64_t count = 0;
  if (!r.u64le(count)) return corrupt(path, "bad header");
  KvMap& map = out.legacy_map.emplace();
  for (uint64_t i = 0; i < count; ++i) {
    std::string k;
    std::string v;
    if (!r.string32(k) || !r.string32(v)) {
      return corrupt(path, "record " + std::to_string(i) + " of " + std::to_string(count) + " is cut short");
    }
    map.emplace_hint(map.end(), std::move(k), std::move(v));
  }
  if (!r.at_end()) return corrupt(path, "trailing bytes after the last record");
  return out;
}

}  // namespace

Result<std::optional<std::string>> find_latest_snapshot(const std::string& dir) {
  std::error_code ec;
  std::optional<std::string> best;
  raft::Index best_index = 0;
  for (const auto& de : std::filesystem::directory_iterator(dir, ec)) {
    raft::Index index = 0;
    const std::string name = de.path().filename().string();
    if (!parse_name(name, index)) continue;
    if (!best || index > best_index) {
      best = de.path().string();
      best_index = index;
    }
  }
  if (ec) return Status(StatusCode::kIo, dir + ": list: " + ec.message());
  return best;
}

namespace {

// Removes every entry of dir for which doomed(its path) is true.
template <typename Pred>
Status remove_in_dir(const std::string& dir, Pred doomed) {
  std::error_code ec;
  for (const auto& de : std::filesystem::directory_iterator(dir, ec)) {
    if (!doomed(de.path())) continue;
    std::filesystem::remove(de.path(), ec);
    if (ec) return Status(StatusCode::kIo, de.path().string() + ": remove: " + ec.message());
  }
  if (ec) return Status(StatusCode::kIo, dir + ": list: " + ec.message());
  return Status::ok();
}

}  // namespace

Status remove_other_snapshots(const std::string& dir, const std::string& keep) {
  return remove_in_dir(dir, [&](const std::filesystem::path& p) {
    raft::Index index = 0;
    return parse_name(p.filename().string(), index) && p.string() != keep;
  });
}

Status remove_stale_temp_files(const std::string& dir) {
  return remove_in_dir(dir, [](const std::filesystem::path& p) {
    const std::string name = p.filename().string();
    const bool snapshot_tmp = name.rfind("snapshot-", 0) == 0 && name.size() > 4 &&
                              name.compare(name.size() - 4, 4, ".tmp") == 0;
    return snapshot_tmp || name == kIncomingSnapshotName;
  });
}

Result<AdoptedSnapshot> adopt_snapshot_file(const std::string& dir, const std::string& tmp_path,
                                            const SnapshotVerifier& verify) {
  auto loaded = read_snapshot_file(tmp_path);
  if (!loaded.is_ok()) return loaded.status();
  if (verify) {
    if (Status s = verify(loaded.value()); !s.is_ok()) {
      return Status(s.code(), "snapshot file " + tmp_path + ": " + s.message());
    }
  }
  const raft::SnapshotMeta& meta = loaded.value().meta;
  const std::string final_path = dir + "/" + snapshot_name(meta.index, meta.term);
  {
    const int fd = ::open(tmp_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_error(tmp_path, "open");
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) return io_error(tmp_path, "fsync");
  }
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) return io_error(final_path, "rename");
  if (Status s = sync_dir(dir); !s.is_ok()) return s;
  return AdoptedSnapshot{SnapshotFile{final_path, meta}, std::move(loaded).value()};
}

}  // namespace ckv::storage
