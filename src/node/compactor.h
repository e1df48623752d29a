// Auto-compaction (etcd's -auto-compaction-mode/-retention): when the leader proposes a compaction, and to which revision.
//
// History in the MVCC store grows with every write until it is compacted;
// etcd bounds it with a compactor on the leader, and so do we, with etcd
// 3.4's rules:
//  - periodic, retention P: every P/10 (at most every 6 minutes) the
//    compactor samples the store's revision; every P (at most every hour),
//    starting P after start, it compacts to the oldest sample it keeps,
//    the revision of about P ago.
//  - revision, retention N: every 5 minutes it compacts to current - N,
//    unless that is <= 0 or the revision it compacted to last time.
// Every node samples (so a new leader knows the revisions of the last
// period at once); only the leader proposes, as a CompactionRequest in the
// log, so compaction stays a replicated, deterministic command.
//
// Pure: no clock or thread. The node calls tick() with its monotonic clock
// (never the wall clock: a clock step must not compact early).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "common/status.h"

namespace ckv::node {

struct AutoCompactionOptions {
  enum class Mode : unsigned char { kOff, kPeriodic, kRevision };
  Mode mode = Mode::kOff;
  int64_t retention_ms = 0;         // periodic
  int64_t retention_revisions = 0;  // revision
};

// etcd's flag syntax: mode "periodic" (default) or "revision"; retention
// "0" (off), in periodic mode a bare integer of hours or a Go duration
// ("1h30m", "90s", "1.5h"), in revision mode a revision count. kInvalid with
// etcd's wording on anything else. Where we differ: etcd 3.4 also takes a
// duration in revision mode (read as that many nanoseconds' worth of
// revisions); we refuse it.
Result<AutoCompactionOptions> parse_auto_compaction(const std::string& mode,
                                                    const std::string& retention);

// A Go time.ParseDuration subset that covers what operators write: one or
// more <decimal number><unit>, units ns, us (µs), ms, s, m, h, optional sign.
// Returns milliseconds (sub-millisecond parts are dropped).
Result<int64_t> parse_go_duration_ms(const std::string& s);

class Compactor {
 public:
  // etcd's periodic compactor samples 10 times per period...
  static constexpr int64_t kSamplesPerPeriod = 10;
  // ...and compacts at least once an hour however long the retention.
  static constexpr int64_t kMaxCompactIntervalMs = int64_t{60} * 60 * 1000;
  // etcd's revision compactor checks every 5 minutes.
  static constexpr int64_t kRevisionCheckIntervalMs = int64_t{5} * 60 * 1000;

  explicit Compactor(AutoCompactionOptions o) : o_(o) {}

  // Called regularly (every Raft tick). Returns the revision the leader
  // should compact to now, if any: only when leader, and never one at or
  // below compact_revision (that one is done already).
  std::optional<int64_t> tick(int64_t now_ms, int64_t revision, int64_t compact_revision,
                              bool leader);

 private:
  std::optional<int64_t> tick_periodic(int64_t now_ms, int64_t revision, int64_t compact_revision,
                                       bool leader);
  std::optional<int64_t> tick_revision(int64_t now_ms, int64_t revision, int64_t compact_revision,
                                       bool leader);

  AutoCompactionOptions o_;
  bool started_ = false;
  int64_t next_check_ms_ = 0;
  // Periodic: the samples, oldest first (at most period / sample interval + 1).
  std::deque<int64_t> samples_;
  int64_t last_success_ms_ = 0;
  bool first_compaction_done_ = false;
  // Revision: what it compacted to last.
  int64_t last_revision_ = 0;
};

}  // namespace ckv::node
