// The HTTP API's endpoints: validation, leader routing, Node calls and JSON bodies (see docs/api.md).
#include "http/api.h"

#include <cstdio>
#include <cstdlib>

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "auth/types.h"
#include "common/base64.h"
#include "etcd/auth_service.h"
#include "fsm/kv_state_machine.h"
#include "http/address.h"
#include "http/etcd_auth_json.h"
#include "http/etcd_gateway.h"
#include "http/etcd_maintenance_json.h"
#include "http/etcd_lease_json.h"
#include "http/etcd_election_json.h"
#include "http/etcd_lock_json.h"
#include "http/limits.h"
#include "http/observability.h"

namespace ckv::http {

namespace {

using nlohmann::json;

// How long /join waits for the joining node to answer a probe of its raft
// address (who it is: name, API address, incarnation) before it falls back
// to what the request says.
constexpr int kJoinProbeTimeoutMs = 2000;

// Deeper JSON is never a valid request; refusing it before parsing keeps a
// hostile body from costing more than a linear scan.
constexpr int kMaxJsonDepth = 32;

Response json_response(unsigned status, const json& body) {
  Response r;
  r.status = status;
  // Invalid UTF-8 in a key or value must not throw: replace it on output.
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// Parses a request body that must be a JSON object. An empty body is an
// empty object when allow_empty (a POST /join may carry everything in the query).
std::optional<json> parse_object(const std::string& body, bool allow_empty, std::string* error) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (allow_empty) return json::object();
    *error = "request body must be a JSON object";
    return std::nullopt;
  }
  if (json_deeper_than(body, kMaxJsonDepth)) {
    *error = "JSON nested too deeply";
    return std::nullopt;
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = "malformed JSON";
    return std::nullopt;
  }
  if (!j.is_object()) {
    *error = "request body must be a JSON object";
    return std::nullopt;
  }
  return j;
}

// Reads a required, non-empty string field.
std::optional<std::string> string_field(const json& j, const char* name, bool allow_empty,
                                        std::string* error) {
  auto it = j.find(name);
  if (it == j.end()) {
    *error = std::string("missing \"") + name + "\"";
    return std::nullopt;
  }
  if (!it->is_string()) {
    *error = std::string("\"") + name + "\" must be a string";
    return std::nullopt;
  }
  std::string s = it->get<std::string>();
  if (s.empty() && !allow_empty) {
    *error = std::string("\"") + name + "\" must not be empty";
    return std::nullopt;
  }
  return s;
}

// Keys over kMaxKeyBytes are refused on every path, so that whatever /set
// accepts, GET /get?key= can read back (limits.h).
bool key_too_long(const std::string& key, std::string* error) {
  if (key.size() <= kMaxKeyBytes) return false;
  *error = "key is " + std::to_string(key.size()) + " bytes, over the limit of " +
           std::to_string(kMaxKeyBytes) + " bytes";
  return true;
}

// The Idempotency-Key header, if any: at most fsm::kMaxIdempotencyKeyBytes
// of printable ASCII (it is logged and stored; control bytes have no place
// in either). False with *error set when present but invalid.
bool idempotency_key(const Request& req, std::string* key, std::string* error) {
  if (!req.idempotency_key) return true;
  const std::string& k = *req.idempotency_key;
  if (k.empty()) {
    *error = std::string(kIdempotencyKeyHeader) + " must not be empty";
    return false;
  }
  if (k.size() > fsm::kMaxIdempotencyKeyBytes) {
    *error = std::string(kIdempotencyKeyHeader) + " is " + std::to_string(k.size()) + " bytes, over the limit of " +
             std::to_string(fsm::kMaxIdempotencyKeyBytes) + " bytes";
    return false;
  }
  for (unsigned char c : k) {
    if (c < 0x20 || c > 0x7e) {
      *error = std::string(kIdempotencyKeyHeader) + " must be printable ASCII";
      return false;
    }
  }
  *key = k;
  return true;
}

Response method_not_allowed(const char* allow) {
  Response r = error_response(405, std::string("method not allowed; use ") + allow);
  r.headers.emplace_back("Allow", allow);
  return r;
}

}  // namespace

