// Raft core unit tests for log replication: §5.3 consistency check and log repair, §5.4.2 commit rule (Figure 8), batching, flow control, durability.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "raft_fixture.h"

namespace ckv::raft::test {
namespace {

void plain_votes(Options& o) {
  o.pre_vote = false;
  o.check_quorum = false;
}

// Elects node 1 in a fresh cluster and lets every follower learn the commit index.
Index propose_all(Network& net, NodeId leader, const std::vector<std::string>& values) {
  Index last = 0;
  for (const std::string& v : values) {
    ProposeResult r = net.raft(leader).propose(v);
    EXPECT_TRUE(r.ok()) << to_string(r.error);
    last = r.index;
    net.deliver_all();
  }
  return last;
}

std::vector<std::string> numbered(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

// Compares logs by (index, term, type, data).
void expect_same_log(Network& net, NodeId a, NodeId b) {
  const auto& la = net.raft(a).log_entries();
  const auto& lb = net.raft(b).log_entries();
  EXPECT_EQ(terms_of(la), terms_of(lb)) << "nodes " << a << " and " << b;
  EXPECT_EQ(la, lb) << "nodes " << a << " and " << b;
}

// Figure 2, "respond after persisting": an acknowledgement must be true of
// what was persisted. Two appends stepped before one Ready, the second from
// a newer leader that truncates what the first added, used to send the first
// one's ack for entries no longer stored (swarm seed 501862, 5 nodes).
TEST(RaftReplication, AckQueuedBeforeATruncationIsNotSent) {
  Network net(3);
  elect_1(net);
  const Term t = net.raft(1).term();
  const Index last = net.raft(2).last_index();
  const size_t since = net.sent().size();
  Raft& f = net.raft(2);
  EXPECT_EQ(f.step(make_append(1, 2, t, last, t, {entry_at(last + 1, t), entry_at(last + 2, t)}, 0)), nullptr);
  EXPECT_EQ(f.step(make_append(3, 2, t + 1, last, t, {entry_at(last + 1, t + 1)}, 0)), nullptr);
  net.flush(2);
  for (const Message& m : net.sent_matching(of_type(MessageType::kAppendResp, 2, kNoNode), since)) {
    if (!m.reject) {
      EXPECT_LE(m.index, net.raft(2).last_index()) << "ack to " << m.to << " names an entry no longer stored";
    }
  }
  EXPECT_EQ(net.raft(2).term_at(last + 1), t + 1);
}

// ---------------------------------------------------------------------------
// §5.3 Basic replication.

// §5.3: an entry is committed once a majority stores it, and every node applies committed entries in log order.
TEST(RaftReplication, CommittedEntriesAreAppliedInOrderOnEveryNode) {
  Network net(3);
  elect_1(net);
  Index last = propose_all(net, 1, {"a", "b", "c"});
  net.tick(1);
  net.deliver_all();
  for (NodeId id : {1, 2, 3}) {
    SCOPED_TRACE("node " + std::to_string(id));
    EXPECT_EQ(net.raft(id).commit_index(), last);
    EXPECT_EQ(net.raft(id).applied_index(), last);
    EXPECT_EQ(net.fsm(id).commands, (std::vector<std::string>{"a", "b", "c"}));
  }
  expect_same_log(net, 1, 2);
  expect_same_log(net, 1, 3);
}

// raft.h propose: the result names the index and term where the entry landed.
// A follower whose ack reaches the leader after the majority's learns the
// new commit index at once, not at the next heartbeat: its forwarded writes
// wait for it to apply (their p99 was one heartbeat interval).
TEST(RaftReplication, FollowerWhoseAckCameLastLearnsTheCommitWithoutAHeartbeat) {
  Network net(3);
  elect_1(net);
  const ProposeResult r = net.raft(1).propose("x");
  ASSERT_TRUE(r.ok());
  net.flush(1);
  for (const Message& m : net.take_queue()) net.inject(m);  // both followers persist and ack
  std::vector<Message> acks = net.take_queue();
  auto from = [&](NodeId id) {
    auto it = std::find_if(acks.begin(), acks.end(), [&](const Message& m) {
      return m.from == id && m.type == MessageType::kAppendResp;
    });
    EXPECT_NE(it, acks.end()) << "no ack from " << id;
    return *it;
  };
  const Message ack2 = from(2);
  const Message ack3 = from(3);
  net.inject(ack3);
  ASSERT_EQ(net.raft(1).commit_index(), r.index) << "leader and node 3 are a majority";
  net.inject(ack2);
  net.deliver_all();  // no tick, so no heartbeat
  EXPECT_EQ(net.raft(2).commit_index(), r.index);
  EXPECT_EQ(net.fsm(2).applied, r.index);
  EXPECT_EQ(net.raft(3).commit_index(), r.index);
}

TEST(RaftReplication, ProposeReturnsIndexAndTermOfTheNewEntry) {
  Network net(3);
  elect_1(net);
  Index before = net.raft(1).last_index();
  ProposeResult r = net.raft(1).propose("x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.index, before + 1);
  EXPECT_EQ(r.term, net.raft(1).term());
  EXPECT_EQ(net.raft(1).term_at(r.index), r.term);
  net.deliver_all();
}

// raft.h Error::kNotLeader: only the leader accepts proposals; followers point at the leader instead.
TEST(RaftReplication, FollowerRefusesProposalWithNotLeader) {
  Network net(3);
  elect_1(net);
  ProposeResult r = net.raft(2).propose("x");
  EXPECT_EQ(r.error, Error::kNotLeader);
  EXPECT_EQ(net.raft(2).leader(), 1u);
  EXPECT_EQ(net.raft(2).propose_conf_change(ConfChange{ConfChangeType::kAddLearner, 9, ""}).error,
            Error::kNotLeader);
}

// §5.3: with two of five servers unreachable the leader still commits (3/5); with three it cannot.
TEST(RaftReplication, CommitNeedsAMajorityOfVoters) {
  Network net(5);
  elect_1(net);
  net.isolate(4);
  net.isolate(5);
  Index a = propose_all(net, 1, {"a"});
  EXPECT_EQ(net.raft(1).commit_index(), a);
  net.isolate(3);
  Index b = propose_all(net, 1, {"b"});
  EXPECT_EQ(net.raft(1).commit_index(), a) << "only 2 of 5 hold entry " << b;
  net.heal();
  EXPECT_TRUE(net.tick_node_until(
      1, [&] { return net.raft(1).commit_index() == b; }, 30));
}

// Figure 2 AppendEntries rule 5: a follower sets commit = min(leaderCommit, index of last new entry).
TEST(RaftReplication, FollowerCommitIsCappedByLastNewEntry) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term bt = net.raft(2).log_entries().at(0).term;
  Term t = net.raft(2).term() + 1;
  net.inject(make_append(1, 2, t, 1, bt, {entry_at(2, t), entry_at(3, t)}, /*commit=*/10));
  EXPECT_EQ(net.raft(2).commit_index(), 3u);
  EXPECT_EQ(net.fsm(2).applied, 3u);
}

// §5.3: an append whose entries the follower already has (a stale or duplicated message) truncates nothing.
TEST(RaftReplication, StaleAppendDoesNotTruncateMatchingEntries) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term bt = net.raft(2).log_entries().at(0).term;
  Term t = net.raft(2).term() + 1;
  net.inject(make_append(1, 2, t, 1, bt, {entry_at(2, t), entry_at(3, t), entry_at(4, t)}, 1));
  ASSERT_EQ(net.raft(2).last_index(), 4u);
  net.inject(make_append(1, 2, t, 1, bt, {entry_at(2, t)}, 1));
  EXPECT_EQ(net.raft(2).last_index(), 4u);
  auto resp = net.last_sent(of_type(MessageType::kAppendResp, 2, 1));
  ASSERT_TRUE(resp.has_value());
  EXPECT_FALSE(resp->reject);
  EXPECT_EQ(resp->index, 2u) << "acknowledges what this message proved to match";
}

// §5.3: an append delayed past the follower's commit point (prev below commit) is harmless: nothing is truncated or regressed.
TEST(RaftReplication, DelayedAppendBelowCommitIsHarmless) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term bt = net.raft(2).log_entries().at(0).term;
  Term t = net.raft(2).term() + 1;
  net.inject(
      make_append(1, 2, t, 1, bt, {entry_at(2, t), entry_at(3, t), entry_at(4, t)}, /*commit=*/4));
  ASSERT_EQ(net.raft(2).commit_index(), 4u);
  net.inject(make_append(1, 2, t, 1, bt, {entry_at(2, t)}, /*commit=*/1));
  EXPECT_EQ(net.raft(2).last_index(), 4u);
  EXPECT_EQ(net.raft(2).commit_index(), 4u);
  auto resp = net.last_sent(of_type(MessageType::kAppendResp, 2, 1));
  ASSERT_TRUE(resp.has_value());
  EXPECT_FALSE(resp->reject);
  EXPECT_EQ(net.fsm(2).applied, 4u);
}

// §5.3 with pipelining: appends that arrive in reverse order still leave the follower with exactly the leader's log.
TEST(RaftReplication, ReorderedPipelinedAppendsConverge) {
  Network net(3);
  elect_1(net);
  std::vector<std::string> vs = numbered("r", 4);
  for (const std::string& v : vs) {
    ASSERT_TRUE(net.raft(1).propose(v).ok());
    net.flush(1);  // one Ready, hence one append per follower, per proposal
  }
  std::vector<Message> q = net.take_queue();
  ASSERT_GE(q.size(), 8u);
  for (auto it = q.rbegin(); it != q.rend(); ++it) net.inject(*it);
  net.deliver_all();
  ASSERT_TRUE(net.tick_node_until(
      1,
      [&] {
        return net.raft(2).commit_index() == net.raft(1).last_index() &&
               net.raft(3).commit_index() == net.raft(1).last_index();
      },
      30));
  expect_same_log(net, 1, 2);
  expect_same_log(net, 1, 3);
  EXPECT_EQ(net.fsm(2).commands, vs);
  EXPECT_EQ(net.fsm(3).commands, vs);
}

// §5.3: "if an existing entry conflicts with a new one (same index, different term), delete it and all that follow".
TEST(RaftReplication, ConflictingSuffixIsReplaced) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term bt = net.raft(2).log_entries().at(0).term;
  Term t = net.raft(2).term() + 1;
  net.inject(make_append(1, 2, t, 1, bt, {entry_at(2, t), entry_at(3, t), entry_at(4, t)}, 1));
  net.inject(make_append(3, 2, t + 1, 2, t, {entry_at(3, t + 1)}, 1));
  EXPECT_EQ(terms_of(net.raft(2).log_entries()), (std::vector<Term>{bt, t, t + 1}));
  EXPECT_EQ(net.storage(2).entries, net.raft(2).log_entries()) << "storage truncated the same way";
}

