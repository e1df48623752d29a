// A consensuskv node: owns the Raft core, its storage and the state machine, on one Raft thread.
//
// The Raft thread drives the pure core (src/raft) in the order raft.h
// prescribes: persist (the WAL, one fdatasync per batch) -> send (Transport) ->
// apply (KvStateMachine) -> advance. Everything else talks to it by posting
// work: propose(), read_barrier(), add_member() are thread-safe and return at
// once; their callbacks run later ON THE RAFT THREAD and must only hand the
// result off (e.g. post to an HTTP executor), never block.
//
// Group commit: requests that arrive while the Raft thread is busy (for
// example in fsync) are all appended before the next Ready, so one sync
// covers them all.
//
// First boot: with bootstrap and an empty data dir the node founds a
// one-member cluster; without it, it waits to be added by a leader. A
// non-empty data dir always resumes (bootstrap is then ignored).
//
// The data dir: locked (flock, storage/dir_lock.h) for the life of the
// Node; identified by storage/node_meta.h (name + incarnation, created
// with the dir); every file checked on open. Damage or a missing file makes
// open() fail with kCorrupt naming the file (docs/operations.md says how to
// repair each); nothing on disk can make open() abort.
//
// Disk full (docs/operations.md, "Disk full"): the node keeps a reserve file
// of space_reserve_bytes in the data dir. When a persist fails with ENOSPC it
// deletes the reserve and persists again, so the Ready in hand (votes,
// commits, heartbeats' acks) still becomes durable; it then refuses writes
// (kNoSpace, HTTP 507) and drops incoming entries and snapshot chunks (the
// leader resends them later), while reads keep working. When statvfs shows
// the reserve plus kResumeHeadroomBytes free again, it re-creates the reserve
// and accepts writes, without a restart. If even that persist fails, the
// Ready is held and retried with backoff (never skipped, raft.h); meanwhile
// the core is left alone, peer messages are dropped and waiters time out.
// Any other storage failure stops the process with kExitStorageFailure.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "fsm/command.h"
#include "node/compactor.h"
#include "node/write_result.h"
#include "raft/types.h"
#include "watch/watch_hub.h"

namespace ckv::auth {
class SimpleTokens;
}
namespace ckv::fsm {
class KvStateMachine;
}
namespace ckv::transport {
class Transport;
}
namespace ckv::watch {
class Hub;
}