bool json_deeper_than(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

unsigned http_status_for(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalid:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kNotLeader:
      return 421;  // only when forwarding was not possible
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kTimeout:
      return 504;
    case StatusCode::kConflict:
      return 409;
    case StatusCode::kTooLarge:
      return 413;
    case StatusCode::kCorrupt:
      return 500;
    case StatusCode::kIo:
      return 500;
    case StatusCode::kNoSpace:
      return 507;  // Insufficient Storage (RFC 4918): the disk, not the request, is the problem
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
  }
  return 500;
}

Response error_response(unsigned http_status, const std::string& message) {
  Response r = json_response(http_status, json{{"error", message}});
  // 503 means "try again shortly" (an election, a lost quorum): say when.
  if (http_status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

Response error_response(const Status& s) {
  return error_response(http_status_for(s.code()), s.message());
}

namespace {

// The seed API's routes that credentials guard once auth is enabled (the
// gateway's KV and lease routes take tokens through their request layers).
bool guarded(const std::string& path) {
  return path == "/set" || path == "/delete" || path == "/get" || path == "/join" ||
         path == "/remove" || path == "/transfer" || path == "/v3/maintenance/transfer-leadership" ||
         gateway_member_change(path).has_value();
}

Response unauthorized(const Status& s) {
  Response r = error_response(401, s.message());
  r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"consensuskv\"");
  return r;
}

}  // namespace

void Api::handle(const Request& req, Reply reply) {
  auto target = parse_target(req.target);
  if (!target) {
    reply(error_response(400, "malformed URL escape in the request target"));
    return;
  }
  const std::string path = etcd_gateway_path(target->path);
  if (options_.auth == nullptr || !guarded(path) || !node_.state_machine().auth_enabled()) {
    return dispatch(req, path, target->params, auth::Caller{}, std::move(reply));
  }
  // Who asks: HTTP Basic (checked against the user's password hash, cached
  // briefly: auth_service.h), or a token from /v3/auth/authenticate.
  const std::string header = req.authorization.value_or("");
  if (header.starts_with("Basic ")) {
    auto decoded = base64_decode(std::string_view(header).substr(6), Base64::kStandard);
    if (!decoded || decoded->find(':') == std::string::npos) {
      const Status malformed(StatusCode::kUnauthenticated, "malformed Basic credentials");
      options_.auth->note_refusal(path, auth::Caller{}, malformed);
      return reply(unauthorized(malformed));
    }
  }
  // Credentials this member does not know yet (a user or token just made)
  // are tried again after a read barrier (check_current).
  options_.auth->check_current(
      path, identify(req), [](const auth::Caller&) { return Status::ok(); },
      [this, req, path, params = target->params, reply = std::move(reply)](Result<auth::Caller> who) mutable {
        if (!who.is_ok()) return reply(refusal(who.status()));
        dispatch(req, path, params, who.value(), std::move(reply));
      });
}

etcd::AuthService::Identify Api::identify(const Request& req) const {
  // Not Basic: a token (raw or "Bearer"), else a verified client certificate's CN, or a forwarding
  // member's claim for its caller (etcd_gateway.h, gateway_credentials).
  return [this, header = req.authorization.value_or(""), creds = gateway_credentials(req)](
             etcd::AuthDone<auth::Caller> done) {
    if (!node_.state_machine().auth_enabled()) return done(auth::Caller{});
    if (header.starts_with("Basic ")) {
      auto decoded = base64_decode(std::string_view{header}.substr(6), Base64::kStandard);
      const size_t colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) {
        return done(Status(StatusCode::kUnauthenticated, "malformed Basic credentials"));
      }
      return options_.auth->basic(decoded->substr(0, colon), decoded->substr(colon + 1), std::move(done));
    }
    done(options_.auth->resolve(creds));
  };
}

