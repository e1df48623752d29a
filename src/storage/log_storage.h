// The node's durable Raft log and hard state: the interface the node uses, implemented by the WAL (wal/wal.h).
//
// Contract (what the Ready loop relies on, raft.h "persist before send"):
// when persist() returns OK everything in it survives a crash; a crash
// before that keeps either none of it or, never, part of it. Entries are
// contiguous; load_entries() returns [first kept, last] ascending.
//
// Thread safety: one thread (the node's Raft thread) calls everything.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "raft/message_checks.h"
#include "raft/types.h"

namespace ckv::storage {

// The highest term a stored record may hold. Terms grow by one per election;
// nothing legitimate gets near 2^62, and a term near 2^64 could wrap when
// incremented. The core's ceiling (raft/message_checks.h): above it is corruption.
inline constexpr raft::Term kMaxStoredTerm = raft::kMaxTerm;

class LogStorage {
 public:
  virtual ~LogStorage() = default;

  // Hard state as last persisted; all zero on a new store.
  virtual Result<raft::HardState> load_hard_state() = 0;
  // Every stored entry at or above the compaction point, ascending and
  // contiguous. Damage is kCorrupt naming the file (and offset where there is one).
  virtual Result<std::vector<raft::Entry>> load_entries() = 0;

  // Durable when it returns OK (except a change of the hard state's commit
  // index alone, which a crash may lose until the next durable call:
  // commitIndex is volatile, Raft paper Figure 2). In this order: if
  // drop_all, delete every entry (an installed snapshot replaces the log,
  // §7); delete entries with index >= entries.front().index (a leader
  // overwrote them, §5.3); append entries; store the hard state if given. kNoSpace when the disk is full
  // (nothing of it is then durable; the caller may retry the same call).
  virtual Status persist(const std::vector<raft::Entry>& entries,
                         const std::optional<raft::HardState>& hard_state, bool drop_all) = 0;
  // Entries with index < first_to_keep are no longer needed (after a snapshot).
  virtual Status compact(raft::Index first_to_keep) = 0;

  // Small named records kept beside the log (the node's identity).
  virtual Result<std::optional<std::string>> get_meta(const std::string& key) = 0;
  virtual Status put_meta(const std::string& key, const std::string& value) = 0;

  // Where the log lives (a file or directory), for messages.
  virtual const std::string& path() const = 0;
};

}  // namespace ckv::storage
