// The node's Raft thread: drives the core's Ready (persist, send, apply, advance) and answers waiters.
#include "node/node.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "auth/simple_tokens.h"
#include "common/check.h"
#include "common/release_memory.h"
#include "common/thread_name.h"
#include "fsm/kv_state_machine.h"
#include "lease/expiry.h"
#include "metrics/instruments.h"
#include "mvcc/errors.h"
#include "node/forward_waiters.h"
#include "node/member_info.h"
#include "node/peer_rtt.h"
#include "node/snapshot_policy.h"
#include "node/startup_timeline.h"
#include "node/write_waiters.h"
#include "raft/force_new_cluster.h"
#include "raft/raft.h"
#include "storage/dir_lock.h"
#include "storage/open_log.h"
#include "storage/node_meta.h"
#include "storage/snapshot_file.h"
#include "transport/transport.h"
#include "watch/watch_hub.h"

namespace ckv::node {

namespace {

using Clock = std::chrono::steady_clock;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}
using raft::Index;

constexpr auto kDroppedLogInterval = std::chrono::seconds(1);
constexpr char kReserveFileName[] = "space-reserve";

// NodeStatus::data_dir_bytes: the sizes of the regular files under dir, the
// space reserve excluded (a fixed allowance, not data). Errors (a file
// removed during the walk) skip that file: this is a gauge, not a check.
uint64_t data_dir_bytes(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  uint64_t total = 0;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code fec;
    if (!it->is_regular_file(fec) || fec) continue;
    if (it.depth() == 0 && it->path().filename() == kReserveFileName) continue;
    const uintmax_t n = it->file_size(fec);
    if (!fec) total += n;
  }
  return total;
}
// A persist that failed for want of space is retried after this, doubling
// up to the maximum: often enough to resume soon after space returns.
constexpr int kPersistRetryInitialMs = 10;
constexpr int kPersistRetryMaxMs = 1000;
// How often a node that is out of space checks whether space returned.
constexpr int kSpaceCheckIntervalMs = 500;
// After a failed snapshot (e.g. no space for the file), wait this long before trying again.
constexpr int kSnapshotRetryMs = 5000;

Status from_raft_error(raft::Error e) {
  switch (e) {
    case raft::Error::kOk: return Status::ok();
    case raft::Error::kNotLeader: return Status(StatusCode::kNotLeader, "not the leader");
    case raft::Error::kTransferInProgress:
    case raft::Error::kConfChangeInProgress:
    case raft::Error::kNotReady:
    case raft::Error::kOverloaded: return Status(StatusCode::kUnavailable, raft::to_string(e));
    case raft::Error::kAlreadyMember:
    case raft::Error::kNotMember:
    case raft::Error::kNotLearner: return Status(StatusCode::kConflict, raft::to_string(e));
    case raft::Error::kInvalid: return Status(StatusCode::kInvalid, raft::to_string(e));
    case raft::Error::kMembershipFull: return Status(StatusCode::kConflict, raft::to_string(e));
    case raft::Error::kNoSpace: return Status(StatusCode::kNoSpace, raft::to_string(e));
  }
  return Status(StatusCode::kUnavailable, "unknown raft error");
}

Clock::time_point deadline_after(int ms) { return Clock::now() + std::chrono::milliseconds(ms); }

// A call that waited for a leader (node.h, "No leader") and saw none: nothing was proposed.
Status no_leader_status() {
  return Status(StatusCode::kUnavailable, "no leader known (election in progress or no quorum); retry");
}


uint64_t quorum_of(size_t voters) { return voters / 2 + 1; }

// How often a leader probes a member recorded without an incarnation, and
// how long it waits for the answer.
constexpr std::chrono::milliseconds kIncarnationProbeInterval{1000};
constexpr int kIncarnationProbeTimeoutMs = 1000;

[[noreturn]] void fatal_storage(const Status& s) {
  // A failed fsync or write leaves us unsure what is durable; continuing
  // could acknowledge what a crash would lose. Stop instead (etcd does too),
  // with the cause and a non-zero exit: a full disk never gets here (see
  // node.h, "Disk full"). _Exit, not exit: other threads are still running,
  // and what is durable is durable already.
  spdlog::critical("storage failure, stopping: {} (see docs/operations.md, \"Storage errors\")", s.to_string());
  if (auto logger = spdlog::default_logger()) logger->flush();
  std::_Exit(kExitStorageFailure);
}

Status no_space_status(const std::string& dir) {
  return Status(StatusCode::kNoSpace, "no space left on device in data dir " + dir +
                                          ": writes are refused until space is freed (reads still work)");
}

