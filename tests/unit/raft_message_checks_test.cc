// Raft core unit tests for hostile peer messages: what message_checks.h refuses, and a seeded fuzz of step().
//
// Each TEST named after an item of the hardening issue replays that attack
// against real cores; before the checks existed each one either crashed the
// receiver (a KV_CHECK on a peer's claim) or changed replicated state.
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "raft/message_checks.h"
#include "raft_fixture.h"

namespace ckv::raft::test {
namespace {

constexpr NodeId kOutsider = 99;  // not a member of any test cluster
constexpr uint64_t kHuge = std::numeric_limits<uint64_t>::max();

// A 3-node cluster with node 1 leading and three committed commands everywhere.
struct Committed3 {
  Network net{3};
  Index commit = 0;
  Term term = 0;

  Committed3() {
    elect_1(net);
    for (const char* v : {"a", "b", "c"}) {
      EXPECT_TRUE(net.raft(1).propose(v).ok());
      net.deliver_all();
    }
    net.tick(1);  // heartbeat: followers learn the commit index
    net.deliver_all();
    commit = net.raft(1).commit_index();
    term = net.raft(1).term();
    EXPECT_EQ(net.raft(2).commit_index(), commit);
  }
};

// The envelope every forged message below starts from.
Message message(MessageType type, NodeId from, NodeId to, Term term) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

Message heartbeat(NodeId from, NodeId to, Term term, Index commit) {
  Message m = message(MessageType::kHeartbeat, from, to, term);
  m.commit = commit;
  return m;
}

// ---------------------------------------------------------------------------
// Item 1: an append below the commit index whose entries contradict the
// committed log used to be appended beyond it without a term check.

TEST(RaftHostileMessages, AppendThatContradictsCommittedEntriesIsDroppedAndChangesNothing) {
  Committed3 c;
  const Term forged_term = c.term + 5;
  std::vector<Entry> forged;
  for (Index i = 1; i <= c.commit + 1; ++i) {
    forged.push_back(Entry{forged_term, i, EntryType::kNormal, "foreign" + std::to_string(i)});
  }
  const auto log_before = c.net.raft(2).log_entries();
  const auto commands_before = c.net.fsm(2).commands;
  const char* why =
      c.net.inject(make_append(kOutsider, 2, forged_term, 0, 0, forged, c.commit + 1));
  ASSERT_NE(why, nullptr);
  EXPECT_EQ(c.net.raft(2).term(), c.term) << "a refused message must not raise the term";
  EXPECT_EQ(c.net.raft(2).leader(), 1u);
  EXPECT_EQ(c.net.raft(2).log_entries(), log_before);
  EXPECT_EQ(c.net.fsm(2).commands, commands_before);
}

TEST(RaftHostileMessages, AppendWhoseConsistencyEntryContradictsACommittedEntryIsDropped) {
  Committed3 c;
  const char* why = c.net.inject(make_append(1, 2, c.term, c.commit, c.term + 1,
                                             {Entry{c.term + 1, c.commit + 1, EntryType::kNormal, "x"}},
                                             c.commit + 1));
  // The consistency term is above the sender's term: a shape error.
  EXPECT_NE(why, nullptr);
  why = c.net.inject(make_append(1, 2, c.term + 1, c.commit, c.term + 1,
                                 {Entry{c.term + 1, c.commit + 1, EntryType::kNormal, "x"}}, c.commit + 1));
  EXPECT_NE(why, nullptr);
  EXPECT_EQ(c.net.raft(2).last_index(), c.commit);
}

// A stale leader's append may well contradict what a later leader
// committed; it is not dropped but answered, so that leader steps down.
TEST(RaftHostileMessages, StaleLeadersConflictingAppendIsStillAnsweredWithOurTerm) {
  Committed3 c;
  const size_t since = c.net.sent().size();
  const char* why = c.net.inject(make_append(3, 2, c.term - 1, 0, 0,
                                             {Entry{c.term - 1, 1, EntryType::kNormal, "old"}}, 1));
  EXPECT_EQ(why, nullptr);
  const auto answer = c.net.last_sent(of_type(MessageType::kAppendResp, 2, 3), since);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->term, c.term);
  EXPECT_TRUE(answer->reject);
}

// ---------------------------------------------------------------------------
// Item 3: terms never wrap and never jump near the ceiling.

TEST(RaftHostileMessages, HeartbeatWithMaximalTermIsDropped) {
  Committed3 c;
  EXPECT_NE(c.net.inject(heartbeat(3, 2, kHuge, 0)), nullptr);
  EXPECT_NE(c.net.inject(heartbeat(3, 2, kMaxTerm + 1, 0)), nullptr);
  EXPECT_NE(c.net.inject(heartbeat(3, 2, c.term + kMaxTermJump + 1, 0)), nullptr);
  EXPECT_EQ(c.net.raft(2).term(), c.term);
  EXPECT_EQ(c.net.raft(2).hard_state().term, c.term);
  // The cluster still works.
  EXPECT_TRUE(c.net.raft(1).propose("d").ok());
  c.net.deliver_all();
  EXPECT_EQ(c.net.fsm(2).commands.back(), "d");
}

TEST(RaftHostileMessages, TermJumpWithinTheLimitIsAccepted) {
  Committed3 c;
  EXPECT_EQ(c.net.inject(heartbeat(3, 2, c.term + kMaxTermJump, 0)), nullptr);
  EXPECT_EQ(c.net.raft(2).term(), c.term + kMaxTermJump);
}

TEST(RaftHostileMessages, ANodeAtTheTermCeilingNeverCampaignsIntoAWrappedTerm) {
  InitialState st = bootstrap_state(voters({1, 2, 3}));
  st.hard_state.term = kMaxTerm;
  Network net;
  net.add(1, st);
  net.tick_all(100);
  EXPECT_EQ(net.raft(1).term(), kMaxTerm);
  EXPECT_NE(net.raft(1).role(), StateRole::kCandidate);
}

// ---------------------------------------------------------------------------
// Item 4: indexes from the wire never reach a KV_CHECK.

TEST(RaftHostileMessages, AppendWithEntriesFarBeyondTheConsistencyIndexIsDropped) {
  Committed3 c;
  EXPECT_NE(c.net.inject(make_append(1, 2, c.term, c.commit - 1, c.term,
                                     {Entry{c.term, 999999, EntryType::kNormal, "x"}}, 999999)),
            nullptr);
  // Contiguous but beyond our log: an ordinary failed consistency check.
  EXPECT_EQ(c.net.inject(make_append(1, 2, c.term, 999998, c.term,
                                     {Entry{c.term, 999999, EntryType::kNormal, "x"}}, 999999)),
            nullptr);
  EXPECT_EQ(c.net.raft(2).last_index(), c.commit);
  EXPECT_EQ(c.net.raft(2).commit_index(), c.commit);
}

TEST(RaftHostileMessages, AckOfAnIndexBeyondTheLeadersLogIsDropped) {
  Committed3 c;
  EXPECT_NE(c.net.inject(make_append_resp(2, 1, c.term, Index{1} << 40)), nullptr);
  EXPECT_NE(c.net.inject(make_append_resp(2, 1, c.term, Index{1} << 40, /*reject=*/true)), nullptr);
  Message snap = message(MessageType::kSnapshotResp, 2, 1, c.term);
  snap.index = Index{1} << 40;
  snap.done = true;
  EXPECT_NE(c.net.inject(snap), nullptr);
  EXPECT_EQ(c.net.raft(1).progress(2)->match, c.commit);
  EXPECT_TRUE(c.net.raft(1).propose("d").ok());
  c.net.deliver_all();
  EXPECT_EQ(c.net.raft(1).commit_index(), c.commit + 1);
}

TEST(RaftHostileMessages, HeartbeatAckForAReadRoundNeverSentIsDropped) {
  Committed3 c;
  Message m = message(MessageType::kHeartbeatResp, 2, 1, c.term);
  m.context = 1'000'000;
  EXPECT_NE(c.net.inject(m), nullptr);
}

TEST(RaftHostileMessages, TimeoutNowFromANodeThatIsNotOurLeaderIsDropped) {
  Committed3 c;
  EXPECT_NE(c.net.inject(message(MessageType::kTimeoutNow, 3, 2, c.term)), nullptr);
  EXPECT_EQ(c.net.raft(2).role(), StateRole::kFollower);
  EXPECT_EQ(c.net.raft(2).term(), c.term);
}

// Thesis §6.4: a follower's read index comes from its leader. An index
// from anyone else may be stale, and the read would miss acknowledged
// writes (Byzantine-lite swarm seed 787828383753).
TEST(RaftHostileMessages, ReadIndexAnswerFromANodeThatIsNotOurLeaderIsDropped) {
  Committed3 c;
  ASSERT_TRUE(c.net.raft(2).read_index(42));
  (void)c.net.take_queue();  // the real request is lost
  Message m = message(MessageType::kReadIndexResp, kNoNode, 2, c.term);
  m.context = 42;
  m.index = 1;  // stale
  for (NodeId from : {NodeId{3}, kOutsider}) {
    m.from = from;
    EXPECT_NE(c.net.inject(m), nullptr) << from;
  }
  m.from = 1;  // the leader
  m.index = c.commit;
  EXPECT_EQ(c.net.inject(m), nullptr);
  ASSERT_EQ(c.net.peer(2).read_states.size(), 1u);
  EXPECT_EQ(c.net.peer(2).read_states[0].index, c.commit);
}

// Thesis §3.10: a follower that has just restarted does not know its leader
// yet, but the leader's TimeoutNow (in our term) must still start the
// election; dropping it stalled proposals for a whole transfer timeout.
TEST(RaftHostileMessages, TimeoutNowFromTheLeaderIsTakenBeforeWeKnowItAsLeader) {
  Network net(3);
  elect_1(net);
  net.restart(2);
  ASSERT_EQ(net.raft(2).leader(), kNoNode);
  ASSERT_EQ(net.raft(1).transfer_leadership(2), Error::kOk);
  net.deliver_all();
  EXPECT_EQ(net.leader(), 2u);
}

TEST(RaftHostileMessages, ReadIndexFromANonMemberIsDropped) {
  Committed3 c;
  Message m = message(MessageType::kReadIndex, kOutsider, 1, c.term);
  m.context = 7;
  EXPECT_NE(c.net.inject(m), nullptr);
}

// ---------------------------------------------------------------------------
// Item 5: no configuration change may exceed what the decoder accepts.

TEST(RaftHostileMessages, AddingALearnerBeyondTheMemberCapIsRefused) {
  Membership m = voters({1});
  for (NodeId id = 2; id <= kMaxMembers; ++id) m.members.push_back(Member{id, MemberRole::kLearner, ""});
  ASSERT_TRUE(decode_membership(encode_membership(m)).has_value());
  Network net;
  net.add(1, bootstrap_state(m));
  ASSERT_TRUE(net.tick_until_leader(1));
  net.flush(1);
  (void)net.take_queue();
  ASSERT_GE(net.raft(1).commit_index(), 2u);  // its no-op (a single voter commits alone)
  const ProposeResult r =
      net.raft(1).propose_conf_change(ConfChange{ConfChangeType::kAddLearner, kMaxMembers + 1, ""});
  EXPECT_EQ(r.error, Error::kMembershipFull);
}

// ---------------------------------------------------------------------------
// Shape checks, one per rule.

// A forwarded proposal is one client command and nothing more (raft.h
// forward_proposal); a forged or oversized one is refused before the leader
// could append it, and a refusal must name a reason the core knows.
TEST(RaftMessageShape, ForwardedProposalsAndRefusalsAreChecked) {
  Message prop = message(MessageType::kProp, 2, 1, 5);
  prop.context = 7;
  prop.log_index = 12345;  // the sender's epoch
  prop.entries.push_back(Entry{0, 0, EntryType::kNormal, "cmd"});
  EXPECT_EQ(check_message_shape(prop), nullptr);
  auto bad = prop;
  bad.log_index = 0;
  EXPECT_STREQ(check_message_shape(bad), "forwarded proposal without an epoch");
  bad = prop;
  bad.context = 0;
  EXPECT_STREQ(check_message_shape(bad), "forwarded proposal without an id");
  bad = prop;
  bad.entries.push_back(bad.entries[0]);
  EXPECT_STREQ(check_message_shape(bad), "forwarded proposal must carry exactly one entry");
  bad = prop;
  bad.entries.clear();
  EXPECT_STREQ(check_message_shape(bad), "forwarded proposal must carry exactly one entry");
  bad = prop;
  bad.entries[0].index = 12;  // a follower cannot choose where the leader appends
  EXPECT_STREQ(check_message_shape(bad), "forwarded proposal names a log position");
  bad = prop;
  bad.entries[0].term = 5;
  EXPECT_STREQ(check_message_shape(bad), "forwarded proposal names a log position");
  bad = prop;
  bad.entries[0].type = EntryType::kConfig;  // membership changes are the leader's
  bad.entries[0].data = encode_membership(voters({1, 2, 9}));
  EXPECT_STREQ(check_message_shape(bad), "forwarded proposal is not a normal entry");
  bad = prop;
  bad.entries[0].data.clear();
  EXPECT_STREQ(check_message_shape(bad), "forwarded proposal is empty (only a leader appends a no-op)");
  bad = prop;
  bad.entries[0].data.assign(kMaxForwardedProposalBytes + 1, 'x');
  EXPECT_STREQ(check_message_shape(bad), "forwarded proposal is too large");
  bad.entries[0].data.resize(kMaxForwardedProposalBytes);
  EXPECT_EQ(check_message_shape(bad), nullptr);

  Message refusal = message(MessageType::kPropResp, 1, 2, 5);
  refusal.context = 7;
  refusal.reject = true;
  refusal.index = static_cast<uint64_t>(Error::kOverloaded);
  EXPECT_EQ(check_message_shape(refusal), nullptr);
  bad = refusal;
  bad.reject = false;
  EXPECT_STREQ(check_message_shape(bad), "proposal answer that is not a refusal");
  bad = refusal;
  bad.index = 0;  // kOk is no refusal
  EXPECT_STREQ(check_message_shape(bad), "proposal refusal with an unknown reason");
  bad.index = static_cast<uint64_t>(kLastError) + 1;
  EXPECT_STREQ(check_message_shape(bad), "proposal refusal with an unknown reason");
  bad = refusal;
  bad.context = 0;
  EXPECT_STREQ(check_message_shape(bad), "proposal refusal without an id");
}

TEST(RaftMessageShape, RefusesEachImpossibleClaim) {
  auto append = make_append(1, 2, 5, 3, 4, {Entry{5, 4, EntryType::kNormal, "x"}}, 3);
  EXPECT_EQ(check_message_shape(append), nullptr);

  auto bad = append;
  bad.from = kNoNode;
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = append;
  bad.term = kMaxTerm + 1;
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = append;
  bad.commit = kHuge;
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = append;
  bad.entries[0].index = 5;  // gap after the consistency entry
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = append;
  bad.entries[0].term = 3;  // older than the consistency entry
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = append;
  bad.entries[0].term = 6;  // newer than the sender's term
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = append;
  bad.log_term = 0;  // index 3 with term 0
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = append;
  bad.entries[0].type = EntryType::kConfig;
  bad.entries[0].data = "not a membership";
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = append;
  bad.log_index = kMaxIndex;
  EXPECT_NE(check_message_shape(bad), nullptr);

  auto vote = make_vote(1, 2, 5, 10, 6);
  EXPECT_NE(check_message_shape(vote), nullptr);  // last log term above the campaign term
  vote.log_term = 5;
  EXPECT_EQ(check_message_shape(vote), nullptr);

  auto reject = make_append_resp(2, 1, 5, 10, true);
  reject.hint_index = 11;
  EXPECT_NE(check_message_shape(reject), nullptr);

  Message snap = message(MessageType::kSnapshot, 1, 2, 5);
  snap.snapshot = SnapshotMeta{10, 4, voters({1, 2}), 100};
  snap.offset = 90;
  snap.data = std::string(10, 'x');
  snap.data_length = 10;
  EXPECT_EQ(check_message_shape(snap), nullptr);
  bad = snap;
  bad.offset = 91;  // runs past the end
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = snap;
  bad.snapshot.membership = Membership{};
  EXPECT_NE(check_message_shape(bad), nullptr);
  bad = snap;
  bad.snapshot.term = 6;
  EXPECT_NE(check_message_shape(bad), nullptr);
}

// ---------------------------------------------------------------------------
// Seeded fuzz of step(): random, mostly well-formed messages with extreme
// values, from members and outsiders, interleaved with normal traffic. The
// core must never abort and must keep its own bounds. (Forged but plausible
// messages from a member's id can mislead a node without authentication, so
// this test checks robustness, not agreement: the simulator's Byzantine-lite
// peer checks what safety holds.)

class FuzzCluster {
 public:
  explicit FuzzCluster(uint64_t seed) : rng_(seed) {
    InitialState st = bootstrap_state(voters({1, 2, 3}));
    for (NodeId id = 1; id <= 3; ++id) {
      Options o = default_options(id);
      o.random_seed = seed * 31 + id;
      nodes_.push_back(std::make_unique<Raft>(o, st));
    }
  }

