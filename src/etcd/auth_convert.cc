// Auth message conversions (see auth_convert.h).
#include "etcd/auth_convert.h"

#include "etcd/header_convert.h"

#include <string>


namespace ckv::etcd {

namespace {

auth::AuthRequest op(auth::AuthOp o) {
  auth::AuthRequest r;
  r.op = o;
  return r;
}

}  // namespace

std::optional<auth::AuthRequest> change_from_pb(const google::protobuf::Message& m) {
  using auth::AuthOp;
  if (dynamic_cast<const pb::AuthEnableRequest*>(&m) != nullptr) return op(AuthOp::kEnable);
  if (dynamic_cast<const pb::AuthDisableRequest*>(&m) != nullptr) return op(AuthOp::kDisable);
  if (const auto* q = dynamic_cast<const pb::AuthUserAddRequest*>(&m)) {
    auth::AuthRequest r = op(AuthOp::kUserAdd);
    r.name = q->name();
    r.secret = q->password();
    r.no_password = q->has_options() && q->options().no_password();
    return r;
  }
  if (const auto* q = dynamic_cast<const pb::AuthUserDeleteRequest*>(&m)) {
    auth::AuthRequest r = op(AuthOp::kUserDelete);
    r.name = q->name();
    return r;
  }
  if (const auto* q = dynamic_cast<const pb::AuthUserChangePasswordRequest*>(&m)) {
    auth::AuthRequest r = op(AuthOp::kUserChangePassword);
    r.name = q->name();
    r.secret = q->password();
    return r;
  }
  if (const auto* q = dynamic_cast<const pb::AuthUserGrantRoleRequest*>(&m)) {
    auth::AuthRequest r = op(AuthOp::kUserGrantRole);
    r.name = q->user();
    r.role = q->role();
    return r;
  }
  if (const auto* q = dynamic_cast<const pb::AuthUserRevokeRoleRequest*>(&m)) {
    auth::AuthRequest r = op(AuthOp::kUserRevokeRole);
    r.name = q->name();
    r.role = q->role();
    return r;
  }
  if (const auto* q = dynamic_cast<const pb::AuthRoleAddRequest*>(&m)) {
    auth::AuthRequest r = op(AuthOp::kRoleAdd);
    r.role = q->name();
    return r;
  }
  if (const auto* q = dynamic_cast<const pb::AuthRoleDeleteRequest*>(&m)) {
    auth::AuthRequest r = op(AuthOp::kRoleDelete);
    r.role = q->role();
    return r;
  }
  if (const auto* q = dynamic_cast<const pb::AuthRoleGrantPermissionRequest*>(&m)) {
    auth::AuthRequest r = op(AuthOp::kRoleGrantPermission);
    r.role = q->name();
    r.perm.type = static_cast<auth::PermType>(q->perm().permtype());
    r.perm.key = q->perm().key();
    r.perm.range_end = q->perm().range_end();
    return r;
  }
  if (const auto* q = dynamic_cast<const pb::AuthRoleRevokePermissionRequest*>(&m)) {
    auth::AuthRequest r = op(AuthOp::kRoleRevokePermission);
    r.role = q->role();
    r.perm.key = q->key();
    r.perm.range_end = q->range_end();
    return r;
  }
  return std::nullopt;
}

void to_pb(const UserGetAnswer& a, pb::AuthUserGetResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  for (const std::string& role : a.roles) out->add_roles(role);
}

void to_pb(const RoleGetAnswer& a, pb::AuthRoleGetResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  for (const auth::Permission& p : a.perms) {
    authpb::Permission* perm = out->add_perm();
    perm->set_permtype(static_cast<authpb::Permission_Type>(p.type));
    perm->set_key(p.key);
    perm->set_range_end(p.range_end);
  }
}

void to_pb(const NamesAnswer& a, pb::AuthUserListResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  for (const std::string& n : a.names) out->add_users(n);
}

void to_pb(const NamesAnswer& a, pb::AuthRoleListResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  for (const std::string& n : a.names) out->add_roles(n);
}

void to_pb(const AuthenticateAnswer& a, pb::AuthenticateResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  out->set_token(a.token);
}

}  // namespace ckv::etcd
