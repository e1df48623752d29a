// Raft core unit tests for first boot and leader election: §5.2, §5.4.1, Figure 2 persistence, thesis §9.6 pre-vote and §6.2 check-quorum.
#include <set>

#include <gtest/gtest.h>

#include "raft_fixture.h"

namespace ckv::raft::test {
namespace {

// Options for tests that build votes by hand: no pre-vote phase, no lease.
void plain_votes(Options& o) {
  o.pre_vote = false;
  o.check_quorum = false;
}

Term bootstrap_term() { return bootstrap_state(voters({1, 2, 3})).entries.at(0).term; }

// A voter with log [1: config, 2..3: term bt+1] for a five-node cluster,
// constructed by stepping an AppendEntries from leader 1 into node 2.
// Returns the voter's last (index, term).
std::pair<Index, Term> make_voter_with_log(Network& net) {
  Term bt = bootstrap_term();
  net.add(2, bootstrap_state(voters_1_to_n(5)), plain_votes);
  Term t = net.raft(2).term() + 1;
  net.inject(make_append(1, 2, t, 1, bt, {entry_at(2, t), entry_at(3, t)}, 1));
  EXPECT_EQ(net.raft(2).last_index(), 3u);
  EXPECT_EQ(net.raft(2).term(), t);
  EXPECT_EQ(net.raft(2).leader(), 1u);
  return {3, t};
}

std::optional<Message> vote_resp_to(const Network& net, NodeId voter, NodeId candidate,
                                    size_t since) {
  return net.last_sent(
      [&](const Message& m) {
        return (m.type == MessageType::kVoteResp || m.type == MessageType::kPreVoteResp) &&
               m.from == voter && m.to == candidate;
      },
      since);
}

// ---------------------------------------------------------------------------
// First boot.

// raft.h bootstrap_state: entry 1 is the initial configuration, committed by construction.
TEST(RaftBootstrap, EntryOneIsTheCommittedInitialConfig) {
  Membership m = voters({1, 2, 3});
  InitialState st = bootstrap_state(m);
  ASSERT_EQ(st.entries.size(), 1u);
  const Entry& e = st.entries[0];
  EXPECT_EQ(e.index, 1u);
  EXPECT_GE(e.term, 1u) << "term 0 means 'unknown' to term_at()";
  EXPECT_EQ(e.type, EntryType::kConfig);
  EXPECT_EQ(decode_membership(e.data), std::optional<Membership>(m));
  EXPECT_EQ(st.hard_state.commit, 1u);
  EXPECT_GE(st.hard_state.term, e.term);
  EXPECT_EQ(st.hard_state.vote, kNoNode);
  EXPECT_EQ(st.snapshot.index, 0u);
  // Every founder computes the same entry 1.
  EXPECT_EQ(bootstrap_state(m).entries, st.entries);
}

// raft.h first boot: a founder starts as a follower that knows the configuration and applies entry 1.
TEST(RaftBootstrap, FounderStartsAsFollowerAndAppliesConfig) {
  Network net(3);
  for (NodeId id : {1, 2, 3}) {
    SCOPED_TRACE("node " + std::to_string(id));
    EXPECT_EQ(net.raft(id).role(), StateRole::kFollower);
    EXPECT_EQ(net.raft(id).leader(), kNoNode);
    EXPECT_EQ(net.raft(id).commit_index(), 1u);
    EXPECT_EQ(net.raft(id).last_index(), 1u);
    EXPECT_EQ(net.raft(id).membership(), voters({1, 2, 3}));
    EXPECT_EQ(net.fsm(id).applied, 1u);
    EXPECT_EQ(net.fsm(id).membership, voters({1, 2, 3}));
  }
}

// §5.2 with one voter: a single-node cluster elects itself and commits alone.
TEST(RaftBootstrap, SingleNodeClusterElectsItselfAndCommits) {
  Network net(1);
  ASSERT_TRUE(net.tick_until_leader(1, 30));
  ProposeResult r = net.raft(1).propose("x");
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  net.deliver_all();
  EXPECT_EQ(net.raft(1).commit_index(), r.index);
  EXPECT_EQ(net.fsm(1).commands, std::vector<std::string>{"x"});
}

// §5.2 with one voter: its own vote is a majority, so it campaigns on its
// first tick instead of waiting out a randomized timeout (a restart of a
// one-member cluster serves sooner, issue 10); pre-vote does not delay it.
TEST(RaftSoleVoter, CampaignsOnItsFirstTick) {
  for (bool pre_vote : {true, false}) {
    SCOPED_TRACE(pre_vote ? "pre-vote" : "no pre-vote");
    Network net(1, [pre_vote](Options& o) { o.pre_vote = pre_vote; });
    const Term before = net.raft(1).term();
    net.tick(1);
    EXPECT_EQ(net.raft(1).role(), StateRole::kLeader);
    EXPECT_EQ(net.raft(1).term(), before + 1) << "one election, one term";
    net.deliver_all();
    EXPECT_EQ(net.storage(1).hard_state.vote, 1u) << "its self-vote is persisted (Figure 2)";
  }
}

// The same after a restart: the stored term and log are kept, the new term is one higher.
TEST(RaftSoleVoter, RestartedSoleVoterLeadsOnItsFirstTick) {
  Network net(1);
  ASSERT_TRUE(net.tick_until_leader(1, 1));
  ProposeResult r = net.raft(1).propose("x");
  ASSERT_TRUE(r.ok());
  net.deliver_all();
  const Term term = net.raft(1).term();
  net.restart(1);
  EXPECT_EQ(net.raft(1).role(), StateRole::kFollower);
  net.tick(1);
  EXPECT_EQ(net.raft(1).role(), StateRole::kLeader);
  EXPECT_EQ(net.raft(1).term(), term + 1);
  EXPECT_GE(net.raft(1).last_index(), r.index);
}

// Learners do not vote: the only voter beside a learner still campaigns at once.
TEST(RaftSoleVoter, VoterWithALearnerLeadsOnItsFirstTick) {
  Membership m = voters({1});
  m.members.push_back(Member{2, MemberRole::kLearner, ""});
  Network net;
  net.add(1, bootstrap_state(m));
  net.add(2, bootstrap_state(m));
  net.tick(1);
  EXPECT_EQ(net.raft(1).role(), StateRole::kLeader);
  // The learner never campaigns, however long it waits.
  for (int i = 0; i < 100; ++i) net.tick(2);
  EXPECT_NE(net.raft(2).role(), StateRole::kPreCandidate);
  EXPECT_NE(net.raft(2).role(), StateRole::kCandidate);
}

// With another voter the randomized timeout stays (§5.2: it avoids split votes).
TEST(RaftSoleVoter, VoterOfTwoWaitsItsElectionTimeout) {
  Network net(2);
  const int election_ticks = default_options(1).election_ticks;
  for (int i = 0; i + 1 < election_ticks; ++i) {
    net.tick(1);
    ASSERT_EQ(net.raft(1).role(), StateRole::kFollower) << "tick " << i + 1;
  }
  EXPECT_EQ(net.sent().size(), 0u);
}

// set_removed (raft.h): a node told it was removed never campaigns, sole voter or not.
TEST(RaftSoleVoter, RemovedSoleVoterDoesNotCampaign) {
  Network net(1);
  net.raft(1).set_removed(true);
  for (int i = 0; i < 100; ++i) net.tick(1);
  EXPECT_EQ(net.raft(1).role(), StateRole::kFollower);
}

// raft.h first boot: a node with empty state waits to be added; it is in no configuration, so it never campaigns.
TEST(RaftBootstrap, NodeWaitingToBeAddedNeverCampaigns) {
  Network net;
  net.add(4, InitialState{});
  for (int i = 0; i < 100; ++i) net.tick(4);
  EXPECT_EQ(net.raft(4).role(), StateRole::kFollower);
  EXPECT_EQ(net.raft(4).term(), 0u);
  EXPECT_EQ(net.sent().size(), 0u);
}

// ---------------------------------------------------------------------------
// §5.2 Leader election.

// §5.2: election timeouts are randomized in [election_ticks, 2 * election_ticks) (raft.h Options).
TEST(RaftElection, TimeoutIsRandomizedWithinOneToTwoElectionTimeouts) {
  std::set<int> seen;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    Network net(3, [seed](Options& o) { o.random_seed = seed; });
    int ticks = 0;
    while (net.raft(1).role() == StateRole::kFollower && ticks < 100) {
      net.tick(1);
      ++ticks;
    }
    EXPECT_GE(ticks, 10) << "seed " << seed;
    EXPECT_LE(ticks, 20) << "seed " << seed;
    seen.insert(ticks);
  }
  EXPECT_GE(seen.size(), 3u) << "timeouts should differ across seeds";
}

// §5.2: a candidate that wins a majority becomes leader; the others learn it from AppendEntries.
TEST(RaftElection, FirstLeaderIsElectedAndKnownToAll) {
  Network net(3);
  Term t0 = net.raft(1).term();
  ASSERT_TRUE(net.tick_until_leader(1));
  EXPECT_EQ(net.raft(1).term(), t0 + 1) << "pre-vote does not spend a term";
  for (NodeId id : {2, 3}) {
    EXPECT_EQ(net.raft(id).role(), StateRole::kFollower);
    EXPECT_EQ(net.raft(id).term(), net.raft(1).term());
    EXPECT_EQ(net.raft(id).leader(), 1u);
  }
}

// §8: a new leader appends a no-op entry of its own term and commits it.
TEST(RaftElection, NewLeaderCommitsNoOpOfItsTerm) {
  Network net(3);
  ASSERT_TRUE(net.tick_until_leader(1));
  net.tick(1);
  net.deliver_all();
  const Entry& last = net.raft(1).log_entries().back();
  EXPECT_EQ(last.term, net.raft(1).term());
  EXPECT_EQ(last.type, EntryType::kNormal);
  EXPECT_TRUE(last.data.empty());
  for (NodeId id : {1, 2, 3}) EXPECT_EQ(net.raft(id).commit_index(), last.index) << "node " << id;
}

// §5.2: when the leader crashes, the others elect a new one in a higher term.
TEST(RaftElection, LeaderCrashLeadsToNewLeaderInHigherTerm) {
  Network net(3);
  ASSERT_TRUE(net.tick_until_leader(1));
  Term t1 = net.raft(1).term();
  net.stop(1);
  int ticks = net.tick_all_until([&] { return net.leader() != kNoNode; }, 200);
  ASSERT_GE(ticks, 0);
  NodeId l = net.leader();
  EXPECT_NE(l, 1u);
  EXPECT_GT(net.raft(l).term(), t1);
  NodeId other = l == 2 ? 3 : 2;
  EXPECT_EQ(net.raft(other).leader(), l);
}

// §5.1: a leader that sees a higher term reverts to follower and adopts the term.
TEST(RaftElection, LeaderStepsDownOnHigherTerm) {
  Network net(3);
  ASSERT_TRUE(net.tick_until_leader(1));
  Term t = net.raft(1).term();
  net.inject(make_append_resp(2, 1, t + 5, net.raft(1).last_index(), true));
  EXPECT_EQ(net.raft(1).role(), StateRole::kFollower);
  EXPECT_EQ(net.raft(1).term(), t + 5);
}

// §5.1: a message from an older term is ignored.
TEST(RaftElection, StaleTermAppendIsIgnored) {
  Network net;
  Term bt = bootstrap_term();
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  net.inject(make_append(1, 2, bt + 5, 1, bt, {}, 1));
  ASSERT_EQ(net.raft(2).term(), bt + 5);
  net.inject(make_append(3, 2, bt + 4, 1, bt, {entry_at(2, bt + 4)}, 1));
  EXPECT_EQ(net.raft(2).term(), bt + 5);
  EXPECT_EQ(net.raft(2).last_index(), 1u);
  EXPECT_EQ(net.raft(2).leader(), 1u);
}

// ---------------------------------------------------------------------------
// §5.4.1 Election restriction: a voter denies its vote to a candidate whose
// log is less up-to-date (compare last term, then last index).

// §5.4.1: same last term but shorter log -> vote denied.
TEST(RaftElectionRestriction, VoterRejectsCandidateWithShorterLogOfSameLastTerm) {
  Network net;
  auto [last_index, last_term] = make_voter_with_log(net);
  size_t mark = net.sent_mark();
  net.inject(make_vote(3, 2, last_term + 1, last_index - 1, last_term));
  auto resp = vote_resp_to(net, 2, 3, mark);
  ASSERT_TRUE(resp.has_value());
  EXPECT_TRUE(resp->reject);
  EXPECT_EQ(net.raft(2).hard_state().vote, kNoNode);
  EXPECT_EQ(net.raft(2).term(), last_term + 1) << "the voter still adopts the higher term (§5.1)";
}

// §5.4.1: a longer log whose last term is older is less up-to-date -> vote denied.
TEST(RaftElectionRestriction, VoterRejectsCandidateWithLongerLogButOlderLastTerm) {
  Network net;
  auto [last_index, last_term] = make_voter_with_log(net);
  size_t mark = net.sent_mark();
  net.inject(make_vote(3, 2, last_term + 1, last_index + 10, last_term - 1));
  auto resp = vote_resp_to(net, 2, 3, mark);
  ASSERT_TRUE(resp.has_value());
  EXPECT_TRUE(resp->reject);
  EXPECT_EQ(net.raft(2).hard_state().vote, kNoNode);
}

// §5.4.1: an equally up-to-date log wins the vote; so does a shorter log with a later last term.
TEST(RaftElectionRestriction, VoterGrantsCandidateAtLeastAsUpToDate) {
  Network net;
  auto [last_index, last_term] = make_voter_with_log(net);
  size_t mark = net.sent_mark();
  net.inject(make_vote(3, 2, last_term + 1, last_index, last_term));
  auto resp = vote_resp_to(net, 2, 3, mark);
  ASSERT_TRUE(resp.has_value());
  EXPECT_FALSE(resp->reject);
  EXPECT_EQ(net.raft(2).hard_state().vote, 3u);

  mark = net.sent_mark();
  net.inject(make_vote(4, 2, last_term + 2, 2, last_term + 1));
  resp = vote_resp_to(net, 2, 4, mark);
  ASSERT_TRUE(resp.has_value());
  EXPECT_FALSE(resp->reject) << "a later last term beats a longer log";
  EXPECT_EQ(net.raft(2).hard_state().vote, 4u);
}

// §5.4.1 + thesis §9.6: pre-votes apply the same restriction, and answering one changes neither term nor vote.
TEST(RaftElectionRestriction, PreVoteAppliesSameRuleWithoutChangingTerm) {
  Network net;
  auto [last_index, last_term] = make_voter_with_log(net);
  HardState before = net.raft(2).hard_state();

  size_t mark = net.sent_mark();
  net.inject(make_vote(3, 2, last_term + 1, last_index - 1, last_term, /*pre_vote=*/true));
  auto resp = vote_resp_to(net, 2, 3, mark);
  ASSERT_TRUE(resp.has_value());
  EXPECT_EQ(resp->type, MessageType::kPreVoteResp);
  EXPECT_TRUE(resp->reject);

  mark = net.sent_mark();
  net.inject(make_vote(4, 2, last_term + 1, last_index, last_term, /*pre_vote=*/true));
  resp = vote_resp_to(net, 2, 4, mark);
  ASSERT_TRUE(resp.has_value());
  EXPECT_EQ(resp->type, MessageType::kPreVoteResp);
  EXPECT_FALSE(resp->reject);

  EXPECT_EQ(net.raft(2).hard_state().term, before.term);
  EXPECT_EQ(net.raft(2).hard_state().vote, before.vote);
  EXPECT_EQ(net.raft(2).leader(), 1u);
}

// §5.4.1 end to end: a node that missed committed entries can never become leader; the up-to-date node wins.
TEST(RaftElectionRestriction, NodeMissingCommittedEntriesNeverWins) {
  Network net(3);
  ASSERT_TRUE(net.tick_until_leader(1));
  net.cut(1, 3);
  Index last = 0;
  for (const char* v : {"a", "b", "c"}) {
    ProposeResult r = net.raft(1).propose(v);
    ASSERT_TRUE(r.ok());
    last = r.index;
    net.deliver_all();
  }
  ASSERT_EQ(net.raft(2).commit_index(), last) << "committed with 1 and 2";
  ASSERT_LT(net.raft(3).last_index(), last);

  net.stop(1);
  net.heal();
  int ticks = net.tick_all_until([&] { return net.leader() != kNoNode; }, 400);
  ASSERT_GE(ticks, 0);
  EXPECT_EQ(net.leader(), 2u);
  EXPECT_FALSE(net.ever_leader(3));
  net.tick_all(3);
  EXPECT_EQ(net.fsm(3).commands, (std::vector<std::string>{"a", "b", "c"}));
}

// ---------------------------------------------------------------------------
// §5.2 One vote per term, persisted (Figure 2: votedFor is persistent state).

// §5.2: each server votes for at most one candidate in a given term.
TEST(RaftOneVotePerTerm, SecondCandidateInSameTermIsRefused) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term t = net.raft(2).term() + 1;
  size_t mark = net.sent_mark();
  net.inject(make_vote(1, 2, t, 1, bootstrap_term()));
  auto r1 = vote_resp_to(net, 2, 1, mark);
  ASSERT_TRUE(r1.has_value());
  EXPECT_FALSE(r1->reject);