Response Api::refusal(const Status& s) {
  return s.code() == StatusCode::kUnauthenticated ? unauthorized(s) : error_response(s);
}

bool Api::refused(const char* what, const auth::Caller& caller, const Status& s, const Reply& reply) {
  if (s.is_ok()) return false;
  if (options_.auth != nullptr) options_.auth->note_refusal(what, caller, s);
  reply(refusal(s));
  return true;
}

void Api::check_and_propose(const char* what, const Request& req, fsm::Command c, Reply reply,
                            std::string leader_api) {
  if (options_.auth == nullptr) {
    if (refused(what, c.caller, node_.state_machine().authorize(c), reply)) return;
    return propose(std::move(c), std::move(reply), std::move(leader_api));
  }
  auto cmd = std::make_shared<fsm::Command>(std::move(c));
  options_.auth->check_current(
      what, identify(req),
      [this, cmd](const auth::Caller& who) {
        cmd->caller = who;
        return node_.state_machine().authorize(*cmd);
      },
      [this, cmd, reply = std::move(reply), leader_api = std::move(leader_api)](const Result<auth::Caller>& who) mutable {
        if (!who.is_ok()) return reply(refusal(who.status()));
        propose(std::move(*cmd), std::move(reply), std::move(leader_api));
      });
}

void Api::dispatch(const Request& req, const std::string& path,
                   const std::map<std::string, std::string>& params, const auth::Caller& caller,
                   Reply reply, bool admin_checked) {
  const bool get = req.method == "GET";
  const bool post = req.method == "POST";
  if (serve_observability(node_, req, path, params, reply)) return;
  const bool admin_route = path == "/join" || path == "/remove" || path == "/transfer" ||
                           path == "/v3/maintenance/transfer-leadership" || gateway_member_change(path).has_value();
  if (admin_route && options_.auth != nullptr && !admin_checked) {
    // Root, on an auth state that may lag (check_current).
    return options_.auth->check_current(
        path, identify(req),
        [this](const auth::Caller& who) {
          Status s;
          node_.state_machine().with_auth([&](const auth::AuthStore& a) { s = a.check_admin(who); });
          return s;
        },
        [this, req, path, params, reply = std::move(reply)](Result<auth::Caller> who) mutable {
          if (!who.is_ok()) return reply(refusal(who.status()));
          dispatch(req, path, params, who.value(), std::move(reply), true);
        });
  }
  if (path == "/set") {
    if (!post) return reply(method_not_allowed("POST"));
    handle_set(req, caller, std::move(reply));
  } else if (path == "/delete") {
    if (!post) return reply(method_not_allowed("POST"));
    handle_delete(req, caller, std::move(reply));
  } else if (path == "/get") {
    if (!get) return reply(method_not_allowed("GET"));
    handle_get(req, params, caller, std::move(reply));
  } else if (path == "/join") {
    // The reference's README joins with GET and its -join flag with POST.
    if (!get && !post) return reply(method_not_allowed("GET, POST"));
    handle_join(req, params, std::move(reply));
  } else if (path == "/remove") {
    if (!get && !post) return reply(method_not_allowed("GET, POST"));
    handle_remove(req, params, std::move(reply));
  } else if (path == "/status") {
    if (!get) return reply(method_not_allowed("GET"));
    handle_status(std::move(reply));
  } else if (path == "/transfer") {
    if (!post) return reply(method_not_allowed("POST"));
    handle_transfer(req, params, std::move(reply));
  } else if (path == "/v3/maintenance/transfer-leadership") {
    handle_gateway_move_leader(req, std::move(reply));
  } else if (options_.kv != nullptr && is_etcd_kv_route(path)) {
    etcd_kv_gateway(req, path, *options_.kv, std::move(reply));
  } else if (options_.lease != nullptr && is_etcd_lease_route(path)) {
    etcd_lease_gateway(req, path, *options_.lease, std::move(reply));
  } else if (options_.lock != nullptr && is_etcd_lock_route(path)) {
    etcd_lock_gateway(req, path, *options_.lock, std::move(reply));
  } else if (options_.election != nullptr && is_etcd_election_route(path)) {
    etcd_election_gateway(req, path, *options_.election, std::move(reply));
  } else if (options_.auth != nullptr && is_etcd_auth_route(path)) {
    etcd_auth_gateway(req, path, *options_.auth, std::move(reply));
  } else if (options_.maintenance != nullptr && is_etcd_maintenance_route(path)) {
    etcd_maintenance_gateway(req, path, *options_.maintenance, options_.commit_timeout_ms, std::move(reply));
  } else if (auto call = gateway_member_change(path)) {
    handle_gateway_member_change(req, *call, std::move(reply));
  } else if (path.starts_with(kEtcdGatewayPrefix)) {
    reply(etcd_gateway(req, path, [this] { return node_.status(); }, options_.grpc_address));
  } else {
    reply(error_response(404, "no such endpoint: " + path));
  }
}

