// Raft's safety properties, checked against the simulated cluster after every event; the first violation ends the run.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "raft/raft.h"
#include "sim_disk.h"

namespace ckv::sim {

// Everything here is history-wide: what any node ever had in its log,
// committed or applied, so a property is checked across crashes, restarts
// and nodes that have long left the cluster.
class InvariantChecker {
 public:
  // persist_checks=false turns off the local protocol-rule checks
  // (persist-before-send, one vote per term, the §5.4.2 commit rule), to see
  // whether the cluster-wide invariants alone catch a bug (used by the
  // mutation experiments).
  explicit InvariantChecker(bool persist_checks = true) : persist_checks_(persist_checks) {}

  bool failed() const { return !failure_.empty(); }
  const std::string& failure() const { return failure_; }
  const std::string& failed_invariant() const { return invariant_; }
  // Records the first violation only; later ones are usually its echoes.
  void fail(const std::string& invariant, const std::string& detail);

  // A node (re)started: its per-incarnation watermarks start over.
  void on_start(raft::NodeId id, const raft::Raft& r);
  // A node crashed; durable_term is the term its disk kept. A leadership of
  // a later term existed only in memory: a leader sends nothing before its
  // term is durable (raft.cc send()), so nobody saw it, and the node may
  // legally vote for another leader of that term after restarting (seed
  // 2006248: a lone voter led term 8 for one step, lost it, voted for n2).
  void on_crash(raft::NodeId id, raft::Term durable_term);
  // After every event that touched the node: Election Safety, commit/applied
  // monotonicity, committed-entry recording, Leader Completeness.
  void check_node(raft::NodeId id, const raft::Raft& r);
  // A Ready about to be persisted: no committed entry overwritten, no second
  // vote in a term.
  void check_ready(raft::NodeId id, const raft::Raft& r, const raft::Ready& rd,
                   const raft::HardState& durable);
  // The Ready's entries are now durable: Log Matching against every entry
  // ever persisted anywhere. Only durable entries count: an entry that a
  // crash erased before anyone saw it may legally be re-created differently
  // (e.g. a lone voter re-elected in the same term after losing its unsynced term).
  void on_persisted(raft::NodeId id, const raft::Raft& r, const raft::Ready& rd);
  // Full scan of a node's in-memory log up to its durable last index (Log Matching).
  void check_log(raft::NodeId id, const raft::Raft& r, raft::Index durable_last);
  // A message about to be sent: what it promises must already be durable (Figure 2).
  void check_send(raft::NodeId id, const raft::Message& m, const SimDisk& disk);
  // State Machine Safety: one entry and one state per index, cluster-wide.
  void on_apply(raft::NodeId id, const raft::Raft& r, const raft::Entry& e, uint64_t digest_after);
  void on_restore(raft::NodeId id, const raft::SnapshotMeta& meta, uint64_t digest);
  // A client write was acknowledged: it must be in every later leader's log.
  void on_write_acked(uint64_t write_id, raft::Index index, raft::Term term,
                      raft::Term observed_in_term);
  // The leader refused a proposal node id forwarded (raft.h forward_proposal):
  // that command must never be applied, before or after.
  void on_forward_refused(raft::NodeId id, const std::string& data);
  // A linearizable read was served on node id at applied index `applied`.
  void check_read(raft::NodeId id, uint64_t read_id, raft::Index min_index, raft::Index read_index,
                  raft::Index applied, const std::string& key,
                  const std::optional<std::string>& value);

  raft::Index max_committed() const { return max_committed_; }
  // Term of the committed entry at index, 0 when not known to be committed.
  raft::Term committed_term(raft::Index index) const;
  size_t leaders_seen() const { return leader_of_term_.size(); }
  uint64_t acked_writes() const { return acked_.size(); }

 private:
  struct Committed {
    bool present = false;
    raft::Term term = 0;
    bool has_hash = false;  // false when seen only as a snapshot's last index
    uint64_t hash = 0;
    // Lowest current term of a node that saw the entry committed. The entry
    // was committed in a term <= this, so every leader of a term >= this must
    // hold it (Leader Completeness, §5.4.2) — leaders of older terms need not.
    raft::Term observed_in_term = 0;
    raft::NodeId observer = 0;
  };
  struct Applied {
    bool present = false;
    raft::Term term = 0;
    uint64_t hash = 0;
    uint64_t digest = 0;
    raft::NodeId node = 0;
  };
  struct Link {  // what is known of the entry at (index, term): its content and predecessor
    uint64_t hash = 0;
    raft::Term prev_term = 0;
    bool prev_known = false;
    raft::NodeId node = 0;
  };
  struct Watch {  // per node, per incarnation
    raft::Index commit = 0;
    raft::Index recorded = 0;
    raft::Index applied = 0;
    raft::StateRole role = raft::StateRole::kFollower;
    raft::Term term = 0;
  };
  struct Acked {
    raft::Term term = 0;
    raft::Term observed_in_term = 0;
    uint64_t write_id = 0;
  };

  void record_commits(raft::NodeId id, const raft::Raft& r, raft::Index from, raft::Index to);
  void record_committed(raft::Index i, const Committed& c, raft::NodeId id);
  void check_link(raft::NodeId id, const raft::Entry& e, raft::Term prev_term, bool prev_known);
  void check_leader(raft::NodeId id, const raft::Raft& r, bool newly_elected);
  // Is committed/acked entry (index, term, hash?) in leader r's log or snapshot? "" if yes, else why not.
  std::string leader_holds(const raft::Raft& r, raft::Index i, raft::Term term, bool has_hash,
                           uint64_t hash) const;
  static const raft::Entry* entry_at(const raft::Raft& r, raft::Index i);

  bool persist_checks_;
  std::string failure_;
  std::string invariant_;
  std::map<raft::Term, raft::NodeId> leader_of_term_;
  std::map<raft::NodeId, Watch> watch_;
  std::vector<Committed> committed_;  // by index
  raft::Index max_committed_ = 0;
  std::vector<Applied> applied_;              // by index
  std::unordered_map<uint64_t, Link> links_;  // key: (index << 24) ^ term
  std::map<raft::Index, Acked> acked_;
  // Committed writes per key: index -> value (nullopt = deleted), for read checks.
  std::map<std::string, std::map<raft::Index, std::optional<std::string>>> key_history_;
  // At most once: the index where each workload write's unique value
  // ("w<id>") was applied, and the data of forwarded proposals a leader refused.
  std::map<std::string, raft::Index> applied_write_index_;
  std::map<std::string, raft::NodeId> refused_forwards_;
};

}  // namespace ckv::sim
