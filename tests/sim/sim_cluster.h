// A whole simulated cluster: event queue and clock, network, nodes, fault injection, workload and the liveness phase.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "fault_profile.h"
#include "invariants.h"
#include "raft/raft.h"
#include "sim_network.h"
#include "sim_node.h"
#include "sim_rng.h"
#include "sim_trace.h"
#include "workload.h"

namespace ckv::sim {

struct SimConfig {
  uint64_t seed = 1;
  int nodes = 3;      // target number of voters (3 or 5)
  int steps = 1500;   // fault-phase steps (one client/fault action each, ~8.5 ms apart)
  bool echo = false;  // print the trace as it happens
  size_t tail = 0;    // keep the last `tail` trace lines for the failure report
  uint64_t tick_ms = 10;
  uint64_t liveness_limit_ms =
      10000;                   // after healing, a fresh write must be applied everywhere by then
  bool persist_checks = true;  // see InvariantChecker
  // Swarm mode: the seed also draws its fault profile (fault_profile.h);
  // off, every seed gets the classic mix.
  bool swarm = false;
  // The Byzantine-lite peer (byzantine.h) forges malformed messages during the fault phase.
  bool byzantine = false;
  uint32_t forgery_mask = ~0u;  // bit k: Forgery k may be sent (--skip-forgery clears bits)
  // Leases (--leases): clients grant leases and keep some alive on whichever
  // node leads; expiry only through the log (see README.md, "Leases").
  bool leases = false;
};

struct SimResult {
  bool ok = true;
  std::string invariant;  // which check failed
  std::string failure;    // the numbers that prove it
  std::deque<std::string> trace_tail;
  std::string profile;  // FaultProfile::describe() of the run
  // What the run exercised, so a sweep can show it is not vacuous.
  uint64_t events = 0;
  uint64_t sim_ms = 0;
  uint64_t writes_acked = 0;
  uint64_t reads_served = 0;
  uint64_t leaders = 0;
  uint64_t crashes = 0;
  uint64_t snapshots = 0;
  uint64_t installs = 0;  // snapshots received over the network
  uint64_t conf_changes = 0;
  uint64_t transfers = 0;
  uint64_t max_commit = 0;
  uint64_t forged = 0;  // messages sent by the Byzantine-lite peer
  uint64_t lease_acks = 0;     // keepalives acknowledged (--leases)
  uint64_t lease_revokes = 0;  // leases revoked by expiry (first apply)
  uint64_t torn_tails = 0;     // WAL recoveries that cut a torn tail
  uint64_t files_torn = 0;     // crashes that kept part of a file's unsynced bytes
  uint64_t power_cuts = 0;     // power lost inside a storage call
};

SimResult run_simulation(const SimConfig& config);

class SimCluster {
 public:
  explicit SimCluster(const SimConfig& config);
  SimResult run();

 private:
  enum class EventType : uint8_t {
    kTick,
    kDeliver,
    kReady,
    kChaos,
    kRestart,
    kHeal,
    kRetire,
    kLiveness
  };
  struct Event {
    EventType type = EventType::kTick;
    raft::NodeId node = raft::kNoNode;
    uint64_t incarnation = 0;
    uint64_t aux = 0;  // partition id for kHeal
    raft::Message msg;
  };
  struct Slot {  // per node, cluster-side bookkeeping
    std::unique_ptr<SimNode> node;
    bool ready_scheduled = false;
    bool defer_ready = false;  // batch several inputs into one Ready
    bool retired = false;      // removed from the cluster and shut down for good
    uint64_t tick_us = 10000;
    uint64_t readies = 0;
    uint64_t last_ready_us = 0;  // to detect a Ready loop that never drains
    uint64_t readies_at_instant = 0;
    // Commit durability: the last (incarnation, term, commit) seen while leader.
    uint64_t lead_incarnation = 0;
    raft::Term lead_term = 0;
    raft::Index lead_commit = 0;
    // When this node's membership() last changed (version seen_membership).
    uint64_t seen_membership = 0;
    uint64_t membership_changed_us = 0;
  };
  struct Removal {
    raft::NodeId node;
    raft::Index index;
    raft::Term term;
  };

