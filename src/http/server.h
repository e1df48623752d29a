// The HTTP server (Boost.Beast, async, one io_context with a few threads) and this node's own calls to other members' APIs.
//
// Beast and Asio stay inside server.cc (a Beast TU costs ~30 s to compile;
// DESIGN.md "Platform notes"); this header is cheap to include.
//
// Besides serving requests the server makes two kinds of outbound calls:
//  - forwarding: a follower proxies writes and /join to the leader's API
//    address (replicated in the membership), marked with kForwardedHeader;
//  - joining: register_self() (the Node's RegisterHook: this node is a
//    member whose API address is missing from the membership, because it
//    joined by raft address only as in the reference README) and join_via()
//    (the -join flag) send this node's addresses to another member's /join.
//
// Lifecycle: start() binds and starts the threads; stop() closes the
// listener and stops the threads. Call Node::stop() first so that waiting
// clients get answers, and destroy the Node before the server (pending Node
// callbacks hold coroutine frames that belong to the server's io_context).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "node/node.h"
#include "tls/tls_files.h"

namespace ckv::etcd {
class AuthService;
class KvService;
class LeaseService;
class LockService;
class ElectionService;
class MaintenanceService;
}

namespace ckv::http {

inline constexpr uint64_t kDefaultMaxBodyBytes = 3 << 19;  // 1.5 MiB, etcd's request limit

// Connection limits (flags in kvnode; docs/api.md "Limits"). A slow or idle
// client holds a slot, so every wait has a deadline and every pool a size.
//
// Outside clients' connections served at once; more are answered 503 and closed.
inline constexpr int kDefaultMaxConnections = 1024;
// Share of those one source address may hold. Benchmarks (bench/, wrk with
// 256 connections) and every test run from 127.0.0.1, so half the pool:
// one address cannot take all of it, and loopback load tests still fit.
inline constexpr int kDefaultMaxConnectionsPerIp = 512;
// Reserved, beyond kDefaultMaxConnections, for requests other members
// forward (admission.h): a follower's writes keep working while outside
// clients fill the pool. Matches kMaxForwardsInFlight, what one follower sends.
inline constexpr int kDefaultMemberConnections = 256;
// The whole request head (request line and headers) must arrive within this
// from its first byte (from accept for a connection's first request), however
// slowly it trickles in: a byte a second does not keep a slot (slowloris).
inline constexpr int kDefaultHeaderTimeoutMs = 10'000;
// Keep-alive: a connection with no request for this long is closed.
inline constexpr int kDefaultIdleTimeoutMs = 60'000;
// The whole request body must arrive within this once its head has
// (1.5 MiB in 30 s is 52 KB/s).
inline constexpr int kDefaultBodyTimeoutMs = 30'000;
// Request body bytes all connections together may hold (admission.h,
// BodyBudget); at least -max-body-bytes, so one largest request always fits.
// Forwarded requests from members' hosts are not counted: they are bounded
// by the forwarding node's kMaxForwardsInFlight.
inline constexpr uint64_t kDefaultMaxBufferedBodyBytes = uint64_t{256} << 20;
// Requests one node forwards to the leader at once; more are answered 503
// instead of opening ever more connections to it.
inline constexpr int kMaxForwardsInFlight = 256;

struct ServerOptions {
  std::string listen_address;  // host:port; also what this node registers as its API address
  uint64_t max_body_bytes = kDefaultMaxBodyBytes;
  int commit_timeout_ms = 5000;  // writes and linearizable reads
  int join_timeout_ms = 30000;   // until a joining member is a voter (it may need a snapshot first)
  // Sent with -join's requests and the API address registration (join_credentials.h); empty: none.
  std::string join_authorization;
  int threads = 2;
  int max_connections = kDefaultMaxConnections;
  int max_connections_per_ip = kDefaultMaxConnectionsPerIp;
  int member_connections = kDefaultMemberConnections;
  int header_timeout_ms = kDefaultHeaderTimeoutMs;
  int idle_timeout_ms = kDefaultIdleTimeoutMs;
  int body_timeout_ms = kDefaultBodyTimeoutMs;
  etcd::KvService* kv = nullptr;  // serves /v3/kv/* (must outlive the server); null: 501
  etcd::LeaseService* lease = nullptr;  // serves /v3/lease/* (must outlive the server); null: 501
  etcd::LockService* lock = nullptr;    // serves /v3/lock/* (must outlive the server); null: 501
  etcd::ElectionService* election = nullptr;  // serves /v3/election/* (must outlive the server); null: 501
  // Serves /v3/maintenance/{alarm,defragment,hash,hashkv} (must outlive the server); null: 404.
  etcd::MaintenanceService* maintenance = nullptr;
  etcd::AuthService* auth = nullptr;  // checks callers (api.h, ApiOptions::auth; must outlive the server)
  // Set: the API serves only TLS, and this node reaches other members' APIs
  // (forwarding, registration, -join) over TLS too, verifying their
  // certificates against tls->trusted_ca_pem (else the system store) and
  // presenting its own certificate (docs/api.md, "TLS"). A cluster's APIs
  // are all TLS or all plain.
  std::optional<tls::TlsMaterial> tls;
};

class HttpServer {
 public:
  // self: this node's name and addresses, as it should appear in the membership.
  HttpServer(node::Node& node, node::MemberInfo self, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listen address and starts serving; kInvalid/kIo when it cannot.
  Status start();
  // In the background: asks the member whose API is at member_api_address to
  // add this node, retrying with backoff until this node is a voter or stop().
  void join_via(std::string member_api_address);
  // Sends /join with this node's addresses to the leader's API, once, in the
  // background; ignored while an earlier one is still under way. Thread-safe
  // and non-blocking: meant to be called from Node's RegisterHook on the
  // Raft thread, which calls it again (at most once a second) until the
  // membership shows this node's API address.
  void register_self(const node::MemberInfo& leader);
  // The Node's PeerStatusHook (node.h): GET /status of peer's API; done runs on an HTTP thread.
  void fetch_peer_status(const node::MemberInfo& peer, std::function<void(Result<node::PeerView>)> done);
  void stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckv::http