namespace ckv::node {

// Bytes kept free in the data dir for a full disk (see above); 0 disables.
inline constexpr uint64_t kDefaultSpaceReserveBytes = uint64_t{64} << 20;
// Writes resume once this much is free beyond the reserve, so they do not
// stop again at once.
inline constexpr uint64_t kResumeHeadroomBytes = uint64_t{8} << 20;
// Exit status of a process stopped by a storage failure other than a full disk.
inline constexpr int kExitStorageFailure = 3;
// Exit status of a process stopped by a committed entry it cannot decode (a
// newer version's command, or damage): applying past it would diverge from
// the other replicas (DESIGN.md, "The state machine"); docs/operations.md.
inline constexpr int kExitUndecodableEntry = 4;

// A follower's limits on writes forwarded to the leader and not yet applied
// (NodeOptions::max_forwarded_writes, max_forwarded_write_bytes).
inline constexpr uint64_t kDefaultMaxForwardedWrites = 4096;
inline constexpr uint64_t kDefaultMaxForwardedWriteBytes = uint64_t{64} << 20;
// How long (in election timeouts) a write or linearizable read that finds no
// leader waits for one by default (NodeOptions::leader_wait_ms): an election
// normally ends within two (randomized timeouts, pre-vote), so this rides out
// one without making a member cut off from the quorum hold calls for their
// whole timeout.
inline constexpr int kLeaderWaitElectionTimeouts = 4;

struct NodeOptions {
  std::string name;          // -id; defaults to raft_address
  std::string raft_address;  // host:port peers connect to
  std::string api_address;   // host:port clients (and forwarding peers) use
  std::string grpc_address;  // host:port of the etcd gRPC API (-grpc-address); empty: none
  // The client listeners serve TLS (-cert-file): every member's do, so
  // members' client URLs are https (docs/api.md, "TLS"). Reported only.
  bool client_tls = false;
  // Raft connections are mutual TLS (-peer-cert-file): every member's are,
  // so members' peer URLs are https, as etcd shows them. Reported only.
  bool peer_tls = false;
  std::string data_dir;
  bool bootstrap = false;
  bool in_memory = false;  // no disk at all (tests); nothing survives a restart
  int tick_ms = 50;
  int election_ticks = 20;  // 1 s election timeout at 50 ms ticks
  int heartbeat_ticks = 2;
  uint64_t snapshot_threshold = 8192;  // entries applied since the last snapshot
  uint64_t snapshot_trailing = 10240;  // entries kept after a snapshot
  uint64_t snapshot_chunk_bytes = 1 << 20;
  uint64_t max_uncommitted_bytes = 64 << 20;
  // Writes a follower forwards to the leader as Raft proposals and has not
  // applied yet (count, and bytes of their entries): beyond either, a write
  // is refused at once (kUnavailable, kErrTooManyForwardedWrites) rather
  // than queued without bound. And the leader's budget per follower for
  // forwarded entries not committed yet (raft::Options).
  uint64_t max_forwarded_writes = kDefaultMaxForwardedWrites;
  uint64_t max_forwarded_write_bytes = kDefaultMaxForwardedWriteBytes;
  // No leader (an election, or no quorum): a write or linearizable read
  // waits this long for one (at most its own timeout), then is refused
  // with kUnavailable, nothing proposed. 0: kLeaderWaitElectionTimeouts
  // election timeouts. The calls waiting count against
  // max_forwarded_writes / max_forwarded_write_bytes (separately from
  // those forwarded): past them a call is refused at once.
  int leader_wait_ms = 0;
  uint64_t max_forwarded_bytes_per_peer = uint64_t{32} << 20;
  uint64_t max_forwarded_entries_per_peer = 4096;
  uint64_t random_seed = 0;  // 0: derive from the clock and id
  uint64_t space_reserve_bytes = kDefaultSpaceReserveBytes;  // ignored (0) with in_memory
  uint64_t wal_segment_bytes = uint64_t{64} << 20;  // preallocated size of a WAL segment (storage/wal/wal.h)
  bool wal_zero_ahead = true;  // WalOptions::zero_ahead (storage/wal/wal.h)
  // -auto-compaction-mode / -auto-compaction-retention (node/compactor.h):
  // the leader proposes compactions on this schedule. Off by default, as etcd.
  AutoCompactionOptions auto_compaction;
  // Watch limits and the progress notification interval (watch/watch_hub.h).
  watch::HubOptions watch;
  // -force-new-cluster (quorum loss, docs/operations.md): restart this
  // member as the only voter of its cluster, its whole log committed, through
  // a configuration entry appended to the log (raft/force_new_cluster.h).
  // Refused on an empty data dir (nothing to recover).
  bool force_new_cluster = false;
  // -auth-token-ttl (etcd's flag, seconds there): how long an unused simple
  // token stays valid on this member (auth/simple_tokens.h).
  int64_t auth_token_ttl_ms = 300'000;
};

// A consistent copy of the applied state written for a backup
// (Node::write_backup): a CKVSNAP2 snapshot file the caller owns.
struct BackupFile {
  std::string path;
  uint64_t index = 0;  // the applied index it holds
  uint64_t term = 0;
  uint64_t size_bytes = 0;
};

// The replicated description of one member (carried in raft::Member::context).
struct MemberInfo {
  std::string name;
  std::string raft_address;
  std::string api_address;  // empty until the member registers it
  // The random id of the member's data dir (storage/node_meta.h), learned
  // by probing it when it joins. A node answering with another one had its
  // data dir wiped: the transport refuses it (transport.h). Empty for
  // members added before incarnations existed, or that could not be probed.
  std::string incarnation;
  // host:port of the member's etcd gRPC API (etcd's client URL); empty if it
  // serves none or has not registered it. Registered like api_address.
  std::string grpc_address;
  // The cluster's identity (docs/design-notes.md, "Cluster identity"):
  // chosen at random when the cluster is founded and copied by the leader
  // into the info of every member it adds, so that any member's info
  // carries it. 0 when recorded before format 4 (the leader fills it in).
  uint64_t cluster_id = 0;
  // A learner that the leader promotes to voter once it has caught up (/join,
  // or etcd's MemberAdd without isLearner); false for a learner that only an
  // explicit promotion makes a voter (etcd's --learner). Learners recorded
  // before format 4 all came from /join, so they decode as true.
  bool promote_when_caught_up = false;
};

// The leader's replication progress for one member (raft::ProgressView).
struct Replication {
  uint64_t match = 0;  // highest index known to be in the member's log
  uint64_t next = 0;   // next index the leader sends it
  std::string state;   // "probe", "replicate", "snapshot"
};

struct MemberStatus {
  raft::NodeId id = 0;
  MemberInfo info;
  std::string role;  // "voter" or "learner"
  // On the leader: answered within the last two election timeouts (what
  // strict reconfiguration counts). Unknown (nullopt) on other nodes.
  std::optional<bool> active;
  // On the leader: how far the member's log is replicated. Unknown elsewhere.
  std::optional<Replication> progress;
};

struct NodeStatus {
  raft::NodeId id = 0;
  // cluster_id_of(latest configuration); 0 while this node has none.
  uint64_t cluster_id = 0;
  std::string name;
  std::string state;  // follower, pre-candidate, candidate, leader
  uint64_t term = 0;
  raft::NodeId leader_id = 0;
  MemberInfo leader;  // empty when no leader is known
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  uint64_t snapshot_index = 0;
  int64_t revision = 0;          // the MVCC store's current revision (1 when empty)
  int64_t compact_revision = 0;  // the store's last compaction (-1: none yet)
  bool no_space = false;  // the disk is full: writes are refused (see "Disk full" above)
  // The replicated alarms raised (fsm/alarm_table.h; etcd's Maintenance.Alarm), as applied here.
  std::vector<fsm::AlarmMember> alarms;
  bool client_tls = false;  // NodeOptions::client_tls
  bool peer_tls = false;    // NodeOptions::peer_tls
  // Bytes of the files in the data dir (WAL segments at their allocated
  // size, snapshots, metadata), the space reserve excluded; rescanned at
  // most every kDataDirScanIntervalMs (-inmem: its temp dir). etcd's dbSize.
  uint64_t data_dir_bytes = 0;
  // fsm::KvStateMachine::estimated_bytes(): the state held in memory. etcd's dbSizeInUse.
  uint64_t state_machine_bytes = 0;
  std::vector<MemberStatus> members;
  // Milliseconds since the Raft thread last woke up (it wakes at least
  // every tick): /healthz's liveness check. Computed by status().
  int64_t raft_loop_age_ms = 0;
  // This node learnt that the cluster removed it (docs/operations.md,
  // "Removed members"): it no longer campaigns. removed_reason says how.
  bool removed = false;
  std::string removed_reason;
};

// The few fields of NodeStatus a request layer reads on every call (routing
// a write, a response header), without copying the whole status (member
// list, addresses): Node::route_view().
struct RouteView {
  raft::NodeId id = 0;
  uint64_t cluster_id = 0;
  uint64_t term = 0;
  raft::NodeId leader_id = 0;
  bool no_space = false;
};

// What another member's /status says, as far as the removal check needs it
// (Node::set_peer_status_hook).
struct PeerView {
  std::string name;
  uint64_t cluster_id = 0;
  bool has_leader = false;
  uint64_t applied_index = 0;
  std::vector<std::string> member_names;
};
// How long a node with no leader waits (in election timeouts) before it asks
// other members whether it is still one of them, and how often it asks.
inline constexpr int kRemovalCheckAfterElectionTimeouts = 3;
inline constexpr int kRemovalCheckIntervalMs = 2000;

// How often the Raft thread re-measures NodeStatus::data_dir_bytes (a walk
// of the data dir's few files); between scans the last value stands.
inline constexpr int kDataDirScanIntervalMs = 1000;

// The most members a configuration may hold: raft::decode_membership
// refuses more (raft/types.cc), so a change past it would leave every node
// unable to read its own configuration (member_info_test checks the two agree).
inline constexpr size_t kMaxMembers = 1024;
// Learners that may wait for automatic promotion at once: a second join
// waits until the first learner is a voter or removed.
inline constexpr size_t kMaxPendingLearners = 1;
// Explicit learners (AddMode::kLearner) a cluster may hold, as etcd's maxLearners.
inline constexpr size_t kMaxLearners = 1;
// Longest name or address a member may have: the transport hello carries
// each in at most this many bytes (transport/stream_codec.h).
inline constexpr size_t kMaxMemberFieldBytes = 255;

// Ids in the core are 64-bit; names are what users type. The id is a hash of
// the name (never 0); a join with a name whose id is taken by another name is
// refused (kConflict).
raft::NodeId node_id_for(const std::string& name);

// The cluster id a configuration carries: that of its lowest-id member that
// records one. A configuration recorded before format 4 carries none; its id
// is then derived from the member ids (FNV-1a 64 over the sorted ids, what
// the header showed before), until the leader records that in every member
// (docs/design-notes.md, "Cluster identity"). 0 only for no members.
uint64_t cluster_id_of(const raft::Membership& m);

// A random nonzero 64-bit value (getrandom): cluster ids, boot ids.
Result<uint64_t> random_nonzero_u64();
// Gives the founding member of a NEW cluster a new cluster identity (today
// a random cluster_id, docs/design-notes.md "Cluster identity"). Every path
// that founds a cluster calls it: -bootstrap on an empty data dir and
// `kvnode restore` (node/restore.h), so a restored copy is never taken for
// the cluster it was backed up from. Identity that peer authentication adds
// (issue 11) belongs here too.
Status assign_new_cluster_identity(MemberInfo& founder);

// The log store's meta record naming the member a data dir belongs to
// (LogStorage::put_meta); restore writes it as open() would.
inline constexpr char kIdentityMetaKey[] = "identity";

// How add_member adds a new member (all start as learners, thesis §4.2.1).
enum class AddMode : uint8_t {
  kJoin,          // promoted once caught up; answered once it is a voter (/join)
  kVoterAsync,    // promoted once caught up; answered once the add is applied (etcd's MemberAdd)
  kLearner,       // stays a learner until promote_member; answered once applied (etcd's --learner)
};

// Why a membership change was refused, for callers that must say it in
// another system's words (the etcd API maps each to etcd's error). kNone for
// failures that are not refusals (timeouts, lost leadership, a full disk).
enum class MemberRefusal : uint8_t {
  kNone,
  kNotFound,          // no member with that id
  kAddressTaken,      // another member has that raft address
  kIdTaken,           // the name is taken, or hashes to a taken id
  kTooManyLearners,   // kMaxLearners explicit learners already
  kPendingLearner,    // kMaxPendingLearners learners already wait for promotion
  kUnhealthy,         // a voter is not recently active / the change would leave too few
  kNotLearner,        // promote of a voter
  kLearnerBehind,     // promote of a learner that has not caught up
  kNotEnoughActive,   // promotion would leave the larger configuration without an active quorum
};

class Node {
 public:
  // A member added by raft address only (`/join?peerAddress=...`): its API
  // address is not in the membership yet, so nobody could
  // forward to it. Once it is a member, the node registers its own API
  // address: a leader proposes the update itself; a follower calls this hook
  // (at most once a second until the membership shows it) so that the HTTP
  // layer can send a /join with its addresses to the leader's API.
  using RegisterHook = std::function<void(const MemberInfo& leader, const MemberInfo& self)>;
  // Outer error: the replication outcome (kNotLeader, kUnavailable,
  // kTimeout, kNoSpace, kInvalid for a command the log cannot carry); ok:
  // the entry was applied here, and WriteResult says what it did.
  using WriteCallback = std::function<void(Result<WriteResult>)>;
  using DoneCallback = std::function<void(Status)>;
  using ProbeCallback = std::function<void(Result<MemberInfo>)>;
  using MemberCallback = std::function<void(Status, MemberRefusal)>;
  // A lease answer: seconds (lease_renew) or milliseconds (lease_remaining).
  using LeaseCallback = std::function<void(Result<int64_t>)>;
  // A condition on this node's applied configuration (wait_for_configuration).
  using ConfigurationCheck = std::function<bool(const raft::Membership& applied)>;

