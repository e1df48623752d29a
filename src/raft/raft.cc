// The Raft core (see raft.h): elections, replication, commit, snapshots, membership, transfer, reads.
#include "raft/raft.h"

#include <algorithm>
#include <deque>
#include <set>

#include "common/check.h"
#include "raft/message_checks.h"
#include "raft/progress.h"
#include "raft/raft_log.h"

namespace ckv::raft {

namespace {

// A leader remembers the last this many forward ids of each sender's epoch;
// an older id is dropped as a possible duplicate (its proposer times out).
constexpr uint64_t kForwardDedupWindow = 4096;
// Epochs (follower restarts) a leader tracks per sender in one term; beyond
// that the sender's forwards are dropped until the term changes, rather than
// forgetting an epoch whose duplicates could then be appended again.
constexpr size_t kMaxForwardEpochsPerPeer = 16;
// A follower's reads waiting for the leader's answer (reads_at_leader_).
constexpr size_t kMaxReadsAtLeader = 65536;

using ull = unsigned long long;

// Marks a RequestVote sent because of TimeoutNow: voters must not ignore it
// for being inside a leader lease (thesis §3.10 / §4.2.3).
constexpr uint64_t kForcedCampaign = 1;

// Deterministic PRNG (splitmix64) so that one seed reproduces a run.
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

bool is_response(MessageType t) {
  return t == MessageType::kPreVoteResp || t == MessageType::kVoteResp ||
         t == MessageType::kAppendResp || t == MessageType::kHeartbeatResp ||
         t == MessageType::kSnapshotResp || t == MessageType::kReadIndexResp;
}

}  // namespace

const char* to_string(StateRole r) {
  switch (r) {
    case StateRole::kFollower: return "follower";
    case StateRole::kPreCandidate: return "pre-candidate";
    case StateRole::kCandidate: return "candidate";
    case StateRole::kLeader: return "leader";
  }
  return "unknown";
}

const char* to_string(Error e) {
  switch (e) {
    case Error::kOk: return "ok";
    case Error::kNotLeader: return "not leader";
    case Error::kTransferInProgress: return "leadership transfer in progress";
    case Error::kConfChangeInProgress: return "a membership change is in progress";
    case Error::kNotReady: return "leader has not committed an entry of its term yet";
    case Error::kOverloaded: return "too many uncommitted entries";
    case Error::kAlreadyMember: return "already a member";
    case Error::kNotMember: return "not a member";
    case Error::kNotLearner: return "not a learner";
    case Error::kInvalid: return "invalid request";
    case Error::kMembershipFull: return "the cluster already has the maximum number of members";
    case Error::kNoSpace: return "the leader refuses writes: its disk is full";
  }
  return "unknown";
}

InitialState bootstrap_state(const Membership& initial) {
  InitialState s;
  Membership m = initial;
  std::sort(m.members.begin(), m.members.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  s.entries.push_back(Entry{1, 1, EntryType::kConfig, encode_membership(m)});
  s.hard_state = HardState{1, kNoNode, 1};
  return s;
}

class Raft::Impl {
 public:
  Impl(const Options& o, const InitialState& s);

  // --- driving -------------------------------------------------------------
  void tick();
  const char* step(const Message& m);
  ProposeResult propose(EntryType type, std::string data);
  ProposeResult forward_proposal(std::string data);
  ProposeResult propose_conf_change(const ConfChange& cc);
  bool read_index(uint64_t id);
  Error transfer_leadership(NodeId target);
  Index snapshot_taken(Index index, uint64_t size_bytes);
  bool has_ready() const;
  Ready ready();
  void advance(const Ready& rd);

  // --- state (read by Raft's accessors) -------------------------------------
  Options opts_;
  NodeId id_;
  StateRole role_ = StateRole::kFollower;
  Term term_ = 0;
  NodeId vote_ = kNoNode;
  NodeId leader_ = kNoNode;
  RaftLog log_;
  Index commit_ = 0;
  Index applied_ = 0;  // highest index handed to the caller to apply
  Index stable_ = 0;   // highest index handed to the caller to persist
  SnapshotMeta snapshot_;
  Membership membership_;
  uint64_t membership_version_ = 0;
  std::map<NodeId, Progress> progress_;

 private:
  struct PendingRead {
    uint64_t id;
    NodeId requester;  // id_ for local reads
    Index index;
    uint64_t round;
    std::set<NodeId> acks;
  };
  struct IncomingSnapshot {
    SnapshotMeta meta;
    uint64_t next_offset = 0;
  };

  // Roles (§5.2, thesis §9.6).
  void become_follower(Term term, NodeId leader);

 public:
  void step_down_keeping_term() { become_follower(term_, kNoNode); }

 private:
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void campaign(bool pre_vote, bool forced);
  void reset_timers();
  // A voter campaigns. So does a voter whose removal is not committed yet
  // (thesis §4.2.2: it may still be needed): removing the leader of a
  // two-voter cluster leaves the other voter unable to win without its vote
  // while the change is uncommitted, and a removed server that never
  // campaigns would deadlock them both (found by swarm simulation).
  bool promotable() const {
    if (removed_) return false;  // set_removed: the caller knows the cluster went on without us
    return membership_.is_voter(id_) ||
           (commit_ < config_history_.back().first && membership_at(commit_).is_voter(id_));
  }
  // The only voter of its latest configuration, hearing no leader: its
  // election needs no other vote (§5.2: its own is a majority; pre-vote,
  // thesis §9.6, is won the same way), so waiting out a randomized timeout
  // would only delay service (a restart of a one-member cluster). The
  // timeout exists to avoid split votes and to let a live leader be heard
  // (§5.2, thesis §6.2); with no other voter there is neither. Safety never
  // rests on timing, so campaigning on the first tick changes no rule. etcd
  // does similarly at start (etcdserver adjustTicks fast-forwards a
  // one-member cluster to one tick before its election timeout).
  bool sole_voter_without_leader() const {
    return leader_ == kNoNode && membership_.voters().size() == 1 && membership_.is_voter(id_) && promotable();
  }
  static size_t majority(size_t voters) { return voters / 2 + 1; }
  size_t quorum() const { return majority(membership_.voters().size()); }

  // Message handling.
  void handle_vote_request(const Message& m);
  void handle_vote_response(const Message& m);
  void handle_append(const Message& m);
  const char* check_append_against_commit(const Message& m) const;
  void handle_heartbeat(const Message& m);
  void handle_snapshot(const Message& m);
  const char* step_leader(const Message& m);
  void handle_append_response(const Message& m, Progress& pr);
  void handle_heartbeat_response(const Message& m, Progress& pr);
  void handle_snapshot_response(const Message& m, Progress& pr);
  // Forwarded proposals (thesis §6.2; raft.h, forward_proposal).
  const char* handle_forwarded_proposal(const Message& m);
  const char* handle_proposal_refusal(const Message& m);
  void refuse_forwarded_proposal(const Message& m, Error why);
  void forget_forwarded();
  void send(Message m);

  // Replication (leader).
  bool send_append(NodeId to, Progress& pr, bool send_if_empty);
  void send_snapshot_chunk(NodeId to, Progress& pr);
  void send_heartbeat(NodeId to, Progress& pr, uint64_t context);
  // Every change of leader_ goes through here (reads_at_leader_).
  void set_leader(NodeId leader);
  // m comes from the leader of our (current) term: follow it and restart
  // the election timer (§5.2).
  void follow_sender(const Message& m);
  // Fails the reads sent to leader_: it changed, or its term did (a leader
  // of a later term drops a read sent in an earlier one without answering).
  void fail_reads_at_leader();
  void broadcast_heartbeat(uint64_t context);
  void flush();
  bool maybe_commit();
  void on_commit_advanced(Index old_commit);

  // Log and membership.
  void append_entries_from_leader(const std::vector<Entry>& entries);
  void apply_membership(Index index, Membership m);
  void rebuild_membership_after_truncation();
  void sync_progress_with_membership();
  const Membership& membership_at(Index index) const;

  // Reads (thesis §6.4).
  void start_read(NodeId requester, uint64_t id);
  void ack_reads(NodeId from, uint64_t round);
  void resolve_read(const PendingRead& r);
  void fail_reads_on_lost_leadership();

  SplitMix rng_;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  std::map<NodeId, bool> votes_;

  Index term_start_index_ = 0;  // index of this leader's first entry (its no-op)
  Index pending_conf_index_ = 0;
  uint64_t uncommitted_bytes_ = 0;
  NodeId lead_transferee_ = kNoNode;
  int transfer_elapsed_ = 0;

  // (index, membership) of every configuration still relevant, ascending:
  // the one at or below the log offset, then each kConfig entry in the log.
  std::vector<std::pair<Index, Membership>> config_history_;

  std::optional<IncomingSnapshot> incoming_;
  std::optional<SnapshotMeta> pending_install_;
  std::vector<SnapshotChunk> chunks_;

  std::deque<PendingRead> pending_reads_;
  std::vector<std::pair<NodeId, uint64_t>> reads_awaiting_commit_;
  uint64_t read_round_ = 0;
  bool read_round_sent_ = true;

  bool need_flush_ = false;  // leader: new entries or commit to push to followers
  HardState persisted_hs_;
  std::vector<Message> early_msgs_;  // may go out before this Ready is persisted
  std::vector<Message> msgs_;        // only after
  std::vector<ReadState> read_states_;
  std::vector<uint64_t> failed_reads_;
  // Follower: ids of reads sent to leader_ (kReadIndex) and not answered.
  // When leader_ changes they fail at once (Ready::failed_reads) instead of
  // waiting out the caller's deadline for an answer that may never come
  // (the leader died or was deposed). At most kMaxReadsAtLeader: past it the
  // oldest fails, as its caller has timed out long since.
  std::set<uint64_t> reads_at_leader_;

  // Follower: this incarnation's forward epoch (random, below 2^62, carried
  // in kProp.log_index) and the ids of its forwards, counting up from 1 (a
  // refusal naming one never sent is a forgery); refusals for the next Ready.
  uint64_t forward_epoch_ = 1;
  uint64_t next_forward_id_ = 1;
  std::vector<ForwardRefusal> refused_forwards_;
  // Leader: forwarded proposals not committed yet, in log order, and what
  // each follower holds of Options::max_forwarded_*_per_peer.
  struct ForwardedEntry {
    Index index;
    NodeId from;
    uint64_t bytes;
  };
  struct ForwardBudget {
    uint64_t bytes = 0;
    uint64_t entries = 0;
  };
  std::deque<ForwardedEntry> forwarded_;
  std::map<NodeId, ForwardBudget> forward_budget_;
  // Leader: every forward seen in this term, per sender and epoch, so that
  // a duplicated kProp (the network may duplicate; Raft tolerates that for
  // every other message) is appended once (see handle_forwarded_proposal).
  struct SeenForwards {
    uint64_t max_id = 0;
    std::set<uint64_t> ids;  // those within kForwardDedupWindow of max_id
  };
  std::map<NodeId, std::map<uint64_t, SeenForwards>> seen_forwards_;

 public:
  bool writes_refused_ = false;  // set_writes_refused
  bool removed_ = false;         // set_removed
};

// ---------------------------------------------------------------------------
// Construction and restart.

Raft::Impl::Impl(const Options& o, const InitialState& s) : opts_(o), id_(o.id), rng_(o.random_seed) {
  KV_CHECK(id_ != kNoNode, "node id must not be 0");
  KV_CHECK(opts_.election_ticks > opts_.heartbeat_ticks && opts_.heartbeat_ticks > 0,
           "election_ticks %d must exceed heartbeat_ticks %d > 0", opts_.election_ticks,
           opts_.heartbeat_ticks);
  KV_CHECK(opts_.max_inflight_appends > 0 && opts_.max_append_entries > 0 && opts_.snapshot_chunk_bytes > 0,
           "replication limits must be positive");
  snapshot_ = s.snapshot;
  // Stored entries may begin before the snapshot index (the trailing entries
  // kept after compaction); their predecessor's term is then unknown.
  Index offset = snapshot_.index;
  Term offset_term = snapshot_.term;
  if (!s.entries.empty()) {
    KV_CHECK(s.entries.front().index <= snapshot_.index + 1,
             "gap between snapshot %llu and first entry %llu", static_cast<ull>(snapshot_.index),
             static_cast<ull>(s.entries.front().index));
    KV_CHECK(s.entries.back().index >= snapshot_.index, "log ends at %llu before snapshot %llu",
             static_cast<ull>(s.entries.back().index), static_cast<ull>(snapshot_.index));
    offset = s.entries.front().index - 1;
    offset_term = offset == snapshot_.index ? snapshot_.term : 0;
  }
  log_.reset(offset, offset_term, s.entries);
  if (snapshot_.index > offset) {
    KV_CHECK(log_.term_at(snapshot_.index) == snapshot_.term, "log term %llu at snapshot %llu != %llu",
             static_cast<ull>(log_.term_at(snapshot_.index)), static_cast<ull>(snapshot_.index),
             static_cast<ull>(snapshot_.term));
  }
  stable_ = log_.last_index();
  term_ = s.hard_state.term;
  vote_ = s.hard_state.vote;
  commit_ = std::max(s.hard_state.commit, snapshot_.index);
  KV_CHECK(commit_ <= log_.last_index(), "commit %llu beyond last index %llu", static_cast<ull>(commit_),
           static_cast<ull>(log_.last_index()));
  // The caller restores its state machine from the snapshot; everything after
  // it up to commit is handed out again as committed entries.
  applied_ = snapshot_.index;
  persisted_hs_ = s.hard_state;

  // Thesis §4.1: a server uses the latest configuration in its log.
  config_history_.emplace_back(snapshot_.index, snapshot_.membership);
  for (const Entry& e : log_.entries()) {
    if (e.index > snapshot_.index && e.type == EntryType::kConfig) {
      auto m = decode_membership(e.data);
      KV_CHECK(m.has_value(), "corrupt configuration entry at index %llu", static_cast<ull>(e.index));
      config_history_.emplace_back(e.index, std::move(*m));
    }
  }
  membership_ = config_history_.back().second;
  membership_version_ = 1;
  // From its own stream of the seed, so that the election timeouts' stays as
  // it was; the seed differs per incarnation (the node mixes in its clock).
  SplitMix epoch_rng(opts_.random_seed ^ 0x9e3779b97f4a7c15ULL);
  forward_epoch_ = (epoch_rng.next() >> 2) | 1;  // nonzero, below kMaxIndex
  reset_timers();
}

// ---------------------------------------------------------------------------
// Roles.

void Raft::Impl::reset_timers() {
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  // §5.2: randomized timeouts in [T, 2T) make split votes rare.
  randomized_election_timeout_ =
      opts_.election_ticks + static_cast<int>(rng_.next() % static_cast<uint64_t>(opts_.election_ticks));
}

void Raft::Impl::become_follower(Term term, NodeId leader) {
  if (role_ == StateRole::kLeader) fail_reads_on_lost_leadership();
  if (term != term_) {
    KV_CHECK(term > term_, "term going back from %llu to %llu", static_cast<ull>(term_), static_cast<ull>(term));
    term_ = term;
    vote_ = kNoNode;
    fail_reads_at_leader();
  }
  role_ = StateRole::kFollower;
  set_leader(leader);
  lead_transferee_ = kNoNode;
  forget_forwarded();
  votes_.clear();
  need_flush_ = false;
  reset_timers();
}

void Raft::Impl::become_pre_candidate() {
  // Thesis §9.6: a pre-candidate does not touch its term or vote, so a node
  // that cannot win (partitioned, stale log) cannot disrupt the cluster.
  role_ = StateRole::kPreCandidate;
  set_leader(kNoNode);
  votes_.clear();
  reset_timers();
}

void Raft::Impl::become_candidate() {
  role_ = StateRole::kCandidate;
  term_ += 1;
  vote_ = id_;
  set_leader(kNoNode);
  votes_.clear();
  reset_timers();
}

void Raft::Impl::become_leader() {
  KV_CHECK(role_ == StateRole::kCandidate, "only a candidate becomes leader (role %s)", to_string(role_));
  role_ = StateRole::kLeader;
  set_leader(id_);
  lead_transferee_ = kNoNode;
  reset_timers();
  progress_.clear();
  sync_progress_with_membership();
  for (auto& [id, pr] : progress_) {
    pr.next = log_.last_index() + 1;
    pr.recent_active = true;  // give everyone one check-quorum round
  }
  pending_conf_index_ = config_history_.back().first;
  uncommitted_bytes_ = 0;
  forget_forwarded();
  seen_forwards_.clear();  // only forwards sent in this term are taken
  pending_reads_.clear();
  reads_awaiting_commit_.clear();
  read_round_sent_ = true;
  // §8: a new leader appends a no-op so that it can commit (and learn the
  // commit index) in its own term. It also gates configuration changes: the
  // single-server change bug is avoided by committing an entry of the
  // current term before any change (Ongaro, raft-dev 2015).
  term_start_index_ = log_.last_index() + 1;
  log_.append(Entry{term_, term_start_index_, EntryType::kNormal, {}});
  need_flush_ = true;
}

void Raft::Impl::campaign(bool pre_vote, bool forced) {
  // Unreachable by elections (message_checks.h), but a term must never wrap.
  if (term_ >= kMaxTerm) return;
  if (pre_vote) {
    become_pre_candidate();
  } else {
    become_candidate();
  }
  const Term term = pre_vote ? term_ + 1 : term_;
  votes_[id_] = true;
  if (quorum() <= 1 && membership_.is_voter(id_)) {
    // Single voter: nobody else to ask.
    if (pre_vote) {
      campaign(false, forced);
    } else {
      become_leader();
    }
    return;
  }
  for (NodeId peer : membership_.voters()) {
    if (peer == id_) continue;
    Message m;
    m.type = pre_vote ? MessageType::kPreVote : MessageType::kVote;
    m.to = peer;
    m.term = term;
    m.log_index = log_.last_index();
    m.log_term = log_.last_term();
    m.context = forced ? kForcedCampaign : 0;
    send(std::move(m));
  }
}

// ---------------------------------------------------------------------------
// Time.

void Raft::Impl::tick() {
  election_elapsed_++;
  if (role_ != StateRole::kLeader) {
    if (election_elapsed_ >= randomized_election_timeout_ || sole_voter_without_leader()) {
      if (promotable()) {
        campaign(opts_.pre_vote, false);
      } else {
        // Learners and non-members never campaign, but must not keep
        // reporting a leader they stopped hearing from.
        set_leader(kNoNode);
        election_elapsed_ = 0;
      }
    }
    return;
  }

  if (lead_transferee_ != kNoNode && ++transfer_elapsed_ >= opts_.election_ticks) {
    lead_transferee_ = kNoNode;  // thesis §3.10: give up so proposals resume
  }
  if (election_elapsed_ >= opts_.election_ticks) {
    election_elapsed_ = 0;
    if (opts_.check_quorum) {
      // Thesis §6.2: a leader that has not heard from a quorum in an
      // election timeout steps down, so clients find the real leader.
      size_t active = 0;
      for (NodeId v : membership_.voters()) {
        if (v == id_) {
          active++;
        } else if (auto it = progress_.find(v); it != progress_.end() && it->second.recent_active) {
          active++;
        }
      }
      // Also a leader that is not a voter (removing itself, or elected while
      // its removal was uncommitted): without a quorum it must not lead on.
      if (active < quorum()) {
        become_follower(term_, kNoNode);
        return;
      }
      for (auto& [id, pr] : progress_) pr.recent_active = false;
    }
  }
  for (auto& [id, pr] : progress_) {
    if (pr.state == Progress::State::kReplicate && !pr.inflight.empty() &&
        ++pr.stall_ticks >= opts_.election_ticks) {
      // No answer to pipelined appends for an election timeout: they (or
      // their answers) were lost. Find the match point again.
      pr.become_probe();
      send_append(id, pr, true);
    } else if (pr.state == Progress::State::kSnapshot && ++pr.snapshot_idle_ticks >= opts_.election_ticks) {
      send_snapshot_chunk(id, pr);  // a chunk or its answer was lost
    }
  }
  if (++heartbeat_elapsed_ >= opts_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    // A heartbeat sent now is sent after every pending read was registered,
    // so it may carry (and confirm) the newest read round.
    uint64_t context = 0;
    if (!pending_reads_.empty()) {
      context = read_round_;
      read_round_sent_ = true;
    }
    broadcast_heartbeat(context);
  }
}

// ---------------------------------------------------------------------------
// Messages.

void Raft::Impl::send(Message m) {
  m.from = id_;
  if (m.term == 0) m.term = term_;
  // Thesis §10.2.1: a leader may write to its disk in parallel with
  // replicating, because it counts itself toward a commit only once its own
  // append is durable (advance()). Only what a leader sends qualifies: a
  // vote or an append acknowledgement must wait for the persist it reports.
  // The leader's own term and vote must already be durable: a one-voter
  // cluster becomes leader within one step, before the Ready that persists
  // its new term, and a crash then could let it lead that term twice.
  // A forwarded proposal and its refusal claim nothing about our log or
  // vote, so they never wait for a persist either.
  const bool early = m.type == MessageType::kProp || m.type == MessageType::kPropResp ||
                     (role_ == StateRole::kLeader && term_ == persisted_hs_.term &&
                      vote_ == persisted_hs_.vote &&
                      (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
                       m.type == MessageType::kSnapshot || m.type == MessageType::kTimeoutNow));
  (early ? early_msgs_ : msgs_).push_back(std::move(m));
}

const char* Raft::Impl::step(const Message& m) {
  if (const char* why = check_message_shape(m)) return why;
  if (m.from == id_) return "message claims to come from this node";
  if (m.to != id_) return "message addressed to another node";
  if (m.term > term_ && m.term - term_ > kMaxTermJump) return "term jumps implausibly far ahead";
  // Forwarded proposals stand outside the term rules (as etcd's MsgProp):
  // a leader appends one as its own proposal in its own term, whatever the
  // sender's, and a refusal is true in any term. Neither may move our term,
  // leader or election timer.
  if (m.type == MessageType::kProp) return handle_forwarded_proposal(m);
  if (m.type == MessageType::kPropResp) return handle_proposal_refusal(m);
  if (m.type == MessageType::kTimeoutNow && m.term >= term_ &&
      (m.term != term_ || (leader_ != kNoNode && m.from != leader_))) {
    // Only the leader of our term may tell us to campaign (thesis §3.10):
    // it is in our term, since we acknowledged its log before it asked. We
    // may not know it as leader yet (just restarted, or a pre-candidate):
    // then take it, since a forgery can do no more than start an election.
    return "TimeoutNow from a node that is not our leader";
  }
  if (m.type == MessageType::kHeartbeat && m.term >= term_ && m.commit > log_.last_index()) {
    // A leader sends min(match, commit): never beyond what we acknowledged,
    // and acknowledged entries stay in our log. Clamping instead would
    // commit whatever suffix we hold, which may be another term's.
    return "heartbeat commit beyond our log";
  }
  if (m.type == MessageType::kReadIndexResp && m.term >= term_ &&
      (m.term != term_ || m.from != leader_ || leader_ == kNoNode)) {
    // Only the leader we follow, in our term, can answer a read (thesis
    // §6.4): anyone else's index could be stale (Byzantine-lite swarm seed
    // 787828383753). An answer from a leader we no longer follow is dropped
    // too; the read then fails by its deadline and is retried.
    return "read index answer from a node that is not our leader";
  }
  if (m.type == MessageType::kAppend && m.term >= term_) {
    // Before it changes anything (our term, leader, election timer): an
    // append that contradicts our committed log cannot come from a leader
    // of this or a later term (Leader Completeness, §5.4). A stale leader's
    // append may, and gets the usual rejection below.
    if (const char* why = check_append_against_commit(m)) return why;
  }

  if (m.term > term_) {
    const bool vote_request = m.type == MessageType::kVote || m.type == MessageType::kPreVote;
    if (vote_request) {
      // Thesis §4.2.3: while a follower hears from a live leader it ignores
      // vote requests, so a removed or partitioned server cannot disrupt it.
      const bool in_lease =
          opts_.check_quorum && leader_ != kNoNode && election_elapsed_ < opts_.election_ticks;
      if (in_lease && m.context != kForcedCampaign) return nullptr;
    }
    if (m.type == MessageType::kPreVote || (m.type == MessageType::kPreVoteResp && !m.reject)) {
      // A pre-vote never changes terms; a granted pre-vote carries the
      // candidate's future term.
    } else if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnapshot) {
      become_follower(m.term, m.from);
    } else {
      become_follower(m.term, kNoNode);
    }
  } else if (m.term < term_) {
    if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
        m.type == MessageType::kSnapshot) {
      // A stale leader (e.g. just healed from a partition) learns the new
      // term from this answer and steps down; without it, pre-vote and the
      // lease could leave it stranded (etcd does the same).
      Message r;
      r.type = MessageType::kAppendResp;
      r.to = m.from;
      r.reject = true;
      send(std::move(r));
    } else if (m.type == MessageType::kPreVote || m.type == MessageType::kVote) {
      // §5.1: reject a stale request with our term, so that a candidate
      // stuck in an old term (e.g. after TimeoutNow) catches up.
      Message r;
      r.type = m.type == MessageType::kPreVote ? MessageType::kPreVoteResp : MessageType::kVoteResp;
      r.to = m.from;
      r.reject = true;
      send(std::move(r));
    }
    return nullptr;
  }

