// etcd's JSON gateway under /v3/ on the HTTP API port: member list, member changes and status here, KV through etcd_kv_gateway (etcd_kv_json.h's mapping), the rest UNIMPLEMENTED.
//
// Bodies follow etcd 3.4's grpc-gateway as a real etcd emits them: field
// names as in rpc.proto (cluster_id, dbSize, peerURLs), 64-bit integers as
// strings, zero values and empty lists omitted; errors as
// {"error","message","code"} with the gRPC code and grpc-gateway's HTTP
// status (gateway_http_status: InvalidArgument 400, NotFound 404, Unimplemented 501).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "etcd/auth_service.h"
#include "etcd/member_ops.h"

#include "http/api.h"

namespace ckv::etcd {
class KvService;
}

namespace ckv::http {

inline constexpr const char* kEtcdGatewayPrefix = "/v3/";
// etcd 3.4 serves every gateway route under this deprecated prefix as well.
inline constexpr const char* kEtcdGatewayBetaPrefix = "/v3beta/";

// "/v3beta/kv/range" -> "/v3/kv/range" (as etcd 3.4 aliases them); any other path unchanged.
std::string etcd_gateway_path(const std::string& path);
// Whether a request target (path and query) is the gateway's (/v3/ or /v3beta/).
bool is_etcd_gateway_target(std::string_view target);

// Request sizes on the gateway, as etcd 3.4's: its gateway has no body limit
// of its own and hands every request to its gRPC server, which takes
// messages up to --max-request-bytes (1.5 MiB) plus 512 KiB (etcd's
// grpcOverheadBytes; our kMaxGrpcRequestBytes, grpc_server.h) and answers a
// bigger one RESOURCE_EXHAUSTED "grpc: received message larger than max
// (N vs. 2097152)", which the gateway turns into 429. A write under that but
// over 1.5 MiB gets "etcdserver: request is too large" (400), as over gRPC.
inline constexpr uint64_t kEtcdGatewayMaxMessageBytes = (uint64_t{3} << 19) + (512 << 10);
// The largest /v3/ body read (-max-body-bytes if larger): the JSON of the
// largest message etcd takes, its bytes as base64 (4/3), with room for field
// names. A body declared larger is answered like a message over
// kEtcdGatewayMaxMessageBytes without being read (N is then the body's length).
inline constexpr uint64_t kEtcdGatewayMaxBodyBytes = uint64_t{4} << 20;
// etcd's 429 for a message of `bytes` over kEtcdGatewayMaxMessageBytes.
Response etcd_gateway_message_too_large(uint64_t bytes);

// path starts with kEtcdGatewayPrefix; status is called only for a served
// call (Node::status() in the server, a fixed value in tests); grpc_address
// is this node's -grpc-address (may be empty).
Response etcd_gateway(const Request& req, const std::string& path,
                      const std::function<node::NodeStatus()>& status,
                      const std::string& grpc_address);

// A call's credentials: the token in the Authorization header, raw (etcd's
// gateway) or "Bearer <token>"; the verified client certificate's CN unless
// the request was forwarded by a member (whose certificate it would be);
// a forwarding member's caller claim (auth/forwarded_caller.h).
etcd::Credentials gateway_credentials(const Request& req);

// Whether path is one of KV's five routes (/v3/kv/range, put, deleterange, txn, compaction).
bool is_etcd_kv_route(const std::string& path);

// Serves a KV route (is_etcd_kv_route(path)) on the request layer, bodies
// as etcd_kv_json.h maps them. reply is called exactly once, inline or on
// the request layer's worker thread (kv_service.h). An Idempotency-Key
// header becomes the write's idempotency key, as on the seed API.
void etcd_kv_gateway(const Request& req, const std::string& path, etcd::KvService& kv,
                     Reply reply);

// grpc-gateway's HTTP status for a gRPC code (its runtime.HTTPStatusFromCode,
// as the etcd 3.4 Debian ships is built with: OutOfRange 400,
// Unavailable 503, FailedPrecondition 412, ResourceExhausted 429, ...).
unsigned gateway_http_status(int grpc_code);
// {"error": message, "message": message, "code": grpc_code} with that status.
Response gateway_error(unsigned http_status, int grpc_code, const std::string& message);
// etcd's gateway answer to a method other than POST on one of its routes: 405, code 12, "Allow: POST".
Response gateway_post_only();
// The member changes (/v3/cluster/member/add, remove, promote, update) are
// answered asynchronously by Api (api.cc), through etcd::change_membership on
// the leader; a follower forwards them to the leader's API and answers, once
// its own view shows the change, with its own header (as etcd's follower).
std::optional<etcd::MemberCall> gateway_member_change(const std::string& path);
// Reads the call's fields (ID, peerURLs, isLearner) as protobuf's JSON
// mapping has them; returns the error response for a bad request.
std::optional<Response> parse_gateway_member_request(const Request& req, etcd::MemberCall call,
                                                     etcd::MemberRequest* out);
Response gateway_member_reply(const etcd::MemberReply& r, etcd::MemberCall call);
// The leader's successful reply (gateway_member_reply's JSON) read back, for
// a follower that answers under its own header; nullopt if it is not one.
std::optional<etcd::MemberReply> parse_gateway_member_reply(const std::string& body);
Response gateway_error_response(int grpc_code, const std::string& message);
// One line of etcd's streamed POST /v3/maintenance/snapshot:
// {"result":{"remaining_bytes":"N","blob":"<base64>"}} and a newline
// (remaining_bytes omitted when 0, as protobuf's JSON mapping does).
std::string gateway_snapshot_line(std::string_view blob, uint64_t remaining_bytes);
// 200 with {"header": h} and nothing else (etcd's MoveLeaderResponse).
Response gateway_header_response(const etcd::Header& h);

// The JSON bodies, exposed for the unit tests.
std::string gateway_member_list_json(const node::NodeStatus& st, const std::string& grpc_address);
std::string gateway_status_json(const node::NodeStatus& st);

}  // namespace ckv::http
