// etcd's Auth messages <-> auth/types.h: one conversion for the gRPC service and the /v3/auth gateway.
#pragma once

#include <optional>

#include "auth/types.h"
#include "etcd/auth_service.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"

namespace ckv::etcd {

namespace pb = ::etcdserverpb;

// The change one of the Auth service's change requests asks for
// (AuthEnable, AuthDisable, UserAdd, UserDelete, UserChangePassword,
// UserGrantRole, UserRevokeRole, RoleAdd, RoleDelete, RoleGrantPermission,
// RoleRevokePermission); nullopt for any other message. A password stays in
// secret, as AuthService::change expects.
std::optional<auth::AuthRequest> change_from_pb(const google::protobuf::Message& m);

void to_pb(const UserGetAnswer& a, pb::AuthUserGetResponse* out);
void to_pb(const RoleGetAnswer& a, pb::AuthRoleGetResponse* out);
void to_pb(const NamesAnswer& a, pb::AuthUserListResponse* out);
void to_pb(const NamesAnswer& a, pb::AuthRoleListResponse* out);
void to_pb(const AuthenticateAnswer& a, pb::AuthenticateResponse* out);

}  // namespace ckv::etcd
