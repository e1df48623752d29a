// The Raft consensus core: a pure state machine driven by tick/step/propose, answering with Ready.
//
// No I/O, threads, clocks or global randomness live here (see DESIGN.md): the
// caller owns time (tick), the network (step, Ready::messages) and the disk
// (Ready::entries, hard_state, snapshot_chunks). This lets the simulator in
// tests/sim drive whole clusters deterministically from one seed.
//
// Thread safety: none. One thread owns a Raft object.
//
// How the caller drives it (the order is what makes it safe):
//   loop:
//     tick() every tick interval; step(m) for each received message;
//     propose()/read_index()/... for client requests
//     if has_ready():
//       Ready rd = ready();
//       1. persist, in one sync: rd.snapshot_chunks (write at offset into the
//          incoming snapshot), rd.snapshot (the incoming snapshot is complete:
//          make it the current snapshot and drop the whole log), rd.entries
//          (first delete every stored entry with index >= rd.entries[0].index,
//          then append), rd.hard_state. Nothing below may happen before this
//          sync: a vote or an append acknowledgement must not outlive a crash
//          that forgets it (§5.2, Figure 2 "respond after persisting").
//       2. send rd.messages (fill kSnapshot data from the current snapshot first).
//       3. if rd.snapshot: restore the state machine from it; then apply
//          rd.committed_entries in order; answer rd.read_states once the state
//          machine has applied up to their index. (Without rd.snapshot, the
//          committed entries below rd.entries[0].index were persisted by an
//          earlier Ready: they may be applied before step 1, as etcd applies
//          while it writes its WAL. A leader's are always all of them.)
//       4. advance(rd).
//   Between ready() and advance() the caller must not call anything else.
//
// First boot: a node that starts a new cluster passes bootstrap_state(); a node
// that waits to be added passes an empty InitialState and learns everything
// from the leader. A restart passes what storage holds.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raft/messages.h"
#include "raft/types.h"