  void run(int steps) {
    for (int i = 0; i < steps; ++i) {
      const uint64_t dice = rng_() % 10;
      if (dice < 3) {
        inject_random();
      } else if (dice < 5) {
        node(1 + rng_() % 3).tick();
      } else if (dice < 6) {
        for (auto& n : nodes_) (void)n->propose("v" + std::to_string(i));
      } else if (dice < 7) {
        for (auto& n : nodes_) (void)n->forward_proposal("w" + std::to_string(i));
      } else {
        deliver_one();
      }
      for (NodeId id = 1; id <= 3; ++id) drain(id);
    }
  }

 private:
  Raft& node(NodeId id) { return *nodes_[id - 1]; }

  uint64_t pick_u64(uint64_t near) {
    switch (rng_() % 8) {
      case 0: return 0;
      case 1: return near;
      case 2: return near + 1;
      case 3: return near > 0 ? near - 1 : 0;
      case 4: return kHuge;
      case 5: return uint64_t{1} << (rng_() % 64);
      case 6: return near + rng_() % 5;
      default: return rng_();
    }
  }

  void inject_random() {
    const NodeId to = 1 + rng_() % 3;
    Raft& r = node(to);
    Message m;
    m.type = static_cast<MessageType>(rng_() % (static_cast<int>(MessageType::kPropResp) + 1));
    m.from = rng_() % 5 == 0 ? kOutsider : 1 + rng_() % 3;
    m.to = to;
    m.term = pick_u64(r.term());
    m.log_index = pick_u64(r.last_index());
    m.log_term = pick_u64(r.term_at(r.last_index()));
    m.commit = pick_u64(r.commit_index());
    m.index = pick_u64(r.last_index());
    m.hint_index = pick_u64(r.last_index());
    m.hint_term = pick_u64(r.term());
    m.context = pick_u64(1);
    m.reject = rng_() % 2 == 0;
    m.done = rng_() % 2 == 0;
    const size_t n = rng_() % 4;
    const bool contiguous = rng_() % 3 != 0;
    for (size_t k = 0; k < n; ++k) {
      Entry e;
      e.index = contiguous ? m.log_index + 1 + k : pick_u64(r.last_index());
      e.term = contiguous && rng_() % 2 ? m.term : pick_u64(m.term);
      e.type = rng_() % 8 == 0 ? EntryType::kConfig : EntryType::kNormal;
      e.data = e.type == EntryType::kConfig && rng_() % 2 ? encode_membership(voters({1, 2, 3})) : "f";
      m.entries.push_back(e);
    }
    m.snapshot = SnapshotMeta{pick_u64(r.last_index()), pick_u64(r.term()), voters({1, 2, 3}), pick_u64(16)};
    m.offset = pick_u64(0);
    m.data_length = rng_() % 17;
    m.data = std::string(rng_() % 2 ? m.data_length : rng_() % 17, 's');
    const HardState before = r.hard_state();
    const char* why = r.step(m);
    if (why != nullptr) {
      // A refused message changes nothing durable.
      EXPECT_EQ(r.hard_state(), before) << why;
    }
  }