  static Result<std::unique_ptr<Node>> open(const NodeOptions& options,
                                            std::unique_ptr<transport::Transport> transport,
                                            RegisterHook register_hook = nullptr);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void start();
  // Graceful stop: a leader first hands leadership to a caught-up voter
  // (bounded wait), then the Raft thread and transport stop.
  void stop();

  // Replicates c (stamping c.proposed_at_ms with this node's unix wall
  // clock); the callback gets the result of applying it on THIS node once
  // it is committed and applied here (so a read that follows sees it), or
  // kNotLeader / kUnavailable / kTimeout (the outcome is then unknown) /
  // kNoSpace. Any node: a follower forwards c to the leader as a Raft
  // proposal over the peer transport (node/forward_waiters.h), and answers
  // kUnavailable at once when it already has max_forwarded_writes in flight
  // (kErrTooManyForwardedWrites), kNotLeader when the node it took for the
  // leader refused it (not applied). No leader: see "No leader" below.
  // Refused with kInvalid before proposing: txns nested deeper
  // than fsm::kMaxTxnNestingDepth, idempotency keys over
  // fsm::kMaxIdempotencyKeyBytes. A command with an idempotency key that
  // was applied before (within the table's window) is answered with the
  // first result and duplicate = true, not applied again.
  void propose(fsm::Command c, int timeout_ms, WriteCallback cb);
  // Linearizable read barrier (thesis §6.4 ReadIndex): the callback gets OK
  // once this node's state machine has applied everything committed before
  // the call; then read state_machine() directly.
  //
  // No leader: a node that knows no leader when propose or read_barrier
  // runs (an election; or no quorum) holds the call until one is known,
  // then proposes or asks it, as etcd's proposals wait for a leader. It
  // gives up at NodeOptions::leader_wait_ms (or the call's timeout, if
  // sooner) with kUnavailable: nothing was proposed, so a retry is safe.
  void read_barrier(int timeout_ms, DoneCallback cb);
  // Leases (docs/api.md, "Leases"): only the leader keeps lease deadlines
  // (lease/expiry.h), on its monotonic clock, and expires a lease by
  // proposing its revoke (at most lease::kRevokeRatePerSec a second). It
  // becomes the lease primary once it has applied an entry of its own term,
  // and then gives every lease its full TTL. These answer on the Raft thread:
  //   lease_renew      a keepalive, in memory (no log write): the granted TTL
  //                    in seconds;
  //   lease_remaining  the time left, in milliseconds;
  // both kNotFound for a lease that does not exist or has expired,
  // kNotLeader on a follower, kUnavailable on a leader not yet primary
  // (the caller retries within its deadline, as etcd's LeaseRenew does).
  void lease_renew(int64_t id, LeaseCallback cb);
  void lease_remaining(int64_t id, LeaseCallback cb);
  // Leader only: adds the member as a learner, promotes it once caught up,
  // calls back when it is a voter. Idempotent for the same name and address.
  // Refused: past kMaxMembers (kConflict), while kMaxPendingLearners other
  // learners wait for promotion (kUnavailable), a member whose recorded
  // incarnation differs from info.incarnation (kConflict: its data dir was
  // wiped). The promotion waits until the new configuration would have a
  // quorum of recently active voters (strict reconfiguration).
  void add_member(MemberInfo info, int timeout_ms, DoneCallback cb);
  // The same with a mode (AddMode) and the refusal reason. kVoterAsync and
  // kLearner are etcd's MemberAdd: a member that exists already is refused
  // (kIdTaken, kAddressTaken), and so is any add while a voter is not
  // recently active (kUnhealthy, as etcd's strict reconfiguration). With
  // kJoin an existing explicit learner only has its addresses merged and is
  // answered at once: only promote_member makes it a voter.
  void add_member(MemberInfo info, AddMode mode, int timeout_ms, MemberCallback cb);
  // Leader only: makes a caught-up learner a voter; calls back once applied.
  // Refused: kNotFound, kNotLearner, kLearnerBehind (it lacks committed
  // entries or did not answer lately), kNotEnoughActive (the larger
  // configuration would lack a quorum of recently active voters).
  void promote_member(raft::NodeId id, int timeout_ms, MemberCallback cb);
  // Leader only: records a new raft address for a member (etcd's
  // MemberUpdate); the member must then listen there. Its name, hence its id,
  // stays. Refused: kNotFound, kAddressTaken.
  void update_member_address(raft::NodeId id, std::string raft_address, int timeout_ms, MemberCallback cb);
  // Leader only. Unless force, refused (kUnavailable) when the voters left
  // would have fewer recently active members than their quorum (etcd's
  // --strict-reconfig-check): the cluster would stop committing.
  void remove_member(const std::string& name, bool force, int timeout_ms, DoneCallback cb);
  // The same by id, with the refusal reason (kNotFound if not a member,
  // kUnhealthy for the quorum check above).
  void remove_member(raft::NodeId id, bool force, int timeout_ms, MemberCallback cb);
  // Any node: calls back (kOk) once this node's applied configuration
  // satisfies check, with status() showing it, or kTimeout. A follower that
  // had the leader make a change uses it to answer only once it shows it too.
  void wait_for_configuration(ConfigurationCheck check, int timeout_ms, DoneCallback cb);
  // Asks the node listening at raft_address who it is (its transport hello):
  // name, addresses, incarnation. The callback runs on a transport thread.
  void probe_peer(const std::string& raft_address, int timeout_ms, ProbeCallback cb);

