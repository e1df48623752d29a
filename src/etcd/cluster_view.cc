// Builds etcd's header, member list and status from node::NodeStatus (see cluster_view.h).
#include "etcd/cluster_view.h"

#include <algorithm>
#include <string>

#include "etcd/member_ops.h"  // kErrNoLeader

namespace ckv::etcd {

namespace {

std::string url_for(const char* scheme, const std::string& host_port) {
  return std::string(scheme) + "://" + host_port;
}

}  // namespace

bool is_learner_for_etcd(const node::MemberStatus& m) {
  return m.role == "learner" && !m.info.promote_when_caught_up;
}

Header header_for(const node::NodeStatus& st, bool with_revision) {
  Header h;
  h.cluster_id = st.cluster_id;
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
    // etcd names a member once it has started (published its name);
    // etcdctl shows a nameless one as "unstarted". Ours has started once it
    // answered a probe (its incarnation) or registered its API address.
    if (!m.info.incarnation.empty() || !m.info.api_address.empty()) e.name = m.info.name;
    // Schemes as this node's listeners and raft transport serve: a
    // cluster's members all use peer TLS or none do, and the same for
    // client TLS (etcd shows https:// for both once they are TLS).
    if (!m.info.raft_address.empty()) {
      e.peer_urls.push_back(url_for(st.peer_tls ? "https" : "http", m.info.raft_address));
    }
    // This node knows what it serves now; for the others, what they registered.
    const std::string& grpc = m.id == st.id ? self_grpc_address : m.info.grpc_address;
    if (!grpc.empty()) e.client_urls.push_back(url_for(st.client_tls ? "https" : "http", grpc));
    e.is_learner = is_learner_for_etcd(m);
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
  s.db_size = st.data_dir_bytes;
  s.db_size_in_use = st.state_machine_bytes;
  // etcd 3.4's maintenanceServer.Status: "no leader" first, then each alarm.
  if (st.leader_id == raft::kNoNode) s.errors.push_back(kErrNoLeader);
  bool self_nospace = false;
  for (const fsm::AlarmMember& a : st.alarms) {
    s.errors.push_back(fsm::describe(a));
    self_nospace = self_nospace || (a.member_id == st.id && a.alarm == fsm::AlarmType::kNoSpace);
  }
  // A full disk here, whose alarm has not reached this member's log (it
  // takes no entries while full): said the same way.
  if (st.no_space && !self_nospace) s.errors.push_back(fsm::describe({st.id, fsm::AlarmType::kNoSpace}));
  for (const node::MemberStatus& m : st.members) {
    if (m.id == st.id) s.is_learner = is_learner_for_etcd(m);
  }
  return s;
}

}  // namespace ckv::etcd