  mark = net.sent_mark();
  net.inject(make_vote(3, 2, t, 1, bootstrap_term()));
  auto r3 = vote_resp_to(net, 2, 3, mark);
  ASSERT_TRUE(r3.has_value());
  EXPECT_TRUE(r3->reject);
  EXPECT_EQ(net.raft(2).hard_state().vote, 1u);
}

// Figure 2 RequestVote: "votedFor is null or candidateId" -> a retransmitted request from the same candidate is granted again.
TEST(RaftOneVotePerTerm, RepeatedRequestFromSameCandidateIsGrantedAgain) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term t = net.raft(2).term() + 1;
  net.inject(make_vote(1, 2, t, 1, bootstrap_term()));
  size_t mark = net.sent_mark();
  net.inject(make_vote(1, 2, t, 1, bootstrap_term()));
  auto r = vote_resp_to(net, 2, 1, mark);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->reject);
}

// Figure 2 / §5.2: the vote is in the Ready that carries the grant, so it is persisted before the grant is sent.
TEST(RaftOneVotePerTerm, VoteIsPersistedInTheReadyThatGrantsIt) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term t = net.raft(2).term() + 1;
  net.raft(2).step(make_vote(1, 2, t, 1, bootstrap_term()));
  ASSERT_TRUE(net.raft(2).has_ready());
  Ready rd = net.raft(2).ready();
  bool granted = false;
  for (const Message& m : rd.messages) granted |= m.type == MessageType::kVoteResp && !m.reject;
  EXPECT_TRUE(granted);
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->term, t);
  EXPECT_EQ(rd.hard_state->vote, 1u);
  net.handle_ready(2, rd);
}

