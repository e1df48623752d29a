// etcd's KV gRPC service (Range, Put, DeleteRange, Txn, Compact) over grpc++'s callback API, on the KvService request layer.
//
// No thread waits for Raft: each handler hands the request to KvService and
// returns; the answer finishes the call from whichever thread has it
// (kv_service.h, "Threads"). grpc++ stays out of this header.
#pragma once

#include <cstddef>
#include <memory>

namespace grpc {
class Service;
}

namespace ckv::etcd {

class KvService;

// The largest write (Put, DeleteRange, Txn) accepted, in encoded bytes:
// etcd's --max-request-bytes default (1.5 MiB). Larger ones answer etcd's
// "etcdserver: request is too large" (InvalidArgument); grpc's own limit
// (kMaxGrpcRequestBytes) adds etcd's 512 KiB allowance on top.
inline constexpr size_t kMaxRequestBytes = size_t{3} << 19;

// The service to register with a grpc::ServerBuilder; kv must outlive it.
std::unique_ptr<grpc::Service> make_kv_grpc_service(KvService& kv);

}  // namespace ckv::etcd