namespace ckv::raft {

struct Options {
  NodeId id = kNoNode;
  // Timing in ticks. The election timeout is drawn uniformly from
  // [election_ticks, 2 * election_ticks) (§5.2); a leader sends heartbeats
  // every heartbeat_ticks. election_ticks must exceed heartbeat_ticks. The
  // only voter of its configuration, hearing no leader, campaigns on its
  // next tick instead: nobody else's vote is needed (a one-member cluster's
  // restart serves after one tick, not after an election timeout).
  int election_ticks = 10;
  int heartbeat_ticks = 1;
  uint64_t random_seed = 1;  // drives election timeouts; same seed, same run
  bool pre_vote = true;      // thesis §9.6
  bool check_quorum = true;  // thesis §6.2: leader steps down without a quorum; voters honour its lease
  // Replication limits: bytes and entries per AppendEntries, and how many
  // appends may be in flight to one follower in the replicate state.
  uint64_t max_append_bytes = 1 << 20;
  uint64_t max_append_entries = 4096;
  uint64_t max_inflight_appends = 64;
  uint64_t snapshot_chunk_bytes = 1 << 20;
  // Entries kept after a snapshot so that slightly lagging followers catch up
  // from the log instead of a snapshot.
  uint64_t snapshot_trailing_entries = 10240;
  // Proposals beyond this many uncommitted bytes are refused (kOverloaded),
  // so a leader that cannot commit does not buffer without bound.
  uint64_t max_uncommitted_bytes = 64 << 20;
  // A leader's budget for the proposals one follower forwarded (kProp) and
  // that are not committed yet: beyond either, that follower's next
  // forwards are refused (kOverloaded) so that no one member can take the
  // whole uncommitted budget from the others.
  uint64_t max_forwarded_bytes_per_peer = 32 << 20;
  uint64_t max_forwarded_entries_per_peer = 4096;
};

struct InitialState {
  HardState hard_state;
  SnapshotMeta snapshot;       // index 0 when there is none
  std::vector<Entry> entries;  // the stored log after snapshot.index, contiguous
};

// The state for the first boot of a cluster's founding members: entry 1 is the
// initial configuration, committed by construction (every founder holds the
// same entry 1, like HashiCorp Raft's BootstrapCluster).
InitialState bootstrap_state(const Membership& initial);

enum class StateRole : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
const char* to_string(StateRole r);

enum class Error : uint8_t {
  kOk = 0,
  kNotLeader,             // only the leader accepts this; see leader()
  kTransferInProgress,    // leadership transfer under way: proposals paused
  kConfChangeInProgress,  // a membership change is not yet committed
  kNotReady,              // new leader has not yet committed an entry of its term
  kOverloaded,            // too many uncommitted bytes
  kAlreadyMember,
  kNotMember,
  kNotLearner,
  kInvalid,  // e.g. removing the last voter, id 0
  kMembershipFull,  // the configuration already has kMaxMembers members
  kNoSpace,         // a forwarded proposal reached a leader that refuses writes (set_writes_refused)
};
// The last Error value: a forwarded proposal's refusal carries one (kPropResp.index).
inline constexpr Error kLastError = Error::kNoSpace;
const char* to_string(Error e);

struct ProposeResult {
  Error error = Error::kOk;
  Index index = 0;  // where the entry was appended; it is applied once committed at this index and term
  Term term = 0;
  // forward_proposal() on a follower: the proposal went to the leader under
  // this id (index and term stay 0). 0 when it was appended here.
  uint64_t forward_id = 0;
  bool ok() const { return error == Error::kOk; }
};

// A leader, or a node that turned out not to be one, refused a proposal we
// forwarded (forward_proposal): it was not appended and will never be applied.
struct ForwardRefusal {
  uint64_t forward_id = 0;
  Error error = Error::kNotLeader;
};

// A linearizable read may be served once the state machine has applied index.
struct ReadState {
  uint64_t id = 0;  // the caller's id from read_index()
  Index index = 0;
};

struct SnapshotChunk {
  SnapshotMeta meta;  // the incoming snapshot this belongs to
  uint64_t offset = 0;
  std::string data;
};

struct Ready {
  std::optional<HardState> hard_state;         // persist when set
  std::vector<SnapshotChunk> snapshot_chunks;  // persist into the incoming snapshot
  std::optional<SnapshotMeta> snapshot;        // incoming snapshot complete: install
  std::vector<Entry> entries;                  // persist (truncating from entries[0].index)
  // Send after persisting, except the first early_messages: a leader's
  // appends, heartbeats, snapshot chunks and TimeoutNow, which may be sent
  // before or while this Ready is persisted (thesis §10.2.1), and forwarded
  // proposals and their refusals, which depend on nothing durable. Sending
  // all after persisting is also correct, only slower.
  std::vector<Message> messages;
  size_t early_messages = 0;
  std::vector<Entry> committed_entries;        // apply in order after persisting
  std::vector<ReadState> read_states;
  std::vector<uint64_t> failed_reads;  // read ids that cannot be served here (lost leadership)
  std::vector<ForwardRefusal> refused_forwards;  // forward_proposal ids the leader refused
};

// What a leader knows of one member's replication, for the node layer's
// promotion policy and for status output.
struct ProgressView {
  Index match = 0;
  Index next = 0;
  bool recent_active = false;
  const char* state = "";  // "probe", "replicate", "snapshot"
};

class Raft {
 public:
  Raft(const Options& options, const InitialState& state);
  ~Raft();
  Raft(const Raft&) = delete;
  Raft& operator=(const Raft&) = delete;