// Free bytes for unprivileged writers on dir's filesystem; nullopt if unknown.
std::optional<uint64_t> free_bytes(const std::string& dir) {
  struct statvfs vfs{};
  if (::statvfs(dir.c_str(), &vfs) != 0) return std::nullopt;
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace

class Node::Impl {
 public:
  Impl(NodeOptions o, std::unique_ptr<transport::Transport> t, RegisterHook hook)
      : opts_(std::move(o)),
        transport_(std::move(t)),
        register_hook_(std::move(hook)),
        compactor_(opts_.auto_compaction) {
    // In the body: hub_ and fsm_ are declared before opts_.
    hub_ = std::make_shared<watch::Hub>(
        [this](const std::function<void(const mvcc::Store&)>& fn) { fsm_.with_store(fn); },
        opts_.watch);
    // Every applied write reaches the watchers (watch_hub.h), from the Raft thread.
    fsm_.set_watch_hooks(fsm::KvStateMachine::WatchHooks{
        [h = hub_.get()](int64_t rev, const std::vector<mvcc::Event>& ev) { h->publish(rev, ev); },
        [h = hub_.get()](int64_t rev) { h->restored(rev); }});
    // Applied Authenticates and user changes reach this member's tokens (simple_tokens.h).
    tokens_ = std::make_shared<auth::SimpleTokens>(opts_.auth_token_ttl_ms);
    fsm_.set_auth_hooks(fsm::KvStateMachine::AuthHooks{
        [t = tokens_.get()](const std::string& user, const std::string& digest) {
          t->add(digest, user, auth::SimpleTokens::Clock::now());
        },
        [t = tokens_.get()](const std::string& user) { t->invalidate_user(user); },
        [t = tokens_.get()] { t->clear(); }});
  }
  ~Impl() {
    stop();
    hub_->stop();
  }

  Status open();
  void start();
  void stop();
  void post(std::function<void()> fn);

  void propose(fsm::Command c, int timeout_ms, WriteCallback cb);
  void read_barrier(int timeout_ms, DoneCallback cb);
  void lease_call(int64_t id, bool renew, LeaseCallback cb);
  void add_member(MemberInfo info, AddMode mode, int timeout_ms, MemberCallback cb);
  void promote_member(raft::NodeId id, int timeout_ms, MemberCallback cb);
  void update_member_address(raft::NodeId id, std::string raft_address, int timeout_ms, MemberCallback cb);
  void remove_member(raft::NodeId id, bool force, int timeout_ms, MemberCallback cb);
  void wait_for_configuration(ConfigurationCheck check, int timeout_ms, DoneCallback cb);
  void probe_peer(const std::string& raft_address, int timeout_ms, ProbeCallback cb);
  void write_backup(BackupCallback cb);
  void defragment(DefragCallback cb);
  void transfer_leadership(raft::NodeId target, int timeout_ms, DoneCallback cb);
  NodeStatus status() const {
    std::lock_guard lock(status_mu_);
    NodeStatus s = status_;
    // A write's answer leaves before the loop publishes status_ again: its
    // index and revision are already here (note_applied), so a client that
    // reads /status or /metrics after its write sees the write counted.
    s.applied_index = std::max(s.applied_index, applied_now_.load(std::memory_order_acquire));
    s.commit_index = std::max(s.commit_index, s.applied_index);
    s.revision = std::max(s.revision, revision_now_.load(std::memory_order_acquire));
    s.no_space = no_space_.load();
    s.raft_loop_age_ms = steady_ms() - raft_loop_at_ms_.load(std::memory_order_relaxed);
    return s;
  }

  RouteView route_view() const {
    std::lock_guard lock(status_mu_);
    return RouteView{status_.id, status_.cluster_id, status_.term, status_.leader_id, no_space_.load()};
  }

  const std::string& incarnation() const { return meta_.incarnation; }

  fsm::KvStateMachine fsm_;
  // After fsm_ (its reader uses it); the Raft thread stops before it goes.
  std::shared_ptr<watch::Hub> hub_;
  std::shared_ptr<auth::SimpleTokens> tokens_;

 private:
  struct ReadWaiter {
    Clock::time_point deadline;
    DoneCallback cb;
    // Asked again of the next leader when the one asked changes first
    // (reads_to_retry_). Not a keepalive's leadership check: only this node,
    // as leader in the term it was asked in, may answer that one.
    bool retry = true;
    // Who led, in which term, when it was last asked: a retry waits for a
    // change of either, else a deposed leader's refusals would bounce it
    // back and forth until the follower's election timer fires.
    raft::NodeId asked_leader = raft::kNoNode;
    raft::Term asked_term = 0;
  };
  struct MemberWaiter {
    ConfigurationCheck done;  // on the applied configuration
    Clock::time_point deadline;
    MemberCallback cb;
  };

  // Which parts of one Ready's persist are durable already, so that a
  // retry after ENOSPC redoes only the rest (adopting twice would fail).
  struct PersistProgress {
    bool snapshot_adopted = false;
    size_t applied_early = 0;  // committed entries applied before the persist (handle_ready)
  };

  // A write or read barrier that arrived while this node knew no leader
  // (node.h, "No leader"): run again once one is known, refused at give_up.
  struct LeaderWaiter {
    using Resume = std::function<void(const Status&)>;  // ok: run the call again; else answer with it
    Clock::time_point give_up;
    uint64_t bytes = 0;  // of the encoded command (0 for a read)
    Resume resume;
  };

  void run();
  void step(const raft::Message& m);
  void handle_ready();
  // The Raft-thread halves of propose and read_barrier: may park the call until a leader is known.
  void propose_encoded(std::string data, Clock::time_point deadline, Clock::time_point give_up, WriteCallback cb);
  void read_barrier_at(Clock::time_point deadline, Clock::time_point give_up, DoneCallback cb);
  // When a call that finds no leader stops waiting for one: the earlier of its
  // deadline and NodeOptions::leader_wait_ms from now.
  Clock::time_point leader_wait_until(Clock::time_point deadline) const;
  // Takes resume unless past give_up or over the limits (those of forwarded writes); false: refused.
  bool park_until_leader(Clock::time_point give_up, uint64_t bytes, LeaderWaiter::Resume resume);
  // Once a leader is known, runs every parked call again (in arrival order); else refuses those past give_up.
  void resume_leader_waiters(Clock::time_point now);
  void finish_ready(raft::Ready& rd, size_t applied_early);
  void retry_failed_reads();
  // Starts a ReadIndex round for w (raft.h read_index) and takes w; false,
  // leaving w as it was, when no leader is known.
  bool ask_read(ReadWaiter& w);
  Status persist(const raft::Ready& rd, PersistProgress& progress);
  void step_message(const raft::Message& m);
  // Disk full (node.h): enter the mode (releasing the reserve: true if it
  // was held), retry a held Ready, leave the mode once space returns.
  bool enter_no_space(const Status& cause);
  void retry_held_ready();
  void check_space();
  Status create_reserve();
  Status check_initial_state(const raft::InitialState& init) const;
  void send_messages(std::vector<raft::Message>& msgs, size_t from, size_t to);
  // Applies rd's committed entries from the first_entry-th on.
  void apply(const raft::Ready& rd, size_t first_entry);
  void apply_entry(const raft::Entry& e);
  [[noreturn]] void stop_on_undecodable(const raft::Entry& e);
  // Restores the state machine from a snapshot read at open (either format).
  Status restore_state_machine(storage::LoadedSnapshot& loaded, const std::string& path);
  void on_tick();
  // Leases (node.h): promotes or demotes the expiry clock with leadership
  // and proposes the revokes of expired leases. True while primary.
  bool drive_lease_expiry();
  // After applying a committed command: the expiry clock follows grants and revokes.
  void note_lease_command(const fsm::Command& c, const fsm::ApplyResult& r);
  void progress_member_changes();
  void promote_caught_up_learners(Clock::time_point now);
  bool promotion_keeps_active_quorum(Clock::time_point now) const;
  // Before removing `leaving`: true if a member that stays records the
  // cluster id; else proposes recording it in one and returns false.
  bool cluster_id_survives_removal(raft::NodeId leaving);
  // Answers cb and returns true when this node cannot make a membership change now.
  bool refuse_membership_call(const MemberCallback& cb);
  // A membership call is an attempt that returns true once it answered or
  // registered its waiter, false when the core refused its proposal for now
  // (proposal_refused): it is then tried again on every pass of the loop.
  // The attempt answers cb; a call still deferred when the node stops is answered there.
  void run_membership_call(MemberCallback cb, std::function<bool(const MemberCallback&)> attempt);
  bool proposal_refused(raft::Error e, const MemberCallback& cb);
  void maybe_start_snapshot();
  // Backups (write_backup) wait while a snapshot is being written, and the
  // node's own snapshots while a backup is.
  void maybe_start_backup();
  // Leadership transfers answered once the target leads (or at their deadline).
  void progress_transfers();
  // -force-new-cluster: appends the one-voter configuration to init (raft/force_new_cluster.h) and persists it.
  Status force_new_cluster(raft::InitialState& init);
  // Leader: proposes the compaction the compactor's schedule says is due.
  void maybe_auto_compact();
  void finish_snapshot(Result<storage::SnapshotFile> file);
  void sync_peers();
  void update_unknown_sender_policy();
  void publish_status();
  // Before an applied write's waiter answers: status() shows its index and revision.
  void note_applied();
  void set_applied_membership(raft::Membership m) {
    applied_membership_ = std::move(m);
    ++applied_membership_version_;
    if (applied_membership_.contains(id_)) ever_member_ = true;
  }
  // Removed members (node.h, set_peer_status_hook).
  void check_removal();
  void mark_removed(const std::string& reason);

 public:
  Node::PeerStatusHook peer_status_hook_;  // set before start()

 private:
  void log_changes(const NodeStatus& s);
  void answer_reads_up_to(Index applied);
  void hand_off_leadership();
  // Leader only: the most caught-up voter that answered recently (kNoNode if none).
  raft::NodeId best_transfer_target() const;
  void register_api_address();
  void record_missing_incarnations();
  void track_active_voters();
  // Not a member of its own configuration: fresh, removed, or caught up by
  // a snapshot taken before it was added (whose configuration may lack the
  // leader that sends it, too). Such a node must hear the leader that adds
  // it, whoever that is (transport.h, "Who is heard").
  bool outside_configuration() const {
    return !raft_->membership().contains(id_) && !applied_membership_.contains(id_);
  }
  bool recently_active(raft::NodeId id, Clock::time_point now) const;
  MemberInfo self_info() const {
    return MemberInfo{opts_.name, opts_.raft_address, opts_.api_address, meta_.incarnation, opts_.grpc_address};
  }

  NodeOptions opts_;
  std::unique_ptr<transport::Transport> transport_;
  RegisterHook register_hook_;
  Compactor compactor_;  // Raft thread
  // Leases (node.h). Raft thread. The term of the last applied entry, and
  // the term in which the expiry clock was promoted (0: not primary).
  lease::LeaseExpiry lease_expiry_;
  raft::Term applied_term_ = 0;
  raft::Term lease_primary_term_ = 0;
  Clock::time_point last_registration_{};
  // NodeStatus::data_dir_bytes, as of the last scan (publish_status).
  uint64_t data_dir_bytes_ = 0;
  std::optional<Clock::time_point> last_data_dir_scan_;
  // The membership version in which our recorded addresses matched (0: none yet; the core starts at 1).
  uint64_t registered_version_ = 0;
  // Leader: members recorded without an incarnation (added while they could
  // not be probed, or before incarnations existed) are probed, one at a time.
  Clock::time_point last_incarnation_probe_{};
  bool incarnation_probe_in_flight_ = false;
  // The membership version in which every member had an incarnation (0: none yet; the core starts at 1).
  uint64_t incarnations_complete_version_ = 0;
  raft::NodeId id_ = 0;
  storage::NodeMeta meta_;  // this data dir's name and incarnation
  std::string data_dir_;
  bool temp_dir_ = false;
  std::unique_ptr<storage::DirLock> dir_lock_;  // held until the Node is destroyed
  std::unique_ptr<storage::LogStorage> store_;
  std::unique_ptr<raft::Raft> raft_;
  // Where this start's time goes (startup_timeline.h): open() marks the
  // storage phases, the Raft thread the rest until the first read. Marks
  // after the first read are ignored.
  StartupTimeline startup_;
  raft::Index boot_commit_ = 0;  // the commit index open() recovered
  bool boot_replayed_ = false;   // applied up to boot_commit_ (marked once)
  bool boot_leader_known_ = false;
  void note_startup_progress();

  // Work queue of the Raft thread.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
  std::atomic<bool> started_{false};

  // Raft-thread state.
  WriteWaiters writes_;
  // Writes this node forwarded to the leader (forward_waiters.h), matched by
  // the origin tag of the entries; boot_id_ tells this process's tags from
  // an earlier one's (sequence numbers restart with the process).
  ForwardWaiters forwards_{opts_.max_forwarded_writes, opts_.max_forwarded_write_bytes};
  uint64_t boot_id_ = 0;
  uint64_t next_forward_seq_ = 1;
  uint64_t next_read_id_ = 1;
  std::map<uint64_t, ReadWaiter> reads_;                // asked, no read index yet
  // Reads whose leader changed before it answered (Ready::failed_reads) and
  // whose deadline has not passed: asked again after advance() and on each
  // tick, of whoever leads once one is known, so a failover costs them an
  // election, not their deadline (nor an error the client must retry).
  std::vector<ReadWaiter> reads_to_retry_;
  // Past this many, a failed read is answered at once instead of retried: failovers in a row would
  // otherwise keep adding to reads_to_retry_ while new reads refill reads_.
  static constexpr size_t kMaxReadsToRetry = 65536;
  std::multimap<Index, ReadWaiter> reads_waiting_apply_;  // read index known
  std::deque<LeaderWaiter> leader_waiters_;  // park_until_leader
  uint64_t leader_waiter_bytes_ = 0;
  std::vector<MemberWaiter> member_waiters_;
  struct DeferredCall {
    std::function<bool(const MemberCallback&)> attempt;
    MemberCallback cb;
  };
  std::vector<DeferredCall> deferred_membership_calls_;  // run_membership_call
  raft::Membership applied_membership_;  // configuration as of the applied index
  uint64_t applied_membership_version_ = 0;
  uint64_t synced_membership_version_ = 0;
  uint64_t synced_applied_membership_version_ = 0;
  std::set<raft::NodeId> peers_;  // registered with the transport
  std::optional<bool> accepting_unknown_senders_;  // what the transport was last told
  // Leader only: when each voter last showed as recent_active in the core's
  // progress (strict reconfiguration); cleared on losing leadership.
  std::map<raft::NodeId, Clock::time_point> last_active_;
  std::optional<storage::SnapshotFile> snapshot_;  // the current local snapshot file
  std::optional<fsm::RestoredState> installed_state_;  // a received snapshot's state, between persist and apply
  bool snapshot_in_progress_ = false;
  // Bytes of entries applied since this process started, and the count when
  // the last snapshot began (or a received one was installed): the size rule
  // of maybe_start_snapshot.
  uint64_t applied_entry_bytes_ = 0;
  uint64_t applied_entry_bytes_at_snapshot_ = 0;
  std::thread snapshot_thread_;
  int incoming_fd_ = -1;
  Clock::time_point next_snapshot_attempt_{};
  // A local snapshot that finished while a Ready was held: completed after.
  std::optional<Result<storage::SnapshotFile>> pending_snapshot_;
  std::deque<BackupCallback> pending_backups_;
  uint64_t next_backup_seq_ = 1;
  // Defragment calls (node.h): waiting for the next snapshot, and those
  // the snapshot being written answers (at most kMaxPendingDefrags in all).
  std::vector<DefragCallback> pending_defrags_;
  std::vector<DefragCallback> defrags_in_snapshot_;
  uint64_t defrag_bytes_before_ = 0;
  void answer_defrags(const Status& failed);
  struct TransferWaiter {
    raft::NodeId target;
    Clock::time_point deadline;
    DoneCallback cb;
  };
  std::vector<TransferWaiter> transfers_;
  // Removed members (node.h). Raft thread.
  bool removed_ = false;
  std::string removed_reason_;
  bool ever_member_ = false;  // an applied configuration held this node
  std::optional<Clock::time_point> leaderless_since_;
  Clock::time_point last_removal_check_{};
  bool removal_check_in_flight_ = false;
  size_t removal_check_next_ = 0;

  // Disk full (node.h, "Disk full"). Raft-thread state, except that status() reads no_space_.
  std::atomic<bool> no_space_{false};  // written by the Raft thread only
  bool reserve_held_ = false;
  std::optional<raft::Ready> held_;  // persist failed for want of space; retried, never skipped
  PersistProgress held_progress_;
  int persist_backoff_ms_ = kPersistRetryInitialMs;
  Clock::time_point next_persist_retry_{};
  Clock::time_point next_space_check_{};
  uint64_t dropped_for_space_ = 0;  // entry/snapshot messages shed while out of space

  mutable std::mutex status_mu_;
  NodeStatus status_;
  std::atomic<uint64_t> applied_now_{0};   // note_applied(); status() takes the newer of this and status_
  std::atomic<int64_t> revision_now_{0};
  // When the Raft loop last woke (steady clock ms), for /healthz (NodeStatus::raft_loop_age_ms).
  std::atomic<int64_t> raft_loop_at_ms_{steady_ms()};
  PeerRtt rtt_{metrics::instruments().peers};  // Raft thread
  // What the operator log last said, so it reports changes once.
  std::string logged_role_;
  raft::NodeId logged_leader_ = raft::kNoNode;
  uint64_t logged_membership_version_ = 0;
  // Peer messages the core refused (message_checks.h): counted, and logged
  // at most once per kDroppedLogInterval so a flood cannot flood the log.
  uint64_t dropped_messages_ = 0;
  uint64_t dropped_since_log_ = 0;
  Clock::time_point last_drop_log_{};
};

// ---------------------------------------------------------------------------
// Opening: first boot or resume.

Status Node::Impl::open() {
  if (opts_.name.empty()) opts_.name = opts_.raft_address;
  id_ = node_id_for(opts_.name);
  data_dir_ = opts_.data_dir;
  if (opts_.in_memory) {
    // -inmem: a private temp dir without fsync, removed on exit; nothing
    // survives a restart, exactly as the reference's in-memory stores.
    data_dir_ = (std::filesystem::temp_directory_path() /
                 ("ckv-inmem-" + std::to_string(::getpid()) + "-" + std::to_string(id_)))
                    .string();
    std::filesystem::remove_all(data_dir_);
    temp_dir_ = true;
  }
  std::error_code ec;
  std::filesystem::create_directories(data_dir_, ec);
  if (ec) return Status(StatusCode::kIo, data_dir_ + ": cannot create data dir: " + ec.message());

  // The lock first: nothing below may run while another process uses the dir.
  auto lock = storage::DirLock::acquire(data_dir_);
  if (!lock.is_ok()) return lock.status();
  dir_lock_ = std::move(lock).value();
  if (Status st = storage::remove_stale_temp_files(data_dir_); !st.is_ok()) return st;

  auto meta = storage::read_node_meta(data_dir_);
  if (!meta.is_ok()) {
    return Status(meta.status().code(),
                  meta.status().message() + " (see docs/operations.md, \"Damaged or missing files\")");
  }
  startup_.mark("data dir lock and node_meta");
  if (meta.value() && meta.value()->name != opts_.name) {
    return Status(StatusCode::kConflict, data_dir_ + " belongs to node '" + meta.value()->name + "', not '" +
                                             opts_.name + "' (pass -id " + meta.value()->name + ")");
  }
  auto latest = storage::find_latest_snapshot(data_dir_);
  if (!latest.is_ok()) return latest.status();

  storage::WalOptions store_options;
  store_options.sync = !opts_.in_memory;
  store_options.segment_bytes = opts_.wal_segment_bytes;
  store_options.zero_ahead = opts_.wal_zero_ahead;
  // node_meta is written after the log store is created, and snapshots only
  // exist beside a log: either one means the log store held this member's state.
  store_options.expect_existing = meta.value().has_value() || latest.value().has_value();
  auto store = storage::open_log_storage(data_dir_, store_options);
  if (!store.is_ok()) return store.status();
  store_ = std::move(store).value();
  startup_.mark("WAL open and replay");

  auto identity = store_->get_meta(kIdentityMetaKey);
  if (!identity.is_ok()) return identity.status();
  if (identity.value() && *identity.value() != opts_.name) {
    return Status(StatusCode::kConflict, data_dir_ + " belongs to node '" + *identity.value() +
                                             "', not '" + opts_.name + "' (pass -id " + *identity.value() + ")");
  }
  // After the log store exists (see expect_existing above), and before a
  // bootstrap records this member with its incarnation. A data dir from
  // before node_meta existed gets its incarnation now: the cluster never
  // knew one for it, so a new one identifies it from here on.
  if (meta.value()) {
    meta_ = *meta.value();
  } else {
    auto incarnation = storage::new_incarnation();
    if (!incarnation.is_ok()) return incarnation.status();
    meta_ = storage::NodeMeta{opts_.name, incarnation.value()};
    if (Status st = storage::write_node_meta(data_dir_, meta_); !st.is_ok()) return st;
    if (identity.value()) {
      spdlog::info("data dir {} had no node_meta (made by an older version): created it with incarnation {}",
                   data_dir_, meta_.incarnation);
    } else {
      spdlog::info("new data dir {}: incarnation {}", data_dir_, meta_.incarnation);
    }
  }

  auto hs = store_->load_hard_state();
  if (!hs.is_ok()) return hs.status();
  auto entries = store_->load_entries();
  if (!entries.is_ok()) return entries.status();

  raft::InitialState init;
  init.hard_state = hs.value();
  init.entries = std::move(entries).value();
  if (latest.value()) {
    auto loaded = storage::read_snapshot_file(*latest.value());
    if (!loaded.is_ok()) {
      // Never fall back silently: the log behind it is gone.
      return Status(loaded.status().code(),
                    loaded.status().message() + " (see docs/operations.md, \"Damaged or missing files\")");
    }
    startup_.mark("snapshot file read and checksum");
    init.snapshot = loaded.value().meta;
    set_applied_membership(init.snapshot.membership);
    if (Status st = restore_state_machine(loaded.value(), *latest.value()); !st.is_ok()) return st;
    snapshot_ = storage::SnapshotFile{*latest.value(), init.snapshot};
    (void)storage::remove_other_snapshots(data_dir_, *latest.value());
    const Index s = init.snapshot.index;
    // A crash between adopting a received snapshot and dropping the old log
    // leaves a log that does not contain the snapshot's last entry: it is
    // superseded by the snapshot, so drop it (§7).
    bool keep = !init.entries.empty() && init.entries.back().index >= s && init.entries.front().index <= s + 1;
    if (keep && init.entries.front().index <= s) {
      keep = init.entries[s - init.entries.front().index].term == init.snapshot.term;
    }
    if (!init.entries.empty() && !keep) {
      if (init.entries.front().index > s + 1) {
        return Status(StatusCode::kCorrupt, store_->path() + ": log starts at " +
                                                std::to_string(init.entries.front().index) + " after snapshot " +
                                                std::to_string(s) + ": entries are missing");
      }
      init.entries.clear();
      if (Status st = store_->persist({}, std::nullopt, true); !st.is_ok()) return st;
    }
  }

  const bool fresh = init.hard_state == raft::HardState{} && init.entries.empty() && init.snapshot.index == 0;
  if (opts_.force_new_cluster) {
    if (fresh) {
      return Status(StatusCode::kInvalid, "-force-new-cluster: data dir " + data_dir_ +
                                              " holds no state to recover (start the survivor's own data dir)");
    }
    if (Status st = force_new_cluster(init); !st.is_ok()) return st;
  }
  if (fresh && opts_.bootstrap) {
    // The cluster's identity is chosen here, once, and travels in the
    // founder's MemberInfo; the leader copies it into every member it adds.
    MemberInfo founder = self_info();
    if (Status st = assign_new_cluster_identity(founder); !st.is_ok()) return st;
    raft::Membership m;
    m.members.push_back(raft::Member{id_, raft::MemberRole::kVoter, encode_member_info(founder)});
    init = raft::bootstrap_state(m);
    if (Status st = store_->persist(init.entries, init.hard_state, false); !st.is_ok()) return st;
    spdlog::info("bootstrapped a new cluster {:016x} in {} as {}", founder.cluster_id, data_dir_, opts_.name);
  } else if (fresh) {
    spdlog::info("empty data dir {}: waiting to be added to a cluster", data_dir_);
  } else {
    spdlog::info("resuming from {}: term {}, {} log entries, snapshot at {}", data_dir_, init.hard_state.term,
                 init.entries.size(), init.snapshot.index);
  }
  if (!identity.value()) {
    if (Status st = store_->put_meta(kIdentityMetaKey, opts_.name); !st.is_ok()) return st;
  }
  if (Status st = check_initial_state(init); !st.is_ok()) return st;

  if (!opts_.in_memory && opts_.space_reserve_bytes > 0) {
    if (Status st = create_reserve(); st.code() == StatusCode::kNoSpace) {
      // A restart on a full disk must not fail: start refusing writes.
      spdlog::warn("no space for the {}-byte space reserve ({}): starting with writes refused until space is freed",
                   opts_.space_reserve_bytes, st.message());
      no_space_ = true;
    } else if (!st.is_ok()) {
      return st;
    }
  }

  // Random, so that a restarted process never takes an earlier one's
  // committed-but-unapplied tagged entries for its own.
  auto boot = random_nonzero_u64();
  if (!boot.is_ok()) return boot.status();
  boot_id_ = boot.value();

  raft::Options ro;
  ro.id = id_;
  ro.election_ticks = opts_.election_ticks;
  ro.heartbeat_ticks = opts_.heartbeat_ticks;
  ro.random_seed = opts_.random_seed != 0
                       ? opts_.random_seed
                       : static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^ id_;
  ro.snapshot_chunk_bytes = opts_.snapshot_chunk_bytes;
  ro.snapshot_trailing_entries = opts_.snapshot_trailing;
  ro.max_uncommitted_bytes = opts_.max_uncommitted_bytes;
  ro.max_forwarded_bytes_per_peer = opts_.max_forwarded_bytes_per_peer;
  ro.max_forwarded_entries_per_peer = opts_.max_forwarded_entries_per_peer;
  raft_ = std::make_unique<raft::Raft>(ro, init);
  boot_commit_ = raft_->commit_index();
  startup_.mark("raft core and the rest of open");
  transport_->set_local_identity(transport::PeerIdentity{id_, opts_.name, opts_.raft_address, opts_.api_address,
                                                         meta_.incarnation, cluster_id_of(raft_->membership())});
  // Entries up to the snapshot are in the state machine; later committed
  // ones come back as committed entries in the first Ready.
  publish_status();
  return Status::ok();
}

Status Node::Impl::force_new_cluster(raft::InitialState& init) {
  MemberInfo me = self_info();
  // The configuration lacks us only if our own addition never reached us;
  // the cluster keeps its identity (as etcd's --force-new-cluster).
  const raft::Membership latest = raft::latest_membership(init);
  me.cluster_id = cluster_id_of(latest);
  raft::ForcedCluster forced = raft::force_new_cluster_state(init, id_, encode_member_info(me));
  // Durable before the core sees it: the reset is a log entry like any other.
  if (Status st = store_->persist(forced.appended, forced.state.hard_state, false); !st.is_ok()) return st;
  const raft::Index last = forced.appended.front().index - 1;
  spdlog::warn("-force-new-cluster: this member is now the only voter of cluster {:016x} (was: {} members); "
               "committed the log up to {} (entries {} to {} had not been known committed) and appended the "
               "new configuration at index {}; add members again with /join or etcdctl member add",
               cluster_id_of(forced.membership), latest.members.size(), last, forced.previous_commit + 1, last,
               forced.appended.front().index);
  init = std::move(forced.state);
  return Status::ok();
}

// ---------------------------------------------------------------------------
// The Raft thread.

void Node::Impl::start() {
  if (started_.exchange(true)) return;
  // /healthz measures the loop from here, not from open() (a long WAL replay is not a stall).
  raft_loop_at_ms_.store(steady_ms(), std::memory_order_relaxed);
  startup_.mark("API listeners (open to start)");
  transport_->start([this](raft::Message m) { post([this, m = std::move(m)] { step_message(m); }); });
  sync_peers();
  thread_ = named_thread("ckv-raft", [this] { run(); });
}

void Node::Impl::stop() {
  if (!started_.load()) return;
  hand_off_leadership();
  if (!started_.exchange(false)) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  transport_->stop();
  if (incoming_fd_ >= 0) ::close(incoming_fd_);
  incoming_fd_ = -1;
  store_.reset();
  dir_lock_.reset();  // nothing writes the data dir any more
  if (temp_dir_) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
}

raft::NodeId Node::Impl::best_transfer_target() const {
  raft::NodeId best = raft::kNoNode;
  Index best_match = 0;
  if (raft_->role() != raft::StateRole::kLeader) return best;
  for (raft::NodeId v : raft_->membership().voters()) {
    if (v == id_) continue;
    auto pr = raft_->progress(v);
    if (pr && pr->recent_active && pr->match >= best_match) {
      best = v;
      best_match = pr->match;
    }
  }
  return best;
}

void Node::Impl::hand_off_leadership() {
  // Thesis §3.10: a leader that is going away hands over to the most
  // caught-up voter, so clients see no election timeout.
  if (status().state != raft::to_string(raft::StateRole::kLeader)) return;
  auto started = std::make_shared<std::promise<bool>>();
  std::future<bool> transferring = started->get_future();
  post([this, started] {
    if (held_) {  // the core may not be called until the held Ready is persisted
      started->set_value(false);
      return;
    }
    const raft::NodeId best = best_transfer_target();
    const bool ok = best != raft::kNoNode && raft_->role() == raft::StateRole::kLeader &&
                    raft_->transfer_leadership(best) == raft::Error::kOk;
    if (ok) spdlog::info("leader stopping: transferring leadership to {}", best);
    started->set_value(ok);
  });
  const auto deadline = Clock::now() + std::chrono::milliseconds(opts_.tick_ms * opts_.election_ticks * 2);
  // Nobody to hand over to (a one-member cluster, no live follower): stop now.
  if (transferring.wait_until(deadline) != std::future_status::ready || !transferring.get()) return;
  while (Clock::now() < deadline && status().state == raft::to_string(raft::StateRole::kLeader)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(opts_.tick_ms));
  }
}

