// etcd's Lease gRPC service (LeaseGrant, LeaseRevoke, the LeaseKeepAlive stream, LeaseTimeToLive, LeaseLeases) on the LeaseService request layer.
//
// Callback API: no thread waits for Raft. A LeaseKeepAlive stream handles
// one request at a time (read, renew, write the answer, read the next), so
// a client that does not read its answers holds at most one answer here.
// An error other than "no such lease" ends the stream with etcd's code and
// text (as etcd's server does); clientv3 then opens a new stream and goes
// on keeping its leases alive. grpc++ stays out of this header.
#pragma once

#include <memory>

namespace grpc {
class Service;
}

namespace ckv::etcd {

class LeaseService;

// The service to register with a grpc::ServerBuilder; lease must outlive it.
std::unique_ptr<grpc::Service> make_lease_grpc_service(LeaseService& lease);

}  // namespace ckv::etcd
