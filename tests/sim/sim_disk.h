// Simulated durable storage of one node: writes are staged and survive a crash only once synced.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "raft/raft.h"

namespace ckv::sim {

// What a real node keeps on disk: hard state, the log, the current snapshot
// (meta + bytes, plus a few older ones still being streamed to followers),
// and the partial incoming snapshot. Every write is staged; sync() applies
// the staged writes atomically and crash() drops whatever was not synced.
//
// The snapshot files live here. The log and hard state live in the node's
// real WAL (sim_node.h, on a MemFileSystem); for them this class is the
// oracle: what the storage contract (log_storage.h) says is durable. A WAL
// batch written but not known to be synced (a commit-only batch, or the
// one a crash struck inside) is `written`: a crash may keep it or not, and
// recover() checks that what the real recovery read back is the durable
// state plus some prefix of the written batches, then adopts it.
class SimDisk {
 public:
  // Staging. Ordering inside one sync is the order of these calls.
  void stage_chunk(const raft::SnapshotChunk& chunk);
  void stage_install_snapshot(const raft::SnapshotMeta& meta);  // incoming snapshot complete
  void stage_entries(
      const std::vector<raft::Entry>& entries);  // truncate from entries[0].index, append
  void stage_hard_state(const raft::HardState& hs);
  void stage_save_snapshot(const raft::SnapshotMeta& meta, std::string bytes);  // our own snapshot
  void stage_compact(raft::Index first_to_keep);  // delete entries below
  void stage_drop_log();  // an installed snapshot replaces the log (§7)
  bool has_staged() const { return !staged_.empty(); }
  // The staged log writes reached the WAL but no sync covered them yet.
  void write_unsynced();

  // Applies the staged writes. Returns "" or a description of a storage
  // contract violation by the caller (a gap in the log, a snapshot installed
  // before all its bytes arrived, ...): the simulator reports it as a failure.
  // Applies the staged writes only (a snapshot file's own sync, or the WAL
  // metadata file's: neither covers WAL batches written earlier).
  std::string apply_staged();
  // Written-but-unsynced batches go first: a sync covers them too.
  std::string sync();
  // Staged log writes count as written (the crash may have struck inside
  // their WAL call); staged snapshot writes are lost.
  void crash();
  // After a crash: the WAL recovered hs and entries (from its compaction
  // point). "" when that is the durable state plus a prefix of the written
  // batches (which then become durable); else what was lost or invented.
  std::string recover(const raft::HardState& hs, const std::vector<raft::Entry>& entries);
  size_t written_batches() const { return written_.size(); }

  // What a restart passes to the core (raft.h "A restart passes what storage holds").
  raft::InitialState initial_state() const;

  const raft::HardState& hard_state() const { return hard_state_; }
  const raft::SnapshotMeta& snapshot_meta() const { return snapshot_meta_; }
  const std::string& snapshot_bytes() const { return snapshot_bytes_; }
  // Bytes of the snapshot at (index, term) if still kept, else nullptr.
  const std::string* find_snapshot(raft::Index index, raft::Term term) const;
  raft::Index last_index() const { return log_.empty() ? snapshot_meta_.index : log_.back().index; }
  raft::Term term_at(raft::Index i) const;  // 0 when not stored
  size_t log_size() const { return log_.size(); }

 private:
  struct Op {
    enum class Kind : uint8_t {
      kChunk,
      kInstall,
      kEntries,
      kHardState,
      kSaveSnapshot,
      kCompact,
      kDropLog
    };
    bool log_op() const {
      return kind == Kind::kEntries || kind == Kind::kHardState || kind == Kind::kCompact ||
             kind == Kind::kDropLog;
    }
    Kind kind = Kind::kChunk;
    raft::SnapshotChunk chunk;
    raft::SnapshotMeta meta;
    std::vector<raft::Entry> entries;
    raft::HardState hard_state;
    std::string bytes;
    raft::Index first_to_keep = 0;
  };
  std::string apply(Op& op);
  void keep_snapshot(const raft::SnapshotMeta& meta, const std::string& bytes);

  // Limit on older snapshots kept for in-flight InstallSnapshot streams.
  static constexpr size_t kKeptSnapshots = 4;

  raft::HardState hard_state_;
  raft::SnapshotMeta snapshot_meta_;
  std::string snapshot_bytes_;
  std::map<raft::Index, std::pair<raft::SnapshotMeta, std::string>> kept_snapshots_;
  raft::SnapshotMeta incoming_meta_;
  std::string incoming_bytes_;
  std::deque<raft::Entry>
      log_;  // contiguous; may start at or below snapshot index (trailing entries)
  std::vector<Op> staged_;
  std::vector<std::vector<Op>> written_;  // WAL batches not yet covered by a sync, in order
};

}  // namespace ckv::sim
