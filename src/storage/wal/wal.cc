// The write-ahead log's files: opening and replaying segments, appending batches, rolling over, compacting (see wal.h).
#include "storage/wal/wal.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>
#include <sys/random.h>

#include "metrics/instruments.h"

namespace ckv::storage {

namespace {

constexpr char kMetaFileName[] = "meta";
constexpr char kSegmentSuffix[] = ".wal";
constexpr size_t kSegmentNameDigits = 16;
// Zeros written ahead (wal.h): a chunk is 1/16 of a segment, within
// [4 KiB, 256 KiB]: one pwrite per chunk of log, small enough that writing
// it (before persist() returns) and the next fdatasync's wait for it stay
// short. A chunk is written once the zeros are less than one chunk ahead of
// the appends, so they stay 1 to 2 chunks ahead, and the next batch's
// fdatasync has made a chunk durable long before batches reach it.
constexpr uint64_t kZeroChunkMinBytes = 4096;
constexpr uint64_t kZeroChunkMaxBytes = uint64_t{256} << 10;
// So a chunk never exceeds its segment.
static_assert(kZeroChunkMinBytes <= wal::kMinSegmentBytes);

std::string docs_hint() { return " (see docs/operations.md, \"Damaged or missing files\")"; }

Status corrupt(const std::string& path, const std::string& what) {
  return Status(StatusCode::kCorrupt, path + ": " + what + docs_hint());
}

// The seq of a segment file name, or 0 when name is not one.
uint64_t segment_seq_of(const std::string& name) {
  const size_t suffix = sizeof(kSegmentSuffix) - 1;
  if (name.size() != kSegmentNameDigits + suffix ||
      name.compare(kSegmentNameDigits, suffix, kSegmentSuffix) != 0) {
    return 0;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < kSegmentNameDigits; ++i) {
    const char c = name[i];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

Result<uint32_t> random_salt() {
  uint32_t salt = 0;
  for (;;) {
    const ssize_t n = ::getrandom(&salt, sizeof salt, 0);
    if (n == static_cast<ssize_t>(sizeof salt)) return salt;
    if (n < 0 && errno != EINTR)
      return Status(StatusCode::kIo, std::string("getrandom: ") + std::strerror(errno));
  }
}

// A segment's bytes, read whole. Not a std::string: that would zero all of
// a 64 MiB preallocated segment before reading over it.
struct SegmentBytes {
  std::unique_ptr<char[]> data;
  size_t size = 0;
  std::string_view view() const { return {data.get(), size}; }
};

// One past the last nonzero byte of file at or after from; from when there is none.
uint64_t end_of_nonzero(std::string_view file, uint64_t from) {
  static constexpr size_t kBlock = 4096;
  static const char kZeros[kBlock] = {};
  uint64_t end = file.size();
  while (end > from) {
    const uint64_t n = std::min<uint64_t>(kBlock, end - from);
    if (std::memcmp(file.data() + end - n, kZeros, n) != 0) break;  // memcmp: vectorized
    end -= n;
  }
  while (end > from && file[end - 1] == 0) --end;
  return end;
}

// A segment is read whole, with its size known: one buffer, no regrowth.
Result<SegmentBytes> read_segment(FileSystem& fs, const std::string& path, uint64_t size) {
  auto fd = fs.open(path, OpenMode::kRead);
  if (!fd.is_ok()) return fd.status();
  SegmentBytes out{std::unique_ptr<char[]>(new char[size]), 0};  // uninitialized: pread fills it
  auto n = fs.pread(fd.value(), out.data.get(), size, 0, path);
  fs.close(fd.value());
  if (!n.is_ok()) return n.status();
  out.size = n.value();  // shrank since the size was read: what is left is what counts
  return out;
}

}  // namespace

struct Wal::Segment {
  uint64_t seq = 0;
  uint32_t salt = 0;
  uint64_t prealloc_bytes = 0;
  bool has_batch = false;
  raft::Index max_index = 0;  // highest entry index ever written to it (0: none)
  uint32_t format = wal::kSegmentFormat;
};

struct Wal::Replayed {
  raft::HardState hard_state;
  // The entries at or above the compaction point (meta_.first_index). Those
  // below are checked as they are read but not kept: they are dropped on
  // open anyway, and holding them first cost a restart ~20 ms per 100k.
  std::vector<raft::Entry> log;
  // The whole (unfiltered) log's first and last index; 0 when it is empty.
  raft::Index first_index = 0;
  raft::Index last_index = 0;
  uint64_t next_seq = 1;
  uint64_t end_offset = 0;  // in the newest segment
  std::vector<Segment> segments;
};

Wal::Wal(std::string dir, WalOptions options)
    : dir_(std::move(dir)),
      options_(std::move(options)),
      fs_(options_.fs != nullptr ? *options_.fs : posix_file_system()) {
  if (options_.sync && options_.zero_ahead) {
    zeros_.assign(std::clamp(options_.segment_bytes / 16, kZeroChunkMinBytes, kZeroChunkMaxBytes),
                  '\0');
  }
}

Wal::~Wal() {
  if (fd_ >= 0) fs_.close(fd_);
}

Result<uint32_t> Wal::new_salt() const {
  if (options_.salt_source) return options_.salt_source();
  return random_salt();
}

std::string Wal::segment_path(uint64_t seq) const {
  char name[kSegmentNameDigits + 1];
  std::snprintf(name, sizeof name, "%016" PRIx64, seq);
  return dir_ + "/" + name + kSegmentSuffix;
}

size_t Wal::segment_count() const { return segments_.size(); }

Status Wal::write_meta() {
  return write_file_atomically(fs_, dir_, kMetaFileName, wal::encode_meta(meta_));
}

Result<int> Wal::create_segment(uint64_t seq) {
  const std::string path = segment_path(seq);
  auto salt = new_salt();
  if (!salt.is_ok()) return salt.status();
  // O_EXCL: a leftover of the same name was removed at open; finding one now is a bug, not a file to reuse.
  auto created = fs_.open(path, OpenMode::kCreateNew);
  if (!created.is_ok()) return created.status();
  const int fd = created.value();
  size_t written = 0;
  // The header and the first chunk of zeros written ahead (wal.h), made
  // durable by the one fdatasync below: the first batches overwrite written blocks.
  std::string head = wal::encode_segment_header({seq, salt.value()});
  if (!zeros_.empty()) head.resize(zeros_.size(), '\0');
  Status s = fs_.preallocate(fd, options_.segment_bytes, path);
  if (s.is_ok()) s = fs_.pwrite(fd, head, 0, path, &written);
  if (s.is_ok()) s = fs_.fdatasync(fd, path);
  if (s.is_ok()) s = fs_.sync_dir(dir_);
  if (!s.is_ok()) {
    fs_.close(fd);
    (void)fs_.unlink(path);
    return s;
  }
  segments_.push_back(
      Segment{seq, salt.value(), options_.segment_bytes, false, 0, wal::kSegmentFormat});
  return fd;
}

Result<std::unique_ptr<Wal>> Wal::open(const std::string& data_dir, const WalOptions& options) {
  if (options.segment_bytes < wal::kMinSegmentBytes ||
      options.segment_bytes > wal::kMaxSegmentBytes) {
    return Status(StatusCode::kInvalid,
                  "WAL segment size " + std::to_string(options.segment_bytes) + " is outside [" +
                      std::to_string(wal::kMinSegmentBytes) + ", " +
                      std::to_string(wal::kMaxSegmentBytes) + "]");
  }
  auto w = std::unique_ptr<Wal>(new Wal(data_dir + "/" + kWalDirName, options));
  const std::string meta_path = w->dir_ + "/" + kMetaFileName;
  FileSystem& fs = w->fs_;
  auto meta_size = fs.file_size(meta_path);
  if (!meta_size.is_ok()) return meta_size.status();
  const bool have_meta = meta_size.value().has_value();
  if (!have_meta && options.expect_existing) {
    return Status(StatusCode::kCorrupt,
                  "the log store " + w->dir_ +
                      " is missing: this member lost its state and must be replaced (" + meta_path +
                      " does not exist)" + docs_hint());
  }
  if (Status s = fs.create_dir(w->dir_); !s.is_ok()) return s;

  // What a crash can leave: a segment made but not yet listed (roll-over),
  // one unlisted but not yet deleted (compaction), a metadata temp file.
  // None holds an acknowledged byte (a segment is written only once listed).
  wal::WalMeta listed;
  if (have_meta) {
    auto data = read_whole_file(fs, meta_path, wal::kMaxMetaFileBytes + 1);
    if (!data.is_ok()) return data.status();
    auto m = wal::decode_meta(data.value());
    if (!m.is_ok()) return corrupt(meta_path, "is damaged: " + m.status().message());
    listed = std::move(m).value();
  }
  auto names = fs.list_dir(w->dir_);
  if (!names.is_ok()) return names.status();
  {
    for (const std::string& name : names.value()) {
      const uint64_t seq = segment_seq_of(name);
      bool stray = name == std::string(kMetaFileName) + ".tmp";
      if (seq != 0) {
        stray = listed.segments.empty() || seq < listed.segments.front().seq ||
                seq > listed.segments.back().seq;
      }
      if (stray) {
        spdlog::info(
            "{}: removing {} (left by an interrupted roll-over or compaction; never acknowledged "
            "data)",
            w->dir_, name);
        if (Status s = fs.unlink(w->dir_ + "/" + name); !s.is_ok()) return s;
      }
    }
  }

  if (!have_meta) {
    // A new log: its first segment, then the metadata file naming it; only
    // then does the WAL exist (a crash before leaves a stray file, removed above).
    auto fd = w->create_segment(1);
    if (!fd.is_ok()) return fd.status();
    w->fd_ = fd.value();
    w->offset_ = wal::kSegmentHeaderBytes;
    w->zeroed_to_ = w->zeros_.size();  // create_segment wrote them
    w->meta_.segments.push_back({1, options.segment_bytes});
    if (Status s = w->write_meta(); !s.is_ok()) return s;
    if (Status s = fs.sync_dir(data_dir); !s.is_ok()) return s;  // the wal directory's own entry
    w->loaded_.emplace();
    return w;
  }

  w->meta_ = std::move(listed);
  auto r = w->replay(true);
  if (!r.is_ok()) return r.status();
  Replayed& rp = r.value();
  w->segments_ = std::move(rp.segments);
  w->hard_state_ = rp.hard_state;
  w->log_empty_ = rp.last_index == 0;
  w->last_index_ = rp.last_index;
  w->next_seq_ = rp.next_seq;
  w->offset_ = rp.end_offset;
  const std::string last = w->segment_path(w->segments_.back().seq);
  auto last_fd = fs.open(last, OpenMode::kReadWrite);
  if (!last_fd.is_ok()) return last_fd.status();
  w->fd_ = last_fd.value();
  w->zeroed_to_ = w->offset_;
  w->zero_ahead();  // durable with the sync below
  // What was read may sit only in the page cache (a process crash): make
  // it durable once, so that the batches' "synced to" may cover it.
  if (options.sync) {
    if (Status s = fs.fdatasync(w->fd_, last); !s.is_ok()) return s;
    w->tail_unsynced_ = false;
  }
  w->synced_to_ = w->offset_;
  w->loaded_ = std::move(rp.log);  // already only the entries at or above the compaction point
  return w;
}

Result<Wal::Replayed> Wal::replay(bool repair) {
  Replayed out;
  uint64_t expect_seq = 0;
  for (size_t i = 0; i < meta_.segments.size(); ++i) {
    const wal::SegmentInfo& info = meta_.segments[i];
    const bool last = i + 1 == meta_.segments.size();
    const std::string path = segment_path(info.seq);
    auto size = fs_.file_size(path);
    if (!size.is_ok()) return size.status();
    if (!size.value()) return corrupt(path, "is missing, but " + dir_ + "/meta lists it");
    if (*size.value() < info.prealloc_bytes) {
      return corrupt(path, "is truncated: " + std::to_string(*size.value()) +
                               " bytes, but it was made with " +
                               std::to_string(info.prealloc_bytes));
    }
    auto data = read_segment(fs_, path, *size.value());
    if (!data.is_ok()) return data.status();
    const std::string_view file = data.value().view();
    auto header = wal::decode_segment_header(file);
    if (!header.is_ok()) return corrupt(path, "offset 0: " + header.status().message());
    if (header.value().seq != info.seq) {
      return corrupt(path, "offset 0: holds segment " + std::to_string(header.value().seq) +
                               ", not " + std::to_string(info.seq));
    }
    Segment seg{info.seq, header.value().salt, info.prealloc_bytes, false, 0, header.value().format};
    // Each complete batch is applied to the log as soon as it is read (wal_format.h, BatchSink).
    auto apply_batch = [&](std::vector<wal::Record>& records) -> Status {
      for (wal::Record& rec : records) {
        switch (rec.type) {
          case wal::RecordType::kEntry:
            if (out.last_index != 0 && rec.entry.index != out.last_index + 1) {
              return Status(StatusCode::kCorrupt,
                            "offset " + std::to_string(rec.offset) + ": entry " + std::to_string(rec.entry.index) +
                                " does not follow entry " + std::to_string(out.last_index) + ": the log has a gap");
            }
            if (out.last_index == 0) out.first_index = rec.entry.index;
            out.last_index = rec.entry.index;
            seg.max_index = std::max(seg.max_index, rec.entry.index);
            if (rec.entry.index >= meta_.first_index) out.log.push_back(std::move(rec.entry));
            break;
          case wal::RecordType::kHardState:
            out.hard_state = rec.hard_state;
            break;
          case wal::RecordType::kTruncate:
            while (!out.log.empty() && out.log.back().index >= rec.from) out.log.pop_back();
            if (out.last_index != 0 && rec.from <= out.first_index) {
              out.first_index = out.last_index = 0;
            } else if (out.last_index >= rec.from) {
              out.last_index = rec.from - 1;
            }
            break;
          case wal::RecordType::kDropAll:
            out.log.clear();
            out.first_index = out.last_index = 0;
            break;
          case wal::RecordType::kCommit:
            break;  // never in records
        }
      }
      return Status::ok();
    };
    auto scanned = wal::scan_segment(file, expect_seq, last, meta_.first_index, apply_batch);
    if (!scanned.is_ok()) return corrupt(path, scanned.status().message());
    wal::SegmentScan& scan = scanned.value();
    if (!last && scan.last_seq == 0)
      return corrupt(path, "holds no complete batch, but a newer segment exists");
    seg.has_batch = scan.last_seq != 0;
    if (scan.last_seq != 0) {
      expect_seq = scan.last_seq + 1;
      out.next_seq = expect_seq;
    }
    out.segments.push_back(seg);
    if (last) {
      out.end_offset = scan.end_offset;
      // Anything but zeros past the last complete batch is cut off (zeroed)
      // before anything is appended: its leftovers must never follow a new
      // batch. A torn last batch, or a torn write of the zeros written
      // ahead (wal.h), which can leave junk beyond zeros after a clean end.
      const uint64_t dirty_end = repair ? end_of_nonzero(file, scan.end_offset) : 0;
      if (repair && dirty_end > scan.end_offset) {
        repaired_bytes_ = dirty_end - scan.end_offset;
        if (scan.torn) {
          spdlog::warn(
              "{}: cut off a torn last batch at offset {} ({} bytes: {} at offset {}); it was "
              "never acknowledged (a crash during its write)",
              path, scan.end_offset, repaired_bytes_, scan.stop_reason, scan.stop_offset);
        } else {
          spdlog::warn(
              "{}: zeroed {} bytes after the last complete batch (offset {}): nonzero bytes past the "
              "log's end that hold no intact record (a write torn by a crash, such as of the zeros "
              "written ahead of the log, or damage there)",
              path, repaired_bytes_, scan.end_offset);
        }
        // Zeros written over the dirty bytes only: those blocks exist, so
        // this works on a full disk too (a restart there must not fail).
        auto fd = fs_.open(path, OpenMode::kReadWrite);
        if (!fd.is_ok()) return fd.status();
        size_t written = 0;
        Status s = fs_.pwrite(fd.value(), std::string(repaired_bytes_, '\0'), scan.end_offset,
                              path, &written);
        if (s.is_ok()) s = fs_.fdatasync(fd.value(), path);
        fs_.close(fd.value());
        if (!s.is_ok()) return s;
      }
    }
  }
  return out;
}

Result<raft::HardState> Wal::load_hard_state() { return hard_state_; }

Result<std::vector<raft::Entry>> Wal::load_entries() {
  if (loaded_) {
    std::vector<raft::Entry> out = std::move(*loaded_);
    loaded_.reset();
    return out;
  }
  auto r = replay(false);
  if (!r.is_ok()) return r.status();
  return std::move(r.value().log);
}

Status Wal::roll_segment() {
  if (segments_.size() >= wal::kMaxMetaSegments) {
    return Status(StatusCode::kIo,
                  dir_ + ": " + std::to_string(segments_.size()) +
                      " segments, the most the metadata file lists: the log is not being "
                      "compacted (are snapshots failing?)");
  }
  // Recovery takes every segment but the newest to be wholly durable (its
  // torn-tail rule applies to the newest only), so bytes written here
  // without a sync (a commit-only batch, zeros over a failed write) reach
  // the disk before a newer segment exists. Found by the simulator.
  if (tail_unsynced_ && options_.sync) {
    if (Status s = fs_.fdatasync(fd_, segment_path(segments_.back().seq)); !s.is_ok()) return s;
    tail_unsynced_ = false;
  }
  const uint64_t seq = segments_.back().seq + 1;
  auto fd = create_segment(seq);
  if (!fd.is_ok()) return fd.status();
  meta_.segments.push_back({seq, options_.segment_bytes});
  if (Status s = write_meta(); !s.is_ok()) {
    meta_.segments.pop_back();
    segments_.pop_back();
    fs_.close(fd.value());
    (void)fs_.unlink(segment_path(seq));
    return s;
  }
  fs_.close(fd_);
  fd_ = fd.value();
  offset_ = wal::kSegmentHeaderBytes;
  // Only now: had the roll failed, the old segment's batches go on, and
  // their "synced to" must stay its own (wal_format.h).
  synced_to_ = wal::kSegmentHeaderBytes;
  zeroed_to_ = zeros_.size();  // create_segment wrote them
  return Status::ok();
}

void Wal::zero_ahead() {
  if (zeros_.empty()) return;
  const uint64_t end = segments_.back().prealloc_bytes;
  zeroed_to_ = std::max(zeroed_to_, offset_);  // the appends ran past: zeros behind them would be lost work
  const uint64_t chunk = zeros_.size();
  if (zeroed_to_ >= end || zeroed_to_ >= offset_ + chunk) return;
  const uint64_t n = std::min(chunk, end - zeroed_to_);
  const std::string path = segment_path(segments_.back().seq);
  size_t written = 0;
  const Status s = fs_.pwrite(fd_, std::string_view(zeros_.data(), n), zeroed_to_, path, &written);
  // Bytes no fdatasync covers yet (zeros over zeros, but a crash may tear
  // them): the next synced batch does, or roll_segment before a newer segment exists.
  tail_unsynced_ = true;
  if (!s.is_ok()) {
    spdlog::warn("{}: writing zeros ahead of the log at offset {} failed ({}); batches go on into "
                 "the preallocated blocks",
                 path, zeroed_to_, s.message());
    zeroed_to_ = end;  // not again in this segment
    return;
  }
  fs_.start_writeback(fd_, zeroed_to_, n);
  zeroed_to_ += n;
}

Status Wal::persist(const std::vector<raft::Entry>& entries,
                    const std::optional<raft::HardState>& hard_state, bool drop_all) {
  if (entries.empty() && !hard_state && !drop_all) return Status::ok();
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].index != entries[i - 1].index + 1) {
      return Status(StatusCode::kInvalid,
                    dir_ + ": persist: entries " + std::to_string(entries[i - 1].index) + " and " +
                        std::to_string(entries[i].index) + " are not contiguous");
    }
  }
  const bool empty = drop_all || log_empty_;
  if (!entries.empty() &&
      (entries.front().index == 0 || (!empty && entries.front().index > last_index_ + 1))) {
    return Status(StatusCode::kInvalid,
                  dir_ + ": persist: entry " + std::to_string(entries.front().index) +
                      " would leave a gap after " + std::to_string(last_index_));
  }
  const bool truncate = !entries.empty() && !empty && entries.front().index <= last_index_;
  size_t bytes = wal::kCommitRecordBytes + (drop_all ? wal::kDropAllRecordBytes : 0) +
                 (truncate ? wal::kTruncateRecordBytes : 0) +
                 (hard_state ? wal::kHardStateRecordBytes : 0);
  for (const raft::Entry& e : entries) bytes += wal::entry_record_bytes(e);
  // Decided before anything is written (it compares with the stored state).
  // A batch that changes only the commit index is written but not synced:
  // commitIndex is volatile state (Raft paper, Figure 2), a restart takes
  // the snapshot's index or learns it from the leader (etcd's MustSync makes
  // the same choice); the next synced batch makes it durable with its own.
  const bool must_sync = !entries.empty() || drop_all ||
                         (hard_state && (hard_state->term != hard_state_.term ||
                                         hard_state->vote != hard_state_.vote));
  // On a full disk such a batch is dropped rather than failed: losing it is
  // what a crash may do anyway, and a follower that must not take entries
  // (disk full) still has to follow the leader's commit index.
  auto dropped_for_space = [&](const Status& s) {
    if (must_sync || s.code() != StatusCode::kNoSpace) return false;
    if (hard_state) hard_state_ = *hard_state;  // carried by the next segment's first batch
    return true;
  };
  if (segments_.back().has_batch &&
      offset_ + bytes + wal::kHardStateRecordBytes > segments_.back().prealloc_bytes) {
    if (Status s = roll_segment(); !s.is_ok()) {
      // No room for a new segment: the batch may still fit past the end of
      // this one, in the file's last allocated block (a small hard state
      // does). If it needs new blocks, that write fails with ENOSPC below.
      if (s.code() != StatusCode::kNoSpace) return s;
    }
  }
  const Segment& seg = segments_.back();
  // Each segment's first batch carries the hard state, so that compaction,
  // which deletes whole older segments, never deletes the only copy.
  const bool carry_hard_state = !hard_state && !seg.has_batch && hard_state_ != raft::HardState{};
  const uint32_t salt = seg.salt;
  batch_.clear();
  batch_.reserve(bytes + wal::kHardStateRecordBytes);
  if (drop_all) wal::append_drop_all_record(batch_, salt);
  if (truncate) wal::append_truncate_record(batch_, salt, entries.front().index);
  for (const raft::Entry& e : entries) wal::append_entry_record(batch_, salt, e);
  if (hard_state || carry_hard_state)
    wal::append_hard_state_record(batch_, salt, hard_state ? *hard_state : hard_state_);
  wal::append_commit_record(batch_, salt, next_seq_, offset_, synced_to_, seg.format);

