// The simulation loop: one seeded RNG and a discrete event queue drive nodes, network, faults and clients.
#include "sim_cluster.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "byzantine.h"
#include "sim_trace.h"

namespace ckv::sim {

using raft::ConfChange;
using raft::ConfChangeType;
using raft::Membership;
using raft::Message;
using raft::NodeId;
using raft::StateRole;

namespace {
using ull = unsigned long long;
constexpr uint64_t kMs = 1000;  // the clock counts microseconds
// A run that has not finished after this many events is stuck (e.g. a Ready
// that never drains); stop it instead of hanging a sweep.
constexpr uint64_t kMaxEvents = 5'000'000;
constexpr uint64_t kMaxReadiesAtOneInstant = 1000;
// Every Nth Ready of a node also scans its whole in-memory log (Log Matching);
// the new entries of every Ready are checked always.
constexpr uint64_t kFullLogCheckEvery = 4;

}  // namespace

SimResult run_simulation(const SimConfig& config) {
  SimCluster cluster(config);
  return cluster.run();
}

SimCluster::SimCluster(const SimConfig& config)
    : config_(config),
      profile_(config.swarm ? FaultProfile::draw(config.seed) : FaultProfile{}),
      rng_(derive_seed(config.seed, 0)),
      trace_(config.echo, config.tail),
      checker_(config.persist_checks) {
  // Small limits so that every mechanism really runs: several InstallSnapshot
  // chunks, tiny in-flight windows, one-entry appends, overload refusals.
  if (config.byzantine) {
    // Its own stream, so that swarm profiles stay what they were.
    SimRng b(derive_seed(config.seed, 0xb12));
    profile_.byzantine_pm = config.swarm ? static_cast<uint32_t>(b.range(1, 60)) : 20;
  }
  options_.election_ticks = profile_.election_ticks;
  options_.heartbeat_ticks = static_cast<int>(rng_.pick(std::vector<uint64_t>{1, 1, 2, 3}));
  // The core requires election_ticks > heartbeat_ticks; short swarm timeouts cap the heartbeat.
  if (options_.heartbeat_ticks >= options_.election_ticks)
    options_.heartbeat_ticks = options_.election_ticks - 1;
  options_.pre_vote = rng_.chance(0.85);
  options_.check_quorum = rng_.chance(0.85);
  options_.max_append_bytes = rng_.pick(std::vector<uint64_t>{1 << 20, 256, 2048});
  options_.max_append_entries = rng_.pick(std::vector<uint64_t>{4096, 1, 3, 32});
  options_.max_inflight_appends = rng_.pick(std::vector<uint64_t>{64, 1, 2, 8});
  options_.snapshot_chunk_bytes = rng_.range(64, 256);
  options_.snapshot_trailing_entries = rng_.range(5, 20);
  options_.max_uncommitted_bytes = rng_.pick(std::vector<uint64_t>{64 << 20, 4096});
  if (profile_.check_quorum >= 0) options_.check_quorum = profile_.check_quorum == 1;
}

void SimCluster::schedule(uint64_t delay_us, Event ev) {
  queue_.emplace(std::make_pair(now_us_ + delay_us, seq_++), std::move(ev));
}

SimCluster::Slot* SimCluster::slot(NodeId id) {
  auto it = slots_.find(id);
  return it == slots_.end() ? nullptr : &it->second;
}

SimNode& SimCluster::add_node(NodeId id) {
  NodeEnv env;
  env.trace = &trace_;
  env.checker = &checker_;
  env.now_us = &now_us_;
  env.send = [this](Message m) { send(std::move(m)); };
  env.on_write_acked = [this](uint64_t) { workload_.on_acked(); };
  env.on_read_index = [this](NodeId node, uint64_t read_id, uint64_t start_us, NodeId leader,
                             raft::Term term) {
    check_read_confirmed(node, read_id, start_us, leader, term);
  };
  env.leases = config_.leases;
  env.on_lease_ack = [this](uint64_t lease, uint64_t asked_ms) { on_lease_ack(lease, asked_ms); };
  env.on_lease_applied = [this](NodeId node, const Command& op, raft::Index index) {
    on_lease_applied(node, op, index);
  };
  env.snapshot_gap_first = profile_.snap_gap_first;
  env.snapshot_gap_min = profile_.snap_gap_min;
  env.snapshot_gap_max = profile_.snap_gap_max;
  Slot& s = slots_[id];
  s.node = std::make_unique<SimNode>(id, options_, config_.seed, std::move(env));
  if (profile_.initially_slow > 0) s.defer_ready = rng_.chance(profile_.initially_slow);
  return *s.node;
}

void SimCluster::start_node(Slot& s) {
  s.node->start();
  s.ready_scheduled = false;
  // Clocks of different nodes run at slightly different rates (±5%).
  s.tick_us = config_.tick_ms * kMs *
              rng_.range(100 - profile_.tick_jitter_pct, 100 + profile_.tick_jitter_pct) / 100;
  Event tick;
  tick.type = EventType::kTick;
  tick.node = s.node->id();
  tick.incarnation = s.node->incarnation();
  schedule(rng_.range(0, s.tick_us), std::move(tick));
  after_input(s);
}

void SimCluster::crash_node(Slot& s) {
  s.node->crash();
  ++stats_.crashes;
}

void SimCluster::check_follower_commit(Slot& s, const Message& m, raft::Index before) {
  const raft::Raft& r = s.node->raft();
  if (!config_.persist_checks || r.term() != m.term || r.commit_index() <= before) return;
  const raft::Index bound = std::min<raft::Index>(m.commit, m.log_index + m.entries.size());
  if (r.commit_index() > bound) {
    checker_.fail("Follower commit bound (Figure 2)",
                  fmt("n%llu moved commit_index %llu -> %llu on an append from n%llu (prev %llu, "
                      "%zu entries, leader commit %llu): beyond min(leaderCommit, last new entry) "
                      "= %llu",
                      ull(s.node->id()), ull(before), ull(r.commit_index()), ull(m.from),
                      ull(m.log_index), m.entries.size(), ull(m.commit), ull(bound)));
  }
}

void SimCluster::check_read_confirmed(NodeId node, uint64_t read_id, uint64_t start_us,
                                      NodeId leader, raft::Term term) {
  if (!config_.persist_checks) return;
  Slot* ls = slot(leader);
  // A leader that crashed or moved on since it answered: its configuration
  // then is unknown here; the read is still checked for linearizability.
  if (ls == nullptr || !ls->node->alive() || ls->node->raft().term() != term) return;
  // The leader counted the voters of its configuration when it resolved the
  // read; if that changed since the read began, which one it used is not
  // known here.
  if (ls->membership_changed_us >= start_us) return;
  const std::vector<NodeId> voters = ls->node->raft().membership().voters();
  size_t confirmed = 0;
  std::string who;
  for (NodeId v : voters) {
    auto it = answered_.find({v, leader, term});
    if (v == leader || (it != answered_.end() && it->second >= start_us)) {
      ++confirmed;
      who += fmt(" n%llu", ull(v));
    }
  }
  if (confirmed < voters.size() / 2 + 1) {
    checker_.fail("ReadIndex confirmation (§6.4)",
                  fmt("read #%llu on n%llu (started at %llu us) got a read index from leader "
                      "n%llu of term %llu, but only %zu of its %zu voters answered it since "
                      "(%s )",
                      ull(read_id), ull(node), ull(start_us), ull(leader), ull(term), confirmed,
                      voters.size(), who.c_str()));
  }
}

void SimCluster::check_conf_change_rule(Slot& s) {
  const raft::Raft& r = s.node->raft();
  if (!config_.persist_checks || r.role() != StateRole::kLeader) return;
  if (s.lead_incarnation != s.node->incarnation() || s.lead_term != r.term()) return;
  // The leader just appended a configuration entry (its log is the only way
  // a sitting leader's membership changes): find it and the one before.
  const std::vector<raft::Entry>& log = r.log_entries();
  raft::Index newest = 0, previous = 0;
  for (auto it = log.rbegin(); it != log.rend(); ++it) {
    if (it->type != raft::EntryType::kConfig) continue;
    if (newest == 0) {
      newest = it->index;
    } else {
      previous = it->index;
      break;
    }
  }
  if (newest == 0) return;
  // No earlier one in the log: it is at or below the log's start, compacted, hence committed.
  const raft::Index commit = r.commit_index();
  if (previous > commit) {
    checker_.fail("One membership change at a time (§4.1)",
                  fmt("leader n%llu of term %llu appended configuration %llu while configuration "
                      "%llu was not committed (commit %llu)",
                      ull(s.node->id()), ull(r.term()), ull(newest), ull(previous), ull(commit)));
  } else if (r.term_at(commit) != r.term()) {
    checker_.fail(
        "Membership change after a commit in the leader's term",
        fmt("leader n%llu of term %llu appended configuration %llu before committing an "
            "entry of its term (commit %llu has term %llu)",
            ull(s.node->id()), ull(r.term()), ull(newest), ull(commit), ull(r.term_at(commit))));
  }
}

void SimCluster::check_commit_durable(Slot& s) {
  const raft::Raft& r = s.node->raft();
  if (r.role() != StateRole::kLeader) return;
  const bool elected = !(s.lead_incarnation == s.node->incarnation() && s.lead_term == r.term());
  if (elected && !liveness_ && profile_.conf_on_election > 0 &&
      rng_.chance(profile_.conf_on_election)) {
    // Only a wrong core accepts this before the leader's first entry commits.
    pending_conf_leader_ = s.node->id();
  }
  const raft::Index c = r.commit_index();
  const bool sitting = s.lead_incarnation == s.node->incarnation() && s.lead_term == r.term();
  const raft::Index before = s.lead_commit;
  s.lead_incarnation = s.node->incarnation();
  s.lead_term = r.term();
  s.lead_commit = c;
  if (!sitting || c <= before) return;
  // Whatever the leader's bookkeeping says, an entry is committed only once
  // a majority of the voters hold it on disk: acknowledgements that were
  // lost to a crash, counted before the sync, or counted for a node that
  // does not vote must not count. (A snapshot at or past c also holds it.)
  const raft::Term t = r.term_at(c);
  const std::vector<NodeId> voters = r.membership().voters();
  size_t holders = 0;
  std::string who;
  for (NodeId v : voters) {
    Slot* vs = slot(v);
    if (vs == nullptr) continue;
    const SimDisk& d = vs->node->disk();
    if (d.term_at(c) == t || d.snapshot_meta().index >= c) {
      ++holders;
      who += fmt(" n%llu", ull(v));
    }
  }
  if (holders < voters.size() / 2 + 1) {
    checker_.fail(
        "Commit durability",
        fmt("leader n%llu of term %llu committed %llu/%llu, but only %zu of its %zu "
            "voters hold it on disk (%s )",
            ull(s.node->id()), ull(r.term()), ull(c), ull(t), holders, voters.size(), who.c_str()));
  }
}

void SimCluster::after_input(Slot& s) {
  if (!s.node->alive()) return;
  checker_.check_node(s.node->id(), s.node->raft());
  if (s.node->raft().membership_version() != s.seen_membership) {
    s.seen_membership = s.node->raft().membership_version();
    s.membership_changed_us = now_us_;
    check_conf_change_rule(s);
  }
  if (!checker_.failed()) check_commit_durable(s);
  if (pending_conf_leader_ == s.node->id()) {
    pending_conf_leader_ = raft::kNoNode;
    trace_.log(now_us_, "membership change on newly elected n%llu", ull(s.node->id()));
    do_membership(s.node.get());
  }
  if (checker_.failed() || s.ready_scheduled || !s.node->raft().has_ready()) return;
  s.ready_scheduled = true;
  Event ev;
  ev.type = EventType::kReady;
  ev.node = s.node->id();
  ev.incarnation = s.node->incarnation();
  // Usually the Ready is handled right away (still a separate event, so a
  // crash may fall in between); sometimes later, batching several inputs.
  schedule(s.defer_ready ? rng_.range(profile_.defer_min_us, profile_.defer_max_us) : 0,
           std::move(ev));
}

void SimCluster::send(Message m) {
  if (m.to == m.from) return;
  if (m.type == raft::MessageType::kHeartbeatResp || m.type == raft::MessageType::kAppendResp)
    answered_[{m.from, m.to, m.term}] = now_us_;
  std::vector<uint64_t> delays = net_.plan(rng_, m.from, m.to);
  if (trace_.enabled()) {
    trace_.log(now_us_, "send %s%s", describe(m).c_str(),
               delays.empty()      ? " (lost)"
               : delays.size() > 1 ? " (duplicated)"
                                   : "");
  }
  for (size_t k = 0; k < delays.size(); ++k) {
    Event ev;
    ev.type = EventType::kDeliver;
    ev.node = m.to;
    ev.msg = (k + 1 == delays.size()) ? std::move(m) : m;
    schedule(delays[k], std::move(ev));
  }
}

SimResult SimCluster::run() {
  // Founders: usually the full cluster; sometimes one voter that grows
  // through add-learner -> caught up -> promote.
  bool grow = rng_.chance(0.2);
  int founders = grow ? 1 : config_.nodes;
  Membership initial;
  for (int i = 1; i <= founders; ++i) {
    initial.members.push_back(raft::Member{static_cast<NodeId>(i), raft::MemberRole::kVoter,
                                           "node-" + std::to_string(i)});
  }
  next_id_ = static_cast<NodeId>(founders) + 1;
  net_.set_params(profile_.base_net);
  trace_.log(now_us_, "%s", profile_.describe().c_str());
  trace_.log(
      now_us_,
      "seed %llu: %d founder(s), target %d voters, %d steps; heartbeat_ticks %d pre_vote %d "
      "check_quorum %d "
      "max_append_bytes %llu max_append_entries %llu max_inflight %llu chunk %llu trailing %llu",
      ull(config_.seed), founders, config_.nodes, config_.steps, options_.heartbeat_ticks,
      options_.pre_vote, options_.check_quorum, ull(options_.max_append_bytes),
      ull(options_.max_append_entries), ull(options_.max_inflight_appends),
      ull(options_.snapshot_chunk_bytes), ull(options_.snapshot_trailing_entries));
  for (const raft::Member& m : initial.members) add_node(m.id).bootstrap(initial);
  for (const raft::Member& m : initial.members) start_node(*slot(m.id));
  Event chaos;
  chaos.type = EventType::kChaos;
  schedule(rng_.range(1, 10) * kMs, std::move(chaos));

  while (!done_ && !checker_.failed() && !queue_.empty()) {
    auto nh = queue_.extract(queue_.begin());
    now_us_ = nh.key().first;
    Event ev = std::move(nh.mapped());
    if (++events_ > kMaxEvents) {
      checker_.fail("Simulator runaway",
                    fmt("more than %llu events without finishing", ull(kMaxEvents)));
      break;
    }
    handle(ev);
  }
  if (!done_ && !checker_.failed())
    checker_.fail("Simulator", "event queue ran dry before the liveness check passed");

  SimResult r = stats_;
  r.ok = !checker_.failed();
  r.invariant = checker_.failed_invariant();
  r.failure = checker_.failure();
  r.trace_tail = trace_.tail();
  r.profile = profile_.describe();
  r.events = events_;
  r.sim_ms = now_us_ / kMs;
  r.writes_acked = workload_.acked();
  r.leaders = checker_.leaders_seen();
  r.max_commit = checker_.max_committed();
  r.forged = stats_.forged;
  r.lease_acks = stats_.lease_acks;
  r.lease_revokes = stats_.lease_revokes;
  for (const auto& [id, s] : slots_) {
    r.reads_served += s.node->reads_served();
    r.snapshots += s.node->snapshots_taken();
    r.torn_tails += s.node->torn_tails_cut();
    r.files_torn += s.node->file_system().stats().files_torn;
    r.power_cuts += s.node->file_system().stats().power_cuts;
  }
  return r;
}

void SimCluster::handle(Event& ev) {
  switch (ev.type) {
    case EventType::kTick: {
      Slot* s = slot(ev.node);
      if (s == nullptr || !s->node->alive() || s->node->incarnation() != ev.incarnation) return;
      s->node->raft().tick();
      if (config_.leases) s->node->drive_leases();
      after_input(*s);
      schedule(s->tick_us, std::move(ev));
      return;
    }
    case EventType::kDeliver: {
      Slot* s = slot(ev.msg.to);
      if (s == nullptr || !s->node->alive()) return;
      if (!net_.connected(ev.msg.from, ev.msg.to)) {
        if (trace_.enabled())
          trace_.log(now_us_, "drop (partitioned) %s", describe(ev.msg).c_str());
        return;
      }
      if (trace_.enabled()) trace_.log(now_us_, "recv %s", describe(ev.msg).c_str());
      if (ev.msg.type == raft::MessageType::kSnapshot && ev.msg.done) ++stats_.installs;
      if (ev.msg.type == raft::MessageType::kReadIndexResp && !ev.msg.reject)
        s->node->note_read_answer(ev.msg.context, ev.msg.from, ev.msg.term);
      s->node->heard_from(ev.msg.from);
      const raft::Index commit_before = s->node->raft().commit_index();
      s->node->raft().step(ev.msg);
      if (ev.msg.type == raft::MessageType::kAppend)
        check_follower_commit(*s, ev.msg, commit_before);
      after_input(*s);
      return;
    }
    case EventType::kReady: {
      Slot* s = slot(ev.node);
      if (s == nullptr || !s->node->alive() || s->node->incarnation() != ev.incarnation) return;
      s->ready_scheduled = false;
      if (!s->node->raft().has_ready()) return;
      if (++s->readies % kFullLogCheckEvery == 0)
        checker_.check_log(ev.node, s->node->raft(), s->node->disk().last_index());
      s->readies_at_instant = s->last_ready_us == now_us_ ? s->readies_at_instant + 1 : 0;
      s->last_ready_us = now_us_;
      if (s->readies_at_instant > kMaxReadiesAtOneInstant) {
        const raft::Raft& r = s->node->raft();
        checker_.fail(
            "Ready livelock",
            fmt("n%llu has_ready() is still true after %llu Ready/advance rounds at one instant "
                "with no new "
                "input (role %s term %llu commit %llu applied %llu last %llu stable-on-disk %llu, "
                "hard "
                "state on disk t%llu/v%llu/c%llu)",
                ull(ev.node), ull(kMaxReadiesAtOneInstant), raft::to_string(r.role()),
                ull(r.term()), ull(r.commit_index()), ull(r.applied_index()), ull(r.last_index()),
                ull(s->node->disk().last_index()), ull(s->node->disk().hard_state().term),
                ull(s->node->disk().hard_state().vote), ull(s->node->disk().hard_state().commit)));
        return;
      }
      bool alive = s->node->process_ready(rng_);
      if (alive) alive = s->node->maybe_snapshot(rng_);
      if (!alive) {
        ++stats_.crashes;
        if (!liveness_) {
          Event restart;
          restart.type = EventType::kRestart;
          restart.node = ev.node;
          // An armed crash restarts like any other (the classic mix keeps its old range).
          schedule((profile_.swarm ? rng_.range(profile_.down_min_ms, profile_.down_max_ms)
                                   : rng_.range(20, 1000)) *
                       kMs,
                   std::move(restart));
        }
        return;
      }
      after_input(*s);
      return;
    }
    case EventType::kChaos:
      if (liveness_) return;
      chaos_step();
      if (++steps_done_ >= config_.steps) {
        begin_liveness();
      } else {
        schedule(rng_.range(profile_.step_min_ms, profile_.step_max_ms) * kMs, std::move(ev));
      }
      return;
    case EventType::kRestart: {
      Slot* s = slot(ev.node);
      if (s == nullptr || s->retired || s->node->alive()) return;
      start_node(*s);
      return;
    }
    case EventType::kHeal: {
      auto it = partitions_.find(ev.aux);
      if (it == partitions_.end()) return;
      for (const auto& [from, to] : it->second) net_.restore(from, to);
      trace_.log(now_us_, "heal partition #%llu", ull(ev.aux));
      partitions_.erase(it);
      return;
    }
    case EventType::kRetire: {
      Slot* s = slot(ev.node);
      if (s == nullptr || s->retired) return;
      trace_.log(now_us_, "retire n%llu (its removal is committed)", ull(ev.node));
      if (s->node->alive()) s->node->crash();
      s->retired = true;
      return;
    }
    case EventType::kLiveness:
      liveness_step();
      if (!done_) schedule(10 * kMs, std::move(ev));
      return;
  }
}

std::vector<SimCluster::Slot*> SimCluster::live_slots() {
  std::vector<Slot*> out;
  for (auto& [id, s] : slots_) {
    if (!s.retired && s.node->alive()) out.push_back(&s);
  }
  return out;
}

SimNode* SimCluster::pick_leader() {
  std::vector<SimNode*> leaders;
  for (Slot* s : live_slots()) {
    if (s->node->raft().role() == StateRole::kLeader) leaders.push_back(s->node.get());
  }
  return leaders.empty() ? nullptr : rng_.pick(leaders);
}

SimNode* SimCluster::newest_leader() {
  SimNode* best = nullptr;
  for (Slot* s : live_slots()) {
    raft::Raft& r = s->node->raft();
    if (r.role() == StateRole::kLeader && (best == nullptr || r.term() > best->raft().term()))
      best = s->node.get();
  }
  return best;
}

void SimCluster::chaos_step() {
  check_removals();
  if (config_.leases && rng_.chance(0.15)) return lease_step();
  // Per mille: mostly client traffic; faults rare enough (a crash every ~1-2 s
  // of simulated time) that the cluster also makes progress between them.
  uint64_t roll = rng_.range(0, 999);
  const FaultProfile& p = profile_;
  uint64_t edge = p.write_pm;
  if (roll < edge) {
    // Mostly on a leader; often anywhere: followers forward to their
    // leader (raft.h forward_proposal), and nodes without one refuse.
    std::vector<Slot*> live = live_slots();
    SimNode* target = pick_leader();
    if ((target == nullptr || rng_.chance(p.write_anywhere)) && !live.empty())
      target = rng_.pick(live)->node.get();
    if (target != nullptr) {
      bool ok = workload_.write(rng_, *target);
      trace_.log(now_us_, "client write on n%llu: %s", ull(target->id()),
                 ok ? "proposed" : "refused");
    }
  } else if (roll < (edge += p.read_pm)) {
    std::vector<Slot*> live = live_slots();
    if (live.empty()) return;
    SimNode* target = nullptr;
    if (p.read_on_leader > 0 && rng_.chance(p.read_on_leader)) target = pick_leader();
    if (target == nullptr) target = rng_.pick(live)->node.get();
    SimNode& n = *target;
    bool ok = workload_.read(rng_, n, checker_.max_committed());
    trace_.log(now_us_, "client read on n%llu: %s", ull(n.id()),
               ok ? "started" : "no leader known");
  } else if (roll < (edge += p.crash_pm)) {
    do_crash();
  } else if (roll < (edge += p.arm_crash_pm)) {
    std::vector<Slot*> live = live_slots();
    if (live.empty()) return;
    SimNode& n = *pick_target(live)->node;
    auto cp = static_cast<CrashPoint>(rng_.range(1, p.max_crash_point));
    n.arm_crash(cp);
    trace_.log(now_us_, "arm crash of n%llu at its next Ready (%s)", ull(n.id()), to_string(cp));
  } else if (roll < (edge += p.partition_pm)) {
    do_partition();
  } else if (roll < (edge += p.network_pm)) {
    do_network_change();
  } else if (roll < (edge += p.membership_pm)) {
    do_membership();
  } else if (roll < (edge += p.transfer_pm)) {
    do_transfer();
  } else if (roll < (edge += p.byzantine_pm)) {
    do_forge();
  } else if (roll < (edge += p.batch_pm)) {
    std::vector<Slot*> live = live_slots();
    if (live.empty()) return;
    Slot* s = rng_.pick(live);
    s->defer_ready = !s->defer_ready;
    trace_.log(now_us_, "n%llu %s its Readies", ull(s->node->id()),
               s->defer_ready ? "batches" : "stops batching");
  }
}

// Leases: a client grants (on a leader), keeps its leases alive through
// whichever node it reaches (only a primary leader can acknowledge, after
// confirming it leads), and sometimes stops, so that leases expire too.
void SimCluster::lease_step() {
  const uint64_t roll = rng_.range(0, 99);
  std::vector<uint64_t> kept;
  for (const auto& [id, c] : lease_clients_) {
    if (c.kept && !c.revoked) kept.push_back(id);
  }
  if (roll < 15 || kept.empty()) {
    SimNode* leader = pick_leader();
    if (leader == nullptr || kept.size() >= 6) return;
    const uint64_t id = next_lease_++;
    const int64_t ttl_s = static_cast<int64_t>(rng_.range(1, 2));
    const bool ok = leader->grant(id, ttl_s);
    trace_.log(now_us_, "client grants lease %llu (ttl %llds) on n%llu: %s", ull(id),
               static_cast<long long>(ttl_s), ull(leader->id()), ok ? "proposed" : "refused");
    if (ok) lease_clients_[id] = LeaseClient{ttl_s, now_us_ / kMs, 0, true, false, 0};
  } else if (roll < 95) {
    const uint64_t id = rng_.pick(kept);
    std::vector<Slot*> live = live_slots();
    if (live.empty()) return;
    SimNode* target = rng_.chance(0.8) ? pick_leader() : nullptr;
    if (target == nullptr) target = rng_.pick(live)->node.get();
    const bool ok = target->keepalive(id);
    trace_.log(now_us_, "client keepalive of lease %llu on n%llu: %s", ull(id), ull(target->id()),
               ok ? "confirming" : "not primary");
  } else {
    const uint64_t id = rng_.pick(kept);
    lease_clients_[id].kept = false;
    trace_.log(now_us_, "client stops keeping lease %llu alive", ull(id));
  }
}

void SimCluster::on_lease_ack(uint64_t lease, uint64_t asked_ms) {
  auto it = lease_clients_.find(lease);
  if (it == lease_clients_.end()) return;
  LeaseClient& c = it->second;
  ++stats_.lease_acks;
  c.last_ack_asked_ms = std::max(c.last_ack_asked_ms, asked_ms);
  if (c.revoked && c.revoke_proposed_ms < asked_ms + static_cast<uint64_t>(c.ttl_s) * 1000) {
    checker_.fail("Lease expiry", fmt("lease %llu: a keepalive that arrived at %llu ms was acknowledged, "
                                      "but its revoke was proposed at %llu ms, within the TTL of %llds",
                                      ull(lease), ull(asked_ms), ull(c.revoke_proposed_ms),
                                      static_cast<long long>(c.ttl_s)));
  }
}

void SimCluster::on_lease_applied(NodeId node, const Command& op, raft::Index index) {
  if (op.op != Command::Op::kLeaseRevoke) return;
  auto it = lease_clients_.find(op.lease);
  if (it == lease_clients_.end() || it->second.revoked) return;
  LeaseClient& c = it->second;
  c.revoked = true;
  c.revoke_proposed_ms = op.proposed_ms;
  ++stats_.lease_revokes;
  // Every revoke here is an expiry: the primary that proposed it must have
  // seen no acknowledged keepalive (nor the grant) within the TTL.
  const uint64_t alive = std::max(c.alive_since_ms, c.last_ack_asked_ms);
  trace_.log(now_us_, "lease %llu revoked at index %llu (applied first on n%llu; proposed at %llu ms, "
             "alive since %llu ms, ttl %llds)", ull(op.lease), ull(index), ull(node), ull(op.proposed_ms),
             ull(alive), static_cast<long long>(c.ttl_s));
  if (op.proposed_ms < alive + static_cast<uint64_t>(c.ttl_s) * 1000) {
    checker_.fail("Lease expiry", fmt("lease %llu was revoked by a revoke proposed at %llu ms, but it was "
                                      "granted or kept alive at %llu ms with a TTL of %llds",
                                      ull(op.lease), ull(op.proposed_ms), ull(alive),
                                      static_cast<long long>(c.ttl_s)));
  }
}

SimCluster::Slot* SimCluster::pick_target(const std::vector<Slot*>& live) {
  // The classic mix (leader_bias 0) draws exactly as it always did.
  if (profile_.leader_bias > 0 && rng_.chance(profile_.leader_bias)) {
    for (Slot* s : live) {
      if (s->node->raft().role() == StateRole::kLeader) return s;
    }
  }
  return rng_.pick(live);
}

void SimCluster::do_crash() {
  std::vector<Slot*> live = live_slots();
  if (live.empty()) return;
  Slot* s = pick_target(live);
  trace_.log(now_us_, "crash n%llu", ull(s->node->id()));
  crash_node(*s);
  Event restart;
  restart.type = EventType::kRestart;
  restart.node = s->node->id();
  const FaultProfile& p = profile_;
  uint64_t down_ms = rng_.chance(p.long_down) ? rng_.range(p.long_down_min_ms, p.long_down_max_ms)
                                              : rng_.range(p.down_min_ms, p.down_max_ms);
  schedule(down_ms * kMs, std::move(restart));
}

void SimCluster::do_partition() {
  std::vector<NodeId> ids;
  for (const auto& [id, s] : slots_) {
    if (!s.retired) ids.push_back(id);
  }
  if (ids.size() < 2) return;
  std::vector<std::pair<NodeId, NodeId>> links;
  NodeId a = rng_.pick(ids);
  if (profile_.leader_bias > 0 && rng_.chance(profile_.leader_bias)) {
    if (SimNode* l = pick_leader())
      a = l->id();  // e.g. isolate a leader holding uncommitted entries
  }
  const char* kind = "";
  const uint32_t* w = profile_.shape_weight;
  uint64_t shape = rng_.range(0, w[0] + w[1] + w[2] + w[3] - 1);
  shape = shape < w[0] ? 0 : shape < w[0] + w[1] ? 1 : shape < w[0] + w[1] + w[2] ? 2 : 3;
  switch (shape) {
    case 0:  // isolate one node
      kind = "isolate";
      for (NodeId b : ids) {
        if (b == a) continue;
        links.emplace_back(a, b);
        links.emplace_back(b, a);
      }
      break;
    case 1: {  // split into two groups
      kind = "split";
      std::vector<NodeId> shuffled = ids;
      for (size_t i = shuffled.size() - 1; i > 0; --i)
        std::swap(shuffled[i], shuffled[rng_.range(0, i)]);
      size_t k = rng_.range(1, shuffled.size() / 2);
      for (size_t i = 0; i < k; ++i) {
        for (size_t j = k; j < shuffled.size(); ++j) {
          links.emplace_back(shuffled[i], shuffled[j]);
          links.emplace_back(shuffled[j], shuffled[i]);
        }
      }
      a = shuffled[0];
      break;
    }
    case 2: {  // asymmetric: a can only send, or only receive
      bool mute = rng_.chance(0.5);
      kind = mute ? "mute (cannot send)" : "deaf (cannot receive)";
      for (NodeId b : ids) {
        if (b == a) continue;
        if (mute) {
          links.emplace_back(a, b);
        } else {
          links.emplace_back(b, a);
        }
      }
      break;
    }
    default: {  // one one-way link
      kind = "one-way link";
      NodeId b = rng_.pick(ids);
      if (b == a) return;
      links.emplace_back(a, b);
      break;
    }
  }
  for (const auto& [from, to] : links) net_.cut(from, to);
  uint64_t id = next_partition_++;
  uint64_t heal_ms = rng_.range(profile_.heal_min_ms, profile_.heal_max_ms);
  trace_.log(now_us_, "partition #%llu: %s around n%llu (%zu links) for %llu ms", ull(id), kind,
             ull(a), links.size(), ull(heal_ms));
  partitions_[id] = std::move(links);
  Event heal;
  heal.type = EventType::kHeal;
  heal.aux = id;
  schedule(heal_ms * kMs, std::move(heal));
}

void SimCluster::do_network_change() {
  NetworkParams p = profile_.base_net;
  switch (rng_.range(0, 4)) {
    case 0:  // back to this profile's normal weather (calm in the classic mix)
      break;
    case 1:
      p.loss = rng_.pick(std::vector<double>{0.01, 0.05, 0.2});
      break;
    case 2:
      p.duplicate = rng_.pick(std::vector<double>{0.02, 0.1, 0.3});
      break;
    case 3:  // slow and reordering
      p.min_delay_us = 5 * kMs;
      p.max_delay_us = 50 * kMs;
      p.long_delay = 0.05;
      break;
    default:  // everything at once
      p.loss = 0.1;
      p.duplicate = 0.1;
      p.max_delay_us = 30 * kMs;
      p.long_delay = 0.02;
      break;
  }
  if (profile_.net_scale != 1.0) {
    const double f = profile_.net_scale;
    p.loss = std::min(0.6, p.loss * f);
    p.duplicate = std::min(0.6, p.duplicate * f);
    // Scaled down, the maximum may not fall below the minimum (SimRng::range).
    p.max_delay_us = std::max(p.min_delay_us, static_cast<uint64_t>(static_cast<double>(p.max_delay_us) * f));
    p.long_delay = std::min(0.5, p.long_delay * f);
  }
  trace_.log(now_us_, "network: loss %.2f dup %.2f delay %llu-%llu us stragglers %.2f", p.loss,
             p.duplicate, ull(p.min_delay_us), ull(p.max_delay_us), p.long_delay);
  net_.set_params(p);
}

void SimCluster::do_membership(SimNode* leader, int depth) {
  if (leader == nullptr) leader = pick_leader();
  if (leader == nullptr) return;
  raft::Raft& r = leader->raft();
  const Membership m = r.membership();
  std::vector<NodeId> voters = m.voters();
  std::vector<NodeId> learners;
  for (const raft::Member& mem : m.members) {
    if (mem.role == raft::MemberRole::kLearner) learners.push_back(mem.id);
  }
  const size_t target = static_cast<size_t>(config_.nodes);
  ConfChange cc;
  const char* what = "";
  for (NodeId l : learners) {
    if (r.learner_caught_up(l) &&
        (voters.size() < target || (voters.size() <= target + profile_.over_promote &&
                                    rng_.chance(profile_.promote_extra)))) {
      cc.type = ConfChangeType::kPromote;
      cc.node = l;
      what = "promote";
      break;
    }
  }
  if (cc.node == raft::kNoNode) {
    uint64_t choice = (voters.size() < target && learners.empty()) ? 0 : rng_.range(0, 3);
    if (choice == 0 && m.members.size() < target + profile_.max_extra_members &&
        (voters.size() >= target || learners.empty())) {
      cc.type = ConfChangeType::kAddLearner;
      cc.node = next_id_++;
      cc.context = "node-" + std::to_string(cc.node);
      what = "add learner";
      // A new server always has a new id and an empty disk.
      add_node(cc.node);
      start_node(*slot(cc.node));
    } else if (choice == 1) {
      std::vector<NodeId> removable = learners;
      const size_t floor_voters =
          profile_.min_voters_left > 0 ? profile_.min_voters_left : std::max<size_t>(1, target - 1);
      if (voters.size() > floor_voters)
        removable.insert(removable.end(), voters.begin(), voters.end());
      if (removable.empty()) return;
      cc.type = ConfChangeType::kRemove;
      cc.node = rng_.pick(removable);
      what = cc.node == leader->id() ? "remove the leader" : "remove";
    } else if (choice == 2 && !m.members.empty()) {
      cc.type = ConfChangeType::kUpdateContext;
      cc.node = rng_.pick(m.members).id;
      cc.context = "node-" + std::to_string(cc.node) + "-v" + std::to_string(rng_.range(1, 1000));
      what = "update context of";
    } else {
      return;
    }
  }
  raft::ProposeResult res = r.propose_conf_change(cc);
  trace_.log(now_us_, "membership on leader n%llu: %s n%llu -> %s at %llu/%llu", ull(leader->id()),
             what, ull(cc.node), raft::to_string(res.error), ull(res.index), ull(res.term));
  if (!res.ok()) {
    // Nobody ever heard of a learner whose addition was refused.
    if (cc.type == ConfChangeType::kAddLearner) slots_.erase(cc.node);
    return;
  }
  ++stats_.conf_changes;
  if (cc.type == ConfChangeType::kRemove)
    removals_.push_back(Removal{cc.node, res.index, res.term});
  if (profile_.conf_crash > 0 && rng_.chance(profile_.conf_crash)) {
    leader->arm_crash(CrashPoint::kMidEarlySend);
    trace_.log(now_us_, "arm crash of leader n%llu right after its membership change",
               ull(leader->id()));
  }
  Slot* ls = slot(leader->id());
  after_input(*ls);
  if (depth < 2 && leader->alive() && profile_.conf_burst > 0 && rng_.chance(profile_.conf_burst))
    do_membership(leader, depth + 1);
}

void SimCluster::do_transfer() {
  SimNode* leader = pick_leader();
  if (leader == nullptr) return;
  std::vector<NodeId> voters = leader->raft().membership().voters();
  voters.erase(std::remove(voters.begin(), voters.end(), leader->id()), voters.end());
  if (voters.empty()) return;
  NodeId target = rng_.pick(voters);
  raft::Error e = leader->raft().transfer_leadership(target);
  trace_.log(now_us_, "transfer leadership n%llu -> n%llu: %s", ull(leader->id()), ull(target),
             raft::to_string(e));
  if (e == raft::Error::kOk) ++stats_.transfers;
  after_input(*slot(leader->id()));
}

void SimCluster::do_forge() {
  std::vector<Slot*> live = live_slots();
  if (live.empty()) return;
  auto kind = static_cast<Forgery>(rng_.range(0, kForgeryKinds - 1));
  if ((config_.forgery_mask & (1u << static_cast<uint32_t>(kind))) == 0) return;
  Slot* s = rng_.pick(live);
  if (kind == Forgery::kAckNeverSent) {
    // Acks count only at a leader.
    SimNode* l = pick_leader();
    if (l == nullptr) return;
    s = slot(l->id());
  }
  const raft::Raft& r = s->node->raft();
  ForgeTarget t;
  t.to = s->node->id();
  t.term = r.term();
  t.last_index = r.last_index();
  t.last_term = r.term_at(r.last_index());
  t.commit = r.commit_index();
  t.leader = r.leader();
  t.is_leader = r.role() == StateRole::kLeader;
  for (const raft::Member& m : r.membership().members) t.members.push_back(m.id);
  t.outsider = 1'000'000 + rng_.range(0, 9);  // never a real id (ids count up from 1)
  Message m = forge(rng_, kind, t);
  ++stats_.forged;
  trace_.log(now_us_, "byzantine: forge %s: %s", to_string(kind), describe(m).c_str());
  Event ev;
  ev.type = EventType::kDeliver;
  ev.node = m.to;
  ev.msg = std::move(m);
  schedule(rng_.range(0, 5 * kMs), std::move(ev));
}

void SimCluster::check_removals() {
  for (auto it = removals_.begin(); it != removals_.end();) {
    raft::Term t = checker_.committed_term(it->index);
    if (t == 0) {
      ++it;
      continue;
    }
    if (t == it->term) {
      // Removed for good: shut it down a little later (it may still be
      // sending, e.g. a removed leader stepping down).
      Event retire;
      retire.type = EventType::kRetire;
      retire.node = it->node;
      schedule(rng_.range(0, 300) * kMs, std::move(retire));
    }
    it = removals_.erase(it);
  }
}

void SimCluster::begin_liveness() {
  liveness_ = true;
  trace_.log(now_us_,
             "=== liveness phase: heal partitions, restart crashed nodes, stop faults ===");
  net_.heal_all();
  partitions_.clear();
  net_.set_params(NetworkParams{});
  for (auto& [id, s] : slots_) {
    s.defer_ready = false;
    if (s.retired) continue;
    if (s.node->alive()) {
      s.node->arm_crash(CrashPoint::kNone);
    } else {
      start_node(s);
    }
  }
  liveness_deadline_us_ = now_us_ + config_.liveness_limit_ms * kMs;
  Event ev;
  ev.type = EventType::kLiveness;
  schedule(10 * kMs, std::move(ev));
}

void SimCluster::liveness_step() {
  check_removals();
  if (now_us_ > liveness_deadline_us_) {
    std::string probe =
        probe_index_ == 0
            ? std::string("no probe proposed")
            : fmt("probe %llu/%llu proposed on n%llu, committed term %llu", ull(probe_index_),
                  ull(probe_term_), ull(probe_node_), ull(checker_.committed_term(probe_index_)));
    checker_.fail("Liveness", fmt("%llu ms after healing there is no leader whose fresh write "
                                  "every member applied (%s); ",
                                  ull(config_.liveness_limit_ms), probe.c_str()) +
                                  cluster_state());
    return;
  }
  SimNode* leader = newest_leader();
  if (leader == nullptr) return;
  raft::Raft& r = leader->raft();
  bool need_probe = probe_index_ == 0;
  if (!need_probe) {
    raft::Term t = checker_.committed_term(probe_index_);
    if (t != 0 && t != probe_term_) need_probe = true;  // overwritten before it committed
    if (t == 0 && (probe_node_ != leader->id() || probe_incarnation_ != leader->incarnation()))
      need_probe = true;
  }
  if (need_probe) {
    raft::ProposeResult res =
        r.propose(encode_set("live", "probe" + std::to_string(++probe_count_)));
    if (res.ok()) {
      probe_node_ = leader->id();
      probe_incarnation_ = leader->incarnation();
      probe_index_ = res.index;
      probe_term_ = res.term;
      trace_.log(now_us_, "liveness probe proposed on n%llu at %llu/%llu", ull(probe_node_),
                 ull(probe_index_), ull(probe_term_));
      after_input(*slot(leader->id()));
    }
    return;
  }
  if (checker_.committed_term(probe_index_) != probe_term_) return;
  for (const raft::Member& m : r.membership().members) {
    Slot* s = slot(m.id);
    if (s == nullptr || !s->node->alive() || s->node->state_machine().applied() < probe_index_)
      return;
  }
  trace_.log(now_us_, "liveness: probe %llu/%llu applied by every member; done", ull(probe_index_),
             ull(probe_term_));
  done_ = true;
}

std::string SimCluster::cluster_state() const {
  std::string out = "nodes:";
  for (const auto& [id, s] : slots_) {
    if (s.retired) {
      out += fmt(" n%llu(retired)", ull(id));
    } else if (!s.node->alive()) {
      out += fmt(" n%llu(down)", ull(id));
    } else {
      const raft::Raft& r = s.node->raft();
      out += fmt(" n%llu(%s t%llu lead=n%llu commit=%llu applied=%llu last=%llu members=%zu)",
                 ull(id), raft::to_string(r.role()), ull(r.term()), ull(r.leader()),
                 ull(r.commit_index()), ull(s.node->state_machine().applied()), ull(r.last_index()),
                 r.membership().members.size());
    }
  }
  return out;
}

}  // namespace ckv::sim