// Figure 2: votedFor survives a crash; a restarted node still refuses a different candidate in that term.
TEST(RaftOneVotePerTerm, PersistedVoteSurvivesRestart) {
  Network net;
  net.add(2, bootstrap_state(voters({1, 2, 3})), plain_votes);
  Term t = net.raft(2).term() + 1;
  net.inject(make_vote(1, 2, t, 1, bootstrap_term()));
  ASSERT_EQ(net.storage(2).hard_state.vote, 1u);

  net.restart(2);
  EXPECT_EQ(net.raft(2).term(), t);
  EXPECT_EQ(net.raft(2).hard_state().vote, 1u);
  size_t mark = net.sent_mark();
  net.inject(make_vote(3, 2, t, 1, bootstrap_term()));
  auto r = vote_resp_to(net, 2, 3, mark);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->reject) << "voted for 1 in term " << t << " before the crash";
}

// Figure 2: a candidate's self-vote is persisted too; after a restart it will not vote for a rival in its term.
TEST(RaftOneVotePerTerm, CandidateSelfVoteSurvivesRestart) {
  Network net;
  net.add(1, bootstrap_state(voters({1, 2, 3})), plain_votes);
  ASSERT_TRUE(net.tick_until_role(1, StateRole::kCandidate));
  Term t = net.raft(1).term();
  EXPECT_EQ(net.storage(1).hard_state.vote, 1u);
  net.restart(1);
  size_t mark = net.sent_mark();
  net.inject(make_vote(2, 1, t, 1, bootstrap_term()));
  auto r = vote_resp_to(net, 1, 2, mark);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->reject);
}

