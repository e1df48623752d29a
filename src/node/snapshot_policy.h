// When a node takes its own snapshot: after snapshot_threshold entries, and for a large state only once the log since the last snapshot is a fair share of it.
//
// A snapshot rewrites the whole state machine, so taking one every
// snapshot_threshold entries costs O(state) per that many writes: with a
// 60 MiB state and 8192 writes a second, 60 MiB/s of disk writes per node,
// which the log's fsyncs queue behind. Past kSizeRuleFloorBytes a snapshot
// also waits until the entries applied since the last one add up to
// 1/kLogFraction of its size, so snapshots write at most kLogFraction bytes
// per byte of log; kLogBytesCap bounds that wait, and with it the log kept
// in memory and replayed at a restart. Smaller states snapshot on the entry
// count alone, as they always did (the reference's SnapshotThreshold).
#pragma once

#include <algorithm>
#include <cstdint>

namespace ckv::node {

struct SnapshotPolicy {
  static constexpr uint64_t kSizeRuleFloorBytes = uint64_t{4} << 20;
  static constexpr uint64_t kLogFraction = 4;
  static constexpr uint64_t kLogBytesCap = uint64_t{256} << 20;

  uint64_t threshold_entries = 8192;  // NodeOptions::snapshot_threshold; 0: never

  // entries and log_bytes: applied since the last snapshot began (its entry
  // data); last_snapshot_bytes: that snapshot's file size (0: none yet).
  bool due(uint64_t entries, uint64_t log_bytes, uint64_t last_snapshot_bytes) const {
    if (threshold_entries == 0 || entries < threshold_entries) return false;
    if (last_snapshot_bytes < kSizeRuleFloorBytes) return true;
    return log_bytes >= std::min(last_snapshot_bytes / kLogFraction, kLogBytesCap);
  }
};

}  // namespace ckv::node
