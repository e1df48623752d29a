// Raft core unit tests for proposals forwarded by followers (thesis §6.2; raft.h forward_proposal): append, refusals, budgets, leader changes.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "raft/message_checks.h"
#include "raft_fixture.h"

namespace ckv::raft::test {
namespace {

size_t times_applied(Network& net, NodeId id, const std::string& command) {
  const auto& c = net.fsm(id).commands;
  return static_cast<size_t>(std::count(c.begin(), c.end(), command));
}

Message forwarded(NodeId from, NodeId to, Term term, uint64_t id, std::string data, uint64_t epoch = 7) {
  Message m;
  m.type = MessageType::kProp;
  m.from = from;
  m.to = to;
  m.term = term;
  m.log_index = epoch;
  m.context = id;
  m.entries.push_back(Entry{0, 0, EntryType::kNormal, std::move(data)});
  return m;
}

// Thesis §6.2: a client may talk to any server; a follower passes the
// command to the leader, which appends it in its own term like its own
// proposal, and every node applies it once.
TEST(RaftForward, FollowerProposalReachesTheLeaderAndIsAppendedAsItsOwn) {
  Network net(3);
  elect_1(net);
  const Index before = net.raft(1).last_index();
  const size_t mark = net.sent_mark();
  const ProposeResult r = net.raft(2).forward_proposal("x");
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_NE(r.forward_id, 0u);
  EXPECT_EQ(r.index, 0u) << "a follower cannot know where the leader appends";
  net.flush(2);
  ASSERT_EQ(net.count_sent(of_type(MessageType::kProp, 2, 1), mark), 1u);
  net.deliver_all();
  net.tick(1);
  net.deliver_all();
  EXPECT_EQ(net.raft(1).last_index(), before + 1);
  EXPECT_EQ(net.raft(1).term_at(before + 1), net.raft(1).term()) << "appended in the leader's term";
  for (NodeId id : {1, 2, 3}) {
    SCOPED_TRACE("node " + std::to_string(id));
    EXPECT_EQ(times_applied(net, id, "x"), 1u);
    EXPECT_TRUE(net.peer(id).refused_forwards.empty());
  }
}

// A forwarded proposal does not wait for the follower's own persist: it
// claims nothing about the follower's log (raft.h, Ready::early_messages).
TEST(RaftForward, ForwardedProposalIsAnEarlyMessage) {
  Network net(3);
  elect_1(net);
  ASSERT_TRUE(net.raft(2).forward_proposal("x").ok());
  Ready rd = net.raft(2).ready();
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kProp);
  EXPECT_EQ(rd.early_messages, 1u);
  net.handle_ready(2, rd);
  net.deliver_all();
}

// raft.h: with no known leader the proposal fails at once (nothing is sent),
// so the caller answers its client without waiting for a timeout.
TEST(RaftForward, NoKnownLeaderRefusesAtOnce) {
  Network net(3);
  const size_t mark = net.sent_mark();
  EXPECT_EQ(net.raft(2).forward_proposal("x").error, Error::kNotLeader);
  net.flush(2);
  EXPECT_EQ(net.count_sent(of_type(MessageType::kProp), mark), 0u);
  // A candidate knows no leader either.
  ASSERT_TRUE(net.tick_until_role(3, StateRole::kPreCandidate));
  EXPECT_EQ(net.raft(3).forward_proposal("x").error, Error::kNotLeader);
  EXPECT_EQ(net.raft(2).forward_proposal("").error, Error::kInvalid) << "only a leader appends a no-op";
}

// On the leader itself forward_proposal is propose: appended here, with its index.
TEST(RaftForward, LeaderAppendsItsOwnForwardProposal) {
  Network net(3);
  elect_1(net);
  const ProposeResult r = net.raft(1).forward_proposal("y");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.forward_id, 0u);
  EXPECT_EQ(r.index, net.raft(1).last_index());
  net.deliver_all();
}

// One hop: a node that is not the leader refuses a forwarded proposal rather
// than passing it on, and the proposer learns the refusal (never applied).
TEST(RaftForward, NonLeaderRefusesAndTheProposerLearnsIt) {
  Network net(3);
  elect_1(net);
  const ProposeResult r = net.raft(3).forward_proposal("x");
  ASSERT_TRUE(r.ok());
  net.flush(3);
  std::vector<Message> q = net.take_queue();
  ASSERT_EQ(q.size(), 1u);
  q[0].to = 2;  // as if node 3 still thought node 2 led
  EXPECT_EQ(net.inject(q[0]), nullptr);
  net.deliver_all();
  ASSERT_EQ(net.peer(3).refused_forwards.size(), 1u);
  EXPECT_EQ(net.peer(3).refused_forwards[0].forward_id, r.forward_id);
  EXPECT_EQ(net.peer(3).refused_forwards[0].error, Error::kNotLeader);
  EXPECT_EQ(net.count_sent(of_type(MessageType::kProp, 2, kNoNode)), 0u) << "forwarded a second hop";
  net.tick_all(3);
  for (NodeId id : {1, 2, 3}) EXPECT_EQ(times_applied(net, id, "x"), 0u) << "node " << id;
}