// ---------------------------------------------------------------------------
// Thesis §9.6 pre-vote.

// §9.6: an isolated node keeps timing out but, with pre-vote, never increments its term.
TEST(RaftPreVote, IsolatedNodeDoesNotIncreaseItsTerm) {
  Network net(3);
  ASSERT_TRUE(net.tick_until_leader(1));
  Term t = net.raft(1).term();
  net.isolate(3);
  net.tick_all(100);  // ten election timeouts
  EXPECT_EQ(net.raft(3).term(), t);
  EXPECT_TRUE(net.peer(3).roles_seen.count(StateRole::kPreCandidate)) << "it did time out";
  EXPECT_FALSE(net.peer(3).roles_seen.count(StateRole::kCandidate));
}

// §9.6: when the partitioned node rejoins it neither raises its term nor deposes the leader.
TEST(RaftPreVote, RejoiningNodeDoesNotDeposeLeader) {
  Network net(3);
  ASSERT_TRUE(net.tick_until_leader(1));
  Term t = net.raft(1).term();
  net.isolate(3);
  net.tick_all(100);
  net.heal();
  net.tick_all(50);
  EXPECT_EQ(net.leader(), 1u);
  EXPECT_EQ(net.leaders_by_term().size(), 1u) << "no other election happened";
  for (NodeId id : {1, 2, 3}) {
    EXPECT_EQ(net.raft(id).term(), t) << "node " << id;
    EXPECT_EQ(net.raft(id).leader(), 1u) << "node " << id;
  }
}

