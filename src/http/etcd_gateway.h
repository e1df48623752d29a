// etcd's JSON gateway under /v3/ on the HTTP API port: member list, member changes and status served, the rest UNIMPLEMENTED.
//
// Bodies follow etcd 3.4's grpc-gateway as a real etcd emits them: field
// names as in rpc.proto (cluster_id, dbSize, peerURLs), 64-bit integers as
// strings, zero values and empty lists omitted; errors as
// {"error","message","code"} with the gRPC code and grpc-gateway's HTTP
// status (InvalidArgument 400, NotFound 404, Unimplemented 501).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "etcd/member_ops.h"

#include "http/api.h"

namespace ckv::http {

inline constexpr const char* kEtcdGatewayPrefix = "/v3/";

// path starts with kEtcdGatewayPrefix; status is called only for a served
// call (Node::status() in the server, a fixed value in tests); grpc_address
// is this node's -grpc-address (may be empty).
Response etcd_gateway(const Request& req, const std::string& path,
                      const std::function<node::NodeStatus()>& status,
                      const std::string& grpc_address);

// The member changes (/v3/cluster/member/add, remove, promote, update) are
// answered asynchronously by Api (api.cc), through etcd::change_membership on
// the leader; a follower forwards them to the leader's API unchanged, so
// the answer carries the leader's header (etcd's follower would put its own).
std::optional<etcd::MemberCall> gateway_member_change(const std::string& path);
// Reads the call's fields (ID, peerURLs, isLearner) as protobuf's JSON
// mapping has them; returns the error response for a bad request.
std::optional<Response> parse_gateway_member_request(const Request& req, etcd::MemberCall call,
                                                     etcd::MemberRequest* out);
Response gateway_member_reply(const etcd::MemberReply& r, etcd::MemberCall call);
Response gateway_error_response(int grpc_code, const std::string& message);

// The JSON bodies, exposed for the unit tests.
std::string gateway_member_list_json(const node::NodeStatus& st, const std::string& grpc_address);
std::string gateway_status_json(const node::NodeStatus& st);

}  // namespace ckv::http
