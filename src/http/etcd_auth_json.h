// The Auth gateway: etcd's /v3/auth/* routes (enable, authenticate, user/*, role/*), protobuf's JSON mapping of the Auth messages, on etcd::AuthService.
//
// As etcd's gateway: POST only, the Authorization header is the caller's
// token (raw or "Bearer <token>"), answers and errors as the other /v3/
// routes (gateway_pb_json.h, gateway_error).
#pragma once

#include <string>

#include "http/api.h"

namespace ckv::etcd {
class AuthService;
}

namespace ckv::http {

bool is_etcd_auth_route(const std::string& path);

// Serves an auth route (is_etcd_auth_route(path)); reply is called exactly once.
void etcd_auth_gateway(const Request& req, const std::string& path, etcd::AuthService& auth, Reply reply);

}  // namespace ckv::http