// Contrast for §9.6: without pre-vote the isolated node does spend terms (so the test above is meaningful).
TEST(RaftPreVote, WithoutPreVoteIsolatedNodeTermGrows) {
  Network net(3, [](Options& o) { o.pre_vote = false; });
  ASSERT_TRUE(net.tick_until_leader(1));
  Term t = net.raft(1).term();
  net.isolate(3);
  net.tick_all(100);
  EXPECT_GT(net.raft(3).term(), t + 2);
}

// ---------------------------------------------------------------------------
// Thesis §6.2 check-quorum and leases.

// §6.2: a leader that cannot hear from a majority steps down within two election timeouts.
TEST(RaftCheckQuorum, IsolatedLeaderStepsDownWithinTwoElectionTimeouts) {
  Network net(3);
  ASSERT_TRUE(net.tick_until_leader(1));
  net.tick_all(3);
  net.isolate(1);
  int ticks = net.tick_all_until([&] { return net.raft(1).role() != StateRole::kLeader; }, 40);
  ASSERT_GE(ticks, 0) << "still leader after 4 election timeouts";
  EXPECT_LE(ticks, 2 * 10);
  EXPECT_EQ(net.raft(1).leader(), kNoNode);
}

// §6.2: a leader that keeps hearing from a majority never steps down.
TEST(RaftCheckQuorum, LeaderWithMajorityStaysLeader) {
  Network net(5);
  ASSERT_TRUE(net.tick_until_leader(1));
  Term t = net.raft(1).term();
  net.isolate(4);
  net.isolate(5);
  net.tick_all(100);
  EXPECT_EQ(net.leader(), 1u);
  EXPECT_EQ(net.raft(1).term(), t);
}

