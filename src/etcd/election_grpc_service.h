// etcd's v3election gRPC service (Campaign, Proclaim, Leader, Observe, Resign) on the ElectionService request layer.
//
// Callback API: a Campaign that waits and an Observe stream hold no
// thread. A Campaign the client cancels (or whose deadline passes) while
// it waits resigns its key (election_service.h); an Observe stream ends
// when the client cancels it, and then closes its observation. grpc++
// stays out of this header.
#pragma once

#include <memory>

namespace grpc {
class Service;
}

namespace ckv::etcd {

class ElectionService;

// The service to register with a grpc::ServerBuilder; election must outlive it.
std::unique_ptr<grpc::Service> make_election_grpc_service(ElectionService& election);

}  // namespace ckv::etcd
