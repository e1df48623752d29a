// The etcd v3 gRPC endpoint (-grpc-address): KV (kv_grpc_service.h), Lease (lease_grpc_service.h), Watch (watch_grpc_service.h), the Cluster service (member list and changes) and Maintenance (maintenance_service.h).
//
// Every other method (etcd's election service, any unknown method) answers
// UNIMPLEMENTED with a message naming the method, which is what etcd's clients handle; nothing
// answers a fake result. docs/api.md lists what is served.
//
// grpc++ and the generated code stay in grpc_server.cc: this header
// includes neither, so kvnode.cc compiles without them.
//
// Cluster's member changes run on the leader (etcd/member_ops.h); a follower
// forwards them to the leader's gRPC address and answers once its own view
// shows the change.
//
// Who reads the port (GrpcFrontEnd): by default our own HTTP/2 server
// (grpc_frontend.h) answers KV's calls and relays the rest to these grpc++
// services, which then listen on no port; kGrpcpp has grpc++ listen itself.
//
// Threading: the gRPC server runs its own threads and only calls Node's
// thread-safe calls, blocking a handler thread until the node calls back
// (bounded by the call's deadline). Lifecycle: stop() (or the destructor)
// before the Node is destroyed.
#pragma once

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

// How long stop() lets calls in flight finish before cancelling them.
inline constexpr int kGrpcShutdownGraceMs = 2000;
// Largest request message grpc++ accepts (etcd's default --max-request-bytes,
// 1.5 MiB, plus its gRPC overhead allowance); writes are held to 1.5 MiB
// itself (kv_grpc_service.h, kMaxRequestBytes), as etcd does.
inline constexpr int kMaxGrpcRequestBytes = (3 << 19) + 512 * 1024;

// Threads the synchronous server may run calls on at once (grpc++'s
// ResourceQuota); a burst beyond it waits rather than growing the process.
inline constexpr int kMaxGrpcThreads = 64;

// Memory grpc++ may hold for all connections and calls together (read and
// write buffers, metadata, call state; grpc's ResourceQuota). grpc's own
// default is unlimited, so clients that open many streams or never read
// could grow the process without end; past the quota grpc shrinks its reads
// and refuses new calls with RESOURCE_EXHAUSTED instead. Our own queues
// (watch_hub.h, the KV workers) have their limits besides.
inline constexpr size_t kGrpcMemoryQuotaBytes = size_t{1} << 30;

// A connection must finish its handshake (TLS and HTTP/2's preface) within
// this, as the HTTP API's first request head must (kvnode passes
// -http-header-timeout-ms); grpc's own default is 120 s.
inline constexpr int kDefaultGrpcHandshakeTimeoutMs = 10'000;

// Which server reads the port (-grpc-front-end). kOwn: our HTTP/2 server
// (grpc_frontend.h) answers KV's calls and relays every other call to the
// grpc++ services in process; kGrpcpp: grpc++ serves the port itself.
enum class GrpcFrontEnd { kOwn, kGrpcpp };

class GrpcServer {
 public:
  // Binds listen_address (host:port) and starts serving; kIo if it cannot bind.
  // kv serves the KV service and must outlive the server; so must lease
  // (the Lease service; null: Lease's methods answer UNIMPLEMENTED), and auth
  // (the Auth service and every permission check; null: Auth answers
  // UNIMPLEMENTED and nothing is checked), and lock (etcd's v3lock service;
  // null: UNIMPLEMENTED), and maintenance (Alarm, Defragment, Hash, HashKV:
  // maintenance_service.h; null: the server makes its own). tls: serve only
  // TLS with this certificate, requiring and verifying client certificates
  // when tls->verify_clients (tls/tls_files.h).
  static Result<std::unique_ptr<GrpcServer>> start(
      node::Node& node, KvService& kv, const std::string& listen_address,
      const std::optional<tls::TlsMaterial>& tls = std::nullopt,
      int handshake_timeout_ms = kDefaultGrpcHandshakeTimeoutMs, LeaseService* lease = nullptr,
      AuthService* auth = nullptr, LockService* lock = nullptr,
      ElectionService* election = nullptr, MaintenanceService* maintenance = nullptr,
      GrpcFrontEnd front_end = GrpcFrontEnd::kGrpcpp);

  // The port it serves (listen_address's, or the one picked for port 0).
  uint16_t port() const;
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Stops accepting calls, waits up to kGrpcShutdownGraceMs for those in flight. Idempotent.
  void stop();

  struct Impl;

 private:
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckv::etcd