  const std::string path = segment_path(seg.seq);
  size_t written = 0;
  if (Status s = fs_.pwrite(fd_, batch_, offset_, path, &written); !s.is_ok()) {
    // Nothing of it counts (no intact commit record); zero what was written
    // so a retry with other contents never leaves a stale record behind it.
    if (written > 0) {
      const std::string zeros(written, '\0');
      size_t ignored = 0;
      (void)fs_.pwrite(fd_, zeros, offset_, path, &ignored);
      tail_unsynced_ = true;
    }
    if (dropped_for_space(s)) return Status::ok();
    return s;
  }
  // The one sync of this batch (raft.h: persist before send).
  metrics::instruments().wal_written_bytes.inc(batch_.size());
  if (options_.sync && must_sync) {
    ++batch_syncs_;
    metrics::ScopedTimer timed(metrics::instruments().wal_fsync_seconds);
    if (Status s = fs_.fdatasync(fd_, path); !s.is_ok()) return s;
  }
  tail_unsynced_ = !(options_.sync && must_sync);
  offset_ += batch_.size();
  if (!tail_unsynced_) synced_to_ = offset_;
  ++next_seq_;
  Segment& cur = segments_.back();
  cur.has_batch = true;
  if (drop_all) {
    log_empty_ = true;
    last_index_ = 0;
  }
  if (!entries.empty()) {
    log_empty_ = false;
    last_index_ = entries.back().index;
    cur.max_index = std::max(cur.max_index, last_index_);
  }
  if (hard_state) hard_state_ = *hard_state;
  loaded_.reset();
  zero_ahead();
  return Status::ok();
}

