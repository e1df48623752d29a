// One simulated server: the real Raft core plus a simulated disk and state machine, driven exactly as raft.h says.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "invariants.h"
#include "lease/expiry.h"
#include "raft/raft.h"
#include "sim_disk.h"
#include "sim_fs.h"
#include "sim_rng.h"
#include "storage/wal/wal.h"
#include "sim_state_machine.h"
#include "sim_trace.h"

namespace ckv::sim {

// What a node needs from the cluster around it.
struct NodeEnv {
  Trace* trace = nullptr;
  InvariantChecker* checker = nullptr;
  const uint64_t* now_us = nullptr;
  std::function<void(raft::Message)> send;
  // A client write proposed here was applied at its index and term.
  std::function<void(uint64_t write_id)> on_write_acked;
  // A read got its read index: started at start_us, resolved by leader in term.
  std::function<void(raft::NodeId node, uint64_t read_id, uint64_t start_us, raft::NodeId leader,
                     raft::Term term)>
      on_read_index;
  // Leases (--leases): the node drives a lease::LeaseExpiry as node.cc does.
  bool leases = false;
  // A keepalive for `lease` that arrived at asked_ms was confirmed (ReadIndex) and renewed.
  std::function<void(uint64_t lease, uint64_t asked_ms)> on_lease_ack;
  // A lease grant or revoke took effect on `node` at index.
  std::function<void(raft::NodeId node, const Command& op, raft::Index index)> on_lease_applied;
  // Applied entries between snapshots: the first gap, then drawn from [min, max] after each.
  uint64_t snapshot_gap_first = 100;
  uint64_t snapshot_gap_min = 50;
  uint64_t snapshot_gap_max = 200;
};

// Where inside the Ready loop an armed crash strikes, so that a crash can
// fall between any two steps of raft.h's numbered list, not only between events.
enum class CrashPoint : uint8_t {
  kNone,
  kBeforeSync,     // staged writes lost
  kAfterSync,      // persisted, nothing sent
  kMidSend,        // some messages sent
  kAfterSend,      // sent, nothing applied
  kMidApply,       // some committed entries applied
  kBeforeAdvance,  // everything done but advance()
  kMidSnapshot,    // snapshot file written, log not yet compacted
  // Power lost inside a storage call of this Ready's WAL batch, or of the
  // next snapshot's compaction: the pwrite, the fdatasync, or a step of a
  // segment roll-over or of the metadata file's replacement.
  kInStorage,
  // A leader sent some of its early appends (thesis §10.2.1) and died before
  // its own sync: e.g. one follower holds an entry the leader lost.
  kMidEarlySend,
};
const char* to_string(CrashPoint p);

class SimNode {
 public:
  SimNode(raft::NodeId id, const raft::Options& options, uint64_t sim_seed, NodeEnv env);

  raft::NodeId id() const { return id_; }
  // First boot of a founding member: writes bootstrap_state() to the empty disk,
  // so a crash before the first Ready restarts from it.
  void bootstrap(const raft::Membership& initial);
  // Boots (or reboots) from whatever the disk holds; an empty disk is a joiner.
  void start();
  // Loses everything volatile: the core, the state machine, unsynced writes, client waiters.
  void crash();
  bool alive() const { return raft_ != nullptr; }
  uint64_t incarnation() const { return incarnation_; }
  raft::Raft& raft() { return *raft_; }
  const raft::Raft& raft() const { return *raft_; }
  const SimStateMachine& state_machine() const { return sm_; }
  const SimDisk& disk() const { return disk_; }
  const MemFileSystem& file_system() const { return *fs_; }

  // kInStorage arms the file system at once: the power cut strikes inside
  // one of the next few storage calls, wherever they are. kNone disarms.
  void arm_crash(CrashPoint p);
  // A message from `from` arrived: this incarnation's transport now has a
  // stream from it, so it can answer (the TCP hello carries its address).
  void heard_from(raft::NodeId from) { heard_from_.insert(from); }
  // A leader answered read read_id (kReadIndexResp, not rejected) in term.
  void note_read_answer(uint64_t read_id, raft::NodeId leader, raft::Term term);
  uint64_t unreachable_drops() const { return unreachable_drops_; }
  // Handles one Ready (raft.h steps 1-4). Returns false if the node crashed doing so.
  bool process_ready(SimRng& rng);
  // Takes a snapshot when enough entries were applied since the last one;
  // returns false if the node crashed doing so.
  bool maybe_snapshot(SimRng& rng);