// A removed (or never added) node cannot inject entries: dropped, no answer.
TEST(RaftForward, ProposalFromANonMemberIsDroppedWithAReason) {
  Network net(3);
  elect_1(net);
  const Index last = net.raft(1).last_index();
  const size_t mark = net.sent_mark();
  EXPECT_STREQ(net.inject(forwarded(9, 1, net.raft(1).term(), 1, "evil")), "forwarded proposal from a non-member");
  EXPECT_EQ(net.raft(1).last_index(), last);
  EXPECT_EQ(net.count_sent(of_type(MessageType::kPropResp), mark), 0u);
}

// Forwarded proposals stand outside the term rules: one sent in another
// term neither deposes the leader nor moves its term; it is dropped
// unanswered (it may be a late copy of one appended in that term, so "not
// applied" could be a lie): the proposer times out, outcome unknown.
TEST(RaftForward, ForwardedProposalOfAnotherTermMovesNothingAndIsDropped) {
  Network net(3);
  elect_1(net);
  const Term t = net.raft(1).term();
  const Index last = net.raft(1).last_index();
  const size_t mark = net.sent_mark();
  EXPECT_EQ(net.inject(forwarded(2, 1, t + 5, 1, "later")), nullptr);
  EXPECT_EQ(net.raft(1).role(), StateRole::kLeader);
  EXPECT_EQ(net.raft(1).term(), t);
  EXPECT_EQ(net.inject(forwarded(3, 1, t - 1, 1, "older")), nullptr);
  EXPECT_EQ(net.raft(1).last_index(), last);
  EXPECT_EQ(net.count_sent(of_type(MessageType::kPropResp), mark), 0u);
  EXPECT_EQ(net.inject(forwarded(3, 1, t, 2, "now")), nullptr);
  EXPECT_EQ(net.raft(1).last_index(), last + 1);
  net.deliver_all();
}

// The network may duplicate a kProp (Raft tolerates duplicates of every
// other message): the leader appends it once, and does not answer the copy.
TEST(RaftForward, DuplicatedForwardIsAppendedOnce) {
  Network net(3);
  elect_1(net);
  const Term t = net.raft(1).term();
  const Index last = net.raft(1).last_index();
  const Message m = forwarded(2, 1, t, 5, "dup");
  EXPECT_EQ(net.inject(m), nullptr);
  EXPECT_EQ(net.inject(m), nullptr);
  EXPECT_EQ(net.raft(1).last_index(), last + 1);
  // Another incarnation of node 2 (another epoch) starts its ids again: not a duplicate.
  EXPECT_EQ(net.inject(forwarded(2, 1, t, 5, "other incarnation", 8)), nullptr);
  EXPECT_EQ(net.raft(1).last_index(), last + 2);
  // Ids older than the window cannot be told from copies: dropped too.
  EXPECT_EQ(net.inject(forwarded(2, 1, t, 5 + 5000, "far ahead")), nullptr);
  EXPECT_EQ(net.inject(forwarded(2, 1, t, 6, "too old to tell")), nullptr);
  EXPECT_EQ(net.raft(1).last_index(), last + 3);
  net.deliver_all();
  net.tick(1);
  net.deliver_all();
  EXPECT_EQ(times_applied(net, 3, "dup"), 1u);
  EXPECT_EQ(times_applied(net, 3, "too old to tell"), 0u);
}

// A node refuses as a non-leader only for its own term, and only if it never
// led it; a former leader of the term drops the copy instead (it may have
// appended the original, so "not applied" could be false).
TEST(RaftForward, FormerLeaderOfTheTermDropsRatherThanRefuses) {
  Network net(3);
  elect_1(net);
  const Term t = net.raft(1).term();
  net.isolate(1);
  ASSERT_TRUE(net.tick_until_role(1, StateRole::kFollower, 100));  // check-quorum: steps down, still in term t
  ASSERT_EQ(net.raft(1).term(), t);
  const size_t mark = net.sent_mark();
  EXPECT_EQ(net.raft(1).step(forwarded(2, 1, t, 9, "late copy")), nullptr);
  net.flush(1);
  EXPECT_EQ(net.count_sent(of_type(MessageType::kPropResp), mark), 0u);
}

