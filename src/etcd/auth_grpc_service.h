// etcd's Auth gRPC service (AuthEnable ... RoleRevokePermission) over grpc++'s callback API, on the AuthService request layer.
#pragma once

#include <memory>

namespace grpc {
class Service;
}

namespace ckv::etcd {

class AuthService;

// The service to register with a grpc::ServerBuilder; auth must outlive it.
std::unique_ptr<grpc::Service> make_auth_grpc_service(AuthService& auth);

}  // namespace ckv::etcd
