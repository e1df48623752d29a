// etcd's gRPC port on our own HTTP/2 server (grpcfront/h2_server.h): KV's five methods answered directly, every other call passed to grpc++'s services in process.
//
// Why: grpc++'s server costs a put at one client ~100 us of CPU more than
// the HTTP API (bench/README.md); KV's calls are the hot path. The other
// services (Watch, Lease, Cluster, Maintenance, Auth, v3lock, v3election)
// keep their grpc++ implementations: the front end relays each of their
// calls, message by message, over grpc++'s in-process channel (no socket),
// so one port still serves every method, streams included, as etcd's does.
//
// What a relayed call carries: its metadata (minus gRPC's reserved and
// "-bin" headers), its deadline, and the verified client certificate's CN
// as kFrontEndClientCnMetadata (grpc_credentials.h), which the front end
// strips from what clients send. A call naming a grpc-encoding (compressed
// messages) is relayed too, whatever its method: grpc++ decompresses.
//
// Lifecycle: stop() before the grpc++ server shuts down (it cancels the
// relayed calls, then waits until grpc++ has finished each).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "tls/tls_files.h"

namespace grpc {
class Channel;
}

namespace ckv::etcd {

class KvService;

struct GrpcFrontendOptions {
  std::string listen_address;
  std::optional<tls::TlsMaterial> tls;
  int handshake_timeout_ms = 10'000;
  size_t max_message_bytes = 0;  // a request message beyond it: RESOURCE_EXHAUSTED
};

class GrpcFrontend {
 public:
  // Binds and serves; backend: an in-process channel to the grpc++ server
  // that serves every other method (grpc::Server::InProcessChannel).
  static Result<std::unique_ptr<GrpcFrontend>> start(const GrpcFrontendOptions& options, KvService& kv,
                                                     std::shared_ptr<grpc::Channel> backend);
  ~GrpcFrontend();
  GrpcFrontend(const GrpcFrontend&) = delete;
  GrpcFrontend& operator=(const GrpcFrontend&) = delete;

  uint16_t port() const;
  // Closes the port and every connection, cancels the relayed calls and waits for them. Idempotent.
  void stop();

  class Impl;

 private:
  explicit GrpcFrontend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckv::etcd
