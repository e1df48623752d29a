// etcd's /v3/ JSON gateway (see etcd_gateway.h): routing, request body checks and protobuf's JSON mapping by hand.
#include "http/etcd_gateway.h"

#include <iterator>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "etcd/cluster_view.h"
#include "etcd/kv_grpc_service.h"
#include "etcd/kv_service.h"
#include "etcd/member_ops.h"
#include "http/etcd_kv_json.h"
#include "http/etcd_lease_json.h"
#include "http/etcd_election_json.h"
#include "http/etcd_lock_json.h"

namespace ckv::http {

namespace {

using json = nlohmann::ordered_json;  // keeps rpc.proto's field order, as etcd emits it

// gRPC codes the gateway reports (grpc/status.h numbering).
constexpr int kGrpcInvalidArgument = 3;
constexpr int kGrpcNotFound = 5;
constexpr int kGrpcResourceExhausted = 8;
constexpr int kGrpcUnimplemented = 12;

// Every POST route etcd 3.4's rpc.proto, v3lock.proto and v3election.proto
// declare, besides those we serve (member list, status, the member changes;
// KV's routes are is_etcd_kv_route's).
constexpr std::string_view kUnimplementedRoutes[] = {"/v3/auth/enable",
                                                     "/v3/auth/disable",
                                                     "/v3/auth/authenticate",
                                                     "/v3/auth/user/add",
                                                     "/v3/auth/user/get",
                                                     "/v3/auth/user/list",
                                                     "/v3/auth/user/delete",
                                                     "/v3/auth/user/changepw",
                                                     "/v3/auth/user/grant",
                                                     "/v3/auth/user/revoke",
                                                     "/v3/auth/role/add",
                                                     "/v3/auth/role/get",
                                                     "/v3/auth/role/list",
                                                     "/v3/auth/role/delete",
                                                     "/v3/auth/role/grant",
                                                     "/v3/auth/role/revoke"};

// protobuf's JSON mapping: uint64/int64 as decimal strings; zero omitted.
void put_u64(json& j, const char* name, uint64_t v) {
  if (v != 0) j[name] = std::to_string(v);
}

json header_json(const etcd::Header& h) {
  json j = json::object();
  put_u64(j, "cluster_id", h.cluster_id);
  put_u64(j, "member_id", h.member_id);
  put_u64(j, "revision", h.revision);
  put_u64(j, "raft_term", h.raft_term);
  return j;
}

void put_strings(json& j, const char* name, const std::vector<std::string>& v) {
  if (!v.empty()) j[name] = v;
}

json member_json(const etcd::Member& m) {
  json e = json::object();
  put_u64(e, "ID", m.id);
  if (!m.name.empty()) e["name"] = m.name;
  put_strings(e, "peerURLs", m.peer_urls);
  put_strings(e, "clientURLs", m.client_urls);
  if (m.is_learner) e["isLearner"] = true;
  return e;
}

json members_json(const etcd::MemberList& list) {
  json out{{"header", header_json(list.header)}};
  json members = json::array();
  for (const etcd::Member& m : list.members) members.push_back(member_json(m));
  if (!members.empty()) out["members"] = std::move(members);
  return out;
}

// A member id as protobuf's JSON mapping accepts a uint64: a number or a decimal string.
bool read_member_id(const json& j, uint64_t* id) {
  if (j.is_number_unsigned()) {
    *id = j.get<uint64_t>();
    return true;
  }
  if (!j.is_string()) return false;
  const std::string& s = j.get_ref<const std::string&>();
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *id = v;
  return true;
}

}  // namespace

std::string etcd_gateway_path(const std::string& path) {
  const std::string_view beta = kEtcdGatewayBetaPrefix;
  if (!path.starts_with(beta)) return path;
  return kEtcdGatewayPrefix + path.substr(beta.size());
}

bool is_etcd_gateway_target(std::string_view target) {
  return target.starts_with(kEtcdGatewayPrefix) || target.starts_with(kEtcdGatewayBetaPrefix);
}

Response etcd_gateway_message_too_large(uint64_t bytes) {
  return gateway_error(gateway_http_status(kGrpcResourceExhausted), kGrpcResourceExhausted,
                       "grpc: received message larger than max (" + std::to_string(bytes) +
                           " vs. " + std::to_string(kEtcdGatewayMaxMessageBytes) + ")");
}

bool is_etcd_kv_route(const std::string& path) {
  return path == "/v3/kv/range" || path == "/v3/kv/put" || path == "/v3/kv/deleterange" ||
         path == "/v3/kv/txn" || path == "/v3/kv/compaction";
}

unsigned gateway_http_status(int grpc_code) {
  // grpc-gateway v1 runtime/errors.go, indexed by gRPC code (grpc/status.h numbering).
  constexpr unsigned kHttpForCode[] = {
      200,  // OK
      408,  // CANCELLED
      500,  // UNKNOWN
      400,  // INVALID_ARGUMENT
      504,  // DEADLINE_EXCEEDED
      404,  // NOT_FOUND
      409,  // ALREADY_EXISTS
      403,  // PERMISSION_DENIED
      429,  // RESOURCE_EXHAUSTED
      412,  // FAILED_PRECONDITION
      409,  // ABORTED
      400,  // OUT_OF_RANGE
      501,  // UNIMPLEMENTED
      500,  // INTERNAL
      503,  // UNAVAILABLE
      500,  // DATA_LOSS
      401,  // UNAUTHENTICATED
  };
  if (grpc_code < 0 || static_cast<size_t>(grpc_code) >= std::size(kHttpForCode)) return 500;
  return kHttpForCode[grpc_code];
}

Response gateway_error(unsigned http_status, int grpc_code, const std::string& message) {
  Response r;
  r.status = http_status;
  // Invalid UTF-8 (a parser quoting the body) must not throw: replace it on output.
  r.body = json{{"error", message}, {"message", message}, {"code", grpc_code}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
  return r;
}

Response gateway_post_only() {
  Response r = gateway_error(405, kGrpcUnimplemented, "Method Not Allowed");
  r.headers.emplace_back("Allow", "POST");
  return r;
}

std::string gateway_member_list_json(const node::NodeStatus& st, const std::string& grpc_address) {
  return members_json(etcd::member_list_for(st, grpc_address)).dump();
}

std::string gateway_status_json(const node::NodeStatus& st) {
  const etcd::MaintenanceStatus s = etcd::status_for(st);
  json out{{"header", header_json(s.header)}};
  if (!s.version.empty()) out["version"] = s.version;
  put_u64(out, "dbSize", s.db_size);
  put_u64(out, "leader", s.leader);
  put_u64(out, "raftIndex", s.raft_index);
  put_u64(out, "raftTerm", s.raft_term);
  put_u64(out, "raftAppliedIndex", s.raft_applied_index);
  put_strings(out, "errors", s.errors);
  put_u64(out, "dbSizeInUse", s.db_size_in_use);
  if (s.is_learner) out["isLearner"] = true;
  return out.dump();
}

namespace {

Response kv_error(const Status& s) {
  const GrpcError e = grpc_error_for(s);
  return gateway_error(gateway_http_status(e.code), e.code, e.message);
}

template <typename T>
etcd::KvDone<T> answer_with(Reply reply) {
  return [reply = std::move(reply)](Result<etcd::KvAnswer<T>> r) {
    if (!r.is_ok()) return reply(kv_error(r.status()));
    Response resp;
    resp.body = to_json(r.value().body, r.value().header);
    reply(std::move(resp));
  };
}

// Parses the body with from_json, then calls (kv.*method)(request, call, done).
// Sizes are checked on the request's protobuf encoding, as etcd's gRPC
// server sees it behind its gateway (kEtcdGatewayMaxMessageBytes); a write
// also against --max-request-bytes, as kv_grpc_service.cc checks it.
template <typename Resp, typename Parse, typename Method>
void serve_kv(const Request& req, etcd::KvService& kv, Parse from_json, Method method, bool write,
              Reply reply) {
  size_t encoded_bytes = 0;
  auto parsed = from_json(req.body, &encoded_bytes);
  if (!parsed.is_ok()) return reply(kv_error(parsed.status()));
  if (encoded_bytes > kEtcdGatewayMaxMessageBytes) {
    return reply(etcd_gateway_message_too_large(encoded_bytes));
  }
  if (write && encoded_bytes > etcd::kMaxRequestBytes) {
    // kTooLarge is etcd's "etcdserver: request is too large" (kv_convert.h's table).
    return reply(kv_error(Status(StatusCode::kTooLarge, "request over --max-request-bytes")));
  }
  // A gateway call is a client's, never a member's forward: on a follower
  // the request layer forwards it to the leader over gRPC itself.
  etcd::KvCall call;
  if (req.idempotency_key) call.idempotency_key = *req.idempotency_key;
  call.credentials = gateway_credentials(req);
  (kv.*method)(std::move(parsed).value(), std::move(call), answer_with<Resp>(std::move(reply)));
}

}  // namespace

etcd::Credentials gateway_credentials(const Request& req) {
  // etcd's gateway passes the Authorization header on as the token; "Bearer " is accepted too.
  etcd::Credentials c;
  if (req.authorization) {
    c.token = *req.authorization;
    if (c.token.starts_with("Bearer ")) c.token.erase(0, 7);
  }
  // A member forwarding a request presents its own certificate, whose name
  // is not the client's: the client's identity is in its claim instead.
  // (etcd's gateway ignores every certificate's name; we take the client's.)
  if (!req.forwarded) c.cert_cn = req.client_cert_cn;
  c.forwarded_caller = req.forwarded_caller;
  return c;
}

void etcd_kv_gateway(const Request& req, const std::string& path, etcd::KvService& kv,
                     Reply reply) {
  if (req.method != "POST") {
    return reply(gateway_post_only());
  }
  using K = etcd::KvService;
  if (path == "/v3/kv/range") {
    serve_kv<mvcc::RangeResponse>(req, kv, range_request_from_json, &K::range, false,
                                  std::move(reply));
  } else if (path == "/v3/kv/put") {
    serve_kv<mvcc::PutResponse>(req, kv, put_request_from_json, &K::put, true, std::move(reply));
  } else if (path == "/v3/kv/deleterange") {
    serve_kv<mvcc::DeleteRangeResponse>(req, kv, delete_range_request_from_json, &K::delete_range,
                                        true, std::move(reply));
  } else if (path == "/v3/kv/txn") {
    serve_kv<mvcc::TxnResponse>(req, kv, txn_request_from_json, &K::txn, true, std::move(reply));
  } else {
    serve_kv<mvcc::CompactionResponse>(req, kv, compaction_request_from_json, &K::compact, false,
                                       std::move(reply));
  }
}

Response etcd_gateway(const Request& req, const std::string& path,
                      const std::function<node::NodeStatus()>& status,
                      const std::string& grpc_address) {
  const bool served = path == "/v3/cluster/member/list" || path == "/v3/maintenance/status";
  // KV routes get here only when no request layer is configured (tests).
  // A POST /v3/watch is streamed by the server (server.cc, serve_watch)
  // and reaches this only with another method (405) or without a hub (501).
  bool known = served || is_etcd_kv_route(path) || is_etcd_lease_route(path) || is_etcd_lock_route(path) ||
               is_etcd_election_route(path) ||
               path == "/v3/watch";
  for (std::string_view r : kUnimplementedRoutes) known = known || path == r;
  if (!known) return gateway_error(404, kGrpcNotFound, "Not Found");
  if (req.method != "POST") {
    return gateway_post_only();
  }
  // The request messages of both served calls have no fields etcd reads, but
  // the body must still be a JSON object (or empty), as etcd's gateway insists.
  if (!req.body.empty()) {
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return gateway_error(400, kGrpcInvalidArgument, "the request body must be a JSON object");
    }
  }
  if (!served)
    return gateway_error(501, kGrpcUnimplemented,
                         "consensuskv: " + path + " is not implemented yet");
  Response r;
  r.body = path == "/v3/maintenance/status" ? gateway_status_json(status())
                                            : gateway_member_list_json(status(), grpc_address);
  return r;
}

std::optional<etcd::MemberCall> gateway_member_change(const std::string& path) {
  if (path == "/v3/cluster/member/add") return etcd::MemberCall::kAdd;
  if (path == "/v3/cluster/member/remove") return etcd::MemberCall::kRemove;
  if (path == "/v3/cluster/member/promote") return etcd::MemberCall::kPromote;
  if (path == "/v3/cluster/member/update") return etcd::MemberCall::kUpdate;
  return std::nullopt;
}

std::optional<Response> parse_gateway_member_request(const Request& req, etcd::MemberCall call,
                                                     etcd::MemberRequest* out) {
  if (req.method != "POST") {
    return gateway_post_only();
  }
  out->call = call;
  if (req.body.empty()) return std::nullopt;  // every field at its zero value
  const json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return gateway_error(400, kGrpcInvalidArgument, "the request body must be a JSON object");
  }
  // Unknown fields are ignored, as etcd's gateway does.
  if (auto it = body.find("ID");
      it != body.end() && !it->is_null() && !read_member_id(*it, &out->id)) {
    return gateway_error(400, kGrpcInvalidArgument,
                         "\"ID\" must be an unsigned 64-bit integer or a decimal string");
  }
  if (auto it = body.find("peerURLs"); it != body.end() && !it->is_null()) {
    if (!it->is_array())
      return gateway_error(400, kGrpcInvalidArgument, "\"peerURLs\" must be a list of strings");
    for (const json& u : *it) {
      if (!u.is_string())
        return gateway_error(400, kGrpcInvalidArgument, "\"peerURLs\" must be a list of strings");
      out->peer_urls.push_back(u.get<std::string>());
    }
  }
  if (auto it = body.find("isLearner"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean())
      return gateway_error(400, kGrpcInvalidArgument, "\"isLearner\" must be true or false");
    out->is_learner = it->get<bool>();
  }
  return std::nullopt;
}

