// Counting gRPC calls by method and code with their duration (a grpc++ server interceptor; metrics/instruments.h).
//
// Installed on the server builder by grpc_server.cc. grpc++ creates one
// interceptor per call; it notes the method's label index and the start
// time, and records the call once: when the status is sent, or, for a call
// that ends without one (the client went away), as Canceled.
#pragma once

namespace grpc {
class ServerBuilder;
}

namespace ckv::etcd {

void install_grpc_metrics(grpc::ServerBuilder& builder);

}  // namespace ckv::etcd