  // Advances logical time by one tick: elections, heartbeats, check-quorum,
  // transfer timeouts, snapshot resends.
  void tick();
  // Feeds one message from a peer. Returns nullptr when the message was
  // taken (acted on, or ignored as stale or meant for another role); when it
  // is malformed or claims what no honest peer could (message_checks.h), it
  // is dropped without effect and the reason is returned (a static string)
  // so the caller can count and log it.
  const char* step(const Message& m);
  // Appends an application command (leader only).
  ProposeResult propose(std::string data);
  // Any role: a leader appends data as propose() does. A follower that
  // knows its leader sends it in a kProp message (thesis §6.2: a server that
  // is not the leader passes the request on; etcd's MsgProp forwarding), and
  // the leader appends it as its own proposal in its own term; the result
  // carries a forward_id. Nothing reports success: the proposer tags data so
  // that it recognises the entry when it applies it, and a proposal that a
  // deposed leader appended but never committed is simply never applied
  // (nothing re-sends it, and the leader drops copies the network made, so
  // it cannot be applied twice). A refusal (not the leader, transfer,
  // overload) comes back in Ready::refused_forwards; it is sent only where it
  // is certain, and a forward that reaches a node in another term is dropped
  // unanswered (the caller's deadline decides: outcome unknown). kNotLeader at once when no leader is known
  // (a candidate knows none); kInvalid for empty data (the no-op is the
  // leader's alone).
  ProposeResult forward_proposal(std::string data);
  // Leader: while set, proposals forwarded by followers are refused with
  // kNoSpace (the caller's disk is full and it refuses its own clients'
  // writes itself; appending them would only stall its persist).
  void set_writes_refused(bool refused);
  // While set, this node never campaigns (no pre-votes, no votes asked, not
  // even on TimeoutNow): the caller learnt that the cluster removed it, from
  // a member's configuration it cannot see itself (its own copy of the log
  // stops before its removal, because a leader stops replicating to a member
  // once the entry removing it is appended). It still answers votes and
  // follows a leader that contacts it, so a wrong guess costs no safety and
  // heals when a leader appears; the caller then clears it.
  void set_removed(bool removed);
  // Appends a one-server membership change (leader only; one at a time,
  // and only after the leader committed an entry of its own term).
  ProposeResult propose_conf_change(const ConfChange& cc);
  // Starts a linearizable read (thesis §6.4). The result arrives later as a
  // Ready::read_states entry with this id, or in Ready::failed_reads. Returns
  // false when there is no known leader to ask (the caller retries later).
  bool read_index(uint64_t id);
  // Leader only: hand leadership to target once it is caught up (thesis §3.10).
  Error transfer_leadership(NodeId target);
  // The caller has taken a snapshot of its state machine at applied index
  // `index` (<= applied_index()), of size_bytes bytes. The core compacts its log
  // up to index - snapshot_trailing_entries and returns the first index the
  // caller must keep in storage; earlier entries may be deleted.
  Index snapshot_taken(Index index, uint64_t size_bytes);

  bool has_ready() const;
  Ready ready();
  void advance(const Ready& rd);

  // Introspection. All cheap.
  NodeId id() const;
  StateRole role() const;
  Term term() const;
  NodeId leader() const;
  Index commit_index() const;
  Index applied_index() const;
  Index last_index() const;
  Index first_index() const;  // first entry still in the in-memory log
  const Membership& membership() const;  // latest in the log (thesis §4.1)
  uint64_t membership_version() const;   // bumps whenever membership() changes
  const SnapshotMeta& snapshot() const;  // the latest local snapshot
  HardState hard_state() const;
  std::optional<ProgressView> progress(NodeId peer) const;  // leader only
  // Leader only: the learner has every committed entry and answered within
  // the last election timeout, so promoting it cannot stall commits.
  bool learner_caught_up(NodeId peer) const;
  // Read-only view of the in-memory log, for tests and the simulator's
  // invariant checks: entries with index in [first_index(), last_index()].
  const std::vector<Entry>& log_entries() const;
  Term term_at(Index i) const;  // 0 when unknown (compacted or beyond the end)

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckv::raft