Response gateway_member_reply(const etcd::MemberReply& r, etcd::MemberCall call) {
  if (!r.error.ok())
    return gateway_error(gateway_http_status(r.error.code), r.error.code, r.error.message);
  json out = members_json(r.list);
  if (call == etcd::MemberCall::kAdd) {
    // rpc.proto's order: header, member, members.
    json ordered{{"header", out["header"]}, {"member", member_json(r.member)}};
    if (out.contains("members")) ordered["members"] = out["members"];
    out = std::move(ordered);
  }
  Response resp;
  resp.body = out.dump();
  return resp;
}

namespace {

bool read_strings(const json& j, const char* name, std::vector<std::string>* out) {
  auto it = j.find(name);
  if (it == j.end()) return true;  // empty lists are omitted
  if (!it->is_array()) return false;
  for (const json& u : *it) {
    if (!u.is_string()) return false;
    out->push_back(u.get<std::string>());
  }
  return true;
}

// member_json read back (zero values omitted, ids as decimal strings).
bool read_member(const json& j, etcd::Member* m) {
  if (!j.is_object()) return false;
  if (auto it = j.find("ID"); it != j.end() && !read_member_id(*it, &m->id)) return false;
  if (auto it = j.find("name"); it != j.end()) {
    if (!it->is_string()) return false;
    m->name = it->get<std::string>();
  }
  if (auto it = j.find("isLearner"); it != j.end()) {
    if (!it->is_boolean()) return false;
    m->is_learner = it->get<bool>();
  }
  return read_strings(j, "peerURLs", &m->peer_urls) &&
         read_strings(j, "clientURLs", &m->client_urls);
}

}  // namespace

std::optional<etcd::MemberReply> parse_gateway_member_reply(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  etcd::MemberReply r;
  if (auto it = j.find("member"); it != j.end() && !read_member(*it, &r.member))
    return std::nullopt;
  if (auto it = j.find("members"); it != j.end()) {
    if (!it->is_array()) return std::nullopt;
    for (const json& m : *it) {
      if (!read_member(m, &r.list.members.emplace_back())) return std::nullopt;
    }
  }
  // The header is replaced by this node's (wait_until_shown): not read.
  return r;
}

Response gateway_header_response(const etcd::Header& h) {
  Response r;
  r.body = json{{"header", header_json(h)}}.dump();
  return r;
}

Response gateway_error_response(int grpc_code, const std::string& message) {
  return gateway_error(gateway_http_status(grpc_code), grpc_code, message);
}

}  // namespace ckv::http
