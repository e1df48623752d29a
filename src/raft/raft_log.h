// The core's in-memory copy of the log: entries (offset, last], with the term at offset when known.
#pragma once

#include <cstdint>
#include <vector>

#include "raft/types.h"

namespace ckv::raft {

// Holds entries with index in (offset(), last_index()]. Entries at or below
// offset were compacted into a snapshot. The term at offset is known when the
// offset is the snapshot index or was reached by compaction; after a restart
// that kept trailing entries before the snapshot it may be unknown (0).
class RaftLog {
 public:
  // Replaces everything: entries must be contiguous and start at offset + 1.
  void reset(Index offset, Term offset_term, std::vector<Entry> entries);

  Index offset() const { return offset_; }
  Index last_index() const { return offset_ + entries_.size(); }
  Term last_term() const { return term_at(last_index()); }
  // Term of entry i; 0 when i is compacted away, unknown, or beyond the end.
  // term_at(0) is 0 (the empty log's "entry 0").
  Term term_at(Index i) const;
  bool matches(Index i, Term t) const { return term_at(i) == t && (t != 0 || i == 0); }
  // §5.4.1: is a log ending at (last_index, last_term) at least as up-to-date as ours?
  bool is_up_to_date(Index last_index, Term last_term) const;

  const Entry& at(Index i) const;  // requires offset < i <= last_index
  const std::vector<Entry>& entries() const { return entries_; }

  void append(Entry e);  // e.index must be last_index() + 1
  // Removes every entry with index >= i (i > offset).
  void truncate_from(Index i);
  // Drops entries up to and including i (offset < i <= last_index).
  void compact_to(Index i);

  // Entries [lo, hi) but at most max_entries and about max_bytes (always at
  // least one entry when lo < hi). Requires offset < lo.
  std::vector<Entry> slice(Index lo, Index hi, uint64_t max_bytes, uint64_t max_entries) const;

  // Largest index <= i whose term is <= t; stops at offset() when the scan
  // reaches the compacted part (whose terms are unknown). Both sides
  // of the fast log repair use it (§5.3's optimization, as etcd does it): the
  // follower answers a failed consistency check at (i, t) with this index and
  // its term, and the leader applies it to its own log to find where the two
  // logs can agree, skipping a whole term of mismatches per round trip.
  Index last_index_with_term_at_most(Term t, Index i) const;

 private:
  Index offset_ = 0;
  Term offset_term_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace ckv::raft
