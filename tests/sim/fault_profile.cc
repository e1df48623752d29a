// Draws a swarm fault profile from a seed and prints it.
#include "fault_profile.h"

#include <algorithm>

#include "sim_trace.h"

namespace ckv::sim {

namespace {
using ull = unsigned long long;
constexpr uint64_t kMs = 1000;
constexpr uint64_t kProfileSalt = 0x5377'61'726d;  // "Swarm": the profile's own stream

// Roughly log-uniform in [lo, hi]: small and large values equally likely, so
// the extremes of a wide range are drawn as often as its middle.
uint64_t log_range(SimRng& rng, uint64_t lo, uint64_t hi) {
  // Bands [lo, 2lo), [2lo, 4lo), ... up to hi (lo >= 1): pick a band, then a value in it.
  uint64_t bands = 1;
  for (uint64_t x = lo * 2; x <= hi; x *= 2) ++bands;
  uint64_t band_lo = lo << rng.range(0, bands - 1);
  return rng.range(band_lo, std::min(hi, band_lo * 2 - 1));
}

// A fault is off for a good share of seeds: the other faults then get the
// cluster to themselves (the point of swarm testing).
uint32_t maybe_off(SimRng& rng, double off, uint64_t lo, uint64_t hi) {
  if (rng.chance(off)) return 0;
  return static_cast<uint32_t>(log_range(rng, lo, hi));
}
}  // namespace

FaultProfile FaultProfile::draw(uint64_t seed) {
  SimRng rng(derive_seed(seed, kProfileSalt));
  FaultProfile p;
  p.swarm = true;

  // Client load: from a trickle to a flood (one action per 1-40 ms).
  p.write_pm = static_cast<uint32_t>(rng.range(50, 700));
  p.read_pm = maybe_off(rng, 0.15, 10, 400);
  p.step_min_ms = rng.range(1, 5);
  p.step_max_ms = p.step_min_ms + log_range(rng, 1, 35);

  p.crash_pm = maybe_off(rng, 0.25, 1, 60);
  p.arm_crash_pm = maybe_off(rng, 0.3, 1, 40);
  p.partition_pm = maybe_off(rng, 0.25, 1, 60);
  p.network_pm = maybe_off(rng, 0.3, 1, 40);
  p.membership_pm = maybe_off(rng, 0.3, 1, 120);
  p.transfer_pm = maybe_off(rng, 0.35, 1, 80);  // many short terms
  p.batch_pm = maybe_off(rng, 0.4, 1, 20);
  // The weights must leave room for a quiet remainder (and never exceed 1000).
  uint32_t total = p.write_pm + p.read_pm + p.crash_pm + p.arm_crash_pm + p.partition_pm +
                   p.network_pm + p.membership_pm + p.transfer_pm + p.batch_pm;
  if (total > 1000) {
    double f = 1000.0 / total;
    for (uint32_t* w : {&p.write_pm, &p.read_pm, &p.crash_pm, &p.arm_crash_pm, &p.partition_pm,
                        &p.network_pm, &p.membership_pm, &p.transfer_pm, &p.batch_pm}) {
      *w = static_cast<uint32_t>(*w * f);
    }
  }

  // Crashes: brief blips to multi-second outages; often aimed at the leader
  // (a leader crashing right after it sent to one follower: kMidEarlySend).
  p.down_min_ms = log_range(rng, 1, 200);
  p.down_max_ms = p.down_min_ms + log_range(rng, 1, 2000);
  p.long_down = rng.chance(0.5) ? 0.0 : rng.range(1, 50) / 100.0;
  p.long_down_min_ms = 1000;
  p.long_down_max_ms = rng.range(1000, 8000);
  p.leader_bias = rng.chance(0.3) ? 0.0 : rng.range(20, 95) / 100.0;
  p.max_crash_point = 9;

  // Partitions: a shape may be switched off; long ones isolate a leader
  // holding uncommitted entries (leader_bias + isolate + writes keep coming).
  for (uint32_t& w : p.shape_weight)
    w = rng.chance(0.3) ? 0 : static_cast<uint32_t>(rng.range(1, 4));
  if (p.shape_weight[0] + p.shape_weight[1] + p.shape_weight[2] + p.shape_weight[3] == 0)
    p.shape_weight[0] = 1;
  p.heal_min_ms = log_range(rng, 5, 500);
  p.heal_max_ms = p.heal_min_ms + log_range(rng, 10, 10000);

  // Network weather: usually calm between changes, sometimes always lossy,
  // duplicating or slow; changes scaled up to 3x harsher.
  if (rng.chance(0.4)) {
    p.base_net.loss = rng.chance(0.5) ? 0.0 : rng.range(1, 30) / 100.0;
    p.base_net.duplicate = rng.chance(0.5) ? 0.0 : rng.range(1, 30) / 100.0;
    p.base_net.min_delay_us = log_range(rng, 100, 5000);
    p.base_net.max_delay_us = p.base_net.min_delay_us + log_range(rng, 100, 80000);
    p.base_net.long_delay = rng.chance(0.5) ? 0.0 : rng.range(1, 10) / 100.0;
    p.base_net.long_delay_max_us = log_range(rng, 10000, 1000000);
  }
  p.net_scale = rng.range(5, 30) / 10.0;

  // Disk latency: how late a batching node handles its Ready.
  p.defer_min_us = log_range(rng, 10, 1000);
  p.defer_max_us = p.defer_min_us + log_range(rng, 10, 20000);
  p.initially_slow = rng.chance(0.5) ? 0.0 : rng.range(10, 100) / 100.0;

  // Election timeout vs heartbeat: short timeouts (3 ticks) with slow
  // networks give many short terms; long ones (40) give stable leaders.
  static const int kElectionTicks[] = {3, 4, 6, 10, 10, 20, 40};
  p.election_ticks = kElectionTicks[rng.range(0, 6)];
  p.tick_jitter_pct = rng.range(0, 30);
  p.check_quorum = rng.chance(0.35) ? 0 : 1;
  p.read_on_leader = rng.chance(0.3) ? 0.0 : rng.range(30, 100) / 100.0;

  // Snapshots: from every couple of entries (InstallSnapshot all the time) to rare.
  p.snap_gap_min = log_range(rng, 1, 100);
  p.snap_gap_max = p.snap_gap_min + log_range(rng, 1, 400);
  p.snap_gap_first = rng.range(p.snap_gap_min, p.snap_gap_max);

  // Membership churn: sometimes shrink to one or two voters, grow past the target.
  p.max_extra_members = rng.range(0, 3);
  // Down to one voter too: removing the leader of two voters once
  // deadlocked the core (seed 2000 5 swarm; fixed: a voter whose removal is
  // uncommitted still campaigns).
  p.min_voters_left = rng.chance(0.5) ? 0 : rng.range(1, 3);
  p.promote_extra = rng.range(0, 100) / 100.0;
  p.over_promote = rng.range(0, 2);
  p.conf_on_election = rng.chance(0.4) ? 0.0 : rng.range(10, 90) / 100.0;
  p.conf_burst = rng.chance(0.4) ? 0.0 : rng.range(10, 90) / 100.0;
  p.conf_crash = rng.chance(0.4) ? 0.0 : rng.range(5, 60) / 100.0;
  return p;
}

std::string FaultProfile::describe() const {
  if (!swarm)
    return byzantine_pm ? fmt("classic fault mix + byzantine %u", byzantine_pm)
                        : "classic fault mix";
  return fmt(
      "swarm profile: per mille write %u read %u crash %u armed-crash %u partition %u network %u "
      "membership %u transfer %u batch %u byzantine %u; step %llu-%llu ms; down %llu-%llu ms (long "
      "%.2f up to "
      "%llu ms); leader bias %.2f; partition shapes %u/%u/%u/%u heal %llu-%llu ms; net loss %.2f "
      "dup %.2f delay %llu-%llu us stragglers %.2f (max %llu ms), changes x%.1f; disk %llu-%llu us "
      "(slow at start %.2f); election %d ticks, drift %llu%%, check-quorum %d, reads on leader "
      "%.2f; snapshot every %llu-%llu; churn "
      "extra %llu min-voters %llu promote %.2f (+%llu), on election %.2f burst %.2f crash %.2f",
      write_pm, read_pm, crash_pm, arm_crash_pm, partition_pm, network_pm, membership_pm,
      transfer_pm, batch_pm, byzantine_pm, ull(step_min_ms), ull(step_max_ms), ull(down_min_ms),
      ull(down_max_ms), long_down, ull(long_down_max_ms), leader_bias, shape_weight[0],
      shape_weight[1], shape_weight[2], shape_weight[3], ull(heal_min_ms), ull(heal_max_ms),
      base_net.loss, base_net.duplicate, ull(base_net.min_delay_us), ull(base_net.max_delay_us),
      base_net.long_delay, ull(base_net.long_delay_max_us / kMs), net_scale, ull(defer_min_us),
      ull(defer_max_us), initially_slow, election_ticks, ull(tick_jitter_pct), check_quorum,
      read_on_leader, ull(snap_gap_min), ull(snap_gap_max), ull(max_extra_members),
      ull(min_voters_left), promote_extra, ull(over_promote), conf_on_election, conf_burst,
      conf_crash);
}

}  // namespace ckv::sim
