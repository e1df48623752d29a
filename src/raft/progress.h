// What a leader tracks per follower: match/next indexes, replication state and the in-flight window.
#pragma once

#include <cstdint>
#include <deque>

#include "raft/types.h"

namespace ckv::raft {

struct Progress {
  enum class State : uint8_t {
    kProbe,      // unknown match point: one append at a time until one succeeds
    kReplicate,  // known match point: stream appends optimistically, up to the window
    kSnapshot,   // behind the compacted log: InstallSnapshot in progress
  };

  Index match = 0;  // highest index known to be replicated there
  Index next = 1;   // next index to send
  State state = State::kProbe;
  bool probe_sent = false;     // kProbe: an append is outstanding, wait for its answer or a heartbeat
  bool recent_active = false;  // answered since the last check-quorum round
  std::deque<Index> inflight;  // kReplicate: last index of each unacknowledged append, ascending
  int stall_ticks = 0;         // kReplicate: ticks without an append answer while appends are in flight
  // The highest commit index any message to this follower carried, so that
  // a commit it has not heard of is sent at once (Raft::flush) and one it
  // has is not sent again.
  Index commit_sent = 0;

  // kSnapshot: which snapshot is being sent and the offset the follower
  // acknowledged; snapshot_idle_ticks counts ticks since the last answer.
  Index snapshot_index = 0;
  uint64_t snapshot_offset = 0;
  int snapshot_idle_ticks = 0;

  void become_probe();
  void become_replicate();
  void become_snapshot(Index snapshot_index);
  // Paused progresses get no new appends (heartbeats still flow).
  bool paused(uint64_t max_inflight) const;
  // Acknowledges every in-flight append that ends at or before index.
  void free_inflight_to(Index index);
  const char* state_name() const;
};

}  // namespace ckv::raft
