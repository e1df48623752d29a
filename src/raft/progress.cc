// Per-follower replication progress (see progress.h).
#include "raft/progress.h"

#include <algorithm>

namespace ckv::raft {

void Progress::become_probe() {
  state = State::kProbe;
  probe_sent = false;
  inflight.clear();
  stall_ticks = 0;
  next = match + 1;
  // What was sent past match may have been lost: tell the commit again.
  commit_sent = std::min(commit_sent, match);
}

void Progress::become_replicate() {
  state = State::kReplicate;
  probe_sent = false;
  inflight.clear();
  stall_ticks = 0;
  next = match + 1;
  // What was sent past match may have been lost: tell the commit again.
  commit_sent = std::min(commit_sent, match);
}

void Progress::become_snapshot(Index index) {
  state = State::kSnapshot;
  probe_sent = false;
  inflight.clear();
  stall_ticks = 0;
  snapshot_index = index;
  snapshot_offset = 0;
  snapshot_idle_ticks = 0;
}

bool Progress::paused(uint64_t max_inflight) const {
  switch (state) {
    case State::kProbe: return probe_sent;
    case State::kReplicate: return inflight.size() >= max_inflight;
    case State::kSnapshot: return true;
  }
  return true;
}

void Progress::free_inflight_to(Index index) {
  while (!inflight.empty() && inflight.front() <= index) inflight.pop_front();
}

const char* Progress::state_name() const {
  switch (state) {
    case State::kProbe: return "probe";
    case State::kReplicate: return "replicate";
    case State::kSnapshot: return "snapshot";
  }
  return "unknown";
}

}  // namespace ckv::raft