// §6.2 / thesis §4.2.3: a follower that heard from its leader within the election timeout ignores a disruptive vote request.
TEST(RaftCheckQuorum, FollowerInLeaseIgnoresVoteRequest) {
  Network net(3);
  ASSERT_TRUE(net.tick_until_leader(1));
  Term t = net.raft(1).term();
  size_t mark = net.sent_mark();
  net.inject(make_vote(3, 2, t + 1, net.raft(2).last_index(),
                       net.raft(2).term_at(net.raft(2).last_index())));
  auto r = vote_resp_to(net, 2, 3, mark);
  EXPECT_TRUE(!r.has_value() || r->reject);
  EXPECT_EQ(net.raft(2).term(), t);
  EXPECT_EQ(net.raft(2).leader(), 1u);
  EXPECT_NE(net.raft(2).hard_state().vote, 3u);
}

// §6.2 + §9.6: a follower in its lease does not grant pre-votes either.
TEST(RaftCheckQuorum, FollowerInLeaseRefusesPreVote) {
  Network net(3);
  ASSERT_TRUE(net.tick_until_leader(1));
  Term t = net.raft(1).term();
  size_t mark = net.sent_mark();
  net.inject(make_vote(3, 2, t + 1, net.raft(2).last_index(),
                       net.raft(2).term_at(net.raft(2).last_index()),
                       /*pre_vote=*/true));
  auto r = vote_resp_to(net, 2, 3, mark);
  EXPECT_TRUE(!r.has_value() || r->reject);
  EXPECT_EQ(net.raft(2).term(), t);
}