bool Api::route_to_leader(const Request& req, int timeout_ms, const Reply& reply) {
  const node::NodeStatus st = node_.status();
  if (st.leader_id != raft::kNoNode && st.leader_id == st.id) return false;
  if (st.leader_id == raft::kNoNode) {
    reply(error_response(503, "no leader known (election in progress or no quorum); retry"));
  } else if (req.forwarded) {
    // Forwarded by a node that thought we lead; we do not forward again, so
    // a stale view cannot bounce a request around the cluster.
    Response r = error_response(421, "not the leader; the leader is " + st.leader.name);
    reply(std::move(r));
  } else if (st.leader.api_address.empty()) {
    reply(error_response(503, "the leader (" + st.leader.raft_address +
                                  ") has not registered its API address yet; retry"));
  } else {
    // Leave the leader time to answer with its own timeout first.
    reply(Forward{st.leader.api_address, timeout_ms + 2000});
  }
  return true;
}

bool Api::route_write(const Request& req, const Reply& reply, std::string* leader_api) {
  const node::NodeStatus st = node_.status();
  if (st.leader_id != raft::kNoNode && st.leader_id == st.id) return false;
  // A full follower takes no entries, so it could never apply (and answer)
  // a write it forwarded as a proposal: the leader answers it over HTTP.
  if (st.no_space || st.leader_id == raft::kNoNode || req.forwarded) {
    return route_to_leader(req, options_.commit_timeout_ms, reply);
  }
  *leader_api = st.leader.api_address;
  return false;
}

void Api::handle_set(const Request& req, const auth::Caller& caller, Reply reply) {
  std::string error;
  auto j = parse_object(req.body, false, &error);
  std::optional<std::string> key, value;
  if (j) key = string_field(*j, "key", false, &error);
  if (key && !key_too_long(*key, &error)) value = string_field(*j, "value", true, &error);
  if (!value) return reply(error_response(400, error));
  fsm::Command c;
  if (!idempotency_key(req, &c.idempotency_key, &error)) return reply(error_response(400, error));
  std::string leader_api;
  if (route_write(req, reply, &leader_api)) return;
  mvcc::PutRequest put;
  put.key = std::move(*key);
  put.value = std::move(*value);
  c.request = std::move(put);
  c.caller = caller;
  check_and_propose("/set", req, std::move(c), std::move(reply), std::move(leader_api));
}

