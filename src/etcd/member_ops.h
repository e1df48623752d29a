// etcd's Cluster calls (MemberAdd/Remove/Promote/Update) on the leader, mapped onto Node's learners, with etcd's errors.
//
// Shared by the gRPC service (grpc_server.cc) and the JSON gateway
// (http/etcd_gateway.cc), so both answer alike; plain C++, no gRPC here.
//
// How etcd's model maps onto ours (docs/api.md, "Cluster"):
//   a member is its raft address: peer URL "http(s)://host:port" <-> raft
//   address host:port; its name defaults to that address (kvnode's -id
//   does); its id is node::node_id_for(name).
//   MemberAdd isLearner=true   a learner that only MemberPromote makes a voter
//   MemberAdd isLearner=false  a learner the leader promotes once caught up;
//                              answered once the add is applied, and shown
//                              as a voter (isLearner false) from the start
//   MemberPromote              promotes a caught-up learner, or etcd's error
//   MemberUpdate               records a new raft address (same name and id)
//   MemberRemove               removes (strict: a voter only if the rest keep
//                              an active quorum)
//
// Threading: every call returns at once; the callback runs later on the
// Raft thread or a transport thread and must only hand the result off.
// Only the leader changes the membership: a caller on a follower forwards the
// request to the leader, then calls wait_until_shown so that this node
// shows the change before it answers (as etcd's followers do).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "etcd/cluster_view.h"
#include "etcd/server_errors.h"
#include "node/node.h"

namespace ckv::etcd {

// gRPC status codes (grpc/status.h numbering), shared by both front ends.
namespace grpc_code {
inline constexpr int kOk = 0;
inline constexpr int kUnknown = 2;
inline constexpr int kInvalidArgument = 3;
inline constexpr int kDeadlineExceeded = 4;
inline constexpr int kNotFound = 5;
inline constexpr int kResourceExhausted = 8;
inline constexpr int kFailedPrecondition = 9;
inline constexpr int kUnimplemented = 12;
inline constexpr int kUnavailable = 14;
}  // namespace grpc_code

// What an etcd client sees of a failure: code and text as etcd 3.4 sends them.
struct EtcdError {
  int code = grpc_code::kOk;
  std::string message;
  bool ok() const { return code == grpc_code::kOk; }
};

// etcd's texts, where clients (and people) match on them.
inline constexpr const char* kErrMemberNotFound = "etcdserver: member not found";
inline constexpr const char* kErrInvalidPeerUrls = "etcdserver: given member URLs are invalid";

// How long a member call waits for its change to be applied, when the
// caller set no earlier deadline (etcdctl's default command timeout is 5 s).
inline constexpr int kMemberCallTimeoutMs = 5000;
// How long MemberAdd waits for the new member's answer to a probe (who it
// is: name, incarnation) before it adds it by its address alone.
inline constexpr int kMemberAddProbeTimeoutMs = 1000;

enum class MemberCall : uint8_t { kAdd, kRemove, kPromote, kUpdate };

struct MemberRequest {
  MemberCall call = MemberCall::kAdd;
  uint64_t id = 0;                     // remove, promote, update
  std::vector<std::string> peer_urls;  // add, update
  bool is_learner = false;             // add
};

struct MemberReply {
  EtcdError error;
  Member member;    // MemberAdd: the new member
  MemberList list;  // the header and the members once the change shows here
};
using MemberReplyCallback = std::function<void(MemberReply)>;

// "http(s)://host:port" -> "host:port"; empty when etcd would call it invalid
// or it is not one http URL (we have one raft address per member).
std::string raft_address_from_peer_urls(const std::vector<std::string>& urls, EtcdError* error);

// On the leader: makes the change and answers with the list as this node
// shows it then. self_grpc_address: this node's -grpc-address.
void change_membership(node::Node& node, const MemberRequest& req,
                       const std::string& self_grpc_address, int timeout_ms,
                       MemberReplyCallback cb);

// On a follower, after the leader answered req with `leader_reply` (ok):
// waits until this node's configuration shows the change, then answers with
// this node's header and list (etcd's follower answers with its own header).
void wait_until_shown(node::Node& node, const MemberRequest& req, MemberReply leader_reply,
                      const std::string& self_grpc_address, int timeout_ms, MemberReplyCallback cb);

// The list (with this node's header) as the reply to a call.
MemberReply reply_with_list(const node::NodeStatus& st, const std::string& self_grpc_address);

}  // namespace ckv::etcd