// messages.h kAppendResp: a reject names the failed prev index and a hint (log too short: its last entry).
TEST(RaftReplication, RejectHintForTooShortLog) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term bt = net.raft(2).log_entries().at(0).term;
  Term t = net.raft(2).term() + 1;
  net.inject(make_append(1, 2, t, 1, bt, {entry_at(2, t), entry_at(3, t)}, 1));
  net.inject(make_append(1, 2, t, 9, t, {entry_at(10, t)}, 1));
  auto resp = net.last_sent(of_type(MessageType::kAppendResp, 2, 1));
  ASSERT_TRUE(resp.has_value());
  EXPECT_TRUE(resp->reject);
  EXPECT_EQ(resp->index, 9u);
  EXPECT_EQ(resp->hint_index, 3u) << "messages.h: 'its last entry when its log is too short'";
  EXPECT_EQ(resp->hint_term, t);
  EXPECT_EQ(net.raft(2).last_index(), 3u);
}

// messages.h kAppendResp: on a term conflict the hint is the follower's last entry at or before the
// failed index whose term is <= the leader's prev term (§5.3 optimisation, etcd's refined form).
TEST(RaftReplication, RejectHintForConflictingTerm) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term bt = net.raft(2).log_entries().at(0).term;
  Term t = net.raft(2).term() + 1;
  net.inject(make_append(1, 2, t, 1, bt, {entry_at(2, t), entry_at(3, t), entry_at(4, t)}, 1));
  net.inject(make_append(1, 2, t + 1, 4, t, {entry_at(5, t + 1), entry_at(6, t + 1)}, 1));
  ASSERT_EQ(net.raft(2).last_index(), 6u);
  // A leader of term t+3 whose entry 6 has term t+2.
  net.inject(make_append(3, 2, t + 3, 6, t + 2, {entry_at(7, t + 3)}, 1));
  auto resp = net.last_sent(of_type(MessageType::kAppendResp, 2, 3));
  ASSERT_TRUE(resp.has_value());
  EXPECT_TRUE(resp->reject);
  EXPECT_EQ(resp->index, 6u);
  EXPECT_EQ(resp->hint_term, t + 1) << "the follower's term there, <= the leader's prev term t+2";
  EXPECT_EQ(resp->hint_index, 6u)
      << "messages.h: 'last entry at or before that index whose term is <= the leader's prev term'";
  EXPECT_EQ(net.raft(2).last_index(), 6u) << "a rejected append changes nothing";
}