void Node::Impl::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void Node::Impl::run() {
  const auto tick = std::chrono::milliseconds(opts_.tick_ms);
  auto next_tick = Clock::now() + tick;
  std::deque<std::function<void()>> batch;
  bool compacting = false;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      // A compaction still dropping versions (kv_state_machine.h) goes on at once.
      const auto wake = compacting && !held_ ? Clock::now() : held_ ? std::min(next_tick, next_persist_retry_) : next_tick;
      cv_.wait_until(lock, wake, [&] { return stopping_ || !tasks_.empty(); });
      if (stopping_) break;
      batch.swap(tasks_);
    }
    raft_loop_at_ms_.store(steady_ms(), std::memory_order_relaxed);
    // Everything that queued up meanwhile (proposals, messages) goes into
    // the next Ready together: one sync for the whole batch.
    for (auto& fn : batch) fn();
    batch.clear();
    if (held_) {
      // raft.h: between ready() and advance() nothing else may touch the
      // core, so its clock stands still; waiters still time out.
      if (Clock::now() >= next_tick) {
        on_tick();
        next_tick = Clock::now() + tick;
      }
      if (Clock::now() >= next_persist_retry_) retry_held_ready();
      if (held_) continue;
    }
    if (Clock::now() >= next_tick) {
      raft_->tick();
      on_tick();
      maybe_auto_compact();
      next_tick += tick;
      if (next_tick < Clock::now()) next_tick = Clock::now() + tick;  // we fell behind: do not spin
    }
    while (!held_ && raft_->has_ready()) handle_ready();
    if (held_) continue;
    if (pending_snapshot_) {
      auto file = std::move(*pending_snapshot_);
      pending_snapshot_.reset();
      finish_snapshot(std::move(file));
    }
    check_space();
    sync_peers();
    update_unknown_sender_policy();
    check_removal();
    track_active_voters();
    register_api_address();
    record_missing_incarnations();
    progress_member_changes();
    maybe_start_snapshot();
    maybe_start_backup();
    compacting = fsm_.compact_step();
    publish_status();
    // After publish_status: a caller told the target leads must see it in status() too.
    progress_transfers();
  }
  // Fail whoever still waits: the node is going away.
  const Status gone(StatusCode::kUnavailable, "node is shutting down");
  writes_.fail_all();
  forwards_.fail_all();
  for (auto& [i, r] : reads_) r.cb(gone);
  for (auto& [i, r] : reads_waiting_apply_) r.cb(gone);
  for (ReadWaiter& r : reads_to_retry_) r.cb(gone);
  reads_to_retry_.clear();
  for (LeaderWaiter& w : leader_waiters_) w.resume(gone);
  leader_waiters_.clear();
  // A proposed membership change may still commit under the next leader.
  for (auto& m : member_waiters_) {
    m.cb(Status(StatusCode::kTimeout, "node stopped before the membership change completed; outcome unknown"),
         MemberRefusal::kNone);
  }
  for (auto& d : deferred_membership_calls_) {
    d.cb(Status(StatusCode::kUnavailable, "node is shutting down; the membership change was not made"),
         MemberRefusal::kNone);
  }
  for (auto& cb : pending_backups_) cb(gone);
  for (auto& cb : pending_defrags_) cb(gone);
  for (auto& cb : defrags_in_snapshot_) cb(gone);  // its snapshot's finish will not run now
  pending_defrags_.clear();
  defrags_in_snapshot_.clear();
  for (auto& t : transfers_) t.cb(gone);
  pending_backups_.clear();
  transfers_.clear();
  reads_.clear();
  reads_waiting_apply_.clear();
  member_waiters_.clear();
  deferred_membership_calls_.clear();
}

void Node::Impl::step(const raft::Message& m) {
  const char* why = raft_->step(m);
  if (why == nullptr) return rtt_.received(m);
  ++dropped_messages_;
  ++dropped_since_log_;
  const auto now = Clock::now();
  if (now - last_drop_log_ < kDroppedLogInterval) return;
  spdlog::warn("dropped {} invalid raft message(s) ({} in all); latest: {} from {} in term {}: {}", dropped_since_log_,
               dropped_messages_, raft::to_string(m.type), m.from, m.term, why);
  dropped_since_log_ = 0;
  last_drop_log_ = now;
}

void Node::Impl::handle_ready() {
  raft::Ready rd = raft_->ready();
  // Committed entries that an earlier Ready persisted are durable here and
  // on a quorum: apply them now, not after this Ready's fsync, so that their
  // clients do not also wait for the next batch's sync (etcd applies while
  // its WAL writes, too). A leader commits only what it persisted, so all of
  // its committed entries qualify; a follower's may arrive in this very
  // Ready, and those wait. Not with a snapshot in the Ready (it replaces the
  // state they would be applied to).
  PersistProgress progress;
  const auto apply_early = [&] {
    if (rd.snapshot) return;
    const Index first_new = rd.entries.empty() ? UINT64_MAX : rd.entries.front().index;
    while (progress.applied_early < rd.committed_entries.size() &&
           rd.committed_entries[progress.applied_early].index < first_new) {
      apply_entry(rd.committed_entries[progress.applied_early++]);
    }
  };
  // 1. A leader's appends go out first, so followers write to their disks
  // while the leader writes to its own (thesis §10.2.1; raft.h says which).
  // A Ready without new entries has nothing of its own to write while the
  // followers write (its early messages are the commit index, catch-up
  // appends or forwarded proposals): its clients are answered first, which
  // spares each a send per follower and delays those messages by the apply.
  if (rd.entries.empty()) apply_early();
  send_messages(rd.messages, 0, rd.early_messages);
  apply_early();
  // 2. durable before anything that depends on it (§5.2, Figure 2).
  Status s = persist(rd, progress);
  if (s.code() == StatusCode::kNoSpace && enter_no_space(s)) s = persist(rd, progress);
  if (!s.is_ok()) {
    // Still no space: keep this Ready and retry it; it is never skipped.
    spdlog::warn("cannot persist ({}): retrying with backoff; the node pauses Raft until it succeeds",
                 s.message());
    held_ = std::move(rd);
    held_progress_ = progress;
    persist_backoff_ms_ = kPersistRetryInitialMs;
    next_persist_retry_ = Clock::now() + std::chrono::milliseconds(persist_backoff_ms_);
    return;
  }
  finish_ready(rd, progress.applied_early);
}

void Node::Impl::finish_ready(raft::Ready& rd, size_t applied_early) {
  send_messages(rd.messages, rd.early_messages, rd.messages.size());  // 3.
  apply(rd, applied_early);  // 4.
  raft_->advance(rd);  // 5.
  answer_reads_up_to(fsm_.applied_index());
  retry_failed_reads();
  if (raft_->leader() != raft::kNoNode) resume_leader_waiters(Clock::now());
  if (!startup_.finished()) note_startup_progress();
}

void Node::Impl::note_startup_progress() {
  if (!boot_replayed_ && fsm_.applied_index() >= boot_commit_) {
    boot_replayed_ = true;
    startup_.mark("committed entries applied again");
  }
  if (!boot_leader_known_ && raft_->leader() != raft::kNoNode) {
    boot_leader_known_ = true;
    startup_.mark(raft_->leader() == id_ ? "first election (this node leads)" : "first leader heard");
  }
}

void Node::Impl::retry_failed_reads() {
  const raft::NodeId leader = raft_->leader();
  if (reads_to_retry_.empty() || leader == raft::kNoNode) return;
  std::vector<ReadWaiter> retry = std::move(reads_to_retry_);
  reads_to_retry_.clear();
  for (ReadWaiter& w : retry) {
    if ((w.asked_leader == leader && w.asked_term == raft_->term()) || !ask_read(w)) {
      reads_to_retry_.push_back(std::move(w));
    }
  }
}

bool Node::Impl::ask_read(ReadWaiter& w) {
  const uint64_t id = next_read_id_++;
  if (!raft_->read_index(id)) return false;
  w.asked_leader = raft_->leader();
  w.asked_term = raft_->term();
  reads_.emplace(id, std::move(w));
  return true;
}

