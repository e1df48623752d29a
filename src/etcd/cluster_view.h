// etcd's view of this node (ResponseHeader, Member, StatusResponse) as plain structs, built from node::NodeStatus.
//
// Shared by the gRPC services (grpc_server.cc, which copies these into
// etcd's generated messages) and the JSON gateway (http/etcd_gateway.cc),
// so both answer the same thing. No gRPC or protobuf here: the HTTP
// library and the unit tests include this without the generated code.
//
// Where a value comes from (docs/api.md, "etcd v3 API"):
//   cluster_id   FNV-1a 64 over the sorted ids of the current members (see
//                cluster_id_for); etcd hashes its initial members the same way
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
  std::vector<std::string> peer_urls;    // "http://<raft address>"
  std::vector<std::string> client_urls;  // "http://<gRPC address>" where known
  bool is_learner = false;
};

struct MemberList {
  Header header;                // without revision, as etcd's Cluster service answers
  std::vector<Member> members;  // sorted by id, as etcd sorts them
};

struct MaintenanceStatus {
  Header header;
  std::string version = kEtcdApiVersion;
  uint64_t db_size = 0;     // no MVCC backend yet: 0 (docs/api.md)
  uint64_t leader = 0;      // 0 when no leader is known
  uint64_t raft_index = 0;  // commit index, as etcd reports it
  uint64_t raft_term = 0;
  uint64_t raft_applied_index = 0;
  std::vector<std::string> errors;  // active alarms, etcd's text ("memberID:... alarm:NOSPACE ")
  uint64_t db_size_in_use = 0;
  bool is_learner = false;
};

// Stable for a given membership on every node and across restarts; it
// changes when members are added or removed (a replicated cluster id is
// future work: docs/design-notes.md). Never 0.
uint64_t cluster_id_for(const node::NodeStatus& st);

// self_grpc_address: this node's -grpc-address (empty if it serves none): its
// own client URL, whatever the membership recorded for it.
Header header_for(const node::NodeStatus& st, bool with_revision);
MemberList member_list_for(const node::NodeStatus& st, const std::string& self_grpc_address);
MaintenanceStatus status_for(const node::NodeStatus& st);

}  // namespace ckv::etcd