// ---------------------------------------------------------------------------
// §5.3 Log repair, Figure 7: whatever the follower's log (missing, extra or
// divergent entries), the leader makes it identical to its own, and the
// conflict hint makes that take few round trips.

struct Figure7Case {
  const char* name;
  std::vector<Term> terms;  // paper terms of entries 1..n (paper indexing)
};

// Names the case in test listings instead of gtest's byte dump.
void PrintTo(const Figure7Case& c, std::ostream* os) { *os << c.name; }

class RaftLogRepairFigure7 : public ::testing::TestWithParam<Figure7Case> {};

// Builds node `id`'s state from paper terms: our index 1 is the bootstrap
// config, paper index i is our index i + 1, paper term p is our term p + off.
InitialState figure7_state(const std::vector<Term>& paper_terms, Term hard_term_paper) {
  InitialState st = bootstrap_state(voters({1, 2, 3}));
  Term bt = st.entries[0].term;
  Term off = bt >= 1 ? bt - 1 : 0;
  for (size_t i = 0; i < paper_terms.size(); ++i)
    st.entries.push_back(entry_at(i + 2, paper_terms[i] + off));
  Term last = paper_terms.empty() ? 0 : *std::max_element(paper_terms.begin(), paper_terms.end());
  st.hard_state.term = std::max(st.hard_state.term, std::max(last, hard_term_paper) + off);
  return st;
}