  switch (m.type) {
    case MessageType::kPreVote:
    case MessageType::kVote:
      handle_vote_request(m);
      return nullptr;
    case MessageType::kPreVoteResp:
    case MessageType::kVoteResp:
      handle_vote_response(m);
      return nullptr;
    default:
      break;
  }

  if (role_ == StateRole::kLeader) return step_leader(m);
  switch (m.type) {
    case MessageType::kAppend:
      follow_sender(m);
      handle_append(m);
      break;
    case MessageType::kHeartbeat:
      follow_sender(m);
      handle_heartbeat(m);
      break;
    case MessageType::kSnapshot:
      follow_sender(m);
      handle_snapshot(m);
      break;
    case MessageType::kTimeoutNow:
      // Thesis §3.10: the leader picked us; start a real election at once,
      // skipping pre-vote, and tell voters to ignore their lease. Only the
      // leader we follow may ask (checked in step()).
      if (promotable()) campaign(false, true);
      break;
    case MessageType::kReadIndex: {
      Message r;
      r.type = MessageType::kReadIndexResp;
      r.to = m.from;
      r.context = m.context;
      r.reject = true;  // not the leader
      send(std::move(r));
      break;
    }
    case MessageType::kReadIndexResp:
      // Only an answer to a read still waiting on this leader: one failed
      // when the leader changed has been reported already.
      if (reads_at_leader_.erase(m.context) == 0) break;
      if (m.reject) {
        failed_reads_.push_back(m.context);
      } else {
        read_states_.push_back(ReadState{m.context, m.index});
      }
      break;
    default:
      break;  // responses meant for a leader we no longer are
  }
  return nullptr;
}