Status Node::Impl::persist(const raft::Ready& rd, PersistProgress& progress) {
  // Every step may be redone after a failure: chunks are written at their
  // offsets, adoption is recorded in progress, and a failed WAL
  // write leaves no intact batch behind.
  const std::string incoming = data_dir_ + "/" + storage::kIncomingSnapshotName;
  if (!progress.snapshot_adopted) {
    for (const raft::SnapshotChunk& c : rd.snapshot_chunks) {
      if (c.offset == 0 || incoming_fd_ < 0) {
        if (incoming_fd_ >= 0) ::close(incoming_fd_);
        // Truncate only when a transfer starts at 0; a retry or a later chunk keeps what is there.
        const int trunc = c.offset == 0 ? O_TRUNC : 0;
        incoming_fd_ = ::open(incoming.c_str(), O_WRONLY | O_CREAT | trunc | O_CLOEXEC, 0644);
        if (incoming_fd_ < 0) {
          Status st = storage::io_error(incoming, "open");
          if (st.code() != StatusCode::kNoSpace) fatal_storage(st);
          return st;
        }
      }
      size_t done = 0;
      while (done < c.data.size()) {
        const ssize_t n = ::pwrite(incoming_fd_, c.data.data() + done, c.data.size() - done,
                                   static_cast<off_t>(c.offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          Status st = storage::io_error(incoming, "write");
          if (st.code() != StatusCode::kNoSpace) fatal_storage(st);
          return st;
        }
        done += static_cast<size_t>(n);
      }
    }
    if (rd.snapshot) {
      if (incoming_fd_ >= 0) ::close(incoming_fd_);
      incoming_fd_ = -1;
      // Decoded before the file is moved into place: a snapshot the state
      // machine cannot read must not become this node's snapshot.
      std::optional<fsm::RestoredState> decoded;
      auto adopted = storage::adopt_snapshot_file(data_dir_, incoming, [&](const storage::LoadedSnapshot& l) {
        if (l.legacy_map) {
          fsm::KvStateMachine legacy;
          legacy.restore_legacy(*l.legacy_map, l.meta.index);
          auto state = fsm::KvStateMachine::decode_payload(legacy.encode_payload());
          if (!state.is_ok()) return state.status();
          decoded = std::move(state).value();
          return Status::ok();
        }
        auto state = fsm::KvStateMachine::decode_payload(l.payload);
        if (!state.is_ok()) return state.status();
        decoded = std::move(state).value();
        return Status::ok();
      });
      if (!adopted.is_ok()) {
        if (adopted.status().code() == StatusCode::kNoSpace) return adopted.status();
        // The received snapshot cannot be verified or moved into place, and
        // the core already counts it as installed: stop cleanly; nothing of
        // this Ready is durable, so a restart fetches the snapshot again.
        fatal_storage(Status(adopted.status().code(),
                             "cannot install the leader's snapshot: " + adopted.status().message()));
      }
      snapshot_ = adopted.value().file;
      metrics::instruments().snapshot_size_bytes.set(static_cast<int64_t>(snapshot_->meta.size_bytes));
      installed_state_ = std::move(decoded);  // restored in apply(), after the sends
      progress.snapshot_adopted = true;
    }
  }
  if (Status s = store_->persist(rd.entries, rd.hard_state, rd.snapshot.has_value()); !s.is_ok()) {
    if (s.code() != StatusCode::kNoSpace) fatal_storage(s);
    return s;
  }
  if (rd.snapshot) (void)storage::remove_other_snapshots(data_dir_, snapshot_->path);
  return Status::ok();
}

void Node::Impl::step_message(const raft::Message& m) {
  // A dropped message is a lost message, which Raft tolerates: the sender
  // retries (the leader's stall timer and heartbeats resend entries).
  if (held_) return;  // raft.h: the core may not be called while a Ready is outstanding
  if (no_space_ && ((m.type == raft::MessageType::kAppend && !m.entries.empty()) ||
                    m.type == raft::MessageType::kSnapshot)) {
    // Out of space: take no more entries; votes, heartbeats and commits
    // still go through, so this node keeps its term and serves reads.
    if (dropped_for_space_++ % 1000 == 0) {
      spdlog::warn("disk full: dropping entries from the leader until space returns ({} dropped so far)",
                   dropped_for_space_);
    }
    return;
  }
  // A full leader refuses its followers' forwarded writes as it refuses its
  // own clients' (node.h, "Disk full"): appending them would stall its persist.
  if (m.type == raft::MessageType::kProp) raft_->set_writes_refused(no_space_);
  step(m);
}

bool Node::Impl::enter_no_space(const Status& cause) {
  if (!no_space_) {
    spdlog::error("disk full ({}): refusing writes until space is freed; reads continue", cause.message());
    no_space_ = true;
    next_space_check_ = Clock::now() + std::chrono::milliseconds(kSpaceCheckIntervalMs);
  }
  if (!reserve_held_) return false;
  const std::string path = data_dir_ + "/" + kReserveFileName;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    spdlog::error("cannot release the space reserve {}: {}", path, std::strerror(errno));
    return false;
  }
  reserve_held_ = false;
  spdlog::warn("released the {}-byte space reserve {} so that this node can still record votes and commits",
               opts_.space_reserve_bytes, path);
  return true;
}

void Node::Impl::retry_held_ready() {
  Status s = persist(*held_, held_progress_);
  if (!s.is_ok()) {
    persist_backoff_ms_ = std::min(persist_backoff_ms_ * 2, kPersistRetryMaxMs);
    next_persist_retry_ = Clock::now() + std::chrono::milliseconds(persist_backoff_ms_);
    return;
  }
  spdlog::info("persisted the held Ready: Raft resumes");
  raft::Ready rd = std::move(*held_);
  held_.reset();
  const size_t applied_early = held_progress_.applied_early;
  held_progress_ = PersistProgress{};
  finish_ready(rd, applied_early);
}

void Node::Impl::check_space() {
  if (!no_space_) return;
  const auto now = Clock::now();
  if (now < next_space_check_) return;
  next_space_check_ = now + std::chrono::milliseconds(kSpaceCheckIntervalMs);
  // A leader that cannot take writes hands leadership to a voter that can
  // (thesis §3.10), so one full disk does not stop the cluster's writes. As a
  // follower it takes no entries meanwhile, so its log falls behind and it
  // cannot win the leadership back until it has space again.
  if (const raft::NodeId target = best_transfer_target(); target != raft::kNoNode) {
    if (raft_->transfer_leadership(target) == raft::Error::kOk) {
      spdlog::warn("disk full: handing leadership to {} so that the cluster keeps taking writes", target);
    }
  }
  const uint64_t reserve = opts_.in_memory ? 0 : opts_.space_reserve_bytes;
  const std::optional<uint64_t> avail = free_bytes(data_dir_);
  if (!avail || *avail < reserve + kResumeHeadroomBytes) return;
  if (reserve > 0) {
    if (Status st = create_reserve(); !st.is_ok()) {
      spdlog::warn("space is back but the reserve could not be re-created ({}): writes stay refused", st.message());
      return;
    }
  }
  no_space_ = false;
  spdlog::info("disk space available again ({} bytes free): writes resume", *avail);
}

Status Node::Impl::create_reserve() {
  const std::string path = data_dir_ + "/" + kReserveFileName;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return storage::io_error(path, "open");
  // posix_fallocate returns the error instead of setting errno.
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(opts_.space_reserve_bytes));
  if (rc == 0 && ::fsync(fd) != 0) rc = errno;
  ::close(fd);
  if (rc != 0) {
    ::unlink(path.c_str());  // a partial reserve only hides how full the disk is
    return Status(rc == ENOSPC ? StatusCode::kNoSpace : StatusCode::kIo,
                  path + ": reserve " + std::to_string(opts_.space_reserve_bytes) + " bytes: " + std::strerror(rc));
  }
  if (Status st = storage::sync_dir(data_dir_); !st.is_ok()) return st;
  reserve_held_ = true;
  return Status::ok();
}

Status Node::Impl::check_initial_state(const raft::InitialState& init) const {
  // The core KV_CHECKs these (its own invariants); here they are facts about
  // what was read from disk, so a violation is damage, reported, not a crash.
  const std::string hint = " (see docs/operations.md, \"Damaged or missing files\")";
  // (A snapshot term above the ceiling is refused by read_snapshot_file, like the log store's records.)
  const Index snap = init.snapshot.index;
  if (!init.entries.empty()) {
    const Index first = init.entries.front().index;
    if (first > snap + 1) {
      if (snap == 0) {
        return Status(StatusCode::kCorrupt,
                      store_->path() + ": the log starts at index " + std::to_string(first) +
                          " but there is no snapshot file in " + data_dir_ +
                          " for the entries before it: the snapshot file is missing" + hint);
      }
      return Status(StatusCode::kCorrupt, store_->path() + ": log starts at " + std::to_string(first) +
                                              " after snapshot " + std::to_string(snap) + ": entries are missing" +
                                              hint);
    }
    for (size_t i = 1; i < init.entries.size(); ++i) {
      if (init.entries[i].term < init.entries[i - 1].term) {
        return Status(StatusCode::kCorrupt, store_->path() + ": log entry " +
                                                std::to_string(init.entries[i].index) +
                                                " has a lower term than the entry before it" + hint);
      }
    }
    for (const raft::Entry& e : init.entries) {
      if (e.index > snap && e.type == raft::EntryType::kConfig && !raft::decode_membership(e.data)) {
        return Status(StatusCode::kCorrupt, store_->path() + ": configuration entry " + std::to_string(e.index) +
                                                " cannot be decoded" + hint);
      }
    }
  }
  const Index last = init.entries.empty() ? snap : std::max(snap, init.entries.back().index);
  if (init.hard_state.commit > last) {
    return Status(StatusCode::kCorrupt,
                  store_->path() + ": the hard state's commit index " + std::to_string(init.hard_state.commit) +
                      " is beyond the last log entry " + std::to_string(last) +
                      (snap == 0 ? " (no snapshot file in " + data_dir_ + ": was one deleted, or the log wiped?)"
                                 : "") +
                      ": committed entries are missing" + hint);
  }
  return Status::ok();
}

