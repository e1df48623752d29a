// A seed's fault profile: how often and how hard the simulator injects each fault (fixed by default, drawn per seed in swarm mode).
#pragma once

#include <cstdint>
#include <string>

#include "sim_network.h"
#include "sim_rng.h"

namespace ckv::sim {

// Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012; TigerBeetle's
// VOPR and FoundationDB's simulation do the same): instead of one mix of
// faults for every seed, each seed draws its own mix, with some faults
// switched off and others turned up to extremes. One fixed mix explores the
// middle of the space well and its corners never: a bug that needs many
// short terms, or a leader isolated for seconds while it keeps accepting
// writes, hides behind a mix that always also crashes and reconfigures.
//
// The defaults below are the simulator's classic mix; with them a seed
// replays exactly as it did before swarm mode existed (the regression seeds
// depend on that).
struct FaultProfile {
  bool swarm = false;

  // Chaos step: per-mille chance of each action (the rest of 1000 does nothing).
  uint32_t write_pm = 400;
  // Chance that a write goes to a random live node rather than a leader.
  double write_anywhere = 0.3;
  uint32_t read_pm = 150;
  uint32_t crash_pm = 6;
  uint32_t arm_crash_pm = 4;  // a crash armed to strike inside the node's next Ready
  uint32_t partition_pm = 8;
  uint32_t network_pm = 5;  // change of network weather
  uint32_t membership_pm = 15;
  uint32_t transfer_pm = 5;
  uint32_t batch_pm = 3;      // a node starts/stops batching its Readies
  uint32_t byzantine_pm = 0;  // the Byzantine-lite peer forges a message (off unless --byzantine)
  uint64_t step_min_ms = 2;   // gap between chaos steps: the client load
  uint64_t step_max_ms = 15;

  // Crashes: downtime, sometimes long.
  uint64_t down_min_ms = 20;
  uint64_t down_max_ms = 1000;
  double long_down = 0.2;
  uint64_t long_down_min_ms = 1000;
  uint64_t long_down_max_ms = 4000;
  // Chance that a crash, an armed crash or a partition picks the leader
  // rather than a random node (0 = always random, the classic mix).
  double leader_bias = 0.0;
  // Armed crashes draw from CrashPoint 1..max_crash_point; the classic mix
  // stops before kMidEarlySend (swarm only), and includes kInStorage.
  uint32_t max_crash_point = 8;

  // Partitions: weights of isolate / split / asymmetric / one-way, and how long they last.
  uint32_t shape_weight[4] = {1, 1, 1, 1};
  uint64_t heal_min_ms = 50;
  uint64_t heal_max_ms = 3000;

  // Network: the weather between changes (calm by default) and how wild changes get.
  NetworkParams base_net;
  double net_scale = 1.0;  // multiplies loss, duplication and delays of a weather change

  // Disk: a node that batches Readies handles them this long after its
  // input (the time an fsync takes); initially_slow = chance a node starts so.
  uint64_t defer_min_us = 100;
  uint64_t defer_max_us = 3000;
  double initially_slow = 0.0;

  // Timing: election timeout in ticks (heartbeat_ticks is drawn with the
  // other Raft options), and per-node clock drift.
  int election_ticks = 10;
  uint64_t tick_jitter_pct = 5;
  // Overrides of the per-seed Raft options (-1 = keep the classic draw):
  // without check-quorum a partitioned leader stays leader, and reads on it
  // (read_on_leader = chance a read targets a leader) test ReadIndex.
  int check_quorum = -1;
  double read_on_leader = 0.0;

  // Snapshots: applied entries between a node's snapshots.
  uint64_t snap_gap_first = 100;
  uint64_t snap_gap_min = 50;
  uint64_t snap_gap_max = 200;

  // Membership churn: extra members beyond the target voter count (learners
  // or over-promoted voters), the fewest voters a removal may leave (0 =
  // target - 1), and the chance to promote a caught-up learner past the target.
  uint64_t max_extra_members = 2;
  uint64_t min_voters_left = 0;
  double promote_extra = 0.3;
  uint64_t over_promote = 0;  // promotions past the target stop at target + 1 + over_promote voters
  // Membership changes at their most fragile moments: right after a node
  // wins an election (before its term's first entry commits), a second
  // change straight after the first (refused unless the core is wrong), and
  // the leader crashing right after it sent the change to some followers.
  double conf_on_election = 0.0;
  double conf_burst = 0.0;
  double conf_crash = 0.0;

  // Draws a profile from wide ranges, including extreme corners. Uses its
  // own stream derived from the seed, so the rest of the run's draws are
  // unchanged in shape.
  static FaultProfile draw(uint64_t seed);
  // One line for traces and failure reports.
  std::string describe() const;
};

}  // namespace ckv::sim
