// The HTTP API's request handling, independent of the wire: routing, validation, Node calls, JSON bodies.
//
// The server (server.cc, Boost.Beast) turns bytes into a Request and a
// Response back into bytes; everything an endpoint means lives here, so it
// compiles without Beast and reads in one place. The endpoints and their
// bodies are documented in docs/api.md.
//
// Threading: handle() may be called from any thread. The reply callback is
// called exactly once, either inside handle() or later on the Raft thread
// (Node callbacks); the server posts it back to the connection's executor,
// so a reply must only be handed off, never block.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "etcd/auth_service.h"  // AuthService::Identify
#include "node/node.h"

namespace ckv::etcd {
class KvService;
class LeaseService;
class LockService;
class ElectionService;
class MaintenanceService;
enum class MemberCall : uint8_t;
}

namespace ckv::http {

// Set on a request one node forwards to another, so that a request is
// forwarded at most once (a node that is not the leader answers it itself).
inline constexpr const char* kForwardedHeader = "X-Ckv-Forwarded";

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // "/get?key=k"
  std::string body;
  bool forwarded = false;  // kForwardedHeader was present
  // The Idempotency-Key header's value, if the request had one (validated
  // by the endpoints that take it: /set and /delete); forwarded with the request.
  std::optional<std::string> idempotency_key;
  // The Authorization header (docs/security.md, "Client authentication"):
  // "Basic <base64 user:password>" or a token, raw or "Bearer <token>";
  // forwarded with the request.
  std::optional<std::string> authorization{};
  // The subject CN of the client certificate the TLS handshake verified
  // (-client-cert-auth or -trusted-ca-file); empty: none, or a subject with
  // several CNs. The user when no other credentials come (etcd's rule).
  std::string client_cert_cn{};
  // A forwarding member's claim for its caller (auth/forwarded_caller.h,
  // header kForwardedCallerHeader), checked against the forwarding key.
  std::string forwarded_caller{};
};

// The request header that makes a write exactly-once across retries (docs/api.md).
inline constexpr const char* kIdempotencyKeyHeader = "Idempotency-Key";

struct Response {
  unsigned status = 200;
  std::string body;                                          // JSON, always
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type
};

// "Send this request, unchanged, to the leader's API and relay its answer."
struct Forward;
using Outcome = std::variant<Response, Forward>;
using Reply = std::function<void(Outcome)>;

struct Forward {
  std::string api_address;  // host:port of the leader's HTTP API
  int timeout_ms = 0;       // how long to wait for the leader's answer
  // Set: the leader's answer (or the forwarding error) goes here instead of
  // to the client, and this answers the client (once, with a Response), e.g.
  // under this node's own header. Unset: relayed as is.
  std::function<void(Response leader_answer, Reply reply)> then = nullptr;
};

struct ApiOptions {
  int commit_timeout_ms = 5000;  // propose and read barrier
  int join_timeout_ms = 30000;   // add_member: a learner may need a snapshot before it can vote
  std::string grpc_address;      // this node's -grpc-address, for the /v3 gateway's member list
  etcd::KvService* kv = nullptr;  // the /v3/kv/* gateway's request layer; null: those routes answer 501
  etcd::LeaseService* lease = nullptr;  // the /v3/lease/* gateway's request layer; null: 501
  // Who callers are (etcd/auth_service.h); null: nobody is checked. Once
  // auth is enabled, /get needs READ on its key, /set and /delete WRITE,
  // /join, /remove and the gateway's member calls root; 401 without (good)
  // credentials, 403 without the permission.
  etcd::AuthService* auth = nullptr;
  etcd::LockService* lock = nullptr;  // the /v3/lock/* gateway's request layer; null: 501
  etcd::ElectionService* election = nullptr;  // the /v3/election/* gateway's request layer; null: 501
  // The /v3/maintenance/{alarm,defragment,hash,hashkv} gateway's request layer; null: 404.
  etcd::MaintenanceService* maintenance = nullptr;
};

class Api {
 public:
  Api(node::Node& node, ApiOptions options) : node_(node), options_(options) {}