void Node::Impl::send_messages(std::vector<raft::Message>& msgs, size_t from, size_t to) {
  std::vector<raft::Message> out;
  out.reserve(to - from);
  for (size_t k = from; k < to; ++k) {
    raft::Message& m = msgs[k];
    if (m.type == raft::MessageType::kSnapshot) {
      // The core names the bytes; we read them from the snapshot file.
      if (!snapshot_ || snapshot_->meta.index != m.snapshot.index) continue;  // replaced; the core retries
      m.data.resize(m.data_length);
      const int fd = ::open(snapshot_->path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      const ssize_t n = ::pread(fd, m.data.data(), m.data_length, static_cast<off_t>(m.offset));
      ::close(fd);
      if (n != static_cast<ssize_t>(m.data_length)) continue;
    }
    rtt_.sent(m);
    out.push_back(std::move(m));
  }
  transport_->send_all(std::move(out));
}

void Node::Impl::apply(const raft::Ready& rd, size_t first_entry) {
  if (rd.snapshot) {
    // The state machine cannot be replaced under a snapshot writer.
    if (snapshot_thread_.joinable()) snapshot_thread_.join();
    KV_CHECK(installed_state_.has_value(), "snapshot %llu installed without its state",
             static_cast<unsigned long long>(rd.snapshot->index));
    set_applied_membership(snapshot_->meta.membership);
    fsm_.restore(std::move(*installed_state_), rd.snapshot->index);
    installed_state_.reset();
    applied_entry_bytes_at_snapshot_ = applied_entry_bytes_;
    applied_term_ = rd.snapshot->term;
    // Every lease may have changed: promote again with full TTLs (never shorter).
    lease_expiry_.demote();
    lease_primary_term_ = 0;
    spdlog::info("installed the leader's snapshot at index {} ({} bytes)", rd.snapshot->index,
                 snapshot_->meta.size_bytes);
    // Writes we were waiting for at or below the snapshot were decided by
    // the new leader; we cannot tell which, so their outcome is unknown.
    writes_.snapshot_installed(rd.snapshot->index);
    forwards_.snapshot_installed();
  }
  for (size_t k = first_entry; k < rd.committed_entries.size(); ++k) apply_entry(rd.committed_entries[k]);
  for (const raft::ForwardRefusal& f : rd.refused_forwards) {
    // The leader did not append it: a definite "not applied", safe to retry.
    if (f.error == raft::Error::kNotLeader) {
      forwards_.refused(f.forward_id, Status(StatusCode::kNotLeader,
                                             "leadership changed before the write reached the leader; it was not applied"));
    } else if (f.error == raft::Error::kNoSpace) {
      // As when the full leader answered a forwarded HTTP write: 507, not applied.
      forwards_.refused(f.forward_id, Status(StatusCode::kNoSpace,
                                             "the leader's disk is full (no space left on device): writes are refused "
                                             "until space is freed; the write was not applied"));
    } else if (f.error == raft::Error::kOverloaded) {
      forwards_.refused(f.forward_id, Status(StatusCode::kUnavailable, kErrTooManyForwardedWrites));
    } else {
      forwards_.refused(f.forward_id, Status(StatusCode::kUnavailable, std::string("the leader refused the write (") +
                                                                           raft::to_string(f.error) +
                                                                           "); it was not applied"));
    }
  }
  for (const raft::ReadState& rs : rd.read_states) {
    auto it = reads_.find(rs.id);
    if (it == reads_.end()) continue;  // timed out already
    reads_waiting_apply_.emplace(rs.index, std::move(it->second));
    reads_.erase(it);
  }
  for (uint64_t id : rd.failed_reads) {
    auto it = reads_.find(id);
    if (it == reads_.end()) continue;
    ReadWaiter w = std::move(it->second);
    reads_.erase(it);
    if (w.retry && Clock::now() < w.deadline && reads_to_retry_.size() < kMaxReadsToRetry) {
      reads_to_retry_.push_back(std::move(w));
    } else {
      w.cb(Status(StatusCode::kUnavailable, "leadership changed during the read; retry"));
    }
  }
}

void Node::Impl::apply_entry(const raft::Entry& e) {
  applied_term_ = e.term;
  applied_entry_bytes_ += e.data.size();
  if (e.type == raft::EntryType::kConfig) {
    auto m = raft::decode_membership(e.data);
    KV_CHECK(m.has_value(), "undecodable configuration at index %llu", static_cast<unsigned long long>(e.index));
    set_applied_membership(std::move(*m));
    fsm_.skip(e.index);
    note_applied();
  } else if (e.data.empty()) {
    fsm_.skip(e.index);  // a leader's no-op
    note_applied();
  } else if (const std::optional<Tagged> tagged = decode_tagged(e.data)) {
    // A write some follower forwarded (forward_waiters.h): its command
    // follows the tag; the follower that sent it waits for it.
    std::optional<fsm::Command> c = fsm::decode_command(tagged->command);
    if (!c) stop_on_undecodable(e);
    fsm::ApplyResult r = fsm_.apply(e.index, *c);
    note_applied();
    if (tagged->origin.node == id_ && tagged->origin.boot == boot_id_) {
      forwards_.applied(tagged->origin.seq,
                        WriteResult{e.index, std::move(r.status), std::move(r.response), r.duplicate});
    }
    // Our own (leader) waiter at this index, if any, was for another entry.
    writes_.applied(e.index, e.term, WriteResult{});
    return;
  } else if (auto c = fsm::decode_command(e.data)) {
    fsm::ApplyResult r = fsm_.apply(e.index, *c);
    note_applied();
    note_lease_command(*c, r);
    if (writes_.waiting_at(e.index)) {
      writes_.applied(e.index, e.term, WriteResult{e.index, std::move(r.status), std::move(r.response), r.duplicate});
    }
    return;
  } else {
    stop_on_undecodable(e);
  }
  writes_.applied(e.index, e.term, WriteResult{});
}

void Node::Impl::note_applied() {
  applied_now_.store(fsm_.applied_index(), std::memory_order_release);
  revision_now_.store(fsm_.revision(), std::memory_order_release);
}

void Node::Impl::stop_on_undecodable(const raft::Entry& e) {
  // DESIGN.md: never skip an entry (the others apply it: skipping
  // diverges this replica); never guess. A newer version wrote it, or
  // the log is damaged past its checksums: stop, and let an operator
  // upgrade or replace this member (docs/operations.md).
  spdlog::critical(
      "cannot decode the committed entry at index {} (term {}, {} bytes, format byte {}): stopping "
      "rather than skipping it, which would make this replica diverge (see docs/operations.md, "
      "\"Undecodable log entry\")",
      e.index, e.term, e.data.size(), static_cast<unsigned>(static_cast<uint8_t>(e.data[0])));
  if (auto logger = spdlog::default_logger()) logger->flush();
  std::_Exit(kExitUndecodableEntry);
}

Status Node::Impl::restore_state_machine(storage::LoadedSnapshot& loaded, const std::string& path) {
  const std::string hint = " (see docs/operations.md, \"Damaged or missing files\")";
  if (loaded.legacy_map) {
    // A data dir from before the MVCC store: its map becomes one put per
    // key; the next snapshot is written in the new format.
    const size_t keys = loaded.legacy_map->size();
    fsm_.restore_legacy(*loaded.legacy_map, loaded.meta.index);
    spdlog::info("converted snapshot {} (format CKVSNAP1, {} keys) into the MVCC store at revision {}; "
                 "the next snapshot is written as CKVSNAP2",
                 path, keys, fsm_.revision());
    return Status::ok();
  }
  auto state = fsm::KvStateMachine::decode_payload(loaded.payload);
  if (!state.is_ok()) {
    return Status(StatusCode::kCorrupt, "snapshot file " + path + " is corrupt: " + state.status().message() + hint);
  }
  startup_.mark("snapshot decode");
  loaded.payload.clear();
  loaded.payload.shrink_to_fit();
  fsm_.restore(std::move(state).value(), loaded.meta.index);
  startup_.mark("state machine restore");
  return Status::ok();
}

void Node::Impl::answer_reads_up_to(Index applied) {
  while (!reads_waiting_apply_.empty() && reads_waiting_apply_.begin()->first <= applied) {
    if (!startup_.finished()) {
      startup_.mark("first linearizable read");
      startup_.finish("serving");
    }
    reads_waiting_apply_.begin()->second.cb(Status::ok());
    reads_waiting_apply_.erase(reads_waiting_apply_.begin());
  }
}

void Node::Impl::on_tick() {
  const auto now = Clock::now();
  writes_.expire(now, no_space_ ? " (this node's disk is full: no space left on device)" : "");
  forwards_.expire(now, no_space_ ? " (this node's disk is full: no space left on device)" : "");
  auto expire = [&](auto& m) {
    for (auto it = m.begin(); it != m.end();) {
      if (it->second.deadline <= now) {
        it->second.cb(Status(StatusCode::kTimeout, "could not confirm leadership in time for a linearizable read"));
        it = m.erase(it);
      } else {
        ++it;
      }
    }
  };
  expire(reads_);
  expire(reads_waiting_apply_);
  for (auto it = reads_to_retry_.begin(); it != reads_to_retry_.end();) {
    if (it->deadline <= now) {
      it->cb(Status(StatusCode::kTimeout, "leadership changed during a linearizable read and no leader answered in time"));
      it = reads_to_retry_.erase(it);
    } else {
      ++it;
    }
  }
  retry_failed_reads();
  resume_leader_waiters(now);
  drive_lease_expiry();
}

namespace {
int64_t monotonic_ms() { return steady_ms(); }
// How long a keepalive waits for the ReadIndex round that confirms this
// node still leads; the caller retries (lease_service.h) within its deadline.
constexpr int kLeaseConfirmTimeoutMs = 2000;
}  // namespace

void Node::Impl::note_lease_command(const fsm::Command& c, const fsm::ApplyResult& r) {
  if (!r.status.is_ok() || r.duplicate) return;
  if (auto* g = std::get_if<lease::GrantRequest>(&c.request)) {
    lease_expiry_.granted(g->id, g->ttl, monotonic_ms());
  } else if (auto* v = std::get_if<lease::RevokeRequest>(&c.request)) {
    lease_expiry_.revoked(v->id);
  }
}

bool Node::Impl::drive_lease_expiry() {
  const raft::Term term = raft_->term();
  const bool leader = raft_->role() == raft::StateRole::kLeader;
  if (!leader || (lease_primary_term_ != 0 && lease_primary_term_ != term)) {
    // A leader of another term may have renewed leases since: forget our deadlines.
    if (lease_expiry_.primary()) lease_expiry_.demote();
    lease_primary_term_ = 0;
    if (!leader) return false;
  }
  const int64_t now = monotonic_ms();
  if (!lease_expiry_.primary()) {
    // Primary only once an entry of this term is applied (its no-op): every
    // lease granted in earlier terms is in the table by then.
    if (applied_term_ != term) return false;
    lease_expiry_.promote(now, fsm_.lease_ttls());
    lease_primary_term_ = term;
    spdlog::info("lease primary in term {}: {} leases, each expiring after its full TTL", term,
                 lease_expiry_.size());
  }
  if (no_space_) return true;  // a revoke could not be proposed; deadlines keep
  for (int64_t id : lease_expiry_.due(now)) {
    fsm::Command c;
    c.request = lease::RevokeRequest{id};
    c.system = true;  // expiry is the node's, not a user's (etcd revokes as root)
    c.proposed_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    const raft::ProposeResult r = raft_->propose(fsm::encode_command(c));
    if (r.ok()) {
      spdlog::debug("lease {:016x} expired: proposed its revoke at index {}", static_cast<uint64_t>(id), r.index);
    } else {
      spdlog::warn("lease {:016x} expired but its revoke could not be proposed: {}; retrying",
                   static_cast<uint64_t>(id), raft::to_string(r.error));
      lease_expiry_.revoke_failed(id);
    }
  }
  return true;
}

void Node::Impl::lease_call(int64_t id, bool renew, LeaseCallback cb) {
  post([this, id, renew, cb = std::move(cb)]() mutable {
    if (raft_->role() != raft::StateRole::kLeader) {
      return cb(Status(StatusCode::kNotLeader, "not the leader"));
    }
    if (!drive_lease_expiry()) {
      return cb(Status(StatusCode::kUnavailable, "the leader has not applied an entry of its term yet"));
    }
    const int64_t asked = monotonic_ms();
    if (!renew) {
      std::optional<int64_t> left = lease_expiry_.remaining_ms(id, asked);
      if (!left) return cb(Status(StatusCode::kNotFound, lease::kErrLeaseNotFound));
      return cb(*left);
    }
    // A deposed leader that has not noticed yet must not acknowledge a
    // keepalive (a new leader may expire the lease meanwhile): confirm
    // leadership with a ReadIndex round first (thesis §6.4, as etcd 3.5's
    // ensureLeadership), then renew from the time the keepalive arrived.
    const raft::Term term = raft_->term();
    ReadWaiter w{deadline_after(kLeaseConfirmTimeoutMs), [this, id, asked, term, cb](const Status& s) {
                   if (!s.is_ok()) return cb(s);
                   // Still the leader of the term it was asked in, and its
                   // lease primary: a round confirmed through another leader
                   // would prove nothing about this node's lease table.
                   if (raft_->role() != raft::StateRole::kLeader || raft_->term() != term ||
                       lease_primary_term_ != term || !lease_expiry_.primary()) {
                     return cb(Status(StatusCode::kNotLeader, "leadership changed"));
                   }
                   std::optional<int64_t> ttl = lease_expiry_.renew(id, asked);
                   if (!ttl) return cb(Status(StatusCode::kNotFound, lease::kErrLeaseNotFound));
                   cb(*ttl);
                 }};
    w.retry = false;
    if (!ask_read(w)) return cb(Status(StatusCode::kUnavailable, "no leader known; retry"));
  });
}

// ---------------------------------------------------------------------------
namespace {

bool answer(const Node::MemberCallback& cb, Status s, MemberRefusal why) {
  cb(std::move(s), why);
  return true;
}

Status membership_timeout() {
  return Status(StatusCode::kTimeout,
                "membership change did not complete in time; it may still complete");
}

}  // namespace

// Membership: learner first, voter once caught up (thesis §4.2.1).

void Node::Impl::progress_member_changes() {
  const auto now = Clock::now();
  bool published = false;
  for (auto it = member_waiters_.begin(); it != member_waiters_.end();) {
    MemberWaiter& w = *it;
    if (w.done(applied_membership_)) {
      // A caller that reads status() after its change returns must see it
      // (the loop publishes only at the end of this pass otherwise).
      if (!published) publish_status();
      published = true;
      w.cb(Status::ok(), MemberRefusal::kNone);
      it = member_waiters_.erase(it);
      continue;
    }
    if (w.deadline <= now) {
      w.cb(membership_timeout(), MemberRefusal::kNone);
      it = member_waiters_.erase(it);
      continue;
    }
    ++it;
  }
  // Calls the core refused for now are tried again (each answers by its deadline).
  for (auto it = deferred_membership_calls_.begin(); it != deferred_membership_calls_.end();) {
    it = it->attempt(it->cb) ? deferred_membership_calls_.erase(it) : it + 1;
  }
  promote_caught_up_learners(now);
}

void Node::Impl::promote_caught_up_learners(Clock::time_point now) {
  // The intent is replicated (MemberInfo::promote_when_caught_up), so any
  // leader finishes a join that an earlier leader began.
  if (raft_->role() != raft::StateRole::kLeader) return;
  for (const raft::Member& member : raft_->membership().members) {
    if (member.role != raft::MemberRole::kLearner || !raft_->learner_caught_up(member.id)) continue;
    auto info = decode_member_info(member.context);
    if (!info || !info->promote_when_caught_up) continue;
    // Strict reconfiguration: promote only if the larger configuration
    // still has a quorum of recently active voters, so a join cannot stall commits.
    if (promotion_keeps_active_quorum(now)) {
      (void)raft_->propose_conf_change(
          raft::ConfChange{raft::ConfChangeType::kPromote, member.id, {}});
    }
    return;  // one change at a time (thesis §4.1)
  }
}

bool Node::Impl::promotion_keeps_active_quorum(Clock::time_point now) const {
  // The learner counts as active: it has just caught up.
  const std::vector<raft::NodeId> voters = raft_->membership().voters();
  size_t active = 1;
  for (raft::NodeId v : voters) active += recently_active(v, now) ? 1 : 0;
  return active >= quorum_of(voters.size() + 1);
}

bool Node::Impl::cluster_id_survives_removal(raft::NodeId leaving) {
  // A configuration's id is that of its lowest-id member that records one;
  // one recorded before format 4 derives it from its member ids, which a
  // removal changes. So before the removal the id is recorded in a member
  // that stays (this one, unless it is the one leaving), and the removal
  // follows once that is committed (docs/design-notes.md, "Cluster identity").
  // Only then, not at once for every member: a node of an older version
  // cannot read format 4, and a cluster being upgraded changes no members.
  const raft::Membership& m = raft_->membership();
  const raft::Member* keeper = nullptr;
  for (const raft::Member& member : m.members) {
    if (member.id == leaving) continue;
    auto info = decode_member_info(member.context);
    if (info && info->cluster_id != 0) return true;
    if (keeper == nullptr || member.id == id_) keeper = &member;
  }
  if (keeper == nullptr) return true;  // nobody stays: nothing to keep
  auto info = decode_member_info(keeper->context);
  if (!info) return true;  // undecodable: nothing we could record it in
  info->cluster_id = cluster_id_of(m);
  const raft::ProposeResult r = raft_->propose_conf_change(
      raft::ConfChange{raft::ConfChangeType::kUpdateContext, keeper->id, encode_member_info(*info)});
  if (r.ok()) spdlog::info("recording cluster id {:016x} in member {} before a removal", info->cluster_id, info->name);
  return false;
}

void Node::Impl::track_active_voters() {
  if (raft_->role() != raft::StateRole::kLeader) {
    last_active_.clear();
    return;
  }
  const auto now = Clock::now();
  for (const raft::Member& m : raft_->membership().members) {
    if (m.id == id_) continue;
    auto pr = raft_->progress(m.id);
    if (pr && pr->recent_active) last_active_[m.id] = now;
  }
}

bool Node::Impl::recently_active(raft::NodeId id, Clock::time_point now) const {
  if (id == id_) return true;
  auto it = last_active_.find(id);
  // The core clears recent_active once per election timeout and sets it on
  // every answer, so a live member shows active at least once in two.
  const auto window = std::chrono::milliseconds(2 * opts_.tick_ms * opts_.election_ticks);
  return it != last_active_.end() && now - it->second <= window;
}

void Node::Impl::run_membership_call(MemberCallback cb,
                                     std::function<bool(const MemberCallback&)> attempt) {
  post([this, attempt = std::move(attempt), cb = std::move(cb)]() mutable {
    if (!attempt(cb))
      deferred_membership_calls_.push_back(DeferredCall{std::move(attempt), std::move(cb)});
  });
}

bool Node::Impl::proposal_refused(raft::Error e, const MemberCallback& cb) {
  // Another change not yet committed (thesis §4.1: one at a time), a new
  // leader that has not committed an entry of its term, a transfer under
  // way: all pass soon, so the call waits (run_membership_call) rather than fails.
  if (e == raft::Error::kConfChangeInProgress || e == raft::Error::kNotReady ||
      e == raft::Error::kTransferInProgress) {
    return false;
  }
  return answer(cb, from_raft_error(e), MemberRefusal::kNone);
}

// Checks shared by every membership call: posted to the Raft thread, leader only, space left.
bool Node::Impl::refuse_membership_call(const MemberCallback& cb) {
  if (no_space_) {
    cb(no_space_status(data_dir_), MemberRefusal::kNone);
    return true;
  }
  if (raft_->role() != raft::StateRole::kLeader) {
    cb(Status(StatusCode::kNotLeader, "not the leader"), MemberRefusal::kNone);
    return true;
  }
  return false;
}

void Node::Impl::add_member(MemberInfo info, AddMode mode, int timeout_ms, MemberCallback cb) {
  const auto deadline = deadline_after(timeout_ms);
  run_membership_call(
      std::move(cb),
      [this, info = std::move(info), mode, deadline](const MemberCallback& cb) mutable -> bool {
        if (Clock::now() >= deadline) return answer(cb, membership_timeout(), MemberRefusal::kNone);
        if (refuse_membership_call(cb)) return true;
        auto refuse = [&cb](StatusCode code, std::string message, MemberRefusal why) {
          return answer(cb, Status(code, std::move(message)), why);
        };
        if (info.name.empty()) info.name = info.raft_address;
        for (const std::string* f : {&info.name, &info.raft_address, &info.api_address,
                                     &info.incarnation, &info.grpc_address}) {
          if (f->size() > kMaxMemberFieldBytes) {
            return refuse(StatusCode::kInvalid,
                          "member names and addresses are at most " +
                              std::to_string(kMaxMemberFieldBytes) + " bytes",
                          MemberRefusal::kNone);
          }
        }
        const bool etcd_add = mode != AddMode::kJoin;
        const raft::NodeId id = node_id_for(info.name);
        const raft::Membership& m = raft_->membership();
        info.cluster_id = cluster_id_of(m);  // new members inherit the cluster's identity
        info.promote_when_caught_up = mode != AddMode::kLearner;
        raft::ConfChange cc{raft::ConfChangeType::kAddLearner, id, encode_member_info(info)};
        bool propose = true;
        ConfigurationCheck done;
        if (const raft::Member* existing = m.find(id)) {
          auto have = decode_member_info(existing->context);
          if (!have || have->name != info.name) {
            return refuse(StatusCode::kConflict, "node id collision for name '" + info.name + "'",
                          MemberRefusal::kIdTaken);
          }
          if (etcd_add) {
            return refuse(StatusCode::kConflict, "member '" + info.name + "' exists already",
                          have->raft_address == info.raft_address ? MemberRefusal::kAddressTaken
                                                                  : MemberRefusal::kIdTaken);
          }
          if (have->raft_address != info.raft_address) {
            return refuse(StatusCode::kConflict,
                          "member '" + info.name + "' already exists with raft address " +
                              have->raft_address + "; remove it first",
                          MemberRefusal::kIdTaken);
          }
          if (!info.incarnation.empty() && !have->incarnation.empty() &&
              info.incarnation != have->incarnation) {
            return refuse(
                StatusCode::kConflict,
                "member '" + info.name + "' at " + info.raft_address +
                    " answered with a different data dir (incarnation " + info.incarnation +
                    ", expected " + have->incarnation +
                    "): its state was wiped; remove it and add it again (docs/operations.md)",
                MemberRefusal::kNone);
          }
          // Merge: a registration may bring the API and gRPC addresses, a probe the
          // incarnation of a member recorded without one; neither is ever
          // replaced by an empty value, and a recorded incarnation never changes.
          MemberInfo merged = *have;
          if (!info.api_address.empty()) merged.api_address = info.api_address;
          if (!info.grpc_address.empty()) merged.grpc_address = info.grpc_address;
          if (merged.incarnation.empty()) merged.incarnation = info.incarnation;
          if (merged.cluster_id == 0) merged.cluster_id = info.cluster_id;
          if (merged.api_address == have->api_address &&
              merged.grpc_address == have->grpc_address &&
              merged.incarnation == have->incarnation && merged.cluster_id == have->cluster_id) {
            propose =
                false;  // only wait (a learner to be promoted is promoted by promote_caught_up_learners)
          } else {
            cc.type = raft::ConfChangeType::kUpdateContext;
            cc.context = encode_member_info(merged);
          }
          // An explicit learner (etcd's --learner) is made a voter only by
          // promote_member: its own registration (a /join with its addresses)
          // must not promote it, so that join is answered once they are recorded.
          const bool explicit_learner =
              existing->role == raft::MemberRole::kLearner && !have->promote_when_caught_up;
          const std::string api = info.api_address;
          done = [id, api, explicit_learner](const raft::Membership& applied) {
            if (explicit_learner ? !applied.contains(id) : !applied.is_voter(id)) return false;
            if (api.empty()) return true;
            auto recorded = decode_member_info(applied.find(id)->context);
            return recorded && recorded->api_address == api;
          };
        } else {
          for (const raft::Member& other : m.members) {
            auto o = decode_member_info(other.context);
            if (o && o->raft_address == info.raft_address) {
              return refuse(
                  StatusCode::kConflict,
                  "raft address " + info.raft_address + " belongs to member '" + o->name + "'",
                  MemberRefusal::kAddressTaken);
            }
          }
          // Item 5 of issue 7: past the decoder's cap the configuration entry
          // would be unreadable on every node.
          if (m.members.size() >= kMaxMembers) {
            return refuse(StatusCode::kConflict,
                          "the cluster already has " + std::to_string(m.members.size()) +
                              " members, the most a configuration may hold",
                          MemberRefusal::kNone);
          }
          std::string pending_names, explicit_names;
          size_t pending = 0, explicit_learners = 0;
          for (const raft::Member& other : m.members) {
            if (other.role != raft::MemberRole::kLearner) continue;
            auto o = decode_member_info(other.context);
            const std::string name = o ? o->name : std::to_string(other.id);
            if (!o || o->promote_when_caught_up) {
              ++pending;
              pending_names += (pending_names.empty() ? "" : ", ") + name;
            } else {
              ++explicit_learners;
              explicit_names += (explicit_names.empty() ? "" : ", ") + name;
            }
          }
          if (mode == AddMode::kLearner && explicit_learners >= kMaxLearners) {
            return refuse(StatusCode::kUnavailable,
                          "learner " + explicit_names + " is not promoted yet (at most " +
                              std::to_string(kMaxLearners) +
                              " learner at a time); promote or remove it first",
                          MemberRefusal::kTooManyLearners);
          }
          if (mode != AddMode::kLearner && pending >= kMaxPendingLearners) {
            return refuse(StatusCode::kUnavailable,
                          "learner " + pending_names + " is not promoted yet (at most " +
                              std::to_string(kMaxPendingLearners) +
                              " learner at a time); retry once it is a voter, or remove it",
                          MemberRefusal::kPendingLearner);
          }
          if (etcd_add) {
            // etcd's strict reconfiguration refuses any add while a voter is
            // unreachable; the same here, so etcd's clients see the same rule.
            const auto now = Clock::now();
            for (raft::NodeId v : m.voters()) {
              if (!recently_active(v, now)) {
                return refuse(StatusCode::kUnavailable,
                              "voter " + std::to_string(v) +
                                  " has not answered lately; bring it back or remove it first",
                              MemberRefusal::kUnhealthy);
              }
            }
          }
          const std::string api = info.api_address;
          if (mode == AddMode::kJoin) {
            done = [id, api](const raft::Membership& applied) {
              if (!applied.is_voter(id)) return false;
              if (api.empty()) return true;
              auto recorded = decode_member_info(applied.find(id)->context);
              return recorded && recorded->api_address == api;
            };
          } else {
            done = [id](const raft::Membership& applied) { return applied.contains(id); };
          }
        }
        if (propose) {
          const raft::ProposeResult r = raft_->propose_conf_change(cc);
          if (!r.ok()) return proposal_refused(r.error, cb);
        }
        member_waiters_.push_back(MemberWaiter{std::move(done), deadline, cb});
        return true;
      });
}

void Node::Impl::promote_member(raft::NodeId id, int timeout_ms, MemberCallback cb) {
  const auto deadline = deadline_after(timeout_ms);
  run_membership_call(
      std::move(cb), [this, id, deadline](const MemberCallback& cb) mutable -> bool {
        if (Clock::now() >= deadline) return answer(cb, membership_timeout(), MemberRefusal::kNone);
        if (refuse_membership_call(cb)) return true;
        const raft::Member* member = raft_->membership().find(id);
        if (member == nullptr) {
          return answer(cb,
                        Status(StatusCode::kNotFound, "no member with id " + std::to_string(id)),
                        MemberRefusal::kNotFound);
        }
        if (member->role == raft::MemberRole::kVoter) {
          return answer(
              cb,
              Status(StatusCode::kConflict, "member " + std::to_string(id) + " is a voter already"),
              MemberRefusal::kNotLearner);
        }
        if (!raft_->learner_caught_up(id)) {
          return answer(cb,
                        Status(StatusCode::kUnavailable,
                               "learner " + std::to_string(id) +
                                   " has not caught up with the leader (or did not answer lately)"),
                        MemberRefusal::kLearnerBehind);
        }
        if (!promotion_keeps_active_quorum(Clock::now())) {
          return answer(cb,
                        Status(StatusCode::kUnavailable,
                               "too few recently active voters: the larger configuration would "
                               "have no active quorum"),
                        MemberRefusal::kNotEnoughActive);
        }
        const raft::ProposeResult r =
            raft_->propose_conf_change(raft::ConfChange{raft::ConfChangeType::kPromote, id, {}});
        if (!r.ok()) return proposal_refused(r.error, cb);
        member_waiters_.push_back(MemberWaiter{
            [id](const raft::Membership& applied) { return applied.is_voter(id); }, deadline, cb});
        return true;
      });
}

void Node::Impl::update_member_address(raft::NodeId id, std::string raft_address, int timeout_ms,
                                       MemberCallback cb) {
  const auto deadline = deadline_after(timeout_ms);
  run_membership_call(
      std::move(cb),
      [this, id, raft_address = std::move(raft_address),
       deadline](const MemberCallback& cb) mutable -> bool {
        if (Clock::now() >= deadline) return answer(cb, membership_timeout(), MemberRefusal::kNone);
        if (refuse_membership_call(cb)) return true;
        if (raft_address.size() > kMaxMemberFieldBytes) {
          return answer(
              cb,
              Status(StatusCode::kInvalid, "member names and addresses are at most " +
                                               std::to_string(kMaxMemberFieldBytes) + " bytes"),
              MemberRefusal::kNone);
        }
        const raft::Membership& m = raft_->membership();
        const raft::Member* member = m.find(id);
        auto info = member ? decode_member_info(member->context) : std::nullopt;
        if (!info) {
          return answer(cb,
                        Status(StatusCode::kNotFound, "no member with id " + std::to_string(id)),
                        MemberRefusal::kNotFound);
        }
        for (const raft::Member& other : m.members) {
          if (other.id == id) continue;
          auto o = decode_member_info(other.context);
          if (o && o->raft_address == raft_address) {
            return answer(cb,
                          Status(StatusCode::kConflict, "raft address " + raft_address +
                                                            " belongs to member '" + o->name + "'"),
                          MemberRefusal::kAddressTaken);
          }
        }
        if (info->raft_address != raft_address) {
          info->raft_address = raft_address;
          if (info->cluster_id == 0) info->cluster_id = cluster_id_of(m);
          const raft::ProposeResult r = raft_->propose_conf_change(raft::ConfChange{
              raft::ConfChangeType::kUpdateContext, id, encode_member_info(*info)});
          if (!r.ok()) return proposal_refused(r.error, cb);
        }
        member_waiters_.push_back(
            MemberWaiter{[id, raft_address](const raft::Membership& applied) {
                           const raft::Member* now = applied.find(id);
                           auto recorded = now ? decode_member_info(now->context) : std::nullopt;
                           return recorded && recorded->raft_address == raft_address;
                         },
                         deadline, cb});
        return true;
      });
}

void Node::Impl::remove_member(raft::NodeId id, bool force, int timeout_ms, MemberCallback cb) {
  const auto deadline = deadline_after(timeout_ms);
  run_membership_call(
      std::move(cb), [this, id, force, deadline](const MemberCallback& cb) mutable -> bool {
        if (Clock::now() >= deadline) return answer(cb, membership_timeout(), MemberRefusal::kNone);
        if (refuse_membership_call(cb)) return true;
        const raft::Membership& m = raft_->membership();
        const raft::Member* member = m.find(id);
        if (member == nullptr) {
          return answer(cb,
                        Status(StatusCode::kNotFound, "no member with id " + std::to_string(id)),
                        MemberRefusal::kNotFound);
        }
        if (!force && m.is_voter(id)) {
          // etcd's --strict-reconfig-check: the voters left must still have a
          // quorum that answers, or the cluster stops committing after the change.
          const auto now = Clock::now();
          size_t left = 0;
          size_t active = 0;
          for (raft::NodeId v : m.voters()) {
            if (v == id) continue;
            ++left;
            active += recently_active(v, now) ? 1 : 0;
          }
          if (left > 0 && active < quorum_of(left)) {
            auto info = decode_member_info(member->context);
            const std::string name = info ? info->name : std::to_string(id);
            return answer(
                cb,
                Status(StatusCode::kUnavailable,
                       "removing '" + name + "' would leave " + std::to_string(active) +
                           " recently active voters of " + std::to_string(left) +
                           ", fewer than their quorum of " + std::to_string(quorum_of(left)) +
                           "; bring members back first, or pass force=true to remove it anyway"),
                MemberRefusal::kUnhealthy);
          }
        }
        // Retried (run_membership_call) once the recorded id is committed.
        if (!cluster_id_survives_removal(id)) return false;
        const raft::ProposeResult r =
            raft_->propose_conf_change(raft::ConfChange{raft::ConfChangeType::kRemove, id, {}});
        if (!r.ok()) return proposal_refused(r.error, cb);
        member_waiters_.push_back(MemberWaiter{
            [id](const raft::Membership& applied) { return !applied.contains(id); }, deadline, cb});
        return true;
      });
}

void Node::Impl::wait_for_configuration(ConfigurationCheck check, int timeout_ms, DoneCallback cb) {
  post([this, check = std::move(check), timeout_ms, cb = std::move(cb)]() mutable {
    member_waiters_.push_back(
        MemberWaiter{std::move(check), deadline_after(timeout_ms),
                     [cb = std::move(cb)](Status s, MemberRefusal) { cb(std::move(s)); }});
  });
}

void Node::Impl::probe_peer(const std::string& raft_address, int timeout_ms, ProbeCallback cb) {
  transport_->probe(raft_address, timeout_ms, [cb = std::move(cb)](Result<transport::PeerIdentity> r) {
    if (!r.is_ok()) {
      cb(r.status());
      return;
    }
    cb(MemberInfo{r->name, r->raft_address, r->api_address, r->incarnation, {}});
  });
}

void Node::Impl::register_api_address() {
  if (opts_.api_address.empty() && opts_.grpc_address.empty()) return;
  // run() calls this every iteration: once the recorded addresses match,
  // our context is decoded again only after the membership changes.
  if (raft_->membership_version() == registered_version_) return;
  const raft::Member* self = raft_->membership().find(id_);
  if (self == nullptr) return;
  auto info = decode_member_info(self->context);
  // An empty -grpc-address never clears a registered one (add_member's merge
  // keeps it), so only a set one can be missing; comparing an empty one
  // would register again every second forever.
  if (info && info->api_address == opts_.api_address &&
      (opts_.grpc_address.empty() || info->grpc_address == opts_.grpc_address)) {
    registered_version_ = raft_->membership_version();
    return;
  }
  const auto now = Clock::now();
  if (now - last_registration_ < std::chrono::seconds(1)) return;
  last_registration_ = now;
  MemberInfo me = self_info();
  if (raft_->role() == raft::StateRole::kLeader) {
    // Never replace a recorded incarnation, nor an address by an empty one (add_member's rules).
    if (info && !info->incarnation.empty()) me.incarnation = info->incarnation;
    if (info && me.grpc_address.empty()) me.grpc_address = info->grpc_address;
    if (info) {
      me.cluster_id = info->cluster_id;
      me.promote_when_caught_up = info->promote_when_caught_up;
    }
    (void)raft_->propose_conf_change(
        raft::ConfChange{raft::ConfChangeType::kUpdateContext, id_, encode_member_info(me)});
    return;
  }
  const raft::Member* leader = raft_->membership().find(raft_->leader());
  if (leader == nullptr || !register_hook_) return;
  if (auto leader_info = decode_member_info(leader->context); leader_info && !leader_info->api_address.empty()) {
    spdlog::info("registering API address {} with leader {}", me.api_address, leader_info->name);
    register_hook_(*leader_info, me);
  }
}

void Node::Impl::record_missing_incarnations() {
  if (raft_->role() != raft::StateRole::kLeader || incarnation_probe_in_flight_) return;
  // run() calls this every iteration: with every incarnation recorded (the
  // usual case) the members are decoded again only once the membership changes.
  if (raft_->membership_version() == incarnations_complete_version_) return;
  const auto now = Clock::now();
  if (now - last_incarnation_probe_ < kIncarnationProbeInterval) return;
  for (const raft::Member& m : raft_->membership().members) {
    auto info = decode_member_info(m.context);
    if (!info || !info->incarnation.empty()) continue;
    last_incarnation_probe_ = now;
    if (m.id == id_) {
      info->incarnation = meta_.incarnation;
      (void)raft_->propose_conf_change(
          raft::ConfChange{raft::ConfChangeType::kUpdateContext, id_, encode_member_info(*info)});
      return;
    }
    // Whatever answers at the member's address now is recorded: no worse
    // than before (nothing was checked), and from then on a wiped data dir
    // is refused (transport.h).
    incarnation_probe_in_flight_ = true;
    const raft::NodeId id = m.id;
    const std::string address = info->raft_address;
    transport_->probe(address, kIncarnationProbeTimeoutMs,
                      [this, id, address](Result<transport::PeerIdentity> who) {
                        post([this, id, address, who = std::move(who)] {
                          incarnation_probe_in_flight_ = false;
                          // raft.h: no core call while a Ready is held; no proposal while out of space.
                          if (held_ || no_space_) return;
                          if (!who.is_ok() || who->id != id || who->incarnation.empty()) return;
                          if (raft_->role() != raft::StateRole::kLeader) return;
                          const raft::Member* now_member = raft_->membership().find(id);
                          if (now_member == nullptr) return;
                          auto recorded = decode_member_info(now_member->context);
                          if (!recorded || !recorded->incarnation.empty() ||
                              recorded->raft_address != address) {
                            return;
                          }
                          recorded->incarnation = who->incarnation;
                          spdlog::info("recording the incarnation of member {}: {}", recorded->name,
                                       who->incarnation);
                          (void)raft_->propose_conf_change(raft::ConfChange{
                              raft::ConfChangeType::kUpdateContext, id, encode_member_info(*recorded)});
                        });
                      });
    return;
  }
  incarnations_complete_version_ = raft_->membership_version();
}

void Node::Impl::sync_peers() {
  if (raft_->membership_version() == synced_membership_version_ &&
      applied_membership_version_ == synced_applied_membership_version_) {
    return;
  }
  synced_membership_version_ = raft_->membership_version();
  synced_applied_membership_version_ = applied_membership_version_;
  // Before the peers: a stream to a new peer already says which cluster
  // this is. A node waiting to be added gets its cluster's id here, from
  // the first configuration it is sent (docs/security.md).
  transport_->set_cluster_id(cluster_id_of(raft_->membership()));
  // Raft uses the latest configuration from the moment it is appended, but a
  // member it drops must stay reachable until the change is applied: a
  // leader that removes itself keeps replicating (thesis §4.2.2) and needs
  // its followers' answers to commit its own removal.
  std::set<raft::NodeId> now;
  const raft::Membership* configs[] = {&raft_->membership(), &applied_membership_};
  for (const raft::Membership* config : configs) {
    for (const raft::Member& m : config->members) {
      if (m.id == id_ || now.count(m.id)) continue;
      if (auto info = decode_member_info(m.context)) {
        transport_->set_peer(m.id, info->raft_address, info->incarnation);
        now.insert(m.id);
      }
    }
  }
  for (raft::NodeId gone : peers_) {
    if (!now.count(gone)) transport_->remove_peer(gone);
  }
  peers_ = std::move(now);
  update_unknown_sender_policy();  // after registering, so the leader's stream survives it
}

void Node::Impl::update_unknown_sender_policy() {
  // Only members (and nodes being added) are heard (transport.h), with two
  // exceptions where the node could otherwise never learn its
  // configuration: it is outside its own configuration (fresh, removed, or
  // restored from a snapshot taken before it joined: the leader may be
  // unknown to it), or it has no leader or follows one it does not know. The latter is
  // a member that lags behind configuration changes: a voter added and
  // elected after our last entry can be leader while we have never heard
  // of it (thesis §4.1: servers accept AppendEntries from a leader not in
  // their configuration), and it is the only one that can bring us up to
  // date. Such senders are never dialled; we answer on their stream.
  const raft::NodeId leader = raft_->leader();
  const bool accept = outside_configuration() || leader == raft::kNoNode || (leader != id_ && !peers_.count(leader));
  if (accept == accepting_unknown_senders_) return;
  accepting_unknown_senders_ = accept;
  transport_->set_accept_unknown_peers(accept);
}

// ---------------------------------------------------------------------------
// Client requests.

void Node::Impl::propose(fsm::Command c, int timeout_ms, WriteCallback cb) {
  // Checked here, not in the log: every entry must decode on every node.
  // (The answer still comes on the Raft thread, as every callback does.)
  std::optional<Status> refused;
  if (fsm::txn_depth(c.request) > fsm::kMaxTxnNestingDepth) {
    refused = Status(StatusCode::kInvalid, mvcc::kErrTooManyOps);  // deeper needs more than etcd's 128 ops
  } else if (c.idempotency_key.size() > fsm::kMaxIdempotencyKeyBytes) {
    refused = Status(StatusCode::kInvalid, "idempotency key is " + std::to_string(c.idempotency_key.size()) +
                                               " bytes, over the limit of " +
                                               std::to_string(fsm::kMaxIdempotencyKeyBytes));
  }
  if (refused) {
    post([cb = std::move(cb), st = std::move(*refused)] { cb(st); });
    return;
  }
  // The idempotency window's clock (fsm/idempotency_table.h): the proposer's, carried in the entry.
  c.proposed_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  post([this, data = fsm::encode_command(c), timeout_ms, cb = std::move(cb)]() mutable {
    const auto deadline = deadline_after(timeout_ms);
    propose_encoded(std::move(data), deadline, leader_wait_until(deadline), std::move(cb));
  });
}

void Node::Impl::propose_encoded(std::string data, Clock::time_point deadline, Clock::time_point give_up,
                                 WriteCallback cb) {
  if (no_space_) return cb(no_space_status(data_dir_));  // node.h, "Disk full"
  if (raft_->role() == raft::StateRole::kLeader) {
    const raft::ProposeResult r = raft_->propose(std::move(data));
    if (!r.ok()) {
      cb(from_raft_error(r.error));
      return;
    }
    writes_.add(r.index, r.term, deadline, std::move(cb));
    return;
  }
  // No leader known (an election, or no quorum): wait for one (node.h,
  // "No leader"), as etcd's proposals do, rather than fail a write that an
  // election a few hundred milliseconds long would have let through.
  auto wait_for_leader = [&] {
    const uint64_t bytes = data.size();
    auto resume = [this, data = std::move(data), deadline, give_up, cb](const Status& s) mutable {
      if (!s.is_ok()) return cb(s);
      propose_encoded(std::move(data), deadline, give_up, std::move(cb));
    };
    if (!park_until_leader(give_up, bytes, std::move(resume))) cb(no_leader_status());
  };
  if (raft_->leader() == raft::kNoNode) return wait_for_leader();
  // A follower forwards the write to the leader as a Raft proposal (thesis
  // §6.2; docs/design-notes.md, "Forwarded writes"), tagged so that it
  // recognises the entry when it applies it.
  const uint64_t bytes = kOriginTagBytes + data.size();
  if (!forwards_.has_room(bytes)) {
    return cb(Status(StatusCode::kUnavailable, kErrTooManyForwardedWrites));
  }
  const uint64_t seq = next_forward_seq_++;
  const raft::ProposeResult r = raft_->forward_proposal(encode_tagged(Origin{id_, boot_id_, seq}, data));
  if (!r.ok()) {
    if (r.error == raft::Error::kNotLeader) return wait_for_leader();
    return cb(from_raft_error(r.error));
  }
  if (r.forward_id == 0) {
    // forward_proposal appends on a leader; not reached (checked above), but an index waiter is then right.
    writes_.add(r.index, r.term, deadline, std::move(cb));
    return;
  }
  forwards_.add(seq, r.forward_id, bytes, deadline, std::move(cb));
}

void Node::Impl::read_barrier(int timeout_ms, DoneCallback cb) {
  post([this, timeout_ms, cb = std::move(cb)]() mutable {
    const auto deadline = deadline_after(timeout_ms);
    read_barrier_at(deadline, leader_wait_until(deadline), std::move(cb));
  });
}

void Node::Impl::read_barrier_at(Clock::time_point deadline, Clock::time_point give_up, DoneCallback cb) {
  if (held_) {
    return cb(Status(StatusCode::kNoSpace, "no space left on device in data dir " + data_dir_ +
                                               ": this node cannot take part in Raft until space is freed"));
  }
  ReadWaiter w{deadline, std::move(cb)};
  if (ask_read(w)) return;
  // ask_read left w as it was: no leader known. Wait for one (node.h, "No leader").
  auto resume = [this, deadline, give_up, cb = w.cb](const Status& s) mutable {
    if (!s.is_ok()) return cb(s);
    read_barrier_at(deadline, give_up, std::move(cb));
  };
  if (!park_until_leader(give_up, 0, std::move(resume))) w.cb(no_leader_status());
}

Clock::time_point Node::Impl::leader_wait_until(Clock::time_point deadline) const {
  const int wait_ms = opts_.leader_wait_ms > 0 ? opts_.leader_wait_ms
                                               : kLeaderWaitElectionTimeouts * opts_.tick_ms * opts_.election_ticks;
  return std::min(deadline, deadline_after(wait_ms));
}

bool Node::Impl::park_until_leader(Clock::time_point give_up, uint64_t bytes, LeaderWaiter::Resume resume) {
  // The same limits as writes already forwarded (node.h): a long election
  // under load must not queue without bound.
  if (Clock::now() >= give_up || leader_waiters_.size() >= opts_.max_forwarded_writes ||
      leader_waiter_bytes_ + bytes > opts_.max_forwarded_write_bytes) {
    return false;
  }
  leader_waiter_bytes_ += bytes;
  leader_waiters_.push_back(LeaderWaiter{give_up, bytes, std::move(resume)});
  return true;
}

void Node::Impl::resume_leader_waiters(Clock::time_point now) {
  if (leader_waiters_.empty()) return;
  const bool leader_known = raft_->leader() != raft::kNoNode;
  // Taken out first: a call run again may park itself again (the leader it
  // saw refused it), and must then wait for the next change, not loop here.
  std::deque<LeaderWaiter> waiting;
  waiting.swap(leader_waiters_);
  leader_waiter_bytes_ = 0;
  for (LeaderWaiter& w : waiting) {
    if (leader_known) {
      w.resume(Status::ok());
    } else if (now >= w.give_up) {
      w.resume(no_leader_status());
    } else {
      leader_waiter_bytes_ += w.bytes;
      leader_waiters_.push_back(std::move(w));
    }
  }
}

// ---------------------------------------------------------------------------
// Snapshots: the store is streamed by another thread while writes go on.

void Node::Impl::maybe_start_snapshot() {
  if (snapshot_in_progress_) return;
  if (no_space_ && !pending_defrags_.empty()) {
    for (auto& cb : pending_defrags_) cb(no_space_status(data_dir_));
    pending_defrags_.clear();
  }
  const bool defrag = !pending_defrags_.empty();
  if (!defrag && (opts_.snapshot_threshold == 0 || no_space_ || Clock::now() < next_snapshot_attempt_)) return;
  const Index applied = fsm_.applied_index();
  const Index last_snapshot = snapshot_ ? snapshot_->meta.index : 0;
  const SnapshotPolicy policy{opts_.snapshot_threshold};
  const uint64_t entries = applied - std::min(applied, last_snapshot);
  const uint64_t log_bytes = applied_entry_bytes_ - applied_entry_bytes_at_snapshot_;
  if (!defrag && !policy.due(entries, log_bytes, snapshot_ ? snapshot_->meta.size_bytes : 0)) return;
  applied_entry_bytes_at_snapshot_ = applied_entry_bytes_;
  if (defrag) {
    defrags_in_snapshot_ = std::move(pending_defrags_);
    pending_defrags_.clear();
    defrag_bytes_before_ = data_dir_bytes(data_dir_);
    if (applied == last_snapshot) {
      // The last snapshot holds everything applied: its log compaction is done already.
      answer_defrags(Status::ok());
      return;
    }
    spdlog::info("defragment: taking a snapshot at index {} (last at {})", applied, last_snapshot);
  }
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  snapshot_in_progress_ = true;
  std::shared_ptr<fsm::KvStateMachine::SnapshotJob> job = fsm_.begin_snapshot();
  const raft::Term term = raft_->term_at(job->index);
  const raft::Membership membership = applied_membership_;
  snapshot_thread_ = named_thread("ckv-snapshot", [this, job, term, membership] {
    // Streams the store in chunks under a shared lock: writes go on between them (kv_state_machine.h).
    const auto started = Clock::now();
    auto file = storage::write_snapshot_file(data_dir_, job->index, term, membership,
                                             [&](const storage::PayloadSink& sink) { return fsm_.write_snapshot(*job, sink); });
    metrics::instruments().snapshot_save_seconds.observe(metrics::ScopedTimer::seconds_since(started));
    fsm_.end_snapshot();  // runs a compaction deferred meanwhile
    post([this, file = std::move(file)]() mutable { finish_snapshot(std::move(file)); });
  });
}

void Node::Impl::maybe_auto_compact() {
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();  // monotonic
  const bool leader = raft_->role() == raft::StateRole::kLeader && !no_space_;
  const std::optional<int64_t> rev = compactor_.tick(now_ms, fsm_.revision(), fsm_.compact_revision(), leader);
  if (!rev) return;
  // A replicated command like a client's Compact, so every replica compacts
  // at the same log index; its answer (nobody waits) is only logged if bad.
  fsm::Command c;
  c.request = mvcc::CompactionRequest{*rev, false};
  c.system = true;  // the operator's policy, not a user's request
  c.proposed_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const raft::ProposeResult r = raft_->propose(fsm::encode_command(c));
  if (r.ok()) {
    spdlog::info("auto-compaction: compacting to revision {} (log index {})", *rev, r.index);
  } else {
    spdlog::warn("auto-compaction: could not propose a compaction to revision {}: {}", *rev, raft::to_string(r.error));
  }
}

void Node::Impl::finish_snapshot(Result<storage::SnapshotFile> file) {
  if (held_) {  // snapshot_taken() touches the core: finish once the Ready is persisted
    pending_snapshot_ = std::move(file);
    return;
  }
  snapshot_in_progress_ = false;
  if (!file.is_ok()) {
    spdlog::error("snapshot failed (will retry in {} ms): {}", kSnapshotRetryMs, file.status().to_string());
    next_snapshot_attempt_ = Clock::now() + std::chrono::milliseconds(kSnapshotRetryMs);
    answer_defrags(file.status());
    return;
  }
  if (snapshot_ && snapshot_->meta.index >= file.value().meta.index) {
    // A snapshot from the leader overtook ours.
    std::error_code ec;
    std::filesystem::remove(file.value().path, ec);
    answer_defrags(Status::ok());
    return;
  }
  snapshot_ = file.value();
  metrics::instruments().snapshots_saved.inc();
  metrics::instruments().snapshot_size_bytes.set(static_cast<int64_t>(snapshot_->meta.size_bytes));
  const Index keep_from = raft_->snapshot_taken(snapshot_->meta.index, snapshot_->meta.size_bytes);
  if (Status s = store_->compact(keep_from); !s.is_ok()) spdlog::error("log compaction failed: {}", s.to_string());
  (void)storage::remove_other_snapshots(data_dir_, snapshot_->path);
  spdlog::info("snapshot at index {} ({} bytes); log kept from {}", snapshot_->meta.index, snapshot_->meta.size_bytes,
               keep_from);
  answer_defrags(Status::ok());
}

void Node::Impl::defragment(DefragCallback cb) {
  post([this, cb = std::move(cb)]() mutable {
    if (no_space_) return cb(no_space_status(data_dir_));
    if (pending_defrags_.size() + defrags_in_snapshot_.size() >= kMaxPendingDefrags) {
      return cb(Status(StatusCode::kUnavailable, "too many defragment calls waiting (limit " +
                                                     std::to_string(kMaxPendingDefrags) + "); retry"));
    }
    pending_defrags_.push_back(std::move(cb));
  });
}

void Node::Impl::answer_defrags(const Status& failed) {
  if (defrags_in_snapshot_.empty()) return;
  std::vector<DefragCallback> waiting = std::move(defrags_in_snapshot_);
  defrags_in_snapshot_.clear();
  if (!failed.is_ok()) {
    spdlog::warn("defragment failed: {}", failed.to_string());
    for (auto& cb : waiting) cb(failed);
    return;
  }
  // The versions compaction dropped and the log entries just released sit in
  // malloc's free lists; hand what it can back to the system (the
  // counterpart of bbolt's free pages that etcd's defrag releases).
  const auto started = Clock::now();
  release_free_memory();
  DefragResult r;
  r.snapshot_index = snapshot_ ? snapshot_->meta.index : 0;
  r.data_dir_bytes_before = defrag_bytes_before_;
  r.data_dir_bytes_after = data_dir_bytes(data_dir_);
  r.log_first_index = raft_->first_index();
  data_dir_bytes_ = r.data_dir_bytes_after;
  spdlog::info("defragment: done (snapshot at index {}, log kept from {}, data dir {} -> {} bytes, trim {} ms)",
               r.snapshot_index, r.log_first_index, r.data_dir_bytes_before, r.data_dir_bytes_after,
               std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  // A caller told the defragment is done must see its snapshot in status() too.
  publish_status();
  for (auto& cb : waiting) cb(r);
}

// ---------------------------------------------------------------------------
// Backups and leadership transfer.

void Node::Impl::write_backup(BackupCallback cb) {
  post([this, cb = std::move(cb)]() mutable {
    if (no_space_) return cb(no_space_status(data_dir_));
    pending_backups_.push_back(std::move(cb));
  });
}

void Node::Impl::maybe_start_backup() {
  if (pending_backups_.empty() || snapshot_in_progress_) return;
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  snapshot_in_progress_ = true;
  BackupCallback cb = std::move(pending_backups_.front());
  pending_backups_.pop_front();
  std::shared_ptr<fsm::KvStateMachine::SnapshotJob> job = fsm_.begin_snapshot();
  const raft::Term term = raft_->term_at(job->index);
  const raft::Membership membership = applied_membership_;
  // "snapshot-*.tmp": never taken for a snapshot of this node, and deleted at start if left behind.
  const std::string path = data_dir_ + "/snapshot-backup-" + std::to_string(next_backup_seq_++) + ".tmp";
  snapshot_thread_ = named_thread("ckv-backup", [this, job, term, membership, path,
                                                 cb = std::move(cb)]() mutable {
    auto file = storage::write_snapshot_file_at(
        path, job->index, term, membership,
        [&](const storage::PayloadSink& sink) { return fsm_.write_snapshot(*job, sink); });
    fsm_.end_snapshot();
    post([this, file = std::move(file), cb = std::move(cb)]() mutable {
      snapshot_in_progress_ = false;
      if (!file.is_ok()) return cb(file.status());
      const storage::SnapshotFile& f = file.value();
      cb(BackupFile{f.path, f.meta.index, f.meta.term, f.meta.size_bytes});
    });
  });
}

void Node::Impl::transfer_leadership(raft::NodeId target, int timeout_ms, DoneCallback cb) {
  post([this, target, timeout_ms, cb = std::move(cb)]() mutable {
    if (held_) return cb(no_space_status(data_dir_));  // raft.h: no core call while a Ready is held
    if (raft_->role() != raft::StateRole::kLeader) return cb(Status(StatusCode::kNotLeader, "not the leader"));
    if (target == id_) return cb(Status::ok());
    if (!raft_->membership().is_voter(target)) {
      return cb(Status(StatusCode::kInvalid, raft_->membership().contains(target)
                                                 ? "member " + std::to_string(target) + " is a learner"
                                                 : "no member with id " + std::to_string(target)));
    }
    if (const raft::Error e = raft_->transfer_leadership(target); e != raft::Error::kOk) {
      return cb(from_raft_error(e));
    }
    spdlog::info("transferring leadership to {} (asked by a client)", target);
    transfers_.push_back(TransferWaiter{target, deadline_after(timeout_ms), std::move(cb)});
  });
}

void Node::Impl::progress_transfers() {
  const auto now = Clock::now();
  for (auto it = transfers_.begin(); it != transfers_.end();) {
    if (raft_->leader() == it->target) {
      it->cb(Status::ok());
    } else if (it->deadline <= now) {
      it->cb(Status(StatusCode::kTimeout, "leadership did not move to " + std::to_string(it->target) + " in time"));
    } else {
      ++it;
      continue;
    }
    it = transfers_.erase(it);
  }
}

// ---------------------------------------------------------------------------
// Removed members (node.h, set_peer_status_hook).

void Node::Impl::mark_removed(const std::string& reason) {
  removed_ = true;
  removed_reason_ = reason;
  raft_->set_removed(true);
  // etcd exits here; we stay up so that /status says why (docs/operations.md, "Removed members").
  spdlog::warn("removed from the cluster: {}; this node no longer campaigns (to bring it back: stop it, move its "
               "data dir aside and add it again)",
               reason);
}

void Node::Impl::check_removal() {
  const auto now = Clock::now();
  if (removed_) {
    // A leader that replicates to us has us in its configuration: we were wrong, or added again.
    if (raft_->leader() != raft::kNoNode && raft_->membership().contains(id_)) {
      removed_ = false;
      removed_reason_.clear();
      raft_->set_removed(false);
      spdlog::info("a leader contacts this node again: no longer considered removed");
    }
    return;
  }
  if (ever_member_ && !applied_membership_.members.empty() && !applied_membership_.contains(id_)) {
    mark_removed("this node applied the configuration that removed it");
    return;
  }
  if (raft_->leader() != raft::kNoNode || !raft_->membership().contains(id_)) {
    leaderless_since_.reset();
    return;
  }
  if (!leaderless_since_) leaderless_since_ = now;
  const auto wait = std::chrono::milliseconds(opts_.tick_ms * opts_.election_ticks * kRemovalCheckAfterElectionTimeouts);
  if (!peer_status_hook_ || removal_check_in_flight_ || now - *leaderless_since_ < wait ||
      now - last_removal_check_ < std::chrono::milliseconds(kRemovalCheckIntervalMs)) {
    return;
  }
  std::vector<MemberInfo> peers;
  for (const raft::Member& m : raft_->membership().members) {
    if (m.id == id_) continue;
    if (auto info = decode_member_info(m.context); info && !info->api_address.empty()) peers.push_back(*info);
  }
  if (peers.empty()) return;
  const MemberInfo peer = peers[removal_check_next_++ % peers.size()];
  last_removal_check_ = now;
  removal_check_in_flight_ = true;
  const uint64_t cluster = cluster_id_of(raft_->membership());
  peer_status_hook_(peer, [this, peer, cluster](Result<PeerView> view) {
    post([this, peer, cluster, view = std::move(view)] {
      removal_check_in_flight_ = false;
      if (removed_ || !view.is_ok()) return;
      const PeerView& v = view.value();
      // Only the member we know, of our cluster, in touch with a leader, and
      // past our last entry (so it has applied our own addition, if any).
      if (v.name != peer.name || v.cluster_id != cluster || !v.has_leader) return;
      if (v.applied_index <= raft_->last_index()) return;
      if (std::find(v.member_names.begin(), v.member_names.end(), opts_.name) != v.member_names.end()) return;
      mark_removed("member " + peer.name + " follows a leader, has applied index " + std::to_string(v.applied_index) +
                   " (beyond this node's last entry, " + std::to_string(raft_->last_index()) +
                   ") and its configuration does not include this node");
    });
  });
}

// ---------------------------------------------------------------------------
// Status.

void Node::Impl::publish_status() {
  const auto now = Clock::now();
  NodeStatus s;
  s.id = id_;
  s.cluster_id = cluster_id_of(raft_->membership());
  s.name = opts_.name;
  s.state = raft::to_string(raft_->role());
  s.term = raft_->term();
  s.leader_id = raft_->leader();
  s.commit_index = raft_->commit_index();
  s.applied_index = fsm_.applied_index();
  s.last_index = raft_->last_index();
  s.snapshot_index = raft_->snapshot().index;
  s.client_tls = opts_.client_tls;
  s.peer_tls = opts_.peer_tls;
  s.revision = fsm_.revision();
  s.compact_revision = fsm_.compact_revision();
  s.state_machine_bytes = fsm_.estimated_bytes();
  s.alarms = fsm_.alarms();
  if (!last_data_dir_scan_ ||
      now - *last_data_dir_scan_ >= std::chrono::milliseconds(kDataDirScanIntervalMs)) {
    last_data_dir_scan_ = now;
    data_dir_bytes_ = data_dir_bytes(data_dir_);
  }
  s.data_dir_bytes = data_dir_bytes_;
  s.removed = removed_;
  s.removed_reason = removed_reason_;
  for (const raft::Member& m : raft_->membership().members) {
    MemberStatus ms;
    ms.id = m.id;
    if (auto info = decode_member_info(m.context)) ms.info = std::move(*info);
    ms.role = m.role == raft::MemberRole::kVoter ? "voter" : "learner";
    if (raft_->role() == raft::StateRole::kLeader) ms.active = recently_active(m.id, now);
    if (auto p = raft_->progress(m.id)) ms.progress = Replication{p->match, p->next, p->state};
    if (m.id == s.leader_id) s.leader = ms.info;
    s.members.push_back(std::move(ms));
  }
  log_changes(s);
  std::lock_guard lock(status_mu_);
  status_ = std::move(s);
}

void Node::Impl::log_changes(const NodeStatus& s) {
  if (s.leader_id != logged_leader_ && s.leader_id != raft::kNoNode) metrics::instruments().leader_changes.inc();
  if (s.state != logged_role_ || s.leader_id != logged_leader_) {
    const std::string leader = s.leader_id == raft::kNoNode ? std::string("none known")
                               : s.leader.name.empty()      ? std::to_string(s.leader_id)
                                                            : s.leader.name;
    spdlog::info("{} in term {}; leader: {}", s.state, s.term, leader);
    logged_role_ = s.state;
    logged_leader_ = s.leader_id;
  }
  if (raft_->membership_version() != logged_membership_version_) {
    std::string list;
    for (const MemberStatus& m : s.members) {
      if (!list.empty()) list += ", ";
      list += (m.info.name.empty() ? std::to_string(m.id) : m.info.name) + " (" + m.role + ")";
    }
    spdlog::info("configuration: {}", list.empty() ? "none yet" : list);
    logged_membership_version_ = raft_->membership_version();
  }
}

// ---------------------------------------------------------------------------
// Node: forwards to Impl.

Result<std::unique_ptr<Node>> Node::open(const NodeOptions& options, std::unique_ptr<transport::Transport> transport,
                                         RegisterHook register_hook) {
  auto impl = std::make_unique<Impl>(options, std::move(transport), std::move(register_hook));
  if (Status s = impl->open(); !s.is_ok()) return s;
  return std::unique_ptr<Node>(new Node(std::move(impl)));
}

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() = default;
void Node::start() { impl_->start(); }
void Node::stop() { impl_->stop(); }
void Node::propose(fsm::Command c, int timeout_ms, WriteCallback cb) {
  // Every answer passes here once, whichever path decided it (metrics/instruments.h).
  metrics::Instruments& m = metrics::instruments();
  m.proposals_pending.add(1);
  impl_->propose(std::move(c), timeout_ms, [&m, cb = std::move(cb)](Result<WriteResult> r) {
    m.proposals_pending.add(-1);
    (r.is_ok() ? m.proposals_committed : m.proposals_failed).inc();
    cb(std::move(r));
  });
}
void Node::read_barrier(int timeout_ms, DoneCallback cb) { impl_->read_barrier(timeout_ms, std::move(cb)); }
void Node::lease_renew(int64_t id, LeaseCallback cb) { impl_->lease_call(id, true, std::move(cb)); }
void Node::lease_remaining(int64_t id, LeaseCallback cb) { impl_->lease_call(id, false, std::move(cb)); }
void Node::add_member(MemberInfo info, int timeout_ms, DoneCallback cb) {
  impl_->add_member(std::move(info), AddMode::kJoin, timeout_ms,
                    [cb = std::move(cb)](Status s, MemberRefusal) { cb(std::move(s)); });
}
void Node::add_member(MemberInfo info, AddMode mode, int timeout_ms, MemberCallback cb) {
  impl_->add_member(std::move(info), mode, timeout_ms, std::move(cb));
}
void Node::promote_member(raft::NodeId id, int timeout_ms, MemberCallback cb) {
  impl_->promote_member(id, timeout_ms, std::move(cb));
}
void Node::update_member_address(raft::NodeId id, std::string raft_address, int timeout_ms, MemberCallback cb) {
  impl_->update_member_address(id, std::move(raft_address), timeout_ms, std::move(cb));
}
void Node::remove_member(const std::string& name, bool force, int timeout_ms, DoneCallback cb) {
  // Removing a member that is gone already succeeds: /remove is idempotent.
  impl_->remove_member(node_id_for(name), force, timeout_ms, [cb = std::move(cb)](Status s, MemberRefusal why) {
    cb(why == MemberRefusal::kNotFound ? Status::ok() : std::move(s));
  });
}
void Node::remove_member(raft::NodeId id, bool force, int timeout_ms, MemberCallback cb) {
  impl_->remove_member(id, force, timeout_ms, std::move(cb));
}
void Node::wait_for_configuration(ConfigurationCheck check, int timeout_ms, DoneCallback cb) {
  impl_->wait_for_configuration(std::move(check), timeout_ms, std::move(cb));
}
void Node::probe_peer(const std::string& raft_address, int timeout_ms, ProbeCallback cb) {
  impl_->probe_peer(raft_address, timeout_ms, std::move(cb));
}
void Node::write_backup(BackupCallback cb) { impl_->write_backup(std::move(cb)); }
void Node::defragment(DefragCallback cb) { impl_->defragment(std::move(cb)); }
void Node::transfer_leadership(raft::NodeId target, int timeout_ms, DoneCallback cb) {
  impl_->transfer_leadership(target, timeout_ms, std::move(cb));
}
void Node::set_peer_status_hook(PeerStatusHook hook) { impl_->peer_status_hook_ = std::move(hook); }
NodeStatus Node::status() const { return impl_->status(); }
RouteView Node::route_view() const { return impl_->route_view(); }
const std::string& Node::incarnation() const { return impl_->incarnation(); }
const fsm::KvStateMachine& Node::state_machine() const { return impl_->fsm_; }
watch::Hub& Node::watch_hub() { return *impl_->hub_; }
auth::SimpleTokens& Node::tokens() { return *impl_->tokens_; }

}  // namespace ckv::node
