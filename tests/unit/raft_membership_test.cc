// Raft core unit tests for membership: thesis §4.1-4.2 single-server changes, non-voting learners (§4.2.1), removing the leader (§4.2.2).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "raft_fixture.h"

namespace ckv::raft::test {
namespace {

ConfChange add_learner(NodeId id, std::string context = "") {
  return ConfChange{ConfChangeType::kAddLearner, id, std::move(context)};
}
ConfChange promote(NodeId id) { return ConfChange{ConfChangeType::kPromote, id, ""}; }
ConfChange remove(NodeId id) { return ConfChange{ConfChangeType::kRemove, id, ""}; }

// Ticks the leader (heartbeats) and delivers, n times.
void heartbeat(Network& net, NodeId leader, int n = 3) {
  for (int i = 0; i < n; ++i) {
    net.tick(leader);
    net.deliver_all();
  }
}

// Adds node `id` (empty state, as a joining node starts) as a learner through leader 1 and lets it catch up.
void add_and_catch_up_learner(Network& net, NodeId id, const Network::Tweak& tweak = {}) {
  net.add(id, InitialState{}, tweak);
  ProposeResult r = net.raft(1).propose_conf_change(add_learner(id, "ctx" + std::to_string(id)));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  net.deliver_all();
  heartbeat(net, 1);
  ASSERT_EQ(net.raft(id).last_index(), net.raft(1).last_index());
  ASSERT_TRUE(net.raft(1).membership().is_learner(id));
}

// ---------------------------------------------------------------------------
// Adding learners.

// Thesis §4.1: a configuration takes effect on each server as soon as it is appended to its log, not when committed.
TEST(RaftConfChange, AddLearnerTakesEffectWhenAppended) {
  Network net(3);
  elect_1(net);
  uint64_t version = net.raft(1).membership_version();
  net.add(4, InitialState{});
  ProposeResult r = net.raft(1).propose_conf_change(add_learner(4, "api=10.0.0.4:8000"));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_LT(net.raft(1).commit_index(), r.index);
  EXPECT_TRUE(net.raft(1).membership().is_learner(4)) << "in effect before commit";
  EXPECT_GT(net.raft(1).membership_version(), version);
  ASSERT_EQ(net.raft(1).log_entries().back().type, EntryType::kConfig);
  EXPECT_EQ(decode_membership(net.raft(1).log_entries().back().data),
            std::optional(net.raft(1).membership()));

  net.deliver_all();
  heartbeat(net, 1);
  EXPECT_EQ(net.raft(1).commit_index(), r.index);
  for (NodeId id : {1, 2, 3, 4}) {
    SCOPED_TRACE("node " + std::to_string(id));
    ASSERT_TRUE(net.raft(id).membership().is_learner(4));
    EXPECT_EQ(net.raft(id).membership().find(4)->context, "api=10.0.0.4:8000");
    EXPECT_EQ(net.raft(id).membership().voters(), (std::vector<NodeId>{1, 2, 3}));
    EXPECT_EQ(net.fsm(id).membership, net.raft(1).membership());
  }
  EXPECT_EQ(net.raft(4).leader(), 1u);
  EXPECT_EQ(net.raft(4).commit_index(), r.index);
}

// raft.h learner_caught_up: true once the learner has every committed entry and answered recently.
TEST(RaftConfChange, LearnerCaughtUpAfterReplication) {
  Network net(3);
  elect_1(net);
  net.add(4, InitialState{});
  net.cut(1, 4);
  ASSERT_TRUE(net.raft(1).propose_conf_change(add_learner(4)).ok());
  net.deliver_all();
  EXPECT_FALSE(net.raft(1).learner_caught_up(4));
  net.heal();
  heartbeat(net, 1);
  EXPECT_TRUE(net.raft(1).learner_caught_up(4));
  auto pr = net.raft(1).progress(4);
  ASSERT_TRUE(pr.has_value());
  EXPECT_EQ(pr->match, net.raft(1).last_index());
}

// ---------------------------------------------------------------------------
// §4.1 one change at a time, and the single-server-change bug fix.

// Thesis §4.1: only one configuration change may be uncommitted at a time.
TEST(RaftConfChange, SecondChangeBeforeFirstCommitsIsRefused) {
  Network net(3);
  elect_1(net);
  net.add(4, InitialState{});
  net.add(5, InitialState{});
  ASSERT_TRUE(net.raft(1).propose_conf_change(add_learner(4)).ok());
  ProposeResult second = net.raft(1).propose_conf_change(add_learner(5));
  EXPECT_EQ(second.error, Error::kConfChangeInProgress);
  EXPECT_FALSE(net.raft(1).membership().contains(5));
  net.deliver_all();
  heartbeat(net, 1, 1);
  EXPECT_TRUE(net.raft(1).propose_conf_change(add_learner(5)).ok())
      << "the first one has committed";
}

// Thesis §4.1 (and the raft-dev 2015 single-server bug fix): a new leader accepts no change until it commits an entry of its own term.
TEST(RaftConfChange, NewLeaderRefusesChangeUntilItCommitsEntryOfItsTerm) {
  Network net(3);
  net.drop([](const Message& m) { return m.type == MessageType::kAppend && m.from == 1; });
  ASSERT_TRUE(net.tick_until_leader(1));
  ASSERT_LT(net.raft(1).commit_index(), net.raft(1).last_index()) << "no-op not yet committed";
  net.add(4, InitialState{});
  EXPECT_EQ(net.raft(1).propose_conf_change(add_learner(4)).error, Error::kNotReady);
  EXPECT_FALSE(net.raft(1).membership().contains(4));
  net.clear_drops();
  heartbeat(net, 1);
  ASSERT_EQ(net.raft(1).commit_index(), net.raft(1).last_index());
  EXPECT_TRUE(net.raft(1).propose_conf_change(add_learner(4)).ok());
}

// Thesis §4.1: a server uses the latest configuration in its log even if uncommitted; when that entry is truncated it reverts.
TEST(RaftConfChange, UncommittedChangeIsRolledBackWhenTruncated) {
  Network net(3);
  elect_1(net);
  net.add(4, InitialState{});
  net.isolate(1);
  ProposeResult r = net.raft(1).propose_conf_change(add_learner(4));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  ASSERT_TRUE(net.raft(1).membership().contains(4));
  uint64_t version = net.raft(1).membership_version();
  // 2 and 3 elect a leader that never saw the change and commits its own entry at that index.
  ASSERT_GE(net.tick_all_until(
                [&] {
                  NodeId l = net.leader();
                  return l == 2 || l == 3;
                },
                300),
            0);
  NodeId l = net.leader();
  net.tick_all(2);
  ASSERT_GE(net.raft(l).commit_index(), r.index);
  ASSERT_NE(net.raft(l).term_at(r.index), r.term);
  net.heal();
  ASSERT_TRUE(net.tick_node_until(
      l, [&] { return net.raft(1).term_at(r.index) == net.raft(l).term_at(r.index); }, 30));
  EXPECT_FALSE(net.raft(1).membership().contains(4))
      << "the truncated change must no longer be in effect";
  EXPECT_EQ(net.raft(1).membership(), voters({1, 2, 3}));
  EXPECT_GT(net.raft(1).membership_version(), version);
}

// raft.h Error values: each invalid single-server change is refused with its own error and changes nothing.
TEST(RaftConfChange, InvalidChangesAreRefused) {
  Network net(3);
  elect_1(net);
  Raft& l = net.raft(1);
  uint64_t version = l.membership_version();
  Index last = l.last_index();
  EXPECT_EQ(l.propose_conf_change(add_learner(2)).error, Error::kAlreadyMember);
  EXPECT_EQ(l.propose_conf_change(remove(9)).error, Error::kNotMember);
  EXPECT_EQ(l.propose_conf_change(promote(2)).error, Error::kNotLearner)
      << "promote requires a learner";
  EXPECT_FALSE(l.propose_conf_change(promote(9)).ok()) << "a stranger cannot be promoted";
  EXPECT_EQ(l.propose_conf_change(add_learner(kNoNode)).error, Error::kInvalid);
  EXPECT_EQ(l.propose_conf_change(ConfChange{ConfChangeType::kUpdateContext, 9, "x"}).error,
            Error::kNotMember);
  EXPECT_EQ(l.membership_version(), version);
  EXPECT_EQ(l.last_index(), last);
}

// raft.h Error::kInvalid: the last voter cannot be removed (no one could ever commit again).
TEST(RaftConfChange, RemovingTheLastVoterIsRefused) {
  Network net(1);
  ASSERT_TRUE(net.tick_until_leader(1));
  net.deliver_all();
  EXPECT_EQ(net.raft(1).propose_conf_change(remove(1)).error, Error::kInvalid);
}

// kUpdateContext: a member's context (its API address) is replaced everywhere through the log.
TEST(RaftConfChange, UpdateContextReplicatesToAll) {
  Network net(3);
  elect_1(net);
  ProposeResult r =
      net.raft(1).propose_conf_change(ConfChange{ConfChangeType::kUpdateContext, 2, "api=2"});
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  net.deliver_all();
  heartbeat(net, 1, 1);
  for (NodeId id : {1, 2, 3}) {
    ASSERT_NE(net.raft(id).membership().find(2), nullptr);
    EXPECT_EQ(net.raft(id).membership().find(2)->context, "api=2") << "node " << id;
    EXPECT_TRUE(net.raft(id).membership().is_voter(2));
  }
}

// Thesis §4.1: the latest configuration is recovered from the log after a restart.
TEST(RaftConfChange, MembershipSurvivesRestart) {
  Network net(3);
  elect_1(net);
  add_and_catch_up_learner(net, 4);
  Membership m = net.raft(2).membership();
  net.restart(2);
  EXPECT_EQ(net.raft(2).membership(), m);
  net.restart(4);
  EXPECT_EQ(net.raft(4).membership(), m);
}

// ---------------------------------------------------------------------------
// Learners (thesis §4.2.1): they receive the log but never vote and never count.

// Learners never count toward commit: voters {1,2} + learner 3; with voter 2 unreachable nothing commits even though the learner acknowledges.
TEST(RaftLearner, NeverCountsTowardCommit) {
  Network net(2);
  elect_1(net);
  add_and_catch_up_learner(net, 3);
  net.cut(1, 2);
  size_t mark = net.sent_mark();
  ProposeResult r = net.raft(1).propose("x");
  ASSERT_TRUE(r.ok());
  net.deliver_all();
  auto ack = net.last_sent(of_type(MessageType::kAppendResp, 3, 1), mark);
  ASSERT_TRUE(ack.has_value());
  EXPECT_FALSE(ack->reject);
  EXPECT_EQ(ack->index, r.index) << "the learner stores x";
  EXPECT_LT(net.raft(1).commit_index(), r.index)
      << "a learner's acknowledgement counted toward commit";
  net.heal();
  EXPECT_TRUE(net.tick_node_until(
      1, [&] { return net.raft(1).commit_index() == r.index; }, 30));
}

// Learners never vote: a candidate does not count a learner's grant (the learner may answer, as in etcd, since
// it could be a voter in a configuration the candidate already has; what matters is that its vote never counts).
TEST(RaftLearner, LearnerVoteIsNotCounted) {
  Membership m = voters({1, 2, 3});
  m.members.push_back(Member{4, MemberRole::kLearner, ""});
  m.members.push_back(Member{5, MemberRole::kLearner, ""});
  Network net;
  net.add(1, bootstrap_state(m), [](Options& o) {
    o.pre_vote = false;
    o.check_quorum = false;
  });
  ASSERT_TRUE(net.tick_until_role(1, StateRole::kCandidate));
  Term t = net.raft(1).term();
  net.inject(make_vote_resp(4, 1, t));
  net.inject(make_vote_resp(5, 1, t));
  EXPECT_EQ(net.raft(1).role(), StateRole::kCandidate)
      << "1 + two learners is not a majority of {1,2,3}";
  net.inject(make_vote_resp(2, 1, t));
  EXPECT_EQ(net.raft(1).role(), StateRole::kLeader);
}

// Learners never campaign: an isolated learner never becomes a (pre-)candidate.
TEST(RaftLearner, NeverCampaigns) {
  Network net(3);
  elect_1(net);
  add_and_catch_up_learner(net, 4);
  Term t = net.raft(4).term();
  net.isolate(4);
  net.tick_all(100);
  EXPECT_EQ(net.peer(4).roles_seen, std::set<StateRole>{StateRole::kFollower});
  EXPECT_EQ(net.raft(4).term(), t);
}

// Learners never vote, end to end: voters {1,2} + learner 3; with voter 1 down, 2 cannot be elected with the learner's help.
TEST(RaftLearner, LearnerVoteCannotElectALeader) {
  Network net(2);
  elect_1(net);
  add_and_catch_up_learner(net, 3);
  net.stop(1);
  net.tick_all(200);
  EXPECT_EQ(net.leader(), kNoNode);
  EXPECT_EQ(net.count_sent([](const Message& m) {
    return m.from == 3 && !m.reject &&
           (m.type == MessageType::kVoteResp || m.type == MessageType::kPreVoteResp);
  }),
            0u);
}

// ---------------------------------------------------------------------------
// Promotion.

// kPromote turns a caught-up learner into a voter, which then counts: voters {1,2,3,4} commit with 3 isolated only if 4 counts.
TEST(RaftPromote, PromotedLearnerVotesAndCounts) {
  Network net(3);
  elect_1(net);
  add_and_catch_up_learner(net, 4);
  ASSERT_TRUE(net.raft(1).learner_caught_up(4));
  ProposeResult r = net.raft(1).propose_conf_change(promote(4));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_TRUE(net.raft(1).membership().is_voter(4));
  net.deliver_all();
  heartbeat(net, 1);
  ASSERT_EQ(net.raft(1).commit_index(), r.index);
  EXPECT_TRUE(net.raft(4).membership().is_voter(4));
  EXPECT_EQ(net.raft(1).membership().voters(), (std::vector<NodeId>{1, 2, 3, 4}));

  net.isolate(3);
  ProposeResult x = net.raft(1).propose("x");
  ASSERT_TRUE(x.ok());
  net.deliver_all();
  EXPECT_EQ(net.raft(1).commit_index(), x.index) << "1, 2 and 4 are 3 of 4 voters";
  net.isolate(2);
  ProposeResult y = net.raft(1).propose("y");
  ASSERT_TRUE(y.ok());
  net.deliver_all();
  EXPECT_LT(net.raft(1).commit_index(), y.index) << "1 and 4 are only 2 of 4 voters";
}

// ---------------------------------------------------------------------------
// Removal (thesis §4.2.2).

// Removing a follower: the rest commit without it, and it does not disrupt them afterwards.
TEST(RaftRemove, RemovedFollowerNoLongerCountsOrDisrupts) {
  Network net(3);
  elect_1(net);
  Term t = net.raft(1).term();
  ProposeResult r = net.raft(1).propose_conf_change(remove(3));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  net.deliver_all();
  heartbeat(net, 1);
  ASSERT_EQ(net.raft(1).commit_index(), r.index);
  EXPECT_EQ(net.raft(1).membership().voters(), (std::vector<NodeId>{1, 2}));
  net.tick_all(100);
  EXPECT_EQ(net.leader(), 1u);
  EXPECT_EQ(net.raft(1).term(), t);
  ProposeResult x = net.raft(1).propose("x");
  ASSERT_TRUE(x.ok());
  net.deliver_all();
  EXPECT_EQ(net.raft(1).commit_index(), x.index);
}

// Thesis §4.2.2: a leader removed from the configuration keeps leading until the change commits, then steps down.
TEST(RaftRemove, RemovedLeaderStepsDownAfterChangeCommits) {
  Network net(3);
  elect_1(net);
  Term t = net.raft(1).term();
  ProposeResult r = net.raft(1).propose_conf_change(remove(1));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_EQ(net.raft(1).role(), StateRole::kLeader) << "must replicate C_new before stepping down";
  EXPECT_FALSE(net.raft(1).membership().contains(1));

  net.deliver_all();
  EXPECT_GE(net.raft(2).log_entries().back().index, r.index);
  EXPECT_NE(net.raft(1).role(), StateRole::kLeader) << "C_new committed";
  EXPECT_GE(net.raft(1).commit_index(), r.index);

  // The remaining voters elect a leader among themselves; the old leader stays out.
  ASSERT_GE(net.tick_all_until([&] { return net.leader() != kNoNode; }, 300), 0);
  NodeId l = net.leader();
  EXPECT_TRUE(l == 2 || l == 3) << l;
  EXPECT_GT(net.raft(l).term(), t);
  ProposeResult x = net.raft(l).propose("x");
  ASSERT_TRUE(x.ok());
  net.deliver_all();
  EXPECT_EQ(net.raft(l).commit_index(), x.index);
}

// Thesis §4.2.2: while C_new (without the leader) is uncommitted, the leader does not count itself toward commit.
TEST(RaftRemove, RemovedLeaderDoesNotCountItselfForNewConfig) {
  Network net(3);
  elect_1(net);
  net.cut(1, 3);
  ProposeResult r = net.raft(1).propose_conf_change(remove(1));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  net.deliver_all();
  EXPECT_LT(net.raft(1).commit_index(), r.index) << "C_new = {2,3} needs both 2 and 3";
  EXPECT_EQ(net.raft(1).role(), StateRole::kLeader);
  net.heal();
  EXPECT_TRUE(net.tick_node_until(
      1, [&] { return net.raft(2).commit_index() >= r.index; }, 30));
  EXPECT_NE(net.raft(1).role(), StateRole::kLeader);
}

// Thesis §4.2.2: a server outside its latest configuration still starts
// elections while that configuration is uncommitted, "as it might still be
// needed". Here the leader of {1, 2} removes itself and crashes before 2
// hears of it: 2 (still in {1, 2}) needs 1's vote, which 1 refuses because
// 2's log lacks the change; if 1 never campaigned, neither could ever lead
// (swarm seed 2000, 5 nodes).
TEST(RaftRemove, LeaderThatRemovedItselfAndCrashedStillFinishesTheChange) {
  Network net(2);
  elect_1(net);
  net.drop(of_type(MessageType::kAppend, 1, 2));
  ProposeResult r = net.raft(1).propose_conf_change(remove(1));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  net.deliver_all();
  EXPECT_LT(net.raft(2).last_index(), r.index);
  net.restart(1);
  net.clear_drops();
  ASSERT_GE(net.tick_all_until(
                [&] { return net.raft(2).role() == StateRole::kLeader && net.raft(2).commit_index() >= r.index; },
                1000),
            0)
      << "no leader ever finished removing node 1";
  EXPECT_FALSE(net.raft(2).membership().contains(1));
  EXPECT_NE(net.raft(1).role(), StateRole::kLeader);
}

// Thesis §6.2 check-quorum applies to a leader that is not a voter too (it
// is removing itself, or was elected while its removal was uncommitted):
// cut off, it must step down rather than lead, unable to commit, forever.
TEST(RaftRemove, IsolatedLeaderThatIsNotAVoterStepsDown) {
  Network net(3);
  elect_1(net);
  net.drop(of_type(MessageType::kAppend, 1, kNoNode));
  ProposeResult r = net.raft(1).propose_conf_change(remove(1));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  net.deliver_all();
  net.isolate(1);
  EXPECT_TRUE(net.tick_node_until(1, [&] { return net.raft(1).role() != StateRole::kLeader; }, 100));
}

// Thesis §4.2.3: a removed server never hears of its removal (C_new excludes it) and times out; even without
// pre-vote its higher-term vote requests cannot depose the leader, because voters within their lease ignore them.
TEST(RaftRemove, RemovedServerCannotDisruptEvenWithoutPreVote) {
  Network net(3, [](Options& o) { o.pre_vote = false; });
  elect_1(net);
  Term t = net.raft(1).term();
  ProposeResult r = net.raft(1).propose_conf_change(remove(3));
  ASSERT_TRUE(r.ok());
  net.deliver_all();
  heartbeat(net, 1);
  ASSERT_EQ(net.raft(1).commit_index(), r.index);
  net.tick_all(200);
  EXPECT_EQ(net.leader(), 1u);
  EXPECT_EQ(net.raft(1).term(), t);
  EXPECT_EQ(net.raft(2).term(), t);
  ProposeResult x = net.raft(1).propose("x");
  ASSERT_TRUE(x.ok());
  net.deliver_all();
  EXPECT_EQ(net.raft(1).commit_index(), x.index);
}

}  // namespace
}  // namespace ckv::raft::test