void Raft::Impl::handle_vote_request(const Message& m) {
  const bool pre = m.type == MessageType::kPreVote;
  // §5.2: one vote per term, first come first served (a repeated request
  // from the same candidate is granted again). A pre-vote for a later term
  // commits to nothing, so it may be granted while our own vote is taken.
  const bool can_vote = vote_ == m.from || (vote_ == kNoNode && leader_ == kNoNode) || (pre && m.term > term_);
  Message r;
  r.type = pre ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  r.to = m.from;
  // §5.4.1 election restriction: only a candidate whose log is at least as
  // up-to-date as ours gets our vote.
  if (can_vote && log_.is_up_to_date(m.log_index, m.log_term)) {
    r.term = m.term;
    r.reject = false;
    if (!pre) {
      // The vote is in hard state and the answer is sent only after it is
      // persisted (Ready order), so a crash cannot make us vote twice.
      vote_ = m.from;
      election_elapsed_ = 0;
    }
  } else {
    r.term = term_;
    r.reject = true;
  }
  send(std::move(r));
}

void Raft::Impl::handle_vote_response(const Message& m) {
  const bool pre = m.type == MessageType::kPreVoteResp;
  if (pre ? role_ != StateRole::kPreCandidate : role_ != StateRole::kCandidate) return;
  if (pre && !m.reject && m.term != term_ + 1) return;  // answer to an older pre-vote round
  if (!membership_.is_voter(m.from)) return;
  votes_.emplace(m.from, !m.reject);
  size_t granted = 0;
  size_t rejected = 0;
  for (NodeId v : membership_.voters()) {
    auto it = votes_.find(v);
    if (it == votes_.end()) continue;
    (it->second ? granted : rejected)++;
  }
  if (granted >= quorum()) {
    if (pre) {
      campaign(false, false);
    } else {
      become_leader();
    }
  } else if (rejected >= quorum()) {
    become_follower(term_, kNoNode);
  }
}

