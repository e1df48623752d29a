// The write-ahead log: the node's Raft log and hard state as append-only segment files, one fdatasync per persist().
//
// Layout (<data dir>/wal/): segment files <seq, 16 hex digits>.wal, each
// preallocated (fallocate) to segment_bytes, and `meta`, a small checksummed
// file replaced atomically (temp, fsync, rename, fsync dir) that lists the
// segments and holds the compaction point and the get_meta records. The
// record format, the batch rule and how a torn tail is told from damage are
// in wal_format.h.
//
// Costs: persist() is one pwrite and one fdatasync (the segment is
// preallocated, so the sync writes no size change); a persist that only
// moves the commit index is one pwrite and no sync (log_storage.h). Only a roll-over to a
// new segment (when a batch does not fit) and compact() add syncs: the old
// segment if it ends in an unsynced commit-only batch, the new file, the
// directory, and the metadata file.
//
// Zeros written ahead: fallocate leaves a segment's blocks "unwritten", and
// on ext4 (and XFS) the first write into such a block changes the extent
// tree, so the fdatasync that follows must commit the file system's
// journal, and with it flush every other file's dirty data the journal
// orders before the commit: a snapshot being written stalls the log's
// syncs. So a segment's blocks are written once with zeros, a chunk at a
// time, kept one to two chunks ahead of the appends (zero_ahead() after a
// persist, the first chunk when the segment is made), and batches then
// overwrite written blocks: their fdatasync flushes data only. Measured
// on a journaled ext4: a 4 KiB append + fdatasync 0.82-1.40 ms on a
// fallocated file, 0.39-0.83 ms with zeros written ahead (docs/design-notes.md,
// "Zeros written ahead").
// A chunk of zeros is one pwrite per chunk of log and one
// sync_file_range hint; the next batch's fdatasync waits for it.
//
// open() reads every listed segment and replays the complete batches. A
// torn tail (an incomplete last batch in the newest segment) is cut off and
// re-zeroed before anything is appended, and logged. Damage anywhere else,
// a listed segment missing or shorter than its preallocated size, or a
// missing log where the caller expects one, is kCorrupt naming the file
// and offset: nothing acknowledged is ever dropped silently.
//
// Thread safety: one thread (the node's Raft thread) calls everything.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "storage/file_system.h"
#include "storage/log_storage.h"
#include "storage/wal/wal_format.h"

namespace ckv::storage {

inline constexpr char kWalDirName[] = "wal";

struct WalOptions {
  uint64_t segment_bytes = wal::kDefaultSegmentBytes;
  // fdatasync on persist (the metadata file is always synced). Off only for -inmem.
  bool sync = true;
  // The caller knows this data dir held state (its node_meta or a snapshot
  // exists): a missing WAL is then lost state (kCorrupt), never a new empty log.
  bool expect_existing = false;
  // Where the files live: nullptr is the real file system. The simulator
  // passes an in-memory one whose crash drops or tears unsynced bytes.
  FileSystem* fs = nullptr;
  // Each new segment's salt: nullptr is getrandom(). The simulator draws it
  // from its seed so that a run replays byte for byte.
  std::function<uint32_t()> salt_source;
  // Write each segment's preallocated blocks with zeros ahead of the
  // appends (above). Only with sync: without syncs there is nothing to speed up.
  bool zero_ahead = true;
};

class Wal final : public LogStorage {
 public:
  // Opens or creates <data_dir>/wal. data_dir must exist.
  static Result<std::unique_ptr<Wal>> open(const std::string& data_dir, const WalOptions& options);
  ~Wal() override;
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  Result<raft::HardState> load_hard_state() override;
  Result<std::vector<raft::Entry>> load_entries() override;
  Status persist(const std::vector<raft::Entry>& entries,
                 const std::optional<raft::HardState>& hard_state, bool drop_all) override;
  // Deletes whole segments whose entries are all below first_to_keep (never
  // the newest), and records first_to_keep in the metadata file.
  Status compact(raft::Index first_to_keep) override;
  Result<std::optional<std::string>> get_meta(const std::string& key) override;
  Status put_meta(const std::string& key, const std::string& value) override;
  const std::string& path() const override { return dir_; }

  // For tests and the migration's log line.
  size_t segment_count() const;
  // Bytes cut off the newest segment by open() (0: the tail was clean).
  uint64_t repaired_bytes() const { return repaired_bytes_; }
  // fdatasync calls made by persist() for its batches so far (segment
  // creation and the metadata file are not counted): at most one per call.
  uint64_t batch_syncs() const { return batch_syncs_; }

 private:
  struct Segment;
  struct Replayed;
  Wal(std::string dir, WalOptions options);

  Result<Replayed> replay(bool repair);
  Status roll_segment();
  Status write_meta();
  Result<int> create_segment(uint64_t seq);
  void zero_ahead();
  Result<uint32_t> new_salt() const;
  std::string segment_path(uint64_t seq) const;

  std::string dir_;
  WalOptions options_;
  FileSystem& fs_;
  wal::WalMeta meta_;
  std::vector<Segment> segments_;  // parallel to meta_.segments
  int fd_ = -1;                    // the newest segment, open for appending
  uint64_t offset_ = 0;            // where the next batch goes in it
  uint64_t next_seq_ = 1;          // the next batch's seq
  raft::HardState hard_state_;
  bool log_empty_ = true;  // unfiltered log (before the compaction point filter)
  raft::Index last_index_ = 0;
  std::optional<std::vector<raft::Entry>>
      loaded_;         // open()'s replay, handed out once by load_entries()
  std::string batch_;  // reused batch buffer
  uint64_t repaired_bytes_ = 0;
  // The newest segment holds bytes no fdatasync covered yet (roll_segment).
  bool tail_unsynced_ = false;
  // Every byte of the newest segment below this was durable (wal_format.h "synced to").
  uint64_t synced_to_ = wal::kSegmentHeaderBytes;
  uint64_t batch_syncs_ = 0;
  // Zeros written ahead (above): every block of the newest segment below
  // zeroed_to_ has been written since it was made or opened; zeros_ is one
  // chunk of them, its size the chunk size (empty when zero-ahead is off).
  uint64_t zeroed_to_ = 0;
  std::string zeros_;
};

}  // namespace ckv::storage
