// Test harness for the Raft core: an in-memory network of Raft nodes that drives Ready exactly per raft.h.
//
// Modelled on etcd's raft_test.go `network`. Each node has a MemStorage that
// plays the disk and a TestStateMachine that plays the FSM; handle_ready()
// follows the order raft.h prescribes (persist, send, apply, advance).
// Messages go into one FIFO queue; deliver_all() pumps it until quiescent,
// dropping what isolate()/cut()/drop() say the network loses.
//
// Everything is deterministic: every node gets a fixed random_seed, and
// nothing happens unless a test calls tick/deliver/inject.
//
// The harness also checks, after every step, the safety properties that no
// test should have to repeat (Raft Figure 3): Election Safety (one leader per
// term), State Machine Safety (every node applies the same entry at an
// index), and that no committed entry is ever truncated from storage. A
// violation is reported with ADD_FAILURE, so it fails whichever test hit it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "raft/messages.h"
#include "raft/raft.h"
#include "raft/types.h"

namespace ckv::raft::test {

// ---------------------------------------------------------------------------
// Small builders.

inline Membership voters(std::initializer_list<NodeId> ids) {
  Membership m;
  for (NodeId id : ids) m.members.push_back(Member{id, MemberRole::kVoter, ""});
  return m;
}

inline Membership voters_1_to_n(size_t n) {
  Membership m;
  for (NodeId id = 1; id <= n; ++id) m.members.push_back(Member{id, MemberRole::kVoter, ""});
  return m;
}

inline Message make_vote(NodeId from, NodeId to, Term term, Index last_index, Term last_term,
                         bool pre_vote = false) {
  Message m;
  m.type = pre_vote ? MessageType::kPreVote : MessageType::kVote;
  m.from = from;
  m.to = to;
  m.term = term;
  m.log_index = last_index;
  m.log_term = last_term;
  return m;
}

inline Message make_vote_resp(NodeId from, NodeId to, Term term, bool reject = false,
                              bool pre_vote = false) {
  Message m;
  m.type = pre_vote ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  m.from = from;
  m.to = to;
  m.term = term;
  m.reject = reject;
  return m;
}

inline Message make_append(NodeId from, NodeId to, Term term, Index prev_index, Term prev_term,
                           std::vector<Entry> entries, Index commit) {
  Message m;
  m.type = MessageType::kAppend;
  m.from = from;
  m.to = to;
  m.term = term;
  m.log_index = prev_index;
  m.log_term = prev_term;
  m.entries = std::move(entries);
  m.commit = commit;
  return m;
}

inline Message make_append_resp(NodeId from, NodeId to, Term term, Index index,
                                bool reject = false) {
  Message m;
  m.type = MessageType::kAppendResp;
  m.from = from;
  m.to = to;
  m.term = term;
  m.index = index;
  m.reject = reject;
  return m;
}

// An entry whose data is a function of (index, term), so that two logs built
// independently agree wherever they hold the same (index, term): that is what
// the Log Matching Property (§5.3) says real logs do.
inline Entry entry_at(Index index, Term term) {
  return Entry{term, index, EntryType::kNormal,
               "i" + std::to_string(index) + "t" + std::to_string(term)};
}

// ---------------------------------------------------------------------------
// The state machine: the list of applied commands, plus the membership the
// applied config entries describe. Snapshots serialise the command list.

struct TestStateMachine {
  Index applied = 0;
  std::vector<std::string> commands;  // data of applied non-empty kNormal entries, in order
  Membership membership;              // from the last applied kConfig entry

  std::string encode() const {
    std::string out;
    for (const std::string& c : commands) {
      out += std::to_string(c.size());
      out += ':';
      out += c;
    }
    return out;
  }

  static std::optional<std::vector<std::string>> decode(const std::string& data) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < data.size()) {
      size_t colon = data.find(':', pos);
      if (colon == std::string::npos) return std::nullopt;
      size_t len = std::stoul(data.substr(pos, colon - pos));
      if (colon + 1 + len > data.size()) return std::nullopt;
      out.push_back(data.substr(colon + 1, len));
      pos = colon + 1 + len;
    }
    return out;
  }
};

// ---------------------------------------------------------------------------
// The disk of one node: what survives a restart.

struct MemStorage {
  HardState hard_state;
  SnapshotMeta snapshot;      // the current snapshot (index 0: none)
  std::string snapshot_data;  // its bytes
  // Stored entries. May begin at or before snapshot.index (trailing entries
  // kept after snapshot_taken); contiguous.
  std::vector<Entry> entries;