  void handle(const Request& req, Reply reply);

 private:
  // The routes, once the caller is known (no user while auth is disabled);
  // admin_checked: the admin routes' root check was passed.
  void dispatch(const Request& req, const std::string& path,
                const std::map<std::string, std::string>& params, const auth::Caller& caller,
                Reply reply, bool admin_checked = false);
  // Who asks, from req's Authorization header (HTTP Basic or a token) on
  // this member's auth state whenever it is called (no user while auth is
  // disabled here).
  etcd::AuthService::Identify identify(const Request& req) const;
  // Refuses (and logs) a request whose caller may not do it: true and replied.
  bool refused(const char* what, const auth::Caller& caller, const Status& s, const Reply& reply);
  // The answer to a refusal already logged (401 with WWW-Authenticate, or 403...).
  static Response refusal(const Status& s);
  // Proposes c (a /set or /delete) once its caller may (AuthService::check_current:
  // on a member that lags, a refusal stands only after a read barrier).
  void check_and_propose(const char* what, const Request& req, fsm::Command c, Reply reply,
                         std::string leader_api);
  void handle_set(const Request& req, const auth::Caller& caller, Reply reply);
  void handle_delete(const Request& req, const auth::Caller& caller, Reply reply);
  void handle_get(const Request& req, const std::map<std::string, std::string>& params,
                  const auth::Caller& caller, Reply reply);
  void handle_join(const Request& req, const std::map<std::string, std::string>& params,
                   Reply reply);
  void handle_remove(const Request& req, const std::map<std::string, std::string>& params,
                     Reply reply);
  void handle_status(Reply reply);
  // POST /transfer?to=ID and etcd's /v3/maintenance/transfer-leadership (transfer_api.cc).
  void handle_transfer(const Request& req, const std::map<std::string, std::string>& params, Reply reply);
  void handle_gateway_move_leader(const Request& req, Reply reply);
  // etcd's /v3/cluster/member/{add,remove,promote,update} (etcd_gateway.h).
  void handle_gateway_member_change(const Request& req, etcd::MemberCall call, Reply reply);
  void add_member(node::MemberInfo info, Reply reply);
  // Proposes a seed-API write (a put or a single-key delete) and answers
  // with the reference's body once it is applied here.
  // leader_api, when set, is the leader's API address a follower names in
  // X-Ckv-Leader (the write went to that leader as a Raft proposal).
  void propose(fsm::Command c, Reply reply, std::string leader_api = {});
  // /set and /delete run on any node: a follower forwards them to the
  // leader as Raft proposals (node.h propose). Returns true (and replies)
  // when this node must not propose: 503 with no known leader, 421 for a
  // request an older member forwarded over HTTP that we cannot serve, or a
  // Forward over HTTP when this follower's disk is full (it could not apply
  // the write, so the leader answers it, as before). Else sets *leader_api
  // on a follower.
  bool route_write(const Request& req, const Reply& reply, std::string* leader_api);
  // Joins and removals go to the leader. Returns true (and replies) when this
  // node is not the leader: a Forward, or 503 when no leader is known or
  // the request was forwarded once already.
  bool route_to_leader(const Request& req, int timeout_ms, const Reply& reply);

  node::Node& node_;
  const ApiOptions options_;
};

// Whether JSON text nests objects and arrays more than max_depth deep (a
// linear scan, so a hostile body is refused before any parser recurses).
bool json_deeper_than(std::string_view body, int max_depth);

// /status's clusterId: the cluster id in 16 hex digits.
std::string cluster_id_hex(uint64_t id);
// Another member's /status body read back for the removal check
// (node::Node::set_peer_status_hook); nullopt if it is not one.
std::optional<node::PeerView> parse_status_reply(const std::string& body);

// The one place a StatusCode becomes an HTTP status (DESIGN.md, "Conventions").
unsigned http_status_for(StatusCode code);
// {"error": message} with the status for s; 503 also carries Retry-After.
Response error_response(const Status& s);
Response error_response(unsigned http_status, const std::string& message);

}  // namespace ckv::http
