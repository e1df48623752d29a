// etcd's Auth service: generated messages in, AuthService, and back (see auth_grpc_service.h).
#include "etcd/auth_grpc_service.h"

#include <string>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "etcd/auth_convert.h"
#include "etcd/auth_service.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_credentials.h"
#include "etcd/header_convert.h"
#include "etcd/kv_convert.h"

namespace ckv::etcd {

namespace {

class AuthGrpcService final : public pb::Auth::CallbackService {
 public:
  explicit AuthGrpcService(AuthService& auth) : auth_(auth) {}

#define CKV_AUTH_CHANGE(Method, Req, Resp)                                                         \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* ctx, const pb::Req* req,           \
                                   pb::Resp* resp) override {                                      \
    return change(ctx, *req, resp);                                                                \
  }
  CKV_AUTH_CHANGE(AuthEnable, AuthEnableRequest, AuthEnableResponse)
  CKV_AUTH_CHANGE(AuthDisable, AuthDisableRequest, AuthDisableResponse)
  CKV_AUTH_CHANGE(UserAdd, AuthUserAddRequest, AuthUserAddResponse)
  CKV_AUTH_CHANGE(UserDelete, AuthUserDeleteRequest, AuthUserDeleteResponse)
  CKV_AUTH_CHANGE(UserChangePassword, AuthUserChangePasswordRequest, AuthUserChangePasswordResponse)
  CKV_AUTH_CHANGE(UserGrantRole, AuthUserGrantRoleRequest, AuthUserGrantRoleResponse)
  CKV_AUTH_CHANGE(UserRevokeRole, AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse)
  CKV_AUTH_CHANGE(RoleAdd, AuthRoleAddRequest, AuthRoleAddResponse)
  CKV_AUTH_CHANGE(RoleDelete, AuthRoleDeleteRequest, AuthRoleDeleteResponse)
  CKV_AUTH_CHANGE(RoleGrantPermission, AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse)
  CKV_AUTH_CHANGE(RoleRevokePermission, AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse)
#undef CKV_AUTH_CHANGE

  grpc::ServerUnaryReactor* Authenticate(grpc::CallbackServerContext* ctx, const pb::AuthenticateRequest* req,
                                         pb::AuthenticateResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    auth_.authenticate(req->name(), req->password(), finish_with<AuthenticateAnswer>(reactor, resp));
    return reactor;
  }
  grpc::ServerUnaryReactor* UserGet(grpc::CallbackServerContext* ctx, const pb::AuthUserGetRequest* req,
                                    pb::AuthUserGetResponse* resp) override {
    return as_caller(ctx, [&](auth::Caller who, grpc::ServerUnaryReactor* reactor) {
      auth_.user_get(std::move(who), req->name(), finish_with<UserGetAnswer>(reactor, resp));
    });
  }
  grpc::ServerUnaryReactor* RoleGet(grpc::CallbackServerContext* ctx, const pb::AuthRoleGetRequest* req,
                                    pb::AuthRoleGetResponse* resp) override {
    return as_caller(ctx, [&](auth::Caller who, grpc::ServerUnaryReactor* reactor) {
      auth_.role_get(std::move(who), req->role(), finish_with<RoleGetAnswer>(reactor, resp));
    });
  }
  grpc::ServerUnaryReactor* UserList(grpc::CallbackServerContext* ctx, const pb::AuthUserListRequest*,
                                     pb::AuthUserListResponse* resp) override {
    return as_caller(ctx, [&](auth::Caller who, grpc::ServerUnaryReactor* reactor) {
      auth_.user_list(std::move(who), finish_with<NamesAnswer>(reactor, resp));
    });
  }
  grpc::ServerUnaryReactor* RoleList(grpc::CallbackServerContext* ctx, const pb::AuthRoleListRequest*,
                                     pb::AuthRoleListResponse* resp) override {
    return as_caller(ctx, [&](auth::Caller who, grpc::ServerUnaryReactor* reactor) {
      auth_.role_list(std::move(who), finish_with<NamesAnswer>(reactor, resp));
    });
  }

 private:
  template <typename T, typename PbResp>
  static AuthDone<T> finish_with(grpc::ServerUnaryReactor* reactor, PbResp* resp) {
    return [reactor, resp](Result<T> r) {
      if (!r.is_ok()) return reactor->Finish(to_grpc_status(r.status()));
      to_pb(r.value(), resp);
      reactor->Finish(grpc::Status::OK);
    };
  }

  // Resolves the caller's credentials, then start(caller, reactor); a bad token finishes the call.
  template <typename Start>
  grpc::ServerUnaryReactor* as_caller(grpc::CallbackServerContext* ctx, Start start) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Result<auth::Caller> who = auth_.resolve(credentials_from(*ctx));
    if (!who.is_ok()) {
      reactor->Finish(to_grpc_status(who.status()));
      return reactor;
    }
    start(std::move(who).value(), reactor);
    return reactor;
  }

  template <typename PbResp>
  grpc::ServerUnaryReactor* change(grpc::CallbackServerContext* ctx, const google::protobuf::Message& req,
                                   PbResp* resp) {
    // change() resolves the caller itself: again after a read barrier if
    // this member's auth state refused it (AuthService::check_current).
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    auth_.change(credentials_from(*ctx), *change_from_pb(req), [reactor, resp](Result<Header> h) {
      if (!h.is_ok()) return reactor->Finish(to_grpc_status(h.status()));
      fill_response_header(h.value(), resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  AuthService& auth_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_auth_grpc_service(AuthService& auth) {
  return std::make_unique<AuthGrpcService>(auth);
}

}  // namespace ckv::etcd