  // The snapshot being received (InstallSnapshot chunks land here).
  SnapshotMeta incoming_meta;
  std::string incoming_data;

  Index last_index() const { return entries.empty() ? snapshot.index : entries.back().index; }

  // What a restart hands to the Raft constructor (raft.h "A restart passes
  // what storage holds"): the stored log after snapshot.index.
  InitialState initial_state() const {
    InitialState st;
    st.hard_state = hard_state;
    st.snapshot = snapshot;
    for (const Entry& e : entries) {
      if (e.index > snapshot.index) st.entries.push_back(e);
    }
    return st;
  }

  void load(const InitialState& st) {
    hard_state = st.hard_state;
    snapshot = st.snapshot;
    entries = st.entries;
  }

  void write_chunk(NodeId node, const SnapshotChunk& c) {
    if (c.meta.index != incoming_meta.index || c.meta.term != incoming_meta.term) {
      incoming_meta = c.meta;
      incoming_data.clear();
    }
    if (c.offset > incoming_data.size()) {
      ADD_FAILURE() << "node " << node << ": snapshot chunk at offset " << c.offset
                    << " leaves a hole; only " << incoming_data.size() << " bytes received";
    }
    if (incoming_data.size() < c.offset + c.data.size())
      incoming_data.resize(c.offset + c.data.size());
    incoming_data.replace(c.offset, c.data.size(), c.data);
  }

  void install_incoming(NodeId node, const SnapshotMeta& meta) {
    if (meta.index != incoming_meta.index) {
      ADD_FAILURE() << "node " << node << ": Ready::snapshot index " << meta.index
                    << " but the chunks received were for index " << incoming_meta.index;
    }
    if (meta.size_bytes != incoming_data.size()) {
      ADD_FAILURE() << "node " << node << ": snapshot " << meta.index << " is " << meta.size_bytes
                    << " bytes but " << incoming_data.size() << " were received";
    }
    snapshot = meta;
    snapshot_data = incoming_data;
    entries.clear();  // raft.h: "make it the current snapshot and drop the whole log"
    incoming_meta = SnapshotMeta{};
    incoming_data.clear();
  }

  void append(NodeId node, const std::vector<Entry>& es) {
    if (es.empty()) return;
    Index first = es.front().index;
    for (size_t i = 1; i < es.size(); ++i) {
      if (es[i].index != first + i) {
        ADD_FAILURE() << "node " << node << ": Ready::entries not contiguous at position " << i;
      }
    }
    if (first > last_index() + 1) {
      ADD_FAILURE() << "node " << node << ": Ready::entries start at " << first
                    << " but storage ends at " << last_index() << " (hole)";
    }
    if (first <= snapshot.index) {
      ADD_FAILURE() << "node " << node << ": Ready::entries start at " << first
                    << ", inside the snapshot ending at " << snapshot.index;
    }
    // Overwriting a persisted committed entry would break Leader Completeness.
    for (const Entry& e : entries) {
      if (e.index < first || e.index > hard_state.commit) continue;
      if (e.index - first >= es.size()) {
        ADD_FAILURE() << "node " << node << ": committed entry " << e.index << " (term " << e.term
                      << ") truncated (commit " << hard_state.commit << ")";
      } else if (!(es[e.index - first] == e)) {
        ADD_FAILURE() << "node " << node << ": committed entry " << e.index << " (term " << e.term
                      << ") overwritten by term " << es[e.index - first].term << " (commit "
                      << hard_state.commit << ")";
      }
    }
    while (!entries.empty() && entries.back().index >= first) entries.pop_back();
    entries.insert(entries.end(), es.begin(), es.end());
  }

  // Drops stored entries below first_keep (after snapshot_taken).
  void compact(Index first_keep) {
    while (!entries.empty() && entries.front().index < first_keep) entries.erase(entries.begin());
  }
};

// ---------------------------------------------------------------------------
// One node of the network.

struct Peer {
  Options options;
  std::unique_ptr<Raft> raft;  // null while the node is down
  MemStorage storage;
  TestStateMachine fsm;
  std::vector<ReadState>
      read_states;  // every read state the node produced (since its last restart)
  std::vector<uint64_t> failed_reads;
  std::vector<ForwardRefusal> refused_forwards;  // every Ready::refused_forwards (since its last restart)
  std::set<StateRole> roles_seen;  // every role observed after a tick/step
  Term max_term_seen = 0;
  int readies = 0;      // how many Ready values were handled
  bool wedged = false;  // has_ready() never went false; the harness stopped draining it
};

