// Builds etcd's header, member list and status from node::NodeStatus (see cluster_view.h).
#include "etcd/cluster_view.h"

#include <algorithm>

namespace ckv::etcd {

namespace {

uint64_t fnv1a_u64(uint64_t h, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    h ^= (v >> (8 * i)) & 0xff;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string url_for(const std::string& host_port) { return "http://" + host_port; }

}  // namespace

uint64_t cluster_id_for(const node::NodeStatus& st) {
  std::vector<uint64_t> ids;
  ids.reserve(st.members.size());
  for (const node::MemberStatus& m : st.members) ids.push_back(m.id);
  std::sort(ids.begin(), ids.end());
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint64_t id : ids) h = fnv1a_u64(h, id);
  return h == 0 ? 1 : h;
}

Header header_for(const node::NodeStatus& st, bool with_revision) {
  Header h;
  h.cluster_id = cluster_id_for(st);
  h.member_id = st.id;
  h.revision = with_revision ? static_cast<uint64_t>(st.revision) : 0;
  h.raft_term = st.term;
  return h;
}

MemberList member_list_for(const node::NodeStatus& st, const std::string& self_grpc_address) {
  MemberList out;
  out.header = header_for(st, false);
  for (const node::MemberStatus& m : st.members) {
    Member e;
    e.id = m.id;
    e.name = m.info.name;
    if (!m.info.raft_address.empty()) e.peer_urls.push_back(url_for(m.info.raft_address));
    // This node knows what it serves now; for the others, what they registered.
    const std::string& grpc = m.id == st.id ? self_grpc_address : m.info.grpc_address;
    if (!grpc.empty()) e.client_urls.push_back(url_for(grpc));
    e.is_learner = m.role == "learner";
    out.members.push_back(std::move(e));
  }
  std::sort(out.members.begin(), out.members.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  return out;
}

MaintenanceStatus status_for(const node::NodeStatus& st) {
  MaintenanceStatus s;
  s.header = header_for(st, true);
  s.leader = st.leader_id;
  s.raft_index = st.commit_index;
  s.raft_term = st.term;
  s.raft_applied_index = st.applied_index;
  if (st.no_space) s.errors.push_back("memberID:" + std::to_string(st.id) + " alarm:NOSPACE ");
  for (const node::MemberStatus& m : st.members) {
    if (m.id == st.id) s.is_learner = m.role == "learner";
  }
  return s;
}

}  // namespace ckv::etcd
