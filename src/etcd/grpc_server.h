// The etcd v3 gRPC endpoint (-grpc-address): KV (kv_grpc_service.h), Cluster.MemberList and Maintenance.Status.
//
// Every other method of etcd's services (KV, Watch, Lease, Cluster,
// Maintenance, Auth, and any unknown method) answers UNIMPLEMENTED with a
// message naming the method, which is what etcd's clients handle; nothing
// answers a fake result. docs/api.md lists what is served.
//
// grpc++ and the generated code stay in grpc_server.cc: this header
// includes neither, so kvnode.cc compiles without them.
//
// Threading: the gRPC server runs its own threads and only calls the
// thread-safe Node::status(). Lifecycle: stop() (or the destructor) before
// the Node is destroyed.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "node/node.h"

namespace ckv::etcd {

class KvService;

// How long stop() lets calls in flight finish before cancelling them.
inline constexpr int kGrpcShutdownGraceMs = 2000;
// Largest request message grpc++ accepts (etcd's default --max-request-bytes,
// 1.5 MiB, plus its gRPC overhead allowance); writes are held to 1.5 MiB
// itself (kv_grpc_service.h, kMaxRequestBytes), as etcd does.
inline constexpr int kMaxGrpcRequestBytes = (3 << 19) + 512 * 1024;

// Threads the synchronous server may run calls on at once (grpc++'s
// ResourceQuota); a burst beyond it waits rather than growing the process.
inline constexpr int kMaxGrpcThreads = 64;

class GrpcServer {
 public:
  // Binds listen_address (host:port) and starts serving; kIo if it cannot bind.
  // kv serves the KV service and must outlive the server.
  static Result<std::unique_ptr<GrpcServer>> start(node::Node& node, KvService& kv,
                                                   const std::string& listen_address);
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
