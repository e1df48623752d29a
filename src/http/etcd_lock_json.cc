// The v3lock gateway: /v3/lock/* routes, protobuf's JSON mapping of the lock messages (see etcd_lock_json.h).
#include "http/etcd_lock_json.h"

#include <utility>

#include <google/protobuf/message.h>

#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.pb.h"
#include "etcd/header_convert.h"
#include "etcd/lease_convert.h"
#include "etcd/lock_service.h"
#include "http/etcd_gateway.h"
#include "http/etcd_kv_json.h"
#include "http/gateway_pb_json.h"

namespace ckv::http {

namespace {

constexpr int kGrpcUnknown = 2;
// The lock messages are flat: a body nested deeper is refused before parsing.
constexpr int kMaxLockJsonDepth = 8;

}  // namespace

Response recipe_gateway_error(const Status& s) {
  return gateway_error(gateway_http_status(kGrpcUnknown), kGrpcUnknown, grpc_error_for(s).message);
}

Response gateway_bad_body(const Status& s) {
  const GrpcError e = grpc_error_for(s);
  return gateway_error(gateway_http_status(e.code), e.code, e.message);
}

bool is_etcd_lock_route(const std::string& path) { return path == "/v3/lock/lock" || path == "/v3/lock/unlock"; }

void etcd_lock_gateway(const Request& req, const std::string& path, etcd::LockService& lock, Reply reply) {
  if (req.method != "POST") {
    return reply(gateway_post_only());
  }
  // A gateway call is a client's, never a member's forward; no idempotency key (lock_grpc_service.cc).
  etcd::KvCall call;
  call.credentials = gateway_credentials(req);
  if (path == "/v3/lock/lock") {
    v3lockpb::LockRequest m;
    if (Status s = parse_gateway_json(req.body, kMaxLockJsonDepth, &m); !s.is_ok()) return reply(gateway_bad_body(s));
    lock.lock(m.name(), m.lease(), std::move(call), [reply = std::move(reply)](Result<etcd::LockAnswer> r) {
      if (!r.is_ok()) return reply(recipe_gateway_error(r.status()));
      v3lockpb::LockResponse out;
      etcd::fill_response_header(r.value().header, out.mutable_header());
      out.set_key(r.value().key);
      Response resp;
      resp.body = print_gateway_json(out);
      reply(std::move(resp));
    });
  } else {
    v3lockpb::UnlockRequest m;
    if (Status s = parse_gateway_json(req.body, kMaxLockJsonDepth, &m); !s.is_ok()) return reply(gateway_bad_body(s));
    lock.unlock(m.key(), std::move(call), [reply = std::move(reply)](Result<etcd::UnlockAnswer> r) {
      if (!r.is_ok()) return reply(recipe_gateway_error(r.status()));
      v3lockpb::UnlockResponse out;
      etcd::fill_response_header(r.value().header, out.mutable_header());
      Response resp;
      resp.body = print_gateway_json(out);
      reply(std::move(resp));
    });
  }
}

}  // namespace ckv::http
