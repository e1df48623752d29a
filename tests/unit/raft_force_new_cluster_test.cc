// -force-new-cluster's log (raft/force_new_cluster.h): the whole log committed, one logged one-voter configuration, and a core that leads alone from it.
#include "raft/force_new_cluster.h"

#include <gtest/gtest.h>

namespace ckv::raft {
namespace {

Membership three() {
  return Membership{{{1, MemberRole::kVoter, "one"}, {2, MemberRole::kVoter, "two"}, {3, MemberRole::kVoter, "three"}}};
}

// A follower's log: the configuration at 1, commands up to 6 of which 4 are known committed.
InitialState survivor_log() {
  InitialState s;
  s.entries.push_back(Entry{1, 1, EntryType::kConfig, encode_membership(three())});
  for (Index i = 2; i <= 6; ++i) s.entries.push_back(Entry{i < 5 ? 1u : 3u, i, EntryType::kNormal, "cmd" + std::to_string(i)});
  s.hard_state = HardState{4, 1, 4};
  return s;
}

TEST(ForceNewCluster, CommitsTheWholeLogAndAppendsAOneVoterConfiguration) {
  const ForcedCluster f = force_new_cluster_state(survivor_log(), 2, "ignored: two is recorded");
  ASSERT_EQ(f.appended.size(), 1u);
  const Entry& reset = f.appended.front();
  EXPECT_EQ(reset.index, 7u);
  EXPECT_EQ(reset.term, 4u);  // the hard state's term: above the last entry's, never back
  EXPECT_EQ(reset.type, EntryType::kConfig);
  auto m = decode_membership(reset.data);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, (Membership{{{2, MemberRole::kVoter, "two"}}}));  // its recorded context is kept
  EXPECT_EQ(f.membership, *m);
  EXPECT_EQ(f.previous_commit, 4u);
  EXPECT_EQ(f.state.hard_state, (HardState{4, 1, 7}));
  EXPECT_EQ(f.state.entries.size(), 7u);
  EXPECT_EQ(f.state.entries.back(), reset);
}

TEST(ForceNewCluster, AMemberMissingFromItsConfigurationUsesTheGivenContext) {
  InitialState s = survivor_log();
  s.entries.push_back(Entry{4, 7, EntryType::kConfig,
                            encode_membership(Membership{{{1, MemberRole::kVoter, "one"}, {3, MemberRole::kVoter, "x"}}})});
  const ForcedCluster f = force_new_cluster_state(s, 2, "me");
  EXPECT_EQ(f.membership, (Membership{{{2, MemberRole::kVoter, "me"}}}));
  EXPECT_EQ(f.appended.front().index, 8u);
}

TEST(ForceNewCluster, AfterASnapshotTheEntryFollowsIt) {
  InitialState s;
  s.snapshot = SnapshotMeta{100, 6, three(), 10};
  s.hard_state = HardState{6, 0, 100};
  const ForcedCluster f = force_new_cluster_state(s, 3, "");
  EXPECT_EQ(f.appended.front().index, 101u);
  EXPECT_EQ(f.appended.front().term, 6u);
  EXPECT_EQ(f.state.hard_state.commit, 101u);
  EXPECT_EQ(f.membership, (Membership{{{3, MemberRole::kVoter, "three"}}}));
}

TEST(ForceNewCluster, TheCoreLeadsAloneAndAppliesEveryEntryOfTheOldLog) {
  const ForcedCluster f = force_new_cluster_state(survivor_log(), 2, "");
  Options o;
  o.id = 2;
  o.election_ticks = 10;
  Raft r(o, f.state);
  EXPECT_EQ(r.membership(), f.membership);
  EXPECT_EQ(r.commit_index(), 7u);
  std::vector<Index> applied;
  for (int t = 0; t < 40 && r.role() != StateRole::kLeader; ++t) {
    r.tick();
    while (r.has_ready()) {
      Ready rd = r.ready();
      for (const Entry& e : rd.committed_entries) applied.push_back(e.index);
      r.advance(rd);
    }
  }
  ASSERT_EQ(r.role(), StateRole::kLeader);  // no other voter to ask
  while (r.has_ready()) {
    Ready rd = r.ready();
    for (const Entry& e : rd.committed_entries) applied.push_back(e.index);
    r.advance(rd);
  }
  ASSERT_GE(applied.size(), 7u);
  for (Index i = 1; i <= 7; ++i) EXPECT_EQ(applied[i - 1], i);  // the uncommitted tail (5, 6) included
  EXPECT_TRUE(r.propose("after").ok());
}

}  // namespace
}  // namespace ckv::raft