// §5.3 Figure 7: the leader of term 8 repairs follower logs (a)-(f) and more; each needs at most 3 rejected appends.
TEST_P(RaftLogRepairFigure7, LeaderMakesFollowerLogIdenticalInFewRoundTrips) {
  const Figure7Case& c = GetParam();
  const std::vector<Term> leader_terms = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  Network net;
  net.add(1, figure7_state(leader_terms, 7), plain_votes);
  net.add(2, figure7_state(c.terms, 0), plain_votes);
  // Node 3 is absent; it "votes" for 1 by hand, as in etcd's TestLeaderSyncFollowerLog.
  ASSERT_TRUE(net.tick_until_role(1, StateRole::kCandidate));
  net.deliver_all();
  if (net.raft(1).role() != StateRole::kLeader)
    net.inject(make_vote_resp(3, 1, net.raft(1).term()));
  ASSERT_EQ(net.raft(1).role(), StateRole::kLeader);
  size_t mark = net.sent_mark();
  net.deliver_all();
  for (int i = 0; i < 3; ++i) {
    net.tick(1);
    net.deliver_all();
  }

  expect_same_log(net, 1, 2);
  EXPECT_EQ(net.raft(1).commit_index(), net.raft(1).last_index());
  EXPECT_EQ(net.raft(2).commit_index(), net.raft(1).last_index());
  EXPECT_EQ(net.fsm(2).commands, net.fsm(1).commands);
  size_t rejects = net.count_sent(
      [](const Message& m) {
        return m.type == MessageType::kAppendResp && m.from == 2 && m.reject;
      },
      mark);
  // Backing up one entry per round trip would take up to 8 rejects for (f).
  EXPECT_LE(rejects, 3u) << "rejected appends while repairing " << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Figure7, RaftLogRepairFigure7,
    ::testing::Values(Figure7Case{"a_missing_one", {1, 1, 1, 4, 4, 5, 5, 6, 6}},
                      Figure7Case{"b_missing_many", {1, 1, 1, 4}},
                      Figure7Case{"c_one_extra", {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}},
                      Figure7Case{"d_extra_of_later_term", {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}},
                      Figure7Case{"e_divergent_shorter", {1, 1, 1, 4, 4, 4, 4}},
                      Figure7Case{"f_divergent_longer", {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}},
                      Figure7Case{"g_only_config", {}},
                      Figure7Case{"h_long_stale_term",
                                  std::vector<Term>{1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
                                                    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}}),
    [](const ::testing::TestParamInfo<Figure7Case>& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------
// §5.4.2 Committing entries from previous terms (Figure 8).

// §5.4.2: a leader never commits an entry of an earlier term by counting replicas; it commits it only together with an entry of its own term.
TEST(RaftFigure8, LeaderDoesNotCommitPreviousTermEntryByCountingReplicas) {
  InitialState st = bootstrap_state(voters_1_to_n(5));
  Term bt = st.entries[0].term;
  Term t_old = std::max(st.hard_state.term, bt) + 1;
  st.entries.push_back(entry_at(2, t_old));  // like S1's entry 2 in Figure 8 (a)
  st.hard_state.term = t_old + 1;            // it has since seen term t_old + 1 (S5's term in (b))
  Network net;
  net.add(1, st, plain_votes);
  ASSERT_TRUE(net.tick_until_role(1, StateRole::kCandidate));
  Term t = net.raft(1).term();
  net.inject(make_vote_resp(2, 1, t));
  net.inject(make_vote_resp(3, 1, t));
  ASSERT_EQ(net.raft(1).role(), StateRole::kLeader);
  Index noop = net.raft(1).last_index();
  ASSERT_EQ(noop, 3u);
  ASSERT_EQ(net.raft(1).term_at(noop), t);

  // Entry 2 (term t_old) reaches S2 and S3: three of five servers store it (Figure 8 (c)).
  net.inject(make_append_resp(2, 1, t, 2));
  net.inject(make_append_resp(3, 1, t, 2));
  EXPECT_EQ(net.raft(1).commit_index(), 1u)
      << "entry 2 is from term " << t_old << ", not the current term " << t;
  EXPECT_EQ(net.fsm(1).applied, 1u);

  // The no-op of term t reaches S2: still only two of five.
  net.inject(make_append_resp(2, 1, t, 3));
  EXPECT_EQ(net.raft(1).commit_index(), 1u);

  // ... and S3: the current-term entry is on a majority, committing entry 2 with it (Figure 8 (e)).
  net.inject(make_append_resp(3, 1, t, 3));
  EXPECT_EQ(net.raft(1).commit_index(), 3u);
  EXPECT_EQ(net.fsm(1).applied, 3u);
  EXPECT_EQ(net.fsm(1).commands, (std::vector<std::string>{entry_at(2, t_old).data}));
}

// §5.4.2 Figure 8 replayed on a five-node network: S1 replicates x to S2, S5 wins a term without replicating,
// S1 returns as leader and spreads x to a majority; x stays uncommitted until S1's own-term entry is replicated.
TEST(RaftFigure8, OldTermEntryOnMajorityStaysUncommittedUntilCurrentTermEntryReplicates) {
  Network net(5);
  elect_1(net);
  Term t1 = net.raft(1).term();
  // (a) S1 replicates x only to S2.
  net.cut(1, 3);
  net.cut(1, 4);
  net.cut(1, 5);
  ProposeResult x = net.raft(1).propose("x");
  ASSERT_TRUE(x.ok());
  net.deliver_all();
  ASSERT_EQ(net.raft(2).term_at(x.index), t1);
  ASSERT_LT(net.raft(1).commit_index(), x.index);

  // (b) S1 crashes; one of S3-S5 wins a later term but none of its entries leave it.
  net.stop(1);
  net.heal();
  net.isolate(2);
  net.drop([](const Message& m) { return m.type == MessageType::kAppend; });
  ASSERT_GE(net.tick_all_until([&] { return net.leader() != kNoNode; }, 300), 0);
  NodeId s5 = net.leader();
  ASSERT_TRUE(s5 == 3 || s5 == 4 || s5 == 5) << s5;
  Term t2 = net.raft(s5).term();
  ASSERT_GT(t2, t1);

  // (c) S5 crashes; S1 restarts. Appends deliver x but lose every entry of the sender's current term.
  net.stop(s5);
  net.clear_drops();
  net.heal();
  net.start(1);
  net.mutate([](Message& m) {
    if (m.type != MessageType::kAppend) return;
    auto it = std::find_if(m.entries.begin(), m.entries.end(),
                           [&](const Entry& e) { return e.term == m.term; });
    m.entries.erase(it, m.entries.end());
  });
  ASSERT_GE(net.tick_all_until(
                [&] { return net.leader() != kNoNode && net.raft(net.leader()).term() > t2; }, 400),
            0);
  NodeId l3 = net.leader();
  EXPECT_TRUE(l3 == 1 || l3 == 2) << "only S1 and S2 hold x, the most up-to-date log";
  net.tick_all(5);
  int holders = 0;
  for (NodeId id : net.ids()) {
    if (!net.up(id)) continue;
    if (net.raft(id).term_at(x.index) == t1) ++holders;
    EXPECT_LT(net.raft(id).commit_index(), x.index)
        << "node " << id << " committed x by counting replicas";
  }
  EXPECT_GE(holders, 3) << "x must be on a majority for the test to mean anything";

  // (e) Once an entry of the leader's term replicates, x commits with it.
  // (Appends lost to the mutation are retried after an election timeout.)
  net.clear_mutations();
  net.tick_all(25);
  for (NodeId id : net.ids()) {
    if (!net.up(id)) continue;
    EXPECT_GT(net.raft(id).commit_index(), x.index) << "node " << id;
    EXPECT_EQ(net.fsm(id).commands, std::vector<std::string>{"x"}) << "node " << id;
  }
  // S5 returns; its uncommitted entry of term t2 is overwritten, nothing committed is lost.
  net.start(s5);
  net.tick_all(25);
  EXPECT_EQ(net.fsm(s5).commands, std::vector<std::string>{"x"});
}

// ---------------------------------------------------------------------------
// Batching and flow control.

// DESIGN.md "batching": many proposals before one ready() come out as one Ready holding all entries and few appends per follower.
TEST(RaftBatching, ManyProposalsBeforeReadyYieldOneReadyAndFewAppends) {
  Network net(3);
  elect_1(net);
  ASSERT_EQ(std::string(net.raft(1).progress(2)->state), "replicate");
  Index first = net.raft(1).last_index() + 1;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(net.raft(1).propose("value-" + std::to_string(i)).ok());
  ASSERT_TRUE(net.raft(1).has_ready());
  Ready rd = net.raft(1).ready();
  ASSERT_EQ(rd.entries.size(), 100u);
  EXPECT_EQ(rd.entries.front().index, first);
  EXPECT_EQ(rd.entries.back().index, first + 99);
  for (NodeId f : {2, 3}) {
    size_t appends = 0, entries = 0;
    for (const Message& m : rd.messages) {
      if (m.type == MessageType::kAppend && m.to == f) {
        ++appends;
        entries += m.entries.size();
      }
    }
    EXPECT_GE(appends, 1u) << "follower " << f;
    EXPECT_LE(appends, 2u) << "follower " << f << ": one append per proposal is not batching";
    EXPECT_EQ(entries, 100u) << "follower " << f;
  }
  net.handle_ready(1, rd);
  net.deliver_all();
  EXPECT_EQ(net.raft(1).commit_index(), first + 99);
}

// raft.h max_inflight_appends: with no acknowledgements, at most that many appends are outstanding to a follower in the replicate state.
TEST(RaftFlowControl, InflightAppendsAreBounded) {
  Network net(3, [](Options& o) { o.max_inflight_appends = 2; });
  elect_1(net);
  ASSERT_EQ(std::string(net.raft(1).progress(2)->state), "replicate");
  net.drop([](const Message& m) { return m.from == 2; });  // follower 2's acknowledgements are lost
  size_t mark = net.sent_mark();
  Index last = 0;
  for (int i = 0; i < 10; ++i) {
    ProposeResult r = net.raft(1).propose("p" + std::to_string(i));
    ASSERT_TRUE(r.ok());
    last = r.index;
    net.deliver_all();  // one Ready per proposal: every one could be its own append
  }
  size_t to2 = net.count_sent(
      [](const Message& m) {
        return m.type == MessageType::kAppend && m.to == 2 && !m.entries.empty();
      },
      mark);
  EXPECT_LE(to2, 2u) << "more appends in flight than max_inflight_appends";
  EXPECT_EQ(to2, 2u) << "pipelining: the window should be used";
  EXPECT_EQ(net.raft(1).commit_index(), last) << "commits with node 3";
  // Acknowledgements flow again: follower 2 catches up.
  net.clear_drops();
  for (int i = 0; i < 10 && net.raft(2).last_index() < last; ++i) {
    net.tick(1);
    net.deliver_all();
  }
  EXPECT_EQ(net.raft(2).last_index(), last);
  EXPECT_EQ(net.fsm(2).commands, numbered("p", 10));
}

// raft.h max_append_entries / max_append_bytes: a lagging follower is caught up in appends of bounded size.
TEST(RaftFlowControl, AppendsRespectEntryAndByteLimits) {
  Network net(3, [](Options& o) {
    o.max_append_entries = 5;
    o.max_append_bytes = 350;
  });
  elect_1(net);
  net.cut(1, 3);
  std::vector<std::string> values;
  for (int i = 0; i < 40; ++i) values.push_back(std::string(100, static_cast<char>('a' + i % 26)));
  Index last = propose_all(net, 1, values);
  net.heal();
  size_t mark = net.sent_mark();
  for (int i = 0; i < 30 && net.raft(3).last_index() < last; ++i) {
    net.tick(1);
    net.deliver_all();
  }
  EXPECT_EQ(net.raft(3).last_index(), last);
  for (const Message& m : net.sent_matching(of_type(MessageType::kAppend, 1, 3), mark)) {
    uint64_t bytes = 0;
    for (const Entry& e : m.entries) bytes += e.data.size();
    EXPECT_LE(m.entries.size(), 5u);
    EXPECT_TRUE(bytes <= 350 || m.entries.size() == 1)
        << bytes << " bytes in " << m.entries.size() << " entries";
  }
}

// raft.h Error::kOverloaded: a leader that cannot commit stops accepting proposals beyond max_uncommitted_bytes.
TEST(RaftFlowControl, UncommittedBytesAreBounded) {
  Network net(3, [](Options& o) { o.max_uncommitted_bytes = 1000; });
  elect_1(net);
  net.cut(1, 2);
  net.cut(1, 3);
  uint64_t accepted = 0;
  Error refused = Error::kOk;
  for (int i = 0; i < 100; ++i) {
    ProposeResult r = net.raft(1).propose(std::string(100, 'v'));
    net.deliver_all();
    if (!r.ok()) {
      refused = r.error;
      break;
    }
    accepted += 100;
  }
  EXPECT_EQ(refused, Error::kOverloaded);
  EXPECT_GE(accepted, 500u);
  EXPECT_LE(accepted, 1100u);
  // Once the entries commit, there is room again.
  net.heal();
  EXPECT_TRUE(net.tick_node_until(
      1, [&] { return net.raft(1).commit_index() == net.raft(1).last_index(); }, 30));
  EXPECT_TRUE(net.raft(1).propose(std::string(100, 'w')).ok());
}

// ---------------------------------------------------------------------------
// Durability across restarts (Figure 2 persistent state).

// raft.h HardState.commit: a restarted follower re-applies its committed entries from storage without waiting for a leader.
TEST(RaftDurability, RestartedFollowerReappliesCommittedEntries) {
  Network net(3);
  elect_1(net);
  propose_all(net, 1, {"a", "b", "c"});
  net.tick(1);
  net.deliver_all();
  ASSERT_EQ(net.fsm(3).commands, (std::vector<std::string>{"a", "b", "c"}));
  net.restart(3);
  EXPECT_EQ(net.fsm(3).commands, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(net.raft(3).last_index(), net.raft(1).last_index());
}

// Figure 2 / §5.4: after every node restarts from storage, the cluster elects a leader and no committed entry is lost.
TEST(RaftDurability, WholeClusterRestartKeepsCommittedEntries) {
  Network net(3);
  elect_1(net);
  propose_all(net, 1, {"a", "b"});
  net.tick(1);
  net.deliver_all();
  for (NodeId id : {1, 2, 3}) net.restart(id);
  ASSERT_GE(net.tick_all_until([&] { return net.leader() != kNoNode; }, 300), 0);
  NodeId l = net.leader();
  Index c = propose_all(net, l, {"c"});
  net.tick_all();
  for (NodeId id : {1, 2, 3}) {
    EXPECT_EQ(net.raft(id).commit_index(), c) << "node " << id;
    EXPECT_EQ(net.fsm(id).commands, (std::vector<std::string>{"a", "b", "c"})) << "node " << id;
  }
}

// §5.3 + restart: a follower that crashed while behind is caught up after it restarts.
TEST(RaftDurability, FollowerRestartedWhileBehindCatchesUp) {
  Network net(3);
  elect_1(net);
  net.stop(3);
  Index last = propose_all(net, 1, numbered("v", 20));
  net.start(3);
  for (int i = 0; i < 10 && net.raft(3).commit_index() < last; ++i) {
    net.tick(1);
    net.deliver_all();
  }
  EXPECT_EQ(net.raft(3).commit_index(), last);
  EXPECT_EQ(net.fsm(3).commands, numbered("v", 20));
}

// Thesis §10.2.1: a leader's appends may leave before its own persist, but
// only once its term and vote are durable. A one-voter cluster becomes leader
// inside one tick, before the Ready that persists its new term: sending its
// first appends early would let a crash there make it lead that term twice.
TEST(RaftEarlySend, LeaderSendsAppendsBeforePersistingOnlyOnceItsTermIsDurable) {
  Membership m = voters({1});
  m.members.push_back(Member{2, MemberRole::kLearner, ""});
  Raft r(default_options(1), bootstrap_state(m));
  for (int i = 0; i < 100 && r.role() != StateRole::kLeader; ++i) r.tick();
  ASSERT_EQ(r.role(), StateRole::kLeader);

  Ready first = r.ready();
  ASSERT_TRUE(first.hard_state.has_value());
  EXPECT_EQ(first.hard_state->term, r.term());
  EXPECT_EQ(first.early_messages, 0u) << "the new term is not on disk yet";
  EXPECT_TRUE(std::any_of(first.messages.begin(), first.messages.end(),
                          [](const Message& msg) { return msg.type == MessageType::kAppend; }));
  r.advance(first);
  // The learner accepts it, so the leader replicates to it freely (not probing).
  r.step(make_append_resp(2, 1, r.term(), r.last_index()));
  r.advance(r.ready());

  ASSERT_TRUE(r.propose("x").ok());
  Ready next = r.ready();
  ASSERT_FALSE(next.entries.empty());
  ASSERT_GE(next.early_messages, 1u) << "the append of the new entry may go before its persist";
  for (size_t k = 0; k < next.early_messages; ++k) {
    EXPECT_EQ(next.messages[k].type, MessageType::kAppend);
    EXPECT_EQ(next.messages[k].to, 2u);
  }
}

}  // namespace
}  // namespace ckv::raft::test
