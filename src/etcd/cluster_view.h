// etcd's view of this node (ResponseHeader, Member, StatusResponse) as plain structs, built from node::NodeStatus.
//
// Shared by the gRPC services (grpc_server.cc, which copies these into
// etcd's generated messages) and the JSON gateway (http/etcd_gateway.cc),
// so both answer the same thing. No gRPC or protobuf here: the HTTP
// library and the unit tests include this without the generated code.
//
// Where a value comes from (docs/api.md, "etcd v3 API"):
//   cluster_id   NodeStatus::cluster_id: chosen when the cluster was founded,
//                never changed (docs/design-notes.md, "Cluster identity")
//   member_id    the node's 64-bit Raft id (node::node_id_for(name))
//   revision     the MVCC store's current revision (1 when empty, as etcd)
//   raft_term    the node's current term
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "node/node.h"

namespace ckv::etcd {

// The etcd API level we report in Status.version: clients compare it as a
// semantic version to decide which calls they may make, so it names the etcd
// release whose API we follow, not our own version.
inline constexpr const char* kEtcdApiVersion = "3.4.0";

struct Header {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  uint64_t revision = 0;
  uint64_t raft_term = 0;
};

struct Member {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> peer_urls;    // "http(s)://<raft address>" (https: NodeStatus::peer_tls)
  std::vector<std::string> client_urls;  // "http(s)://<gRPC address>" where known (https: NodeStatus::client_tls)
  bool is_learner = false;
};

struct MemberList {
  Header header;                // without revision, as etcd's Cluster service answers
  std::vector<Member> members;  // sorted by id, as etcd sorts them
};

struct MaintenanceStatus {
  Header header;
  std::string version = kEtcdApiVersion;
  uint64_t db_size = 0;     // NodeStatus::data_dir_bytes: the data dir on disk (docs/api.md)
  uint64_t leader = 0;      // 0 when no leader is known
  uint64_t raft_index = 0;  // commit index, as etcd reports it
  uint64_t raft_term = 0;
  uint64_t raft_applied_index = 0;
  // etcd's: "etcdserver: no leader" while none is known, then the active
  // alarms ("memberID:... alarm:NOSPACE ")
  std::vector<std::string> errors;
  uint64_t db_size_in_use = 0;  // NodeStatus::state_machine_bytes: the state in memory, estimated
  bool is_learner = false;
};

// What etcd calls a learner: a non-voting member that only MemberPromote
// makes a voter. A learner the leader promotes by itself once it has caught
// up (/join, MemberAdd without isLearner) is a voter to etcd's clients, as an
// etcd member added as a voter is from the start (etcd/member_ops.h).
bool is_learner_for_etcd(const node::MemberStatus& m);

// self_grpc_address: this node's -grpc-address (empty if it serves none): its
// own client URL, whatever the membership recorded for it.
Header header_for(const node::NodeStatus& st, bool with_revision);
MemberList member_list_for(const node::NodeStatus& st, const std::string& self_grpc_address);
MaintenanceStatus status_for(const node::NodeStatus& st);

}  // namespace ckv::etcd