const char* Raft::Impl::check_append_against_commit(const Message& m) const {
  // Where our terms are known (not compacted; term_at returns 0 otherwise),
  // the consistency-check entry and every entry at or below our commit index
  // must be exactly ours.
  auto contradicts = [this](Index i, Term t) {
    const Term ours = log_.term_at(i);
    return i <= commit_ && ours != 0 && ours != t;
  };
  if (m.log_index > 0 && contradicts(m.log_index, m.log_term)) {
    return "append's consistency-check entry contradicts a committed entry";
  }
  for (const Entry& e : m.entries) {
    if (e.index > commit_) break;
    if (contradicts(e.index, e.term)) return "append contradicts a committed entry";
  }
  return nullptr;
}

void Raft::Impl::handle_append(const Message& m) {
  Message r;
  r.type = MessageType::kAppendResp;
  r.to = m.from;
  if (m.log_index < commit_) {
    // Everything up to our commit index matches the leader's log (Log
    // Matching + Leader Completeness): keep only what lies beyond it. This
    // happens when pipelined appends arrive after a heartbeat moved commit.
    const Index last_new = m.log_index + m.entries.size();
    if (last_new > commit_) {
      std::vector<Entry> beyond(m.entries.end() - static_cast<std::ptrdiff_t>(last_new - commit_), m.entries.end());
      append_entries_from_leader(beyond);
      const Index new_commit = std::min(m.commit, last_new);
      if (new_commit > commit_) commit_ = new_commit;
    }
    r.index = std::max(commit_, last_new);
    send(std::move(r));
    return;
  }
  if (log_.matches(m.log_index, m.log_term)) {
    append_entries_from_leader(m.entries);
    const Index last_new = m.log_index + m.entries.size();
    // §5.3: commit up to the leader's commit, but only what we know matches.
    const Index new_commit = std::min(m.commit, last_new);
    if (new_commit > commit_) commit_ = new_commit;
    r.index = last_new;
    send(std::move(r));
    return;
  }
  // §5.3 consistency check failed; hint where our logs may agree.
  r.reject = true;
  r.index = m.log_index;
  r.hint_index = log_.last_index_with_term_at_most(m.log_term, std::min(m.log_index, log_.last_index()));
  if (r.hint_index < commit_) r.hint_index = commit_;
  r.hint_term = log_.term_at(r.hint_index);
  send(std::move(r));
}

void Raft::Impl::append_entries_from_leader(const std::vector<Entry>& entries) {
  for (const Entry& e : entries) {
    if (e.index <= log_.offset()) continue;  // already compacted, hence committed
    if (e.index <= log_.last_index()) {
      if (log_.term_at(e.index) == e.term) continue;  // already have it (§5.3 Log Matching)
      // A conflicting entry: delete it and all that follow (§5.3). A
      // committed entry can never conflict with the leader's log.
      KV_CHECK(e.index > commit_, "leader %llu would truncate committed entry %llu (commit %llu)",
               static_cast<ull>(leader_), static_cast<ull>(e.index), static_cast<ull>(commit_));
      log_.truncate_from(e.index);
      if (stable_ >= e.index) stable_ = e.index - 1;
      // An acknowledgement still queued for this Ready (an earlier append
      // in the same batch) may name entries we just removed: it would go
      // out after the persist, claiming entries no longer stored (found by
      // swarm seed 501862, 5 nodes). Raft's "reply after persisting" means
      // the reply must be true of what was persisted.
      std::erase_if(msgs_, [&](const Message& q) {
        return q.type == MessageType::kAppendResp && !q.reject && q.index >= e.index;
      });
      rebuild_membership_after_truncation();
    }
    log_.append(e);
    if (e.type == EntryType::kConfig) {
      auto m = decode_membership(e.data);
      KV_CHECK(m.has_value(), "corrupt configuration entry at index %llu from leader %llu",
               static_cast<ull>(e.index), static_cast<ull>(leader_));
      apply_membership(e.index, std::move(*m));
    }
  }
}

void Raft::Impl::handle_heartbeat(const Message& m) {
  // The leader sends min(match, commit), which is known to be in our log
  // (step() drops a heartbeat whose commit is beyond it).
  if (m.commit > commit_) commit_ = m.commit;
  Message r;
  r.type = MessageType::kHeartbeatResp;
  r.to = m.from;
  r.context = m.context;
  send(std::move(r));
}

