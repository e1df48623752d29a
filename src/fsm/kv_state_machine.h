// The replicated key-value map: applies committed commands, serves reads, takes snapshots without stalling writes.
//
// Thread safety: apply(), skip(), restore() and begin_snapshot() are called by
// the Raft thread; end_snapshot() by the snapshot writer thread; get() and
// size() from any thread. Readers share a lock and never wait for each other;
// a writer holds the lock for one map operation.
//
// Snapshots (why writes do not stall): begin_snapshot() freezes the base map
// in O(1) and from then on writes go to an overlay (tombstones for deletes)
// while the writer thread serializes the frozen base without any lock.
// end_snapshot(), on that same thread, folds the overlay back in batches of
// kFoldBatch keys, releasing the lock between batches; meanwhile new writes
// go straight to the base and drop their key from the overlay, so the
// overlay never hides a newer value, and a writer blocked on the lock goes
// before the next batch. The longest a write can wait is one batch
// (bench/fsm_snapshot_stall: 1M keys, longest write during a snapshot
// ~0.6 ms).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "fsm/command.h"

namespace ckv::fsm {

class KvStateMachine {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;

  // Applies one committed command. index must grow; re-applying an index at
  // or below applied_index() is ignored (replay after restart is idempotent).
  void apply(uint64_t index, const Command& c);
  // Records that index was applied without changing the map (no-ops, config entries).
  void skip(uint64_t index);

  std::optional<std::string> get(std::string_view key) const;
  uint64_t applied_index() const;
  size_t size() const;

  // A consistent, immutable view for a snapshot writer on another thread.
  // Valid until end_snapshot(); at most one at a time: call begin_snapshot()
  // again only after end_snapshot() returned.
  struct SnapshotView {
    const Map* map;
    uint64_t index;
  };
  SnapshotView begin_snapshot();
  void end_snapshot();
  static constexpr size_t kFoldBatch = 256;
  static constexpr int kMaxFoldYields = 10000;

  // Replaces all state (InstallSnapshot or restart). No snapshot may be in progress.
  void restore(Map map, uint64_t index);

 private:
  bool contains_locked(std::string_view key) const;  // requires mu_

  mutable std::shared_mutex mu_;
  std::atomic<int> waiting_writers_{0};  // apply() calls blocked on mu_; the fold lets them in first
  Map base_;
  // While a snapshot is being written: key -> new value, or nullopt if deleted.
  std::map<std::string, std::optional<std::string>, std::less<>> overlay_;
  enum class Phase : unsigned char { kNormal, kSnapshotting, kFolding };
  Phase phase_ = Phase::kNormal;
  uint64_t applied_ = 0;
  size_t live_size_ = 0;
};

}  // namespace ckv::fsm