// The seed every node's election timer derives from: fixed, so a test always
// runs the same way. CKV_RAFT_TEST_SEED overrides it, to check that a test
// does not pass only by luck of one seed.
inline uint64_t seed_base() {
  const char* s = std::getenv("CKV_RAFT_TEST_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : 1000;
}

inline Options default_options(NodeId id) {
  Options o;
  o.id = id;
  o.election_ticks = 10;
  o.heartbeat_ticks = 1;
  o.random_seed = seed_base() + 7919 * id;  // fixed per node
  return o;
}

class Network {
 public:
  using Tweak = std::function<void(Options&)>;
  using Pred = std::function<bool(const Message&)>;
  using Mutation = std::function<void(Message&)>;

  Network() = default;

  // Nodes 1..n, the founding voters of a new cluster (bootstrap_state).
  explicit Network(size_t n, const Tweak& tweak = {}) {
    InitialState st = bootstrap_state(voters_1_to_n(n));
    for (NodeId id = 1; id <= n; ++id) add(id, st, tweak);
  }

  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // Adds (and starts) a node with the given persisted state; an empty
  // InitialState is a node waiting to be added to the cluster.
  Peer& add(NodeId id, const InitialState& st, const Tweak& tweak = {}) {
    Peer& p = peers_[id];
    p.options = default_options(id);
    if (tweak) tweak(p.options);
    p.options.id = id;
    p.storage.load(st);
    start(id);
    return p;
  }

  Peer& peer(NodeId id) {
    auto it = peers_.find(id);
    if (it == peers_.end()) {
      ADD_FAILURE() << "no node " << id;
      std::abort();
    }
    return it->second;
  }
  Raft& raft(NodeId id) {
    Peer& p = peer(id);
    if (!p.raft) {
      ADD_FAILURE() << "node " << id << " is down";
      std::abort();
    }
    return *p.raft;
  }
  MemStorage& storage(NodeId id) { return peer(id).storage; }
  TestStateMachine& fsm(NodeId id) { return peer(id).fsm; }
  bool up(NodeId id) const {
    auto it = peers_.find(id);
    return it != peers_.end() && it->second.raft != nullptr;
  }
  std::vector<NodeId> ids() const {
    std::vector<NodeId> out;
    for (const auto& [id, p] : peers_) out.push_back(id);
    return out;
  }

  // --- Ready -----------------------------------------------------------------

  // Handles one Ready the caller took with raft(id).ready() (for tests that
  // inspect it first), in the order raft.h prescribes.
  void handle_ready(NodeId id, const Ready& rd) {
    Peer& p = peer(id);
    ++p.readies;
    // 1. Persist: chunks, completed snapshot, entries, hard state.
    for (const SnapshotChunk& c : rd.snapshot_chunks) p.storage.write_chunk(id, c);
    if (rd.snapshot) p.storage.install_incoming(id, *rd.snapshot);
    p.storage.append(id, rd.entries);
    if (rd.hard_state) {
      if (rd.hard_state->term < p.storage.hard_state.term) {
        ADD_FAILURE() << "node " << id << ": persisted term goes back from "
                      << p.storage.hard_state.term << " to " << rd.hard_state->term;
      }
      if (rd.hard_state->term == p.storage.hard_state.term &&
          p.storage.hard_state.vote != kNoNode &&
          rd.hard_state->vote != p.storage.hard_state.vote) {
        ADD_FAILURE() << "node " << id << ": vote in term " << rd.hard_state->term
                      << " changed from " << p.storage.hard_state.vote << " to "
                      << rd.hard_state->vote << " (§5.2)";
      }
      p.storage.hard_state = *rd.hard_state;
    }
    // 2. Send, filling kSnapshot data from the current snapshot.
    for (Message m : rd.messages) {
      if (m.from != id) ADD_FAILURE() << "node " << id << " sent a message from " << m.from;
      if (m.type == MessageType::kSnapshot) {
        if (!m.data.empty())
          ADD_FAILURE() << "node " << id << ": core filled kSnapshot data itself";
        if (m.snapshot.index != p.storage.snapshot.index) {
          ADD_FAILURE() << "node " << id << ": kSnapshot for index " << m.snapshot.index
                        << " but the current snapshot is " << p.storage.snapshot.index;
        } else if (m.offset + m.data_length > p.storage.snapshot_data.size()) {
          ADD_FAILURE() << "node " << id << ": kSnapshot chunk [" << m.offset << ", "
                        << m.offset + m.data_length << ") beyond snapshot size "
                        << p.storage.snapshot_data.size();
        } else {
          m.data = p.storage.snapshot_data.substr(m.offset, m.data_length);
        }
      }
      sent_.push_back(m);
      queue_.push_back(std::move(m));
    }
    // 3. Restore the snapshot, apply committed entries, collect reads.
    if (rd.snapshot) restore_fsm(id);
    for (const Entry& e : rd.committed_entries) apply(id, e);
    for (const ReadState& rs : rd.read_states) p.read_states.push_back(rs);
    for (uint64_t f : rd.failed_reads) p.failed_reads.push_back(f);
    for (const ForwardRefusal& f : rd.refused_forwards) p.refused_forwards.push_back(f);
    // 4. Advance.
    p.raft->advance(rd);
    observe(id);
  }

  // Drains every pending Ready of one node.
  void flush(NodeId id) {
    if (up(id) && peer(id).wedged) return;
    for (int i = 0; up(id) && raft(id).has_ready(); ++i) {
      if (i > 1000) {
        // A driver loop would spin forever here; report once and stop
        // draining this node so the rest of the test still runs.
        ADD_FAILURE() << "node " << id
                      << " keeps having Ready after 1000 ready()/advance() rounds (role "
                      << to_string(raft(id).role()) << ", term " << raft(id).term() << ")";
        peer(id).wedged = true;
        return;
      }
      Ready rd = raft(id).ready();
      handle_ready(id, rd);
    }
  }
  void flush_all() {
    for (NodeId id : ids()) flush(id);
  }

  // --- time ------------------------------------------------------------------

  void tick(NodeId id) {
    raft(id).tick();
    observe(id);
    flush(id);
  }
  // One tick on every running node, then delivers until quiescent.
  void tick_all() {
    for (NodeId id : ids()) {
      if (up(id)) tick(id);
    }
    deliver_all();
  }
  void tick_all(int n) {
    for (int i = 0; i < n; ++i) tick_all();
  }
  // Ticks only `id` (delivering after every tick) until it leads. The other
  // nodes' clocks stand still, so this is how a test picks the first leader
  // of a fresh cluster.
  bool tick_until_leader(NodeId id, int max_ticks = 1000) {
    for (int i = 0; i < max_ticks; ++i) {
      if (raft(id).role() == StateRole::kLeader) return true;
      tick(id);
      deliver_all();
    }
    return raft(id).role() == StateRole::kLeader;
  }
  // Ticks only `id`, delivering after every tick, until pred holds (at most
  // max_ticks). Lost appends are retried on a timer, so a test that heals a
  // partition waits this way instead of assuming one heartbeat suffices.
  bool tick_node_until(NodeId id, const std::function<bool()>& pred, int max_ticks = 100) {
    for (int i = 0; i < max_ticks && !pred(); ++i) {
      tick(id);
      deliver_all();
    }
    return pred();
  }
  // Ticks only `id` (no delivery) until it has the role; for direct-step tests.
  bool tick_until_role(NodeId id, StateRole role, int max_ticks = 1000) {
    for (int i = 0; i < max_ticks && raft(id).role() != role; ++i) tick(id);
    return raft(id).role() == role;
  }
  // Ticks every running node until pred holds; returns the ticks it took or
  // -1 if it never did within max_ticks.
  int tick_all_until(const std::function<bool()>& pred, int max_ticks = 1000) {
    for (int i = 0; i <= max_ticks; ++i) {
      if (pred()) return i;
      if (i < max_ticks) tick_all();
    }
    return -1;
  }

  // --- network ---------------------------------------------------------------

  // Steps m into m.to now, whatever the partitions say, and handles the
  // Ready. Returns what step() returned: nullptr, or why m was dropped.
  const char* inject(const Message& m) {
    if (!up(m.to)) {
      ADD_FAILURE() << "inject to node " << m.to << " which is down";
      return nullptr;
    }
    const char* dropped = raft(m.to).step(m);
    observe(m.to);
    flush(m.to);
    return dropped;
  }

  bool reachable(const Message& m) const {
    if (!up(m.to)) return false;
    if (isolated_.count(m.from) || isolated_.count(m.to)) return false;
    if (cuts_.count(link(m.from, m.to))) return false;
    for (const Pred& d : drops_) {
      if (d(m)) return false;
    }
    return true;
  }

  // Pumps messages (and any pending Ready) until nothing is left in flight.
  // Returns the number of messages delivered.
  size_t deliver_all(size_t max_messages = 1'000'000) {
    size_t delivered = 0;
    for (;;) {
      flush_all();
      if (queue_.empty()) return delivered;
      Message m = std::move(queue_.front());
      queue_.pop_front();
      if (!reachable(m)) {
        dropped_.push_back(std::move(m));
        continue;
      }
      for (const Mutation& f : mutations_) f(m);
      if (++delivered > max_messages) {
        ADD_FAILURE() << "network did not quiesce after " << max_messages << " messages";
        return delivered;
      }
      inject(m);
    }
  }

  // Takes the messages in flight without delivering them.
  std::vector<Message> take_queue() {
    std::vector<Message> out(queue_.begin(), queue_.end());
    queue_.clear();
    return out;
  }
  const std::deque<Message>& queue() const { return queue_; }

  void isolate(NodeId id) { isolated_.insert(id); }
  void cut(NodeId a, NodeId b) { cuts_.insert(link(a, b)); }
  void drop(Pred pred) { drops_.push_back(std::move(pred)); }
  void heal() {
    isolated_.clear();
    cuts_.clear();
  }
  void clear_drops() { drops_.clear(); }
  // Rewrites delivered messages (e.g. to lose part of what a leader sent).
  void mutate(Mutation f) { mutations_.push_back(std::move(f)); }
  void clear_mutations() { mutations_.clear(); }

  // --- crash and restart -----------------------------------------------------

  // The process dies: volatile state is lost, storage survives.
  void stop(NodeId id) { peer(id).raft.reset(); }
  // The process starts from what storage holds.
  void start(NodeId id) {
    Peer& p = peer(id);
    p.storage.incoming_meta = SnapshotMeta{};
    p.storage.incoming_data.clear();
    p.read_states.clear();
    p.failed_reads.clear();
    p.refused_forwards.clear();
    p.wedged = false;
    p.raft = std::make_unique<Raft>(p.options, p.storage.initial_state());
    restore_fsm(id);
    observe(id);
    flush(id);
  }
  void restart(NodeId id) {
    stop(id);
    start(id);
  }

  // The application snapshots its state machine at its applied index and
  // tells the core (raft.h snapshot_taken); storage keeps what the core says.
  Index take_snapshot(NodeId id) {
    Peer& p = peer(id);
    Index index = p.fsm.applied;
    std::string data = p.fsm.encode();
    Term term = 0;
    for (const Entry& e : p.storage.entries) {
      if (e.index == index) term = e.term;
    }
    Index first_keep = raft(id).snapshot_taken(index, data.size());
    const SnapshotMeta& meta = raft(id).snapshot();
    EXPECT_EQ(meta.index, index) << "node " << id;
    if (term != 0) {
      EXPECT_EQ(meta.term, term) << "node " << id;
    }
    EXPECT_EQ(meta.size_bytes, data.size()) << "node " << id;
    EXPECT_EQ(meta.membership, p.fsm.membership)
        << "node " << id << ": configuration at the snapshot index";
    p.storage.snapshot = meta;
    p.storage.snapshot_data = std::move(data);
    p.storage.compact(first_keep);
    flush(id);
    return index;
  }

  // --- what happened ---------------------------------------------------------

  // Every message any node emitted, in order, before the network dropped any.
  const std::vector<Message>& sent() const { return sent_; }
  std::vector<Message> sent_matching(const Pred& pred, size_t since = 0) const {
    std::vector<Message> out;
    for (size_t i = since; i < sent_.size(); ++i) {
      if (pred(sent_[i])) out.push_back(sent_[i]);
    }
    return out;
  }
  size_t count_sent(const Pred& pred, size_t since = 0) const {
    return sent_matching(pred, since).size();
  }
  // The last message matching pred, if any.
  std::optional<Message> last_sent(const Pred& pred, size_t since = 0) const {
    for (size_t i = sent_.size(); i > since; --i) {
      if (pred(sent_[i - 1])) return sent_[i - 1];
    }
    return std::nullopt;
  }
  size_t sent_mark() const { return sent_.size(); }
  const std::vector<Message>& dropped() const { return dropped_; }

  // The running leader with the highest term, or kNoNode.
  NodeId leader() const {
    NodeId best = kNoNode;
    Term best_term = 0;
    for (const auto& [id, p] : peers_) {
      if (p.raft && p.raft->role() == StateRole::kLeader && p.raft->term() >= best_term) {
        best = id;
        best_term = p.raft->term();
      }
    }
    return best;
  }
  bool ever_leader(NodeId id) const {
    for (const auto& [term, l] : leaders_by_term_) {
      if (l == id) return true;
    }
    return false;
  }
  const std::map<Term, NodeId>& leaders_by_term() const { return leaders_by_term_; }

 private:
  static std::pair<NodeId, NodeId> link(NodeId a, NodeId b) {
    return {std::min(a, b), std::max(a, b)};
  }

  // Records the node's role and checks Election Safety (§5.2: at most one
  // leader per term).
  void observe(NodeId id) {
    Peer& p = peer(id);
    if (!p.raft) return;
    p.roles_seen.insert(p.raft->role());
    p.max_term_seen = std::max(p.max_term_seen, p.raft->term());
    if (p.raft->role() == StateRole::kLeader) {
      auto [it, inserted] = leaders_by_term_.emplace(p.raft->term(), id);
      if (!inserted && it->second != id) {
        ADD_FAILURE() << "Election Safety violated: nodes " << it->second << " and " << id
                      << " both lead term " << p.raft->term();
      }
    }
  }

  void restore_fsm(NodeId id) {
    Peer& p = peer(id);
    p.fsm = TestStateMachine{};
    p.fsm.applied = p.storage.snapshot.index;
    p.fsm.membership = p.storage.snapshot.membership;
    if (p.storage.snapshot.index > 0) {
      auto cmds = TestStateMachine::decode(p.storage.snapshot_data);
      if (!cmds) {
        ADD_FAILURE() << "node " << id << ": snapshot " << p.storage.snapshot.index
                      << " does not decode";
      } else {
        p.fsm.commands = std::move(*cmds);
      }
    }
  }

  // Applies one committed entry; checks State Machine Safety (§5.4.3).
  void apply(NodeId id, const Entry& e) {
    Peer& p = peer(id);
    if (e.index != p.fsm.applied + 1) {
      ADD_FAILURE() << "node " << id << " applies entry " << e.index << " after " << p.fsm.applied;
    }
    auto [it, inserted] = applied_by_index_.emplace(e.index, e);
    if (!inserted && !(it->second == e)) {
      ADD_FAILURE() << "State Machine Safety violated at index " << e.index << ": node " << id
                    << " applies term " << e.term << " data '" << e.data
                    << "', another node applied term " << it->second.term << " data '"
                    << it->second.data << "'";
    }
    if (e.type == EntryType::kConfig) {
      auto m = decode_membership(e.data);
      if (!m) {
        ADD_FAILURE() << "node " << id << ": config entry " << e.index << " does not decode";
      } else {
        p.fsm.membership = *m;
      }
    } else if (!e.data.empty()) {
      p.fsm.commands.push_back(e.data);
    }
    p.fsm.applied = e.index;
  }

  std::map<NodeId, Peer> peers_;
  std::deque<Message> queue_;
  std::vector<Message> sent_;
  std::vector<Message> dropped_;
  std::set<NodeId> isolated_;
  std::set<std::pair<NodeId, NodeId>> cuts_;
  std::vector<Pred> drops_;
  std::vector<Mutation> mutations_;
  std::map<Term, NodeId> leaders_by_term_;
  std::map<Index, Entry> applied_by_index_;
};

// --- predicates over messages -------------------------------------------------

// Elects node 1 and lets its first heartbeat round (and no-op) settle.
inline void elect_1(Network& net) {
  ASSERT_TRUE(net.tick_until_leader(1));
  net.tick(1);
  net.deliver_all();
}

inline Network::Pred of_type(MessageType t) {
  return [t](const Message& m) { return m.type == t; };
}
inline Network::Pred of_type(MessageType t, NodeId from, NodeId to) {
  return [t, from, to](const Message& m) {
    return m.type == t && (from == kNoNode || m.from == from) && (to == kNoNode || m.to == to);
  };
}

// The terms of a log, for compact EXPECT_EQ messages.
inline std::vector<Term> terms_of(const std::vector<Entry>& es) {
  std::vector<Term> out;
  for (const Entry& e : es) out.push_back(e.term);
  return out;
}

}  // namespace ckv::raft::test