void Api::handle_delete(const Request& req, const auth::Caller& caller, Reply reply) {
  std::string error;
  auto j = parse_object(req.body, false, &error);
  std::optional<std::string> key;
  if (j) key = string_field(*j, "key", false, &error);
  if (!key || key_too_long(*key, &error)) return reply(error_response(400, error));
  fsm::Command c;
  if (!idempotency_key(req, &c.idempotency_key, &error)) return reply(error_response(400, error));
  std::string leader_api;
  if (route_write(req, reply, &leader_api)) return;
  mvcc::DeleteRangeRequest del;
  del.key = std::move(*key);
  c.request = std::move(del);
  c.caller = caller;
  check_and_propose("/delete", req, std::move(c), std::move(reply), std::move(leader_api));
}

void Api::propose(fsm::Command c, Reply reply, std::string leader_api) {
  // Built before the command moves into the Node; answered only once the
  // entry is committed and applied here (node.h), so a read that follows sees it.
  json body;
  if (const auto* put = std::get_if<mvcc::PutRequest>(&c.request)) {
    body = json{{"key", put->key}, {"value", put->value}};
  } else {
    body = json{{"key", std::get<mvcc::DeleteRangeRequest>(c.request).key}, {"deleted", true}};
  }
  const char* what = std::holds_alternative<mvcc::PutRequest>(c.request) ? "/set" : "/delete";
  auth::Caller who = c.caller;
  node_.propose(
      std::move(c), options_.commit_timeout_ms,
      [this, what, who = std::move(who), reply = std::move(reply), body = std::move(body),
       leader_api = std::move(leader_api)](Result<node::WriteResult> r) mutable {
        auto answer = [&](Response out) {
          // As when followers proxied writes over HTTP: say which leader took it.
          if (!leader_api.empty()) out.headers.emplace_back("X-Ckv-Leader", leader_api);
          reply(std::move(out));
        };
        if (!r.is_ok()) {
          const Status& s = r.status();
          if (s.code() == StatusCode::kTimeout) {
            answer(error_response(
                504, "the write did not complete in time; outcome unknown: " + s.message()));
          } else if (s.code() == StatusCode::kNotLeader) {
            // Leadership moved between our check and the proposal.
            answer(error_response(503, "leadership changed; retry"));
          } else {
            answer(error_response(s));
          }
          return;
        }
        // The request's own outcome: a seed-API put or delete cannot fail
        // in the store today (its key is checked above), but say so if it does.
        if (!r.value().status.is_ok()) {
          // Auth may refuse at apply (a member that had not applied 'auth
          // enable' sent it on without a user): logged here, answered 401/403.
          if (options_.auth != nullptr) options_.auth->note_if_refused(what, who, r.value().status);
          return answer(refusal(r.value().status));
        }
        body["index"] = r.value().index;
        answer(json_response(200, body));
      });
}

void Api::handle_get(const Request& req, const std::map<std::string, std::string>& params,
                     const auth::Caller& caller, Reply reply) {
  auto k = params.find("key");
  if (k == params.end() || k->second.empty()) return reply(error_response(400, "missing key"));
  if (std::string error; key_too_long(k->second, &error)) return reply(error_response(400, error));
  std::string consistency = "linearizable";
  if (auto c = params.find("consistency"); c != params.end() && !c->second.empty())
    consistency = c->second;
  auto answer = [this, caller](const std::string& key) -> Response {
    // The check and the read under one lock (KvStateMachine::range_as).
    mvcc::RangeRequest r;
    r.key = key;
    Result<mvcc::RangeResponse> got = node_.state_machine().range_as(caller, r);
    if (!got.is_ok()) {
      if (options_.auth != nullptr) options_.auth->note_refusal("/get", caller, got.status());
      return got.status().code() == StatusCode::kUnauthenticated ? unauthorized(got.status())
                                                                 : error_response(got.status());
    }
    if (got->kvs.empty()) return json_response(404, json{{"error", "key not found"}, {"key", key}});
    return json_response(200, json{{key, got->kvs.front().value}});
  };
  if (consistency == "stale") return reply(answer(k->second));
  if (consistency != "linearizable") {
    return reply(
        error_response(400, "consistency must be \"linearizable\" (default) or \"stale\""));
  }
  // A follower whose disk is full takes no new entries, so it cannot catch
  // up to a current read index: the leader answers instead (a full leader
  // has every committed entry and answers itself). docs/operations.md, "Disk full".
  if (!req.forwarded && node_.status().no_space && route_to_leader(req, options_.commit_timeout_ms, reply)) return;
  // Thesis §6.4 ReadIndex: once the barrier is passed this node has applied
  // every write acknowledged before the request arrived. The map read is a
  // shared-lock lookup, cheap enough to do in the callback.
  node_.read_barrier(options_.commit_timeout_ms, [reply = std::move(reply), answer,
                                                  key = k->second](Status s) mutable {
    if (!s.is_ok()) {
      if (s.code() == StatusCode::kTimeout) {
        reply(error_response(504, "read barrier timed out (no quorum?): " + s.message()));
      } else if (s.code() == StatusCode::kNotLeader) {
        reply(error_response(503, "no leader known; retry"));
      } else {
        reply(error_response(s));
      }
      return;
    }
    reply(answer(key));
  });
}

