// force_new_cluster_state: the survivor's log with a committed one-voter configuration appended (see force_new_cluster.h).
#include "raft/force_new_cluster.h"

#include <algorithm>
#include <ranges>

namespace ckv::raft {

Membership latest_membership(const InitialState& stored) {
  for (const Entry& e : std::views::reverse(stored.entries)) {
    if (e.type != EntryType::kConfig) continue;
    if (auto m = decode_membership(e.data)) return std::move(*m);
    break;
  }
  return stored.snapshot.membership;
}

ForcedCluster force_new_cluster_state(const InitialState& stored, NodeId self, const std::string& self_context) {
  ForcedCluster out;
  out.state = stored;
  out.previous_commit = std::max(stored.hard_state.commit, stored.snapshot.index);
  const Membership latest = latest_membership(stored);
  Member me{self, MemberRole::kVoter, self_context};
  if (const Member* recorded = latest.find(self)) me.context = recorded->context;
  out.membership.members.push_back(me);

  const Index last_index = stored.entries.empty() ? stored.snapshot.index : stored.entries.back().index;
  const Term last_term = stored.entries.empty() ? stored.snapshot.term : stored.entries.back().term;
  const Term term = std::max(stored.hard_state.term, last_term);
  Entry reset{term, last_index + 1, EntryType::kConfig, encode_membership(out.membership)};
  out.appended.push_back(reset);
  out.state.entries.push_back(std::move(reset));
  out.state.hard_state.term = term;
  out.state.hard_state.commit = last_index + 1;
  return out;
}

}  // namespace ckv::raft
