// etcd's v3lock gRPC service (Lock, Unlock) on the LockService request layer.
//
// Callback API: a Lock that waits for an earlier holder holds no thread. A
// call the client cancels (or whose deadline passes) while waiting gives
// its attempt up, and the key it created is deleted (lock_service.h).
// grpc++ stays out of this header.
#pragma once

#include <memory>

namespace grpc {
class Service;
}

namespace ckv::etcd {

class LockService;

// The service to register with a grpc::ServerBuilder; lock must outlive it.
std::unique_ptr<grpc::Service> make_lock_grpc_service(LockService& lock);

}  // namespace ckv::etcd