void Raft::Impl::handle_snapshot(const Message& m) {
  const SnapshotMeta& meta = m.snapshot;
  Message r;
  r.type = MessageType::kSnapshotResp;
  r.to = m.from;
  r.index = meta.index;
  if (meta.index <= commit_) {
    // Already have everything it covers.
    r.index = commit_;
    r.done = true;
    send(std::move(r));
    return;
  }
  if (log_.matches(meta.index, meta.term)) {
    // §7: our log already contains the snapshot's last entry; keep what
    // follows and just learn that it is committed.
    commit_ = meta.index;
    r.done = true;
    send(std::move(r));
    return;
  }
  if (pending_install_) {
    // A snapshot completed in this Ready is not installed yet: a chunk of
    // another one now would land in the same incoming file before the
    // node installs it (found by swarm seed 907451). The leader resends
    // once we are quiet (Progress::snapshot_idle_ticks).
    return;
  }
  if (m.offset == 0) incoming_ = IncomingSnapshot{meta, 0};
  const bool same = incoming_ && incoming_->meta.index == meta.index && incoming_->meta.term == meta.term;
  if (!same || m.offset != incoming_->next_offset || m.data.size() != m.data_length) {
    r.reject = true;
    r.offset = same ? incoming_->next_offset : 0;
    send(std::move(r));
    return;
  }
  chunks_.push_back(SnapshotChunk{meta, m.offset, m.data});
  incoming_->next_offset += m.data.size();
  r.offset = incoming_->next_offset;
  if (m.done) {
    if (incoming_->next_offset != meta.size_bytes) {
      // Sizes disagree: start over rather than install a torn snapshot.
      incoming_.reset();
      chunks_.clear();
      r.reject = true;
      r.offset = 0;
      send(std::move(r));
      return;
    }
    // §7: discard the whole log and take the snapshot's state.
    log_.reset(meta.index, meta.term, {});
    stable_ = meta.index;
    commit_ = meta.index;
    snapshot_ = meta;
    config_history_.clear();
    config_history_.emplace_back(meta.index, meta.membership);
    membership_ = meta.membership;
    membership_version_++;
    pending_install_ = meta;
    incoming_.reset();
    r.done = true;
  }
  send(std::move(r));
}

// ---------------------------------------------------------------------------
// Leader.

const char* Raft::Impl::step_leader(const Message& m) {
  if (m.type == MessageType::kReadIndex) {
    if (!membership_.contains(m.from)) return "read index request from a non-member";
    start_read(m.from, m.context);
    return nullptr;
  }
  if (!is_response(m.type)) return nullptr;  // same-term append from another leader cannot happen (§5.2)
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return nullptr;  // not a member (any more)
  // A follower can only acknowledge, or reject at, an index we sent it or
  // one it already had committed; either is in our log (Leader Completeness).
  if ((m.type == MessageType::kAppendResp || m.type == MessageType::kSnapshotResp) &&
      m.index > log_.last_index()) {
    return "response names an index beyond the leader's log";
  }
  if (m.type == MessageType::kHeartbeatResp && m.context > read_round_) {
    return "heartbeat response confirms a read round never sent";
  }
  Progress& pr = it->second;
  pr.recent_active = true;
  switch (m.type) {
    case MessageType::kAppendResp:
      handle_append_response(m, pr);
      break;
    case MessageType::kHeartbeatResp:
      handle_heartbeat_response(m, pr);
      break;
    case MessageType::kSnapshotResp:
      handle_snapshot_response(m, pr);
      break;
    default:
      break;
  }
  return nullptr;
}

void Raft::Impl::handle_append_response(const Message& m, Progress& pr) {
  if (m.reject) {
    // Stale rejections (an older probe, reordered) must not move next back.
    if (m.index <= pr.match) return;
    if (pr.state == Progress::State::kProbe && m.index != pr.next - 1) return;
    if (pr.state == Progress::State::kSnapshot) return;
    // Fast log repair: jump to where both logs can agree.
    const Index probe = log_.last_index_with_term_at_most(m.hint_term, m.hint_index);
    Index next = std::min(m.index, probe + 1);
    if (next <= pr.match) next = pr.match + 1;
    pr.become_probe();
    pr.next = next;
    send_append(m.from, pr, true);
    return;
  }
  const bool advanced = m.index > pr.match;
  if (advanced) {
    pr.match = m.index;
    if (pr.next <= pr.match) pr.next = pr.match + 1;
  }
  pr.stall_ticks = 0;
  if (pr.state == Progress::State::kProbe) {
    pr.become_replicate();  // the match point is known: start pipelining
  } else if (pr.state == Progress::State::kReplicate) {
    pr.free_inflight_to(m.index);
  } else if (pr.state == Progress::State::kSnapshot && pr.match >= pr.snapshot_index) {
    pr.become_probe();
  }
  if (advanced && maybe_commit()) {
    need_flush_ = true;
    if (role_ != StateRole::kLeader) return;  // committed our own removal
  }
  while (send_append(m.from, pr, false)) {
  }
  // Its ack may have come after the one that advanced the commit index, or
  // its window was full then: flush() tells it now.
  if (pr.commit_sent < commit_) need_flush_ = true;
  if (m.from == lead_transferee_ && pr.match == log_.last_index()) {
    Message t;
    t.type = MessageType::kTimeoutNow;
    t.to = m.from;
    send(std::move(t));
  }
}

void Raft::Impl::handle_heartbeat_response(const Message& m, Progress& pr) {
  // A heartbeat answer shows the follower is alive: retry a probe whose
  // answer may have been lost. (Lost pipelined appends are caught by the
  // stall timer in tick().)
  if (pr.state == Progress::State::kProbe) pr.probe_sent = false;
  if (pr.match < log_.last_index()) send_append(m.from, pr, false);
  if (m.context != 0) ack_reads(m.from, m.context);
}

void Raft::Impl::handle_snapshot_response(const Message& m, Progress& pr) {
  if (m.done && !m.reject) {
    if (m.index > pr.match) pr.match = m.index;
    pr.become_probe();
    if (maybe_commit()) {
      need_flush_ = true;
      if (role_ != StateRole::kLeader) return;
    }
    send_append(m.from, pr, true);
    return;
  }
  if (pr.state != Progress::State::kSnapshot || m.index != pr.snapshot_index) return;
  if (!m.reject && m.offset <= pr.snapshot_offset) return;  // duplicate ack
  pr.snapshot_offset = m.offset;
  send_snapshot_chunk(m.from, pr);
}

bool Raft::Impl::send_append(NodeId to, Progress& pr, bool send_if_empty) {
  if (pr.paused(opts_.max_inflight_appends)) return false;
  const Index prev = pr.next - 1;
  const Term prev_term = log_.term_at(prev);
  if (pr.next <= log_.offset() || (prev > 0 && prev_term == 0)) {
    // The entries it needs were compacted: send the snapshot instead (§7).
    KV_CHECK(snapshot_.index > 0 && snapshot_.index >= prev,
             "no term for index %llu and no snapshot covering it (snapshot %llu, offset %llu)",
             static_cast<ull>(prev), static_cast<ull>(snapshot_.index), static_cast<ull>(log_.offset()));
    pr.become_snapshot(snapshot_.index);
    send_snapshot_chunk(to, pr);
    return false;
  }
  Message m;
  m.type = MessageType::kAppend;
  m.to = to;
  m.log_index = prev;
  m.log_term = prev_term;
  m.commit = commit_;
  if (pr.next <= log_.last_index()) {
    m.entries = log_.slice(pr.next, log_.last_index() + 1, opts_.max_append_bytes, opts_.max_append_entries);
  }
  if (m.entries.empty() && !send_if_empty) return false;
  pr.commit_sent = std::max(pr.commit_sent, m.commit);
  if (pr.state == Progress::State::kReplicate) {
    if (!m.entries.empty()) {
      // Pipelining: assume success and move on; a rejection resets next.
      pr.next = m.entries.back().index + 1;
      pr.inflight.push_back(m.entries.back().index);
    }
  } else {
    pr.probe_sent = true;
  }
  send(std::move(m));
  return true;
}

void Raft::Impl::send_snapshot_chunk(NodeId to, Progress& pr) {
  if (pr.snapshot_index != snapshot_.index) {
    // A newer snapshot replaced the one being sent; restart with it.
    pr.snapshot_index = snapshot_.index;
    pr.snapshot_offset = 0;
  }
  KV_CHECK(snapshot_.index > 0, "sending a snapshot to %llu but none exists", static_cast<ull>(to));
  pr.snapshot_idle_ticks = 0;
  Message m;
  m.type = MessageType::kSnapshot;
  m.to = to;
  m.snapshot = snapshot_;
  m.offset = std::min(pr.snapshot_offset, snapshot_.size_bytes);
  m.data_length = std::min<uint64_t>(opts_.snapshot_chunk_bytes, snapshot_.size_bytes - m.offset);
  m.done = m.offset + m.data_length >= snapshot_.size_bytes;
  send(std::move(m));
}

