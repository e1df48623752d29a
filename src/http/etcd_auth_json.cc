// The Auth gateway (see etcd_auth_json.h).
#include "http/etcd_auth_json.h"

#include <functional>
#include <memory>
#include <utility>

#include <google/protobuf/message.h>

#include "etcd/auth_convert.h"
#include "etcd/auth_service.h"
#include "etcd/header_convert.h"
#include "http/etcd_gateway.h"
#include "http/etcd_kv_json.h"
#include "http/gateway_pb_json.h"

namespace ckv::http {

namespace {

namespace pb = etcdserverpb;

// The auth messages nest at most a permission inside a request.
constexpr int kMaxAuthJsonDepth = 8;

Response error_of(const Status& s) {
  const GrpcError e = grpc_error_for(s);
  return gateway_error(gateway_http_status(e.code), e.code, e.message);
}

template <typename PbResp, typename T>
etcd::AuthDone<T> answer_with(Reply reply) {
  return [reply = std::move(reply)](Result<T> r) {
    if (!r.is_ok()) return reply(error_of(r.status()));
    PbResp msg;
    etcd::to_pb(r.value(), &msg);
    Response resp;
    resp.body = print_gateway_json(msg);
    reply(std::move(resp));
  };
}

// One route: how to parse its body and serve it.
struct Route {
  const char* path;
  std::function<std::unique_ptr<google::protobuf::Message>()> make;
  // Serves the parsed request for a resolved caller (changes resolve it from
  // the credentials themselves: AuthService::change); null: not resolved first.
  std::function<void(etcd::AuthService&, const google::protobuf::Message&, auth::Caller, Reply)> serve;
  std::function<void(etcd::AuthService&, const google::protobuf::Message&, const etcd::Credentials&, Reply)>
      serve_change = nullptr;
};

template <typename PbReq, typename PbResp>
Route change(const char* path) {
  return Route{path, [] { return std::make_unique<PbReq>(); }, nullptr,
               [](etcd::AuthService& a, const google::protobuf::Message& m, const etcd::Credentials& creds,
                  Reply reply) {
                 a.change(creds, *etcd::change_from_pb(m), [reply = std::move(reply)](Result<etcd::Header> h) {
                   if (!h.is_ok()) return reply(error_of(h.status()));
                   PbResp msg;
                   etcd::fill_response_header(h.value(), msg.mutable_header());
                   Response resp;
                   resp.body = print_gateway_json(msg);
                   reply(std::move(resp));
                 });
               }};
}

template <typename PbReq>
Route read(const char* path,
           std::function<void(etcd::AuthService&, const PbReq&, auth::Caller, Reply)> serve) {
  return Route{path, [] { return std::make_unique<PbReq>(); },
               [serve](etcd::AuthService& a, const google::protobuf::Message& m, auth::Caller who, Reply reply) {
                 serve(a, static_cast<const PbReq&>(m), std::move(who), std::move(reply));
               }};
}

const std::vector<Route>& routes() {
  static const std::vector<Route> kRoutes = {
      change<pb::AuthEnableRequest, pb::AuthEnableResponse>("/v3/auth/enable"),
      change<pb::AuthDisableRequest, pb::AuthDisableResponse>("/v3/auth/disable"),
      change<pb::AuthUserAddRequest, pb::AuthUserAddResponse>("/v3/auth/user/add"),
      change<pb::AuthUserDeleteRequest, pb::AuthUserDeleteResponse>("/v3/auth/user/delete"),
      change<pb::AuthUserChangePasswordRequest, pb::AuthUserChangePasswordResponse>("/v3/auth/user/changepw"),
      change<pb::AuthUserGrantRoleRequest, pb::AuthUserGrantRoleResponse>("/v3/auth/user/grant"),
      change<pb::AuthUserRevokeRoleRequest, pb::AuthUserRevokeRoleResponse>("/v3/auth/user/revoke"),
      change<pb::AuthRoleAddRequest, pb::AuthRoleAddResponse>("/v3/auth/role/add"),
      change<pb::AuthRoleDeleteRequest, pb::AuthRoleDeleteResponse>("/v3/auth/role/delete"),
      change<pb::AuthRoleGrantPermissionRequest, pb::AuthRoleGrantPermissionResponse>("/v3/auth/role/grant"),
      change<pb::AuthRoleRevokePermissionRequest, pb::AuthRoleRevokePermissionResponse>("/v3/auth/role/revoke"),
      read<pb::AuthenticateRequest>("/v3/auth/authenticate",
                                    [](etcd::AuthService& a, const pb::AuthenticateRequest& q, auth::Caller, Reply r) {
                                      a.authenticate(q.name(), q.password(),
                                                     answer_with<pb::AuthenticateResponse, etcd::AuthenticateAnswer>(
                                                         std::move(r)));
                                    }),
      read<pb::AuthUserGetRequest>("/v3/auth/user/get",
                                   [](etcd::AuthService& a, const pb::AuthUserGetRequest& q, auth::Caller who, Reply r) {
                                     a.user_get(std::move(who), q.name(),
                                                answer_with<pb::AuthUserGetResponse, etcd::UserGetAnswer>(std::move(r)));
                                   }),
      read<pb::AuthRoleGetRequest>("/v3/auth/role/get",
                                   [](etcd::AuthService& a, const pb::AuthRoleGetRequest& q, auth::Caller who, Reply r) {
                                     a.role_get(std::move(who), q.role(),
                                                answer_with<pb::AuthRoleGetResponse, etcd::RoleGetAnswer>(std::move(r)));
                                   }),
      read<pb::AuthUserListRequest>("/v3/auth/user/list",
                                    [](etcd::AuthService& a, const pb::AuthUserListRequest&, auth::Caller who, Reply r) {
                                      a.user_list(std::move(who),
                                                  answer_with<pb::AuthUserListResponse, etcd::NamesAnswer>(std::move(r)));
                                    }),
      read<pb::AuthRoleListRequest>("/v3/auth/role/list",
                                    [](etcd::AuthService& a, const pb::AuthRoleListRequest&, auth::Caller who, Reply r) {
                                      a.role_list(std::move(who),
                                                  answer_with<pb::AuthRoleListResponse, etcd::NamesAnswer>(std::move(r)));
                                    }),
  };
  return kRoutes;
}

const Route* find_route(const std::string& path) {
  for (const Route& r : routes()) {
    if (path == r.path) return &r;
  }
  return nullptr;
}

}  // namespace

bool is_etcd_auth_route(const std::string& path) { return find_route(path) != nullptr; }

void etcd_auth_gateway(const Request& req, const std::string& path, etcd::AuthService& auth, Reply reply) {
  if (req.method != "POST") {
    return reply(gateway_post_only());
  }
  const Route* route = find_route(path);
  std::unique_ptr<google::protobuf::Message> m = route->make();
  if (Status s = parse_gateway_json(req.body, kMaxAuthJsonDepth, m.get()); !s.is_ok()) return reply(error_of(s));
  if (route->serve_change) return route->serve_change(auth, *m, gateway_credentials(req), std::move(reply));
  Result<auth::Caller> who = auth.resolve(gateway_credentials(req));
  if (!who.is_ok()) return reply(error_of(who.status()));
  route->serve(auth, *m, std::move(who).value(), std::move(reply));
}

}  // namespace ckv::http