  // Writes a consistent copy of the state as of this node's applied index
  // (Maintenance.Snapshot) into a temp file in the data dir, the way the
  // node's own snapshots are written (the store is streamed in chunks under
  // the shared lock while writes go on: kv_state_machine.h), and calls back
  // with it, or kNoSpace / kUnavailable (stopping). Backups and the node's
  // own snapshots run one at a time. The caller must delete the file
  // (a start deletes leftovers). The callback runs on the Raft thread.
  using BackupCallback = std::function<void(Result<BackupFile>)>;
  void write_backup(BackupCallback cb);
  // Maintenance.Defragment on this member (docs/operations.md, "Defragment"):
  // takes a snapshot of the applied state now, whatever
  // snapshot_threshold says, then drops the log entries it covers (all but
  // the last snapshot_trailing, kept for lagging followers) with the WAL
  // segments and older snapshot files that held them, and hands memory the
  // state machine freed back to the system (malloc_trim). Calls back once
  // done with what it did, or kNoSpace (no room for the snapshot file), or
  // kUnavailable (stopping, or kMaxPendingDefrags calls already waiting).
  // Runs one at a time with the node's own snapshots and backups; calls
  // that arrive while one is written share the next. Raft thread callback.
  struct DefragResult {
    uint64_t snapshot_index = 0;    // the applied index the new snapshot holds
    uint64_t data_dir_bytes_before = 0;
    uint64_t data_dir_bytes_after = 0;
    uint64_t log_first_index = 0;   // the first log entry still kept
  };
  using DefragCallback = std::function<void(Result<DefragResult>)>;
  static constexpr size_t kMaxPendingDefrags = 16;
  void defragment(DefragCallback cb);
  // Leader only (Maintenance.MoveLeader, POST /transfer): hands leadership
  // to the voter target (thesis §3.10: the core catches it up, then sends
  // TimeoutNow) and calls back once this node sees target lead, or kTimeout
  // (etcd waits the same way). Refused: kNotLeader, kInvalid (target is not
  // a voter: unknown, or a learner). target == this node: OK at once.
  void transfer_leadership(raft::NodeId target, int timeout_ms, DoneCallback cb);