void Raft::Impl::send_heartbeat(NodeId to, Progress& pr, uint64_t context) {
  Message m;
  m.type = MessageType::kHeartbeat;
  m.to = to;
  // Only what the follower is known to hold may be committed there.
  m.commit = std::min(pr.match, commit_);
  pr.commit_sent = std::max(pr.commit_sent, m.commit);
  m.context = context;
  send(std::move(m));
}

void Raft::Impl::broadcast_heartbeat(uint64_t context) {
  for (auto& [id, pr] : progress_) {
    if (id != id_) send_heartbeat(id, pr, context);
  }
}

void Raft::Impl::flush() {
  if (role_ != StateRole::kLeader) {
    need_flush_ = false;  // e.g. a leader that committed its own removal and stepped down
    return;
  }
  if (need_flush_) {
    need_flush_ = false;
    for (auto& [id, pr] : progress_) {
      if (id == id_) continue;
      bool sent = false;
      while (send_append(id, pr, false)) sent = true;
      // Tell a follower a commit index it has not heard of now rather than at
      // the next heartbeat: its forwarded writes and reads wait for it to
      // apply. That includes one whose own ack came after the majority's
      // (its appends all sent, nothing new to carry the commit): without
      // this it waited a heartbeat interval, the p99 of forwarded writes.
      // The empty append follows the in-flight ones on the same stream, so
      // its consistency check (§5.3) holds once they arrived.
      if (!sent && pr.state == Progress::State::kReplicate && pr.commit_sent < commit_) {
        send_append(id, pr, true);
      }
    }
  }
  if (!read_round_sent_) {
    read_round_sent_ = true;
    broadcast_heartbeat(read_round_);
  }
}

bool Raft::Impl::maybe_commit() {
  std::vector<Index> matches;
  for (NodeId v : membership_.voters()) {
    if (v == id_) {
      matches.push_back(stable_);  // the leader counts itself only once persisted
    } else if (auto it = progress_.find(v); it != progress_.end()) {
      matches.push_back(it->second.match);
    } else {
      matches.push_back(0);
    }
  }
  if (matches.empty()) return false;
  std::sort(matches.begin(), matches.end(), std::greater<>());
  const Index candidate = matches[majority(matches.size()) - 1];  // matches has one per voter
  // §5.4.2 (Figure 8): only an entry of the current term is committed by
  // counting replicas; earlier entries commit indirectly with it.
  if (candidate <= commit_ || log_.term_at(candidate) != term_) return false;
  const Index old = commit_;
  commit_ = candidate;
  on_commit_advanced(old);
  return true;
}

void Raft::Impl::on_commit_advanced(Index old_commit) {
  for (Index i = std::max(old_commit + 1, term_start_index_); i <= commit_; ++i) {
    const uint64_t n = log_.at(i).data.size();
    uncommitted_bytes_ = n > uncommitted_bytes_ ? 0 : uncommitted_bytes_ - n;
  }
  while (!forwarded_.empty() && forwarded_.front().index <= commit_) {
    const ForwardedEntry& f = forwarded_.front();
    auto it = forward_budget_.find(f.from);
    if (it != forward_budget_.end()) {
      it->second.bytes -= f.bytes;
      if (--it->second.entries == 0) forward_budget_.erase(it);
    }
    forwarded_.pop_front();
  }
  if (commit_ >= term_start_index_ && !reads_awaiting_commit_.empty()) {
    auto waiting = std::move(reads_awaiting_commit_);
    reads_awaiting_commit_.clear();
    for (auto& [requester, id] : waiting) start_read(requester, id);
  }
  // Thesis §4.2.2: a leader removed from the configuration steps down once
  // the change that removed it is committed.
  if (!membership_.is_voter(id_) && commit_ >= pending_conf_index_) {
    // Push the commit index out first so followers learn the change soon.
    for (auto& [id, pr] : progress_) {
      if (id != id_) send_heartbeat(id, pr, 0);
    }
    become_follower(term_, kNoNode);
  }
}

ProposeResult Raft::Impl::propose(EntryType type, std::string data) {
  ProposeResult res;
  if (role_ != StateRole::kLeader) {
    res.error = Error::kNotLeader;
    return res;
  }
  if (lead_transferee_ != kNoNode) {
    res.error = Error::kTransferInProgress;
    return res;
  }
  if (uncommitted_bytes_ > 0 && uncommitted_bytes_ + data.size() > opts_.max_uncommitted_bytes) {
    res.error = Error::kOverloaded;
    return res;
  }
  uncommitted_bytes_ += data.size();
  res.index = log_.last_index() + 1;
  res.term = term_;
  log_.append(Entry{term_, res.index, type, std::move(data)});
  need_flush_ = true;
  return res;
}

ProposeResult Raft::Impl::forward_proposal(std::string data) {
  if (role_ == StateRole::kLeader) return propose(EntryType::kNormal, std::move(data));
  ProposeResult res;
  if (data.empty()) {
    res.error = Error::kInvalid;
    return res;
  }
  if (role_ != StateRole::kFollower || leader_ == kNoNode) {
    res.error = Error::kNotLeader;
    return res;
  }
  Message m;
  m.type = MessageType::kProp;
  m.to = leader_;
  m.log_index = forward_epoch_;
  m.context = next_forward_id_++;
  m.entries.push_back(Entry{0, 0, EntryType::kNormal, std::move(data)});
  res.forward_id = m.context;
  send(std::move(m));
  return res;
}

const char* Raft::Impl::handle_forwarded_proposal(const Message& m) {
  // Only a member may add to our log: a removed node cannot inject entries
  // (a learner may: it serves clients like any member).
  if (!membership_.contains(m.from)) return "forwarded proposal from a non-member";
  // A refusal tells the follower "not applied", so it must be certain even
  // for a duplicated or late kProp: only a leader of the term the proposal
  // was sent in, remembering every forward it saw in that term, or a node
  // that never led that term (it never voted for itself in it), may refuse.
  // Anything else is dropped: the proposer times out, outcome unknown.
  if (role_ != StateRole::kLeader) {
    // One hop only: a stale view of who leads must not bounce a proposal
    // around the cluster.
    if (m.term == term_ && vote_ != id_) refuse_forwarded_proposal(m, Error::kNotLeader);
    return nullptr;
  }
  if (m.term != term_) return nullptr;  // sent in another term: perhaps a copy of one appended then
  auto& epochs = seen_forwards_[m.from];
  auto ep = epochs.find(m.log_index);
  if (ep == epochs.end()) {
    if (epochs.size() >= kMaxForwardEpochsPerPeer) return "forwarding member restarted too often in this term";
    ep = epochs.emplace(m.log_index, SeenForwards{}).first;
  }
  SeenForwards& seen = ep->second;
  const uint64_t id = m.context;
  if (id <= seen.max_id && (id + kForwardDedupWindow <= seen.max_id || seen.ids.count(id) != 0)) {
    return nullptr;  // a duplicate (or too old to tell): appended or answered already
  }
  seen.ids.insert(id);
  if (id > seen.max_id) {
    seen.max_id = id;
    while (!seen.ids.empty() && *seen.ids.begin() + kForwardDedupWindow <= seen.max_id) seen.ids.erase(seen.ids.begin());
  }
  if (writes_refused_) {
    refuse_forwarded_proposal(m, Error::kNoSpace);
    return nullptr;
  }
  const std::string& data = m.entries.front().data;
  ForwardBudget& budget = forward_budget_[m.from];
  if (budget.entries >= opts_.max_forwarded_entries_per_peer ||
      (budget.bytes > 0 && budget.bytes + data.size() > opts_.max_forwarded_bytes_per_peer)) {
    if (budget.entries == 0) forward_budget_.erase(m.from);
    refuse_forwarded_proposal(m, Error::kOverloaded);
    return nullptr;
  }
  const ProposeResult r = propose(EntryType::kNormal, data);
  if (!r.ok()) {
    if (budget.entries == 0) forward_budget_.erase(m.from);
    refuse_forwarded_proposal(m, r.error);
    return nullptr;
  }
  budget.bytes += data.size();
  budget.entries += 1;
  forwarded_.push_back(ForwardedEntry{r.index, m.from, data.size()});
  return nullptr;
}