  void deliver_one() {
    if (queue_.empty()) return;
    const size_t k = rng_() % queue_.size();
    Message m = queue_[k];
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(k));
    if (m.to >= 1 && m.to <= 3) (void)node(m.to).step(m);
  }

  void drain(NodeId id) {
    Raft& r = node(id);
    for (int guard = 0; r.has_ready() && guard < 100; ++guard) {
      Ready rd = r.ready();
      for (Message& m : rd.messages) {
        if (m.type == MessageType::kSnapshot) m.data.assign(m.data_length, 's');
        if (queue_.size() < kMaxQueued) queue_.push_back(std::move(m));
      }
      r.advance(rd);
    }
    ASSERT_LE(r.term(), kMaxTerm);
    ASSERT_LE(r.commit_index(), r.last_index());
  }

  static constexpr size_t kMaxQueued = 256;
  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<Raft>> nodes_;
  std::deque<Message> queue_;
};

TEST(RaftStepFuzz, RandomMessagesNeverAbortTheCore) {
  // CKV_FUZZ_SEED replays one seed; by default a fixed set runs.
  std::vector<uint64_t> seeds;
  if (const char* s = std::getenv("CKV_FUZZ_SEED")) {
    seeds.push_back(std::strtoull(s, nullptr, 10));
  } else {
    for (uint64_t s = 1; s <= 40; ++s) seeds.push_back(s);
  }
  for (uint64_t seed : seeds) {
    SCOPED_TRACE("replay: CKV_FUZZ_SEED=" + std::to_string(seed) +
                 " build/tests/unit/unit_tests --gtest_filter=RaftStepFuzz.*");
    FuzzCluster cluster(seed);
    cluster.run(3000);
    if (HasFatalFailure() || HasNonfatalFailure()) return;
  }
}

}  // namespace
}  // namespace ckv::raft::test