  // Client side. A write proposed here is acknowledged when this incarnation
  // applies an entry at its index with its term.
  void track_write(uint64_t write_id, raft::Index index, raft::Term term, std::string data);
  // A write forwarded to the leader (forward_id from forward_proposal) is
  // acknowledged when this incarnation applies an entry with its data (the
  // data is unique); a refusal by the leader drops it, and it must never be
  // applied (InvariantChecker::on_forward_refused).
  void track_forwarded_write(uint64_t write_id, uint64_t forward_id, std::string data);
  // Starts a linearizable read; min_index = highest index committed anywhere
  // when the read began. False when the core knows no leader to ask.
  bool start_read(uint64_t read_id, std::string key, raft::Index min_index);
  uint64_t reads_served() const { return reads_served_; }

  // Leases (--leases), as node.cc: drive_leases() on every tick promotes the
  // expiry clock once this leader applied an entry of its term, demotes it
  // with leadership, and proposes the revokes due; keepalive() starts the
  // ReadIndex round that confirms leadership before renewing (false: not
  // primary); grant() proposes a grant on a primary.
  void drive_leases();
  bool keepalive(uint64_t lease);
  bool grant(uint64_t lease, int64_t ttl_s);
  uint64_t snapshots_taken() const { return snapshots_taken_; }
  uint64_t torn_tails_cut() const { return torn_tails_cut_; }

 private:
  struct PendingWrite {
    uint64_t write_id = 0;
    raft::Term term = 0;
    std::string data;
  };
  struct PendingRead {
    std::string key;
    raft::Index min_index = 0;
    bool have_index = false;
    raft::Index read_index = 0;
    uint64_t start_us = 0;
    raft::NodeId leader = raft::kNoNode;  // who answered a forwarded read
    raft::Term term = 0;
    bool started_as_leader = false;
    raft::Term start_term = 0;
  };
  void send(raft::Message& m);  // checks, fills snapshot bytes, hands to the network
  bool can_reach(raft::NodeId to);
  void apply(const raft::Entry& e);
  void serve_reads();
  void fill_snapshot_data(raft::Message& m);
  void trace(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // The real WAL on this node's file system; a failure is the checker's.
  bool open_wal();
  // Re-opens the WAL through its real recovery, checks it against the
  // oracle, and builds what the core restarts from (as node.cc's boot).
  raft::InitialState recover();
  // One WAL batch for what disk_ has staged (entries, hard state, drop); the
  // oracle then records it as synced or only written. False when power was
  // cut inside it (the caller crashes the node).
  bool persist_log(const std::vector<raft::Entry>& entries,
                   const std::optional<raft::HardState>& hs, bool drop_all);

  struct PendingKeepalive {
    uint64_t lease = 0;
    uint64_t asked_ms = 0;
    raft::Term term = 0;
  };
  // Read ids with this bit are keepalive confirmations, not client reads.
  static constexpr uint64_t kKeepaliveReadBit = uint64_t{1} << 63;
  uint64_t now_ms() const { return *env_.now_us / 1000; }
  void reset_leases();

  lease::LeaseExpiry expiry_;
  raft::Term lease_term_ = 0;  // the term the expiry clock was promoted in
  std::map<uint64_t, PendingKeepalive> keepalives_;
  uint64_t next_keepalive_ = 0;

  raft::NodeId id_;
  // The node layer's address book (node.cc sync_peers), per incarnation:
  std::set<raft::NodeId> heard_from_;     // senders of any message received
  std::set<raft::NodeId> known_members_;  // ever in the latest or applied configuration
  uint64_t unreachable_drops_ = 0;
  raft::Options options_;
  uint64_t sim_seed_;
  NodeEnv env_;
  SimDisk disk_;
  // The node's disk (survives crashes) and its WAL (open while alive).
  std::unique_ptr<MemFileSystem> fs_;
  std::unique_ptr<storage::Wal> wal_;
  SimRng disk_rng_;  // tears, salts, power-cut timing: its own stream
  uint64_t segment_bytes_ = 0;
  bool wal_exists_ = false;
  uint64_t torn_tails_cut_ = 0;
  SimStateMachine sm_;
  std::unique_ptr<raft::Raft> raft_;
  uint64_t incarnation_ = 0;
  CrashPoint crash_point_ = CrashPoint::kNone;
  uint64_t snapshot_gap_ = 100;  // applied entries between our snapshots, re-drawn after each
  std::map<raft::Index, PendingWrite> pending_writes_;
  std::map<std::string, uint64_t> pending_forwards_;          // data -> write id
  std::map<uint64_t, std::string> pending_forward_ids_;       // forward id -> data
  std::map<uint64_t, PendingRead> pending_reads_;
  uint64_t reads_served_ = 0;
  uint64_t snapshots_taken_ = 0;
};

}  // namespace ckv::sim
