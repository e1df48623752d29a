// Quorum-loss recovery (-force-new-cluster): the log a surviving member restarts from as the only voter. Pure.
//
// When a majority is lost for good no leader can ever be elected, so no
// entry can commit. The operator restarts one survivor with
// -force-new-cluster; before its core starts, the node passes what its
// storage holds through force_new_cluster_state() and persists the result:
//   - every entry in the survivor's log is kept and becomes committed,
//     the uncommitted tail included (etcd's --force-new-cluster does the
//     same). An acknowledged write was committed on a majority, so it is in
//     this log only if the survivor was part of that majority: pick the
//     survivor with the highest last index (docs/operations.md). Dropping the
//     tail instead could drop writes the others had committed and
//     acknowledged before this member learnt the commit index; keeping it
//     can at most apply a write whose client was told "outcome unknown".
//   - one configuration entry is appended after the last entry, holding
//     this member alone as a voter, and is committed too. The membership
//     reset is thus in the log (thesis §4.1: a configuration takes effect
//     from its entry), so every later reader of the log (a restart, a
//     follower that joins and replays it, a snapshot taken after it) agrees
//     on it; nothing is changed in place.
// Its term is the survivor's current term (or its last entry's, if higher):
// terms never go back, and the members that could have written another
// entry at that index in that term are gone for good. Used on a live
// cluster, this forks it: the operator's manual says so.
#pragma once

#include <string>
#include <vector>

#include "raft/raft.h"

namespace ckv::raft {

struct ForcedCluster {
  InitialState state;          // what the core starts from
  std::vector<Entry> appended;  // the configuration entry: persist it (with state.hard_state) first
  Membership membership;        // this member alone, as a voter
  Index previous_commit = 0;    // commit index before (entries after it were uncommitted)
};

// The latest configuration in a stored log, committed or not (thesis §4.1):
// its last configuration entry, else the snapshot's.
Membership latest_membership(const InitialState& stored);

// self_context: this member's context if the latest configuration lacks it
// (a member whose own addition never reached it); else its recorded one is kept.
ForcedCluster force_new_cluster_state(const InitialState& stored, NodeId self, const std::string& self_context);

}  // namespace ckv::raft