namespace {

// Reads the named string fields of a membership request: the query first, then
// a JSON body (a POST may carry the same fields there). False with *error set
// on bad input; absent fields stay empty.
bool membership_fields(const Request& req, const std::map<std::string, std::string>& params,
                       std::initializer_list<std::pair<const char*, std::string*>> fields,
                       std::string* error) {
  auto body = parse_object(req.method == "POST" ? req.body : std::string(), true, error);
  if (!body) return false;
  for (const auto& [name, out] : fields) {
    if (auto p = params.find(name); p != params.end()) {
      *out = p->second;
      continue;
    }
    auto it = body->find(name);
    if (it == body->end() || it->is_null()) continue;
    if (!it->is_string()) {
      *error = std::string("\"") + name + "\" must be a string";
      return false;
    }
    *out = it->get<std::string>();
  }
  return true;
}

// The answer to a membership change: 200 with `ok`, or the error. A lost
// leadership means the change was not made (503); a timeout, that it may
// still complete (504).
Response membership_response(const Status& s, const json& ok, const std::string& timeout_prefix) {
  if (s.is_ok()) return json_response(200, ok);
  if (s.code() == StatusCode::kNotLeader) return error_response(503, "leadership changed; retry");
  if (s.code() == StatusCode::kTimeout) return error_response(504, timeout_prefix + s.message());
  return error_response(s);
}

}  // namespace

void Api::handle_join(const Request& req, const std::map<std::string, std::string>& params,
                      Reply reply) {
  std::string error;
  node::MemberInfo info;
  if (!membership_fields(req, params,
                         {{"peerAddress", &info.raft_address},
                          {"apiAddress", &info.api_address},
                          {"grpcAddress", &info.grpc_address},
                          {"id", &info.name}},
                         &error)) {
    return reply(error_response(400, error));
  }
  if (info.raft_address.empty()) return reply(error_response(400, "missing peerAddress"));
  if (!parse_host_port(info.raft_address)) {
    return reply(
        error_response(400, "peerAddress must be host:port, got \"" + info.raft_address + "\""));
  }
  if (!info.api_address.empty() && !parse_host_port(info.api_address)) {
    return reply(
        error_response(400, "apiAddress must be host:port, got \"" + info.api_address + "\""));
  }
  if (!info.grpc_address.empty() && !parse_host_port(info.grpc_address)) {
    return reply(
        error_response(400, "grpcAddress must be host:port, got \"" + info.grpc_address + "\""));
  }
  if (route_to_leader(req, options_.join_timeout_ms, reply)) return;
  // Ask the node who it is, so that the configuration change records its
  // real name, API address and incarnation at once (a node started with
  // -id=X and joined by raft address alone is added as X, and forwarding to
  // it works the moment /join returns). A node that cannot be probed (down,
  // or an older version) is added from what the request says, as before.
  const std::string address = info.raft_address;
  node_.probe_peer(address, kJoinProbeTimeoutMs,
                   [this, info = std::move(info), reply = std::move(reply)](Result<node::MemberInfo> who) mutable {
                     if (who.is_ok()) {
                       if (!info.name.empty() && who->name != info.name) {
                         return reply(error_response(409, "the node at " + info.raft_address + " is '" + who->name +
                                                              "', not '" + info.name + "'"));
                       }
                       info.name = who->name;
                       if (info.api_address.empty()) info.api_address = who->api_address;
                       info.incarnation = who->incarnation;
                     }
                     if (info.name.empty()) info.name = info.raft_address;  // the reference's server id is its address
                     add_member(std::move(info), std::move(reply));
                   });
}