// Contrast for §6.2: without check-quorum the same vote request is granted (so the lease is what protects).
TEST(RaftCheckQuorum, WithoutCheckQuorumDisruptiveVoteIsGranted) {
  Network net(3, [](Options& o) { o.check_quorum = false; });
  ASSERT_TRUE(net.tick_until_leader(1));
  Term t = net.raft(1).term();
  size_t mark = net.sent_mark();
  net.inject(make_vote(3, 2, t + 1, net.raft(2).last_index(),
                       net.raft(2).term_at(net.raft(2).last_index())));
  auto r = vote_resp_to(net, 2, 3, mark);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->reject);
  EXPECT_EQ(net.raft(2).term(), t + 1);
}

// ---------------------------------------------------------------------------
// Thesis §3.10 leadership transfer.

// Thesis §3.10: the leader sends TimeoutNow to an up-to-date target, which campaigns at once (bypassing leases) and wins the next term.
TEST(RaftLeadershipTransfer, TargetBecomesLeaderViaTimeoutNow) {
  Network net(3);
  elect_1(net);
  Term t = net.raft(1).term();
  size_t mark = net.sent_mark();
  ASSERT_EQ(net.raft(1).transfer_leadership(2), Error::kOk);
  net.deliver_all();
  for (int i = 0; i < 3 && net.raft(2).role() != StateRole::kLeader; ++i) {
    net.tick(1);
    net.deliver_all();
  }
  EXPECT_GE(net.count_sent(of_type(MessageType::kTimeoutNow, 1, 2), mark), 1u);
  EXPECT_EQ(net.raft(2).role(), StateRole::kLeader);
  EXPECT_EQ(net.raft(2).term(), t + 1);
  EXPECT_EQ(net.raft(1).role(), StateRole::kFollower);
  EXPECT_EQ(net.raft(1).leader(), 2u);
  EXPECT_EQ(net.raft(3).leader(), 2u);
}

// Thesis §3.10: while a transfer is under way the leader refuses proposals, so the target can catch up and take over.
TEST(RaftLeadershipTransfer, ProposalsRefusedDuringTransfer) {
  Network net(3);
  elect_1(net);
  net.isolate(2);  // the target cannot answer, so the transfer stays pending
  ASSERT_EQ(net.raft(1).transfer_leadership(2), Error::kOk);
  net.deliver_all();
  EXPECT_EQ(net.raft(1).role(), StateRole::kLeader);
  EXPECT_EQ(net.raft(1).propose("x").error, Error::kTransferInProgress);
  EXPECT_EQ(
      net.raft(1).propose_conf_change(ConfChange{ConfChangeType::kUpdateContext, 3, "c"}).error,
      Error::kTransferInProgress);
}