  // How a node that hears no leader learns that the cluster removed it
  // while it was away (a leader stops replicating to a member once the
  // entry removing it is appended, so the removed node's log never shows
  // it): every kRemovalCheckIntervalMs, after
  // kRemovalCheckAfterElectionTimeouts election timeouts without a leader,
  // it asks one member of its configuration for its /status (the HTTP layer
  // implements this; it answers on any thread). If that member is the one
  // recorded (name and cluster id), has a leader, has applied past this
  // node's last entry (so it has seen this node's own addition) and does not
  // list this node, the node is removed: it logs "removed from the cluster",
  // shows removed in status() and stops campaigning (raft::Raft::set_removed)
  // until a leader contacts it again. A node that applies its own removal
  // (a leader that removed itself) is removed the same way. Set before start().
  using PeerStatusHook = std::function<void(const MemberInfo& peer, std::function<void(Result<PeerView>)> done)>;
  void set_peer_status_hook(PeerStatusHook hook);

  NodeStatus status() const;  // thread-safe snapshot of the node's view
  RouteView route_view() const;  // the same fields as status(), cheaply (thread-safe)
  // This data dir's incarnation (storage/node_meta.h): fixed once open()
  // returned, so any thread may read it (e.g. for the transport's hello).
  const std::string& incarnation() const;
  const fsm::KvStateMachine& state_machine() const;
  // The watchers of this node's applied state (watch/watch_hub.h): fed by
  // every applied write, on followers too. Lives as long as the Node.
  watch::Hub& watch_hub();
  // This member's simple tokens (auth/simple_tokens.h), fed by every
  // applied Authenticate. Lives as long as the Node; thread safe.
  auth::SimpleTokens& tokens();

 private:
  class Impl;
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckv::node