void Api::add_member(node::MemberInfo info, Reply reply) {
  json ok{{"id", info.name},
          {"raftAddress", info.raft_address},
          {"apiAddress", info.api_address},
          {"role", "voter"}};
  const raft::NodeId id = node::node_id_for(info.name);
  node_.add_member(
      std::move(info), options_.join_timeout_ms,
      [this, id, reply = std::move(reply), ok = std::move(ok)](const Status& s) mutable {
        // An explicit learner (etcd's --learner) is answered as one: /join does not promote it.
        if (s.is_ok()) {
          for (const node::MemberStatus& m : node_.status().members) {
            if (m.id == id) ok["role"] = m.role;
          }
        }
        reply(membership_response(s, ok, "the member did not become a voter in time: "));
      });
}

void Api::handle_remove(const Request& req, const std::map<std::string, std::string>& params,
                        Reply reply) {
  std::string error, name, raft_address, force;
  if (!membership_fields(req, params, {{"id", &name}, {"peerAddress", &raft_address}, {"force", &force}}, &error)) {
    return reply(error_response(400, error));
  }
  if (!force.empty() && force != "true" && force != "false") {
    return reply(error_response(400, "force must be \"true\" or \"false\""));
  }
  if (name.empty() && raft_address.empty()) return reply(error_response(400, "missing id or peerAddress"));
  if (route_to_leader(req, options_.join_timeout_ms, reply)) return;
  // Resolved on the leader, against the membership it will change.
  const node::NodeStatus st = node_.status();
  const node::MemberStatus* member = nullptr;
  for (const node::MemberStatus& m : st.members) {
    if ((name.empty() || m.info.name == name) &&
        (raft_address.empty() || m.info.raft_address == raft_address)) {
      member = &m;
    }
  }
  if (member == nullptr) {
    return reply(json_response(404, json{{"error", "no such member"}, {"id", name}, {"peerAddress", raft_address}}));
  }
  json ok{{"id", member->info.name}, {"raftAddress", member->info.raft_address}, {"removed", true}};
  node_.remove_member(member->info.name, force == "true", options_.join_timeout_ms,
                      [reply = std::move(reply), ok = std::move(ok)](const Status& s) mutable {
                        reply(membership_response(
                            s, ok, "the removal did not commit in time; it may still: "));
                      });
}