Status Wal::compact(raft::Index first_to_keep) {
  if (first_to_keep <= meta_.first_index) return Status::ok();
  size_t drop = 0;
  raft::Index max_seen = 0;
  for (size_t i = 0; i + 1 < segments_.size(); ++i) {
    max_seen = std::max(max_seen, segments_[i].max_index);
    if (max_seen >= first_to_keep) break;
    drop = i + 1;
  }
  const wal::WalMeta before = meta_;
  meta_.first_index = first_to_keep;
  meta_.segments.erase(meta_.segments.begin(),
                       meta_.segments.begin() + static_cast<std::ptrdiff_t>(drop));
  // The metadata file first: once it no longer lists a segment, a crash
  // before the unlink leaves a stray file that open() removes.
  if (Status s = write_meta(); !s.is_ok()) {
    meta_ = before;
    return s;
  }
  loaded_.reset();
  for (size_t i = 0; i < drop; ++i) {
    const std::string path = segment_path(segments_[i].seq);
    if (Status s = fs_.unlink(path); !s.is_ok()) spdlog::warn("{}", s.message());
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(drop));
  if (drop > 0) return fs_.sync_dir(dir_);
  return Status::ok();
}

Result<std::optional<std::string>> Wal::get_meta(const std::string& key) {
  auto it = meta_.records.find(key);
  if (it == meta_.records.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Status Wal::put_meta(const std::string& key, const std::string& value) {
  const wal::WalMeta before = meta_;
  meta_.records[key] = value;
  if (Status s = write_meta(); !s.is_ok()) {
    meta_ = before;
    return s;
  }
  return Status::ok();
}

}  // namespace ckv::storage