  void schedule(uint64_t delay_us, Event ev);
  void handle(Event& ev);
  Slot* slot(raft::NodeId id);
  SimNode& add_node(raft::NodeId id);
  void start_node(Slot& s);
  void crash_node(Slot& s);
  void after_input(Slot& s);
  // Cluster-wide: a leader's new commit index must be durable on a majority
  // of its configuration's voters (the definition of committed, §5.3).
  void check_commit_durable(Slot& s);
  // Figure 2, AppendEntries rule 5: an accepted append moves the follower's
  // commit to at most min(leaderCommit, index of the last new entry).
  void check_follower_commit(Slot& s, const raft::Message& m, raft::Index before);
  // Thesis §4.1 and the 2015 single-server fix: a sitting leader appends a
  // configuration entry only when the previous one is committed and it has
  // committed an entry of its own term.
  void check_conf_change_rule(Slot& s);
  // Thesis §6.4: a read index is safe only once a majority of voters answered
  // the leader in its term after the read began (else it may be deposed).
  void check_read_confirmed(raft::NodeId node, uint64_t read_id, uint64_t start_us,
                            raft::NodeId leader, raft::Term term);
  void send(raft::Message m);

  void chaos_step();
  void do_crash();
  void do_partition();
  void do_network_change();
  // On leader (a random one when null); depth bounds bursts of changes.
  void do_membership(SimNode* leader = nullptr, int depth = 0);
  void do_transfer();
  void do_forge();
  void check_removals();
  // --leases: one client lease action (grant, keepalive, stop keeping alive).
  void lease_step();
  void on_lease_ack(uint64_t lease, uint64_t asked_ms);
  void on_lease_applied(raft::NodeId node, const Command& op, raft::Index index);
  void begin_liveness();
  void liveness_step();
  std::string cluster_state() const;

  SimNode* pick_leader();    // a random live leader, or nullptr
  SimNode* newest_leader();  // the live leader with the highest term
  std::vector<Slot*> live_slots();

  Slot* pick_target(const std::vector<Slot*>& live);  // the leader with leader_bias, else random

  SimConfig config_;
  FaultProfile profile_;
  SimRng rng_;
  Trace trace_;
  InvariantChecker checker_;
  SimNetwork net_;
  Workload workload_;
  raft::Options options_;
  std::map<raft::NodeId, Slot> slots_;
  raft::NodeId next_id_ = 1;
  std::map<std::pair<uint64_t, uint64_t>, Event> queue_;  // (time, sequence) -> event
  uint64_t now_us_ = 0;
  uint64_t seq_ = 0;
  uint64_t events_ = 0;
  int steps_done_ = 0;
  bool liveness_ = false;
  bool done_ = false;
  uint64_t liveness_deadline_us_ = 0;
  std::map<uint64_t, std::vector<std::pair<raft::NodeId, raft::NodeId>>> partitions_;
  uint64_t next_partition_ = 1;
  std::vector<Removal> removals_;
  raft::NodeId pending_conf_leader_ = raft::kNoNode;  // conf_on_election: change on this new leader
  // (voter, leader, term) -> when the voter last answered that leader in that term.
  std::map<std::tuple<raft::NodeId, raft::NodeId, raft::Term>, uint64_t> answered_;
  // The liveness probe: a fresh write that must reach every member.
  raft::NodeId probe_node_ = raft::kNoNode;
  uint64_t probe_incarnation_ = 0;
  raft::Index probe_index_ = 0;
  raft::Term probe_term_ = 0;
  uint64_t probe_count_ = 0;
  SimResult stats_;
  // --leases: what the clients know of each lease they were granted.
  struct LeaseClient {
    int64_t ttl_s = 0;
    uint64_t alive_since_ms = 0;     // the grant's proposal
    uint64_t last_ack_asked_ms = 0;  // the latest acknowledged keepalive's arrival
    bool kept = true;                // the client still sends keepalives
    bool revoked = false;            // a revoke was applied somewhere
    uint64_t revoke_proposed_ms = 0;
  };
  std::map<uint64_t, LeaseClient> lease_clients_;
  uint64_t next_lease_ = 1;
};

}  // namespace ckv::sim