// Options::max_forwarded_entries_per_peer: one follower's uncommitted
// forwards are bounded; beyond the bound they are refused (kOverloaded),
// another follower's are not, and committing frees the budget.
TEST(RaftForward, PerFollowerBudgetRefusesBeyondItAndCommitFreesIt) {
  Network net(3, [](Options& o) { o.max_forwarded_entries_per_peer = 2; });
  elect_1(net);
  const Term t = net.raft(1).term();
  net.cut(1, 2);
  net.cut(1, 3);  // nothing commits meanwhile
  const size_t mark = net.sent_mark();
  for (uint64_t id = 1; id <= 3; ++id) EXPECT_EQ(net.inject(forwarded(2, 1, t, id, "p" + std::to_string(id))), nullptr);
  EXPECT_EQ(net.inject(forwarded(3, 1, t, 1, "q1")), nullptr);
  const auto refusals = net.sent_matching(of_type(MessageType::kPropResp, 1, kNoNode), mark);
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0].to, 2u);
  EXPECT_EQ(refusals[0].context, 3u);
  EXPECT_EQ(refusals[0].index, static_cast<uint64_t>(Error::kOverloaded));
  net.heal();
  ASSERT_GE(net.tick_all_until([&] { return times_applied(net, 2, "q1") == 1; }), 0);
  const size_t mark2 = net.sent_mark();
  EXPECT_EQ(net.inject(forwarded(2, 1, t, 4, "p4")), nullptr);
  EXPECT_EQ(net.count_sent(of_type(MessageType::kPropResp, 1, kNoNode), mark2), 0u);
  for (const char* c : {"p1", "p2", "p4"}) {
    ASSERT_GE(net.tick_all_until([&] { return times_applied(net, 3, c) == 1; }), 0) << c;
  }
  EXPECT_EQ(times_applied(net, 3, "p3"), 0u);
}

// raft.h set_writes_refused: a leader whose disk is full refuses forwarded
// writes (kNoSpace) instead of appending what it cannot persist; the
// follower answers its client 507 / "database space exceeded", not applied.
TEST(RaftForward, LeaderThatRefusesWritesRefusesForwardsWithNoSpace) {
  Network net(3);
  elect_1(net);
  const Index last = net.raft(1).last_index();
  net.raft(1).set_writes_refused(true);
  const ProposeResult r = net.raft(2).forward_proposal("x");
  ASSERT_TRUE(r.ok());
  net.deliver_all();
  EXPECT_EQ(net.raft(1).last_index(), last);
  ASSERT_EQ(net.peer(2).refused_forwards.size(), 1u);
  EXPECT_EQ(net.peer(2).refused_forwards[0].forward_id, r.forward_id);
  EXPECT_EQ(net.peer(2).refused_forwards[0].error, Error::kNoSpace);
  net.raft(1).set_writes_refused(false);
  ASSERT_TRUE(net.raft(2).forward_proposal("y").ok());
  net.deliver_all();
  EXPECT_EQ(net.raft(1).last_index(), last + 1);
}

// A refusal is only believed for a proposal this node forwarded.
TEST(RaftForward, RefusalOfAProposalNeverForwardedIsDropped) {
  Network net(3);
  elect_1(net);
  Message m;
  m.type = MessageType::kPropResp;
  m.from = 1;
  m.to = 2;
  m.term = net.raft(1).term();
  m.context = 1;
  m.reject = true;
  m.index = static_cast<uint64_t>(Error::kNotLeader);
  EXPECT_STREQ(net.inject(m), "refusal of a proposal this node never forwarded");
  EXPECT_TRUE(net.peer(2).refused_forwards.empty());
}

// Thesis §3.6 / Figure 3.7: an entry a deposed leader appended but did not
// commit is either committed by a later leader that holds it, or truncated;
// nothing re-sends a forwarded proposal, so it is applied at most once.
TEST(RaftForward, DeposedLeadersForwardedProposalIsNeverAppliedTwice) {
  for (bool reached_node_2 : {false, true}) {
    SCOPED_TRACE(reached_node_2 ? "the entry reached node 2 before the leader was cut off" : "it reached no one");
    Network net(3);
    elect_1(net);
    const Term t = net.raft(1).term();
    // Node 3 forwards; the leader appends and replicates to node 2 at most.
    ASSERT_TRUE(net.raft(3).forward_proposal("once").ok());
    net.flush(3);
    for (Message& m : net.take_queue()) net.inject(m);
    ASSERT_EQ(net.raft(1).term_at(net.raft(1).last_index()), t);
    net.isolate(1);
    if (reached_node_2) {
      for (Message& m : net.take_queue()) {
        if (m.to == 2) net.raft(2).step(m);
      }
      net.flush(2);
      net.take_queue();  // node 2's ack is lost: the old leader never commits
    }
    net.take_queue();
    ASSERT_GE(net.tick_all_until([&] {
      const NodeId l = net.leader();
      return l != kNoNode && l != 1 && net.raft(l).term() > t;
    }),
              0);
    net.heal();
    ASSERT_GE(net.tick_all_until([&] {
      return net.raft(1).role() == StateRole::kFollower && net.raft(1).commit_index() == net.raft(2).commit_index() &&
             net.raft(1).applied_index() == net.raft(1).commit_index() &&
             net.raft(3).applied_index() == net.raft(2).commit_index();
    }),
              0);
    net.tick_all(5);
    const size_t expected = reached_node_2 && net.leader() == 2 ? 1u : 0u;
    for (NodeId id : {1, 2, 3}) {
      SCOPED_TRACE("node " + std::to_string(id));
      EXPECT_LE(times_applied(net, id, "once"), 1u);
      if (net.leader() == 2 || !reached_node_2) {
        EXPECT_EQ(times_applied(net, id, "once"), expected);
      }
      EXPECT_EQ(net.fsm(id).commands, net.fsm(2).commands);
    }
  }
}

}  // namespace
}  // namespace ckv::raft::test