// Thesis §3.10: a transfer that does not complete within an election timeout is aborted and the leader serves proposals again.
TEST(RaftLeadershipTransfer, StalledTransferIsAbortedAfterElectionTimeout) {
  Network net(3);
  elect_1(net);
  Term t = net.raft(1).term();
  net.isolate(2);
  ASSERT_EQ(net.raft(1).transfer_leadership(2), Error::kOk);
  ASSERT_EQ(net.raft(1).propose("x").error, Error::kTransferInProgress);
  net.tick_all(2 * 10);
  EXPECT_EQ(net.leader(), 1u);
  EXPECT_EQ(net.raft(1).term(), t);
  ProposeResult r = net.raft(1).propose("y");
  EXPECT_TRUE(r.ok()) << to_string(r.error);
}

// Thesis §3.10 step 1: a lagging target is first brought up to date; only then does it get TimeoutNow, and it wins with the full log.
TEST(RaftLeadershipTransfer, LaggingTargetIsCaughtUpBeforeTimeoutNow) {
  Network net(3);
  elect_1(net);
  net.cut(1, 2);
  Index last = 0;
  for (int i = 0; i < 5; ++i) {
    ProposeResult r = net.raft(1).propose("v" + std::to_string(i));
    ASSERT_TRUE(r.ok());
    last = r.index;
    net.deliver_all();
  }
  ASSERT_LT(net.raft(2).last_index(), last);
  net.heal();
  size_t mark = net.sent_mark();
  ASSERT_EQ(net.raft(1).transfer_leadership(2), Error::kOk);
  net.deliver_all();
  for (int i = 0; i < 10 && net.raft(2).role() != StateRole::kLeader; ++i) {
    net.tick(1);
    net.deliver_all();
  }
  ASSERT_EQ(net.raft(2).role(), StateRole::kLeader);
  // Order on the wire: 2 acknowledged the whole log before 1 sent TimeoutNow.
  const auto& sent = net.sent();
  size_t timeout_now = sent.size(), caught_up = sent.size();
  for (size_t i = mark; i < sent.size(); ++i) {
    const Message& m = sent[i];
    if (caught_up == sent.size() && m.type == MessageType::kAppendResp && m.from == 2 &&
        !m.reject && m.index >= last) {
      caught_up = i;
    }
    if (timeout_now == sent.size() && m.type == MessageType::kTimeoutNow && m.to == 2)
      timeout_now = i;
  }
  ASSERT_LT(timeout_now, sent.size()) << "no TimeoutNow";
  ASSERT_LT(caught_up, sent.size()) << "2 never acknowledged the whole log";
  EXPECT_LT(caught_up, timeout_now);
  const auto& log2 = net.raft(2).log_entries();
  for (int i = 0; i < 5; ++i) {
    Index idx = last - 4 + i;
    ASSERT_GE(idx, net.raft(2).first_index());
    EXPECT_EQ(log2.at(idx - net.raft(2).first_index()).data, "v" + std::to_string(i));
  }
}

// raft.h transfer_leadership: only the leader can transfer, and only to a voting member.
TEST(RaftLeadershipTransfer, InvalidTransfersAreRefused) {
  Network net(3);
  elect_1(net);
  EXPECT_EQ(net.raft(2).transfer_leadership(3), Error::kNotLeader);
  EXPECT_NE(net.raft(1).transfer_leadership(9), Error::kOk) << "not a member";
  net.add(4, InitialState{});
  ASSERT_TRUE(net.raft(1).propose_conf_change(ConfChange{ConfChangeType::kAddLearner, 4, ""}).ok());
  net.deliver_all();
  net.tick(1);
  net.deliver_all();
  EXPECT_NE(net.raft(1).transfer_leadership(4), Error::kOk) << "a learner cannot lead";
  EXPECT_EQ(net.raft(1).role(), StateRole::kLeader);
  EXPECT_TRUE(net.raft(1).propose("x").ok()) << "a refused transfer does not pause proposals";
}

}  // namespace
}  // namespace ckv::raft::test
