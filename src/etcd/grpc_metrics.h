// Counting gRPC calls by method and code with their duration (a grpc++ server interceptor; metrics/instruments.h).
//
// Installed on the server builder by grpc_server.cc. grpc++ creates one
// interceptor per call; it notes the method's label index and the start
// time, and records the call once: when the status is sent, or, for a call
// that ends without one (the client went away), as Canceled.
//
// The KV service's calls (etcdserverpb.KV/*) get no interceptor: they record
// themselves with GrpcCallMetrics when they finish. A call with no
// interceptor skips grpc++'s interception machinery altogether, which costs
// ~2 us of the leader's ~50 us per Put (bench/README.md, "Session 10"); KV
// handlers always finish their call, so nothing is lost by it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string_view>

namespace grpc {
class ServerBuilder;
}

namespace ckv::etcd {

void install_grpc_metrics(grpc::ServerBuilder& builder);

// True for the methods whose service records its own calls (no interceptor).
bool grpc_call_recorded_by_service(std::string_view full_method);

// One call's metrics, for a service that records its own: started when the
// handler is entered, recorded with the status code the call finishes with.
class GrpcCallMetrics {
 public:
  explicit GrpcCallMetrics(size_t method_index)
      : method_(method_index), started_(std::chrono::steady_clock::now()) {}
  void record(int status_code) const;

 private:
  size_t method_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace ckv::etcd
