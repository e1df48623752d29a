// etcd's JSON gateway for v3lock (/v3/lock/lock, /v3/lock/unlock): bodies in protobuf's JSON mapping, onto the LockService request layer.
//
// As etcd 3.4's grpc-gateway: POST only; "name" and "key" as base64,
// 64-bit integers as strings; every error code 2 (Unknown) with HTTP 500
// and etcd's text, as etcd's v3lock answers (lock_service.h); a body that
// is not JSON 400 with code 3. A Lock waits for the lock; the gateway
// cannot see a client that leaves meanwhile, so such a Lock still takes the
// lock and holds it until its lease ends (docs/api.md).
#pragma once

#include <string>

#include "common/status.h"
#include "http/api.h"

namespace ckv::etcd {
class LockService;
}

namespace ckv::http {

bool is_etcd_lock_route(const std::string& path);

// Shared with the election gateway (etcd_election_json.h): a recipe's error
// as etcd's v3lock and v3election send it (code 2, HTTP 500, etcd's text),
// and the answer to a body parse_gateway_json refused (400, code 3).
Response recipe_gateway_error(const Status& s);
Response gateway_bad_body(const Status& s);

// Serves a lock route; reply is called exactly once, inline or on a request layer's thread.
void etcd_lock_gateway(const Request& req, const std::string& path, etcd::LockService& lock, Reply reply);

}  // namespace ckv::http
