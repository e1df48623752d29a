// The Maintenance gateway: alarm, defragment, hash and hashkv in protobuf's JSON mapping (see etcd_maintenance_json.h).
#include "http/etcd_maintenance_json.h"

#include <utility>

#include <google/protobuf/message.h>

#include "etcd/maintenance_convert.h"
#include "http/etcd_gateway.h"
#include "http/gateway_pb_json.h"

namespace ckv::http {

namespace {

namespace pb = etcdserverpb;

// The maintenance messages are flat: a body nested deeper is refused before parsing.
constexpr int kMaxMaintenanceJsonDepth = 8;

Response error_of(const Status& s) {
  const etcd::EtcdError e = etcd::maintenance_error(s);
  return gateway_error(gateway_http_status(e.code), e.code, e.message);
}

Response message(const google::protobuf::Message& m) {
  Response r;
  r.body = print_gateway_json(m);
  return r;
}

template <typename PbResp, typename T>
etcd::MaintenanceService::Done<T> answer_with(Reply reply) {
  return [reply = std::move(reply)](Result<T> r) {
    if (!r.is_ok()) return reply(error_of(r.status()));
    PbResp out;
    etcd::to_pb(r.value(), &out);
    reply(message(out));
  };
}

}  // namespace

bool is_etcd_maintenance_route(const std::string& path) {
  return path == "/v3/maintenance/alarm" || path == "/v3/maintenance/defragment" ||
         path == "/v3/maintenance/hash" || path == "/v3/maintenance/hashkv";
}

void etcd_maintenance_gateway(const Request& req, const std::string& path, etcd::MaintenanceService& ops,
                              int timeout_ms, Reply reply) {
  if (req.method != "POST") return reply(gateway_post_only());
  const etcd::Credentials creds = gateway_credentials(req);
  if (path == "/v3/maintenance/alarm") {
    pb::AlarmRequest m;
    if (Status s = parse_gateway_json(req.body, kMaxMaintenanceJsonDepth, &m); !s.is_ok()) return reply(error_of(s));
    return ops.alarm(etcd::from_pb(m), creds, timeout_ms, answer_with<pb::AlarmResponse, etcd::AlarmAnswer>(std::move(reply)));
  }
  if (path == "/v3/maintenance/defragment") {
    pb::DefragmentRequest m;
    if (Status s = parse_gateway_json(req.body, kMaxMaintenanceJsonDepth, &m); !s.is_ok()) return reply(error_of(s));
    // etcd 3.4 answers {} once done.
    return ops.defragment(creds, [reply = std::move(reply)](const Result<etcd::Header>& r) {
      if (!r.is_ok()) return reply(error_of(r.status()));
      reply(message(pb::DefragmentResponse()));
    });
  }
  if (path == "/v3/maintenance/hash") {
    pb::HashRequest m;
    if (Status s = parse_gateway_json(req.body, kMaxMaintenanceJsonDepth, &m); !s.is_ok()) return reply(error_of(s));
    return ops.hash(creds, answer_with<pb::HashResponse, etcd::HashAnswer>(std::move(reply)));
  }
  pb::HashKVRequest m;
  if (Status s = parse_gateway_json(req.body, kMaxMaintenanceJsonDepth, &m); !s.is_ok()) return reply(error_of(s));
  ops.hash_kv(creds, m.revision(), answer_with<pb::HashKVResponse, etcd::HashAnswer>(std::move(reply)));
}

}  // namespace ckv::http