void Raft::Impl::refuse_forwarded_proposal(const Message& m, Error why) {
  Message r;
  r.type = MessageType::kPropResp;
  r.to = m.from;
  r.context = m.context;
  r.log_index = m.log_index;  // the proposer's epoch
  r.reject = true;
  r.index = static_cast<uint64_t>(why);
  send(std::move(r));
}

const char* Raft::Impl::handle_proposal_refusal(const Message& m) {
  if (m.context >= next_forward_id_ || m.log_index != forward_epoch_) {
    return "refusal of a proposal this node never forwarded";
  }
  if (!membership_.contains(m.from) && m.from != leader_) return "proposal refusal from a non-member";
  refused_forwards_.push_back(ForwardRefusal{m.context, static_cast<Error>(m.index)});
  return nullptr;
}

void Raft::Impl::forget_forwarded() {
  forwarded_.clear();
  forward_budget_.clear();
}

ProposeResult Raft::Impl::propose_conf_change(const ConfChange& cc) {
  ProposeResult res;
  if (role_ != StateRole::kLeader) {
    res.error = Error::kNotLeader;
    return res;
  }
  if (lead_transferee_ != kNoNode) {
    res.error = Error::kTransferInProgress;
    return res;
  }
  // Single-server changes, one at a time (thesis §4.1), and only once this
  // leader has committed an entry of its own term (the 2015 fix).
  if (commit_ < term_start_index_) {
    res.error = Error::kNotReady;
    return res;
  }
  if (pending_conf_index_ > commit_) {
    res.error = Error::kConfChangeInProgress;
    return res;
  }
  if (cc.node == kNoNode) {
    res.error = Error::kInvalid;
    return res;
  }
  Membership next = membership_;
  auto found = std::find_if(next.members.begin(), next.members.end(),
                            [&](const Member& mem) { return mem.id == cc.node; });
  Member* existing = found == next.members.end() ? nullptr : &*found;
  switch (cc.type) {
    case ConfChangeType::kAddLearner:
      if (existing != nullptr) {
        res.error = Error::kAlreadyMember;
        return res;
      }
      if (next.members.size() >= kMaxMembers) {
        res.error = Error::kMembershipFull;  // decode_membership would refuse the result
        return res;
      }
      next.members.push_back(Member{cc.node, MemberRole::kLearner, cc.context});
      std::sort(next.members.begin(), next.members.end(),
                [](const Member& a, const Member& b) { return a.id < b.id; });
      break;
    case ConfChangeType::kPromote:
      if (existing == nullptr) {
        res.error = Error::kNotMember;
        return res;
      }
      if (existing->role != MemberRole::kLearner) {
        res.error = Error::kNotLearner;
        return res;
      }
      existing->role = MemberRole::kVoter;
      break;
    case ConfChangeType::kRemove:
      if (existing == nullptr) {
        res.error = Error::kNotMember;
        return res;
      }
      if (existing->role == MemberRole::kVoter && next.voters().size() == 1) {
        res.error = Error::kInvalid;  // the last voter cannot leave
        return res;
      }
      next.members.erase(found);
      break;
    case ConfChangeType::kUpdateContext:
      if (existing == nullptr) {
        res.error = Error::kNotMember;
        return res;
      }
      existing->context = cc.context;
      break;
  }
  res = propose(EntryType::kConfig, encode_membership(next));
  if (res.ok()) {
    // Thesis §4.1: the new configuration takes effect as soon as it is in
    // the log, without waiting for it to commit.
    apply_membership(res.index, std::move(next));
  }
  return res;
}

// ---------------------------------------------------------------------------
// Membership bookkeeping.

void Raft::Impl::apply_membership(Index index, Membership m) {
  config_history_.emplace_back(index, std::move(m));
  membership_ = config_history_.back().second;
  membership_version_++;
  pending_conf_index_ = index;
  if (role_ == StateRole::kLeader) {
    sync_progress_with_membership();
    if (!membership_.contains(id_)) {
      // Removed leader: keep replicating until the change commits, but a
      // transfer target it chose may be gone too.
      lead_transferee_ = kNoNode;
    }
  }
}

void Raft::Impl::rebuild_membership_after_truncation() {
  // A truncated configuration entry no longer counts: fall back to the
  // latest one still in the log (thesis §4.1).
  const Index last = log_.last_index();
  bool changed = false;
  while (config_history_.size() > 1 && config_history_.back().first > last) {
    config_history_.pop_back();
    changed = true;
  }
  if (changed) {
    membership_ = config_history_.back().second;
    membership_version_++;
  }
}

void Raft::Impl::sync_progress_with_membership() {
  for (auto it = progress_.begin(); it != progress_.end();) {
    if (!membership_.contains(it->first)) {
      it = progress_.erase(it);
    } else {
      ++it;
    }
  }
  for (const Member& mem : membership_.members) {
    if (mem.id == id_ || progress_.count(mem.id)) continue;
    Progress pr;
    pr.next = log_.last_index();  // probe just before the newest entry
    if (pr.next == 0) pr.next = 1;
    pr.recent_active = true;
    progress_.emplace(mem.id, pr);
    need_flush_ = true;
  }
}

const Membership& Raft::Impl::membership_at(Index index) const {
  for (auto it = config_history_.rbegin(); it != config_history_.rend(); ++it) {
    if (it->first <= index) return it->second;
  }
  KV_CHECK(false, "no configuration known at index %llu (oldest %llu)", static_cast<ull>(index),
           static_cast<ull>(config_history_.front().first));
  return config_history_.front().second;
}

// ---------------------------------------------------------------------------
// Linearizable reads (thesis §6.4): the read index is the commit index when
// the request arrives; it is safe once a quorum confirms we are still leader
// (a heartbeat round sent after the request), and the caller then waits
// until it has applied that index.

bool Raft::Impl::read_index(uint64_t id) {
  if (role_ == StateRole::kLeader) {
    start_read(id_, id);
    return true;
  }
  if (leader_ == kNoNode) return false;
  if (reads_at_leader_.size() >= kMaxReadsAtLeader) {
    failed_reads_.push_back(*reads_at_leader_.begin());
    reads_at_leader_.erase(reads_at_leader_.begin());
  }
  reads_at_leader_.insert(id);
  Message m;
  m.type = MessageType::kReadIndex;
  m.to = leader_;
  m.context = id;
  send(std::move(m));
  return true;
}

void Raft::Impl::follow_sender(const Message& m) {
  if (role_ != StateRole::kFollower) become_follower(m.term, m.from);
  set_leader(m.from);
  election_elapsed_ = 0;
}

void Raft::Impl::set_leader(NodeId leader) {
  if (leader == leader_) return;
  fail_reads_at_leader();
  leader_ = leader;
}

void Raft::Impl::fail_reads_at_leader() {
  failed_reads_.insert(failed_reads_.end(), reads_at_leader_.begin(), reads_at_leader_.end());
  reads_at_leader_.clear();
}

void Raft::Impl::start_read(NodeId requester, uint64_t id) {
  if (commit_ < term_start_index_) {
    // Until it commits an entry of its term, a new leader does not know the
    // latest commit index (§8): hold the read.
    reads_awaiting_commit_.emplace_back(requester, id);
    return;
  }
  PendingRead r{id, requester, commit_, 0, {id_}};
  if (quorum() <= 1 && membership_.is_voter(id_)) {
    resolve_read(r);
    return;
  }
  // Reads that arrive before the round's heartbeat goes out share it.
  if (read_round_sent_) {
    read_round_++;
    read_round_sent_ = false;
  }
  r.round = read_round_;
  pending_reads_.push_back(std::move(r));
}

void Raft::Impl::ack_reads(NodeId from, uint64_t round) {
  if (!membership_.is_voter(from)) return;
  for (PendingRead& r : pending_reads_) {
    if (r.round > round) break;
    r.acks.insert(from);
  }
  const auto voters = membership_.voters();
  while (!pending_reads_.empty()) {
    const PendingRead& r = pending_reads_.front();
    size_t n = 0;
    for (NodeId v : voters) n += r.acks.count(v);
    if (n < majority(voters.size())) break;
    resolve_read(r);
    pending_reads_.pop_front();
  }
}

void Raft::Impl::resolve_read(const PendingRead& r) {
  if (r.requester == id_) {
    read_states_.push_back(ReadState{r.id, r.index});
    return;
  }
  Message m;
  m.type = MessageType::kReadIndexResp;
  m.to = r.requester;
  m.context = r.id;
  m.index = r.index;
  send(std::move(m));
}