void Api::handle_gateway_member_change(const Request& req, etcd::MemberCall call, Reply reply) {
  etcd::MemberRequest r;
  if (auto bad = parse_gateway_member_request(req, call, &r)) return reply(std::move(*bad));
  // Only the leader changes the membership (etcd/member_ops.h); errors in etcd's words.
  const node::NodeStatus st = node_.status();
  if (st.leader_id == raft::kNoNode) {
    return reply(gateway_error_response(etcd::grpc_code::kUnavailable, etcd::kErrNoLeader));
  }
  if (st.leader_id != st.id) {
    if (req.forwarded) return reply(gateway_error_response(etcd::grpc_code::kUnavailable, etcd::kErrLeaderChanged));
    if (st.leader.api_address.empty()) {
      return reply(gateway_error_response(etcd::grpc_code::kUnavailable,
                                          "consensuskv: the leader has not registered its API address yet; retry"));
    }
    // etcd's follower answers a member call with its own header once its
    // own list shows the change (member_ops.h, wait_until_shown), as the
    // gRPC service does; the leader's answer is relayed only if it failed.
    Forward f{st.leader.api_address, etcd::kMemberCallTimeoutMs + 2000, nullptr};
    f.then = [this, r, call](Response leader, Reply done) {
      std::optional<etcd::MemberReply> up;
      if (leader.status == 200) up = parse_gateway_member_reply(leader.body);
      if (!up) return done(std::move(leader));
      etcd::wait_until_shown(node_, r, std::move(*up), options_.grpc_address,
                             etcd::kMemberCallTimeoutMs,
                             [done = std::move(done), call](etcd::MemberReply out) mutable {
                               done(gateway_member_reply(out, call));
                             });
    };
    return reply(std::move(f));
  }
  etcd::change_membership(node_, r, options_.grpc_address, etcd::kMemberCallTimeoutMs,
                          [reply = std::move(reply), call](etcd::MemberReply out) mutable {
                            reply(gateway_member_reply(out, call));
                          });
}

void Api::handle_status(Reply reply) {
  const node::NodeStatus st = node_.status();
  json members = json::array();
  for (const node::MemberStatus& m : st.members) {
    json member{{"id", m.info.name},
                {"raftAddress", m.info.raft_address},
                {"apiAddress", m.info.api_address},
                {"grpcAddress", m.info.grpc_address},
                {"role", m.role}};
    if (m.active) member["active"] = *m.active;
    if (m.progress) {  // the leader's view (node.h, Replication)
      member["match"] = m.progress->match;
      member["next"] = m.progress->next;
      member["progress"] = m.progress->state;
    }
    members.push_back(std::move(member));
  }
  const bool is_leader = st.leader_id != raft::kNoNode && st.leader_id == st.id;
  reply(json_response(200, json{{"id", st.name},
                                {"state", st.state},
                                {"isLeader", is_leader},
                                {"leader", st.leader.raft_address},
                                {"leaderId", st.leader.name},
                                {"leaderApiAddress", st.leader.api_address},
                                {"term", st.term},
                                {"commitIndex", st.commit_index},
                                {"appliedIndex", st.applied_index},
                                {"lastIndex", st.last_index},
                                {"snapshotIndex", st.snapshot_index},
                                {"revision", st.revision},
                                {"compactRevision", st.compact_revision},
                                {"noSpace", st.no_space},
                                {"clusterId", cluster_id_hex(st.cluster_id)},
                                {"removed", st.removed},
                                {"members", members}}));
}

std::string cluster_id_hex(uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

std::optional<node::PeerView> parse_status_reply(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  node::PeerView v;
  const auto id = j.find("id");
  const auto cluster = j.find("clusterId");
  const auto leader = j.find("leaderId");
  const auto applied = j.find("appliedIndex");
  const auto members = j.find("members");
  if (id == j.end() || !id->is_string() || cluster == j.end() || !cluster->is_string() || leader == j.end() ||
      !leader->is_string() || applied == j.end() || !applied->is_number_unsigned() || members == j.end() ||
      !members->is_array()) {
    return std::nullopt;
  }
  v.name = id->get<std::string>();
  const std::string hex = cluster->get<std::string>();
  char* end = nullptr;
  v.cluster_id = std::strtoull(hex.c_str(), &end, 16);
  if (hex.empty() || *end != '\0') return std::nullopt;
  v.has_leader = !leader->get<std::string>().empty();
  v.applied_index = applied->get<uint64_t>();
  for (const json& m : *members) {
    if (!m.is_object() || !m.contains("id") || !m["id"].is_string()) return std::nullopt;
    v.member_names.push_back(m["id"].get<std::string>());
  }
  return v;
}

}  // namespace ckv::http