void Raft::Impl::fail_reads_on_lost_leadership() {
  auto fail = [this](NodeId requester, uint64_t id) {
    if (requester == id_) {
      failed_reads_.push_back(id);
      return;
    }
    Message m;
    m.type = MessageType::kReadIndexResp;
    m.to = requester;
    m.context = id;
    m.reject = true;
    send(std::move(m));
  };
  for (const PendingRead& r : pending_reads_) fail(r.requester, r.id);
  for (const auto& [requester, id] : reads_awaiting_commit_) fail(requester, id);
  pending_reads_.clear();
  reads_awaiting_commit_.clear();
  read_round_sent_ = true;
}

// ---------------------------------------------------------------------------
// Leadership transfer (thesis §3.10).

Error Raft::Impl::transfer_leadership(NodeId target) {
  if (role_ != StateRole::kLeader) return Error::kNotLeader;
  if (target == id_) return Error::kOk;
  if (!membership_.is_voter(target)) return Error::kInvalid;
  if (lead_transferee_ == target) return Error::kOk;
  lead_transferee_ = target;
  transfer_elapsed_ = 0;
  Progress& pr = progress_.at(target);
  if (pr.match == log_.last_index()) {
    Message t;
    t.type = MessageType::kTimeoutNow;
    t.to = target;
    send(std::move(t));
  } else {
    send_append(target, pr, true);
  }
  return Error::kOk;
}

// ---------------------------------------------------------------------------
// Snapshots and compaction (§7).

Index Raft::Impl::snapshot_taken(Index index, uint64_t size_bytes) {
  KV_CHECK(index <= applied_, "snapshot at %llu beyond applied %llu", static_cast<ull>(index),
           static_cast<ull>(applied_));
  if (index <= snapshot_.index) return log_.offset() + 1;
  snapshot_ = SnapshotMeta{index, log_.at(index).term, membership_at(index), size_bytes};
  const Index trailing = opts_.snapshot_trailing_entries;
  const Index compact_to = index > trailing ? index - trailing : 0;
  if (compact_to > log_.offset()) {
    log_.compact_to(compact_to);
    // Keep the configuration in effect at the new offset and all later ones.
    size_t keep = 0;
    while (keep + 1 < config_history_.size() && config_history_[keep + 1].first <= compact_to) keep++;
    config_history_.erase(config_history_.begin(), config_history_.begin() + static_cast<std::ptrdiff_t>(keep));
  }
  return log_.offset() + 1;
}

// ---------------------------------------------------------------------------
// Ready / advance.

bool Raft::Impl::has_ready() const {
  if (role_ == StateRole::kLeader && (need_flush_ || !read_round_sent_)) return true;
  if (HardState{term_, vote_, commit_} != persisted_hs_) return true;
  if (!chunks_.empty() || pending_install_ || !msgs_.empty() || !early_msgs_.empty()) return true;
  if (log_.last_index() > stable_) return true;
  if (commit_ > applied_) return true;
  return !read_states_.empty() || !failed_reads_.empty() || !refused_forwards_.empty();
}

Ready Raft::Impl::ready() {
  flush();
  Ready rd;
  const HardState hs{term_, vote_, commit_};
  if (hs != persisted_hs_) rd.hard_state = hs;
  rd.snapshot_chunks = std::move(chunks_);
  chunks_.clear();
  rd.snapshot = pending_install_;
  if (log_.last_index() > stable_) {
    rd.entries = log_.slice(stable_ + 1, log_.last_index() + 1, UINT64_MAX, UINT64_MAX);
  }
  rd.messages = std::move(early_msgs_);
  early_msgs_.clear();
  rd.early_messages = rd.messages.size();
  rd.messages.insert(rd.messages.end(), std::make_move_iterator(msgs_.begin()),
                     std::make_move_iterator(msgs_.end()));
  msgs_.clear();
  const Index apply_from = std::max(applied_, pending_install_ ? pending_install_->index : 0) + 1;
  if (commit_ >= apply_from) {
    rd.committed_entries = log_.slice(apply_from, commit_ + 1, UINT64_MAX, UINT64_MAX);
  }
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  rd.failed_reads = std::move(failed_reads_);
  failed_reads_.clear();
  rd.refused_forwards = std::move(refused_forwards_);
  refused_forwards_.clear();
  return rd;
}

void Raft::Impl::advance(const Ready& rd) {
  if (rd.hard_state) persisted_hs_ = *rd.hard_state;
  if (rd.snapshot) {
    applied_ = std::max(applied_, rd.snapshot->index);
    pending_install_.reset();
  }
  if (!rd.entries.empty()) stable_ = std::max(stable_, rd.entries.back().index);
  if (!rd.committed_entries.empty()) applied_ = rd.committed_entries.back().index;
  if (role_ == StateRole::kLeader && !rd.entries.empty() && maybe_commit()) need_flush_ = true;
}

// ---------------------------------------------------------------------------
// Raft: forwards to Impl.

Raft::Raft(const Options& options, const InitialState& state) : impl_(std::make_unique<Impl>(options, state)) {}
Raft::~Raft() = default;

void Raft::tick() { impl_->tick(); }
const char* Raft::step(const Message& m) { return impl_->step(m); }
ProposeResult Raft::propose(std::string data) { return impl_->propose(EntryType::kNormal, std::move(data)); }
ProposeResult Raft::forward_proposal(std::string data) { return impl_->forward_proposal(std::move(data)); }
void Raft::set_writes_refused(bool refused) { impl_->writes_refused_ = refused; }
void Raft::set_removed(bool removed) {
  impl_->removed_ = removed;
  // A campaign in progress ends: its vote requests are not repeated, and the
  // node shows as what it now is, a follower waiting to hear a leader.
  if (removed && (impl_->role_ == StateRole::kPreCandidate || impl_->role_ == StateRole::kCandidate)) {
    impl_->step_down_keeping_term();
  }
}
ProposeResult Raft::propose_conf_change(const ConfChange& cc) { return impl_->propose_conf_change(cc); }
bool Raft::read_index(uint64_t id) { return impl_->read_index(id); }
Error Raft::transfer_leadership(NodeId target) { return impl_->transfer_leadership(target); }
Index Raft::snapshot_taken(Index index, uint64_t size_bytes) { return impl_->snapshot_taken(index, size_bytes); }
bool Raft::has_ready() const { return impl_->has_ready(); }
Ready Raft::ready() { return impl_->ready(); }
void Raft::advance(const Ready& rd) { impl_->advance(rd); }

NodeId Raft::id() const { return impl_->id_; }
StateRole Raft::role() const { return impl_->role_; }
Term Raft::term() const { return impl_->term_; }
NodeId Raft::leader() const { return impl_->leader_; }
Index Raft::commit_index() const { return impl_->commit_; }
Index Raft::applied_index() const { return impl_->applied_; }
Index Raft::last_index() const { return impl_->log_.last_index(); }
Index Raft::first_index() const { return impl_->log_.offset() + 1; }
const Membership& Raft::membership() const { return impl_->membership_; }
uint64_t Raft::membership_version() const { return impl_->membership_version_; }
const SnapshotMeta& Raft::snapshot() const { return impl_->snapshot_; }
HardState Raft::hard_state() const { return HardState{impl_->term_, impl_->vote_, impl_->commit_}; }
const std::vector<Entry>& Raft::log_entries() const { return impl_->log_.entries(); }

Term Raft::term_at(Index i) const {
  const Term t = impl_->log_.term_at(i);
  if (t == 0 && i == impl_->snapshot_.index) return impl_->snapshot_.term;
  return t;
}

std::optional<ProgressView> Raft::progress(NodeId peer) const {
  if (impl_->role_ != StateRole::kLeader) return std::nullopt;
  if (peer == impl_->id_) {
    return ProgressView{impl_->stable_, impl_->log_.last_index() + 1, true, "replicate"};
  }
  auto it = impl_->progress_.find(peer);
  if (it == impl_->progress_.end()) return std::nullopt;
  const Progress& pr = it->second;
  return ProgressView{pr.match, pr.next, pr.recent_active, pr.state_name()};
}

bool Raft::learner_caught_up(NodeId peer) const {
  if (impl_->role_ != StateRole::kLeader || !impl_->membership_.is_learner(peer)) return false;
  auto it = impl_->progress_.find(peer);
  return it != impl_->progress_.end() && it->second.match >= impl_->commit_ && it->second.recent_active;
}

}  // namespace ckv::raft
