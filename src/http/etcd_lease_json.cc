// The Lease gateway: /v3/lease/* routes, protobuf's JSON mapping of the lease messages (see etcd_lease_json.h).
#include "http/etcd_lease_json.h"

#include <utility>

#include <google/protobuf/message.h>

#include "etcd/lease_convert.h"
#include "etcd/lease_service.h"
#include "http/etcd_gateway.h"
#include "http/etcd_kv_json.h"
#include "http/gateway_pb_json.h"

namespace ckv::http {

namespace {

namespace pb = etcdserverpb;

constexpr int kGrpcUnknown = 2;
// The lease messages are flat: a body nested deeper is refused before parsing.
constexpr int kMaxLeaseJsonDepth = 8;

Status parse(std::string_view body, google::protobuf::Message* out) {
  return parse_gateway_json(body, kMaxLeaseJsonDepth, out);
}

std::string print(const google::protobuf::Message& m) { return print_gateway_json(m); }

Response error_of(const Status& s) {
  const GrpcError e = grpc_error_for(s);
  return gateway_error(gateway_http_status(e.code), e.code, e.message);
}

// Answers with the message T's answer converts to; wrap: etcd's stream framing.
template <typename PbResp, typename T>
etcd::LeaseDone<T> answer_with(Reply reply, bool stream) {
  return [reply = std::move(reply), stream](Result<T> r) {
    if (!r.is_ok()) return reply(error_of(r.status()));
    PbResp msg;
    etcd::to_pb(r.value(), &msg);
    Response resp;
    resp.body = stream ? "{\"result\":" + print(msg) + "}\n" : print(msg);
    reply(std::move(resp));
  };
}

}  // namespace

bool is_etcd_lease_route(const std::string& path) {
  return path == "/v3/lease/grant" || path == "/v3/lease/revoke" || path == "/v3/kv/lease/revoke" ||
         path == "/v3/lease/keepalive" || path == "/v3/lease/timetolive" ||
         path == "/v3/kv/lease/timetolive" || path == "/v3/lease/leases" || path == "/v3/kv/lease/leases";
}

void etcd_lease_gateway(const Request& req, const std::string& path, etcd::LeaseService& lease,
                        Reply reply) {
  if (req.method != "POST") {
    return reply(gateway_post_only());
  }
  // A gateway call is a client's, never a member's forward.
  etcd::LeaseCall call;
  call.credentials = gateway_credentials(req);
  if (path == "/v3/lease/grant") {
    pb::LeaseGrantRequest m;
    if (Status s = parse(req.body, &m); !s.is_ok()) return reply(error_of(s));
    lease.grant(lease::GrantRequest{m.id(), m.ttl()}, call,
                answer_with<pb::LeaseGrantResponse, etcd::KvAnswer<lease::GrantResponse>>(std::move(reply), false));
  } else if (path == "/v3/lease/revoke" || path == "/v3/kv/lease/revoke") {
    pb::LeaseRevokeRequest m;
    if (Status s = parse(req.body, &m); !s.is_ok()) return reply(error_of(s));
    lease.revoke(m.id(), call,
                 answer_with<pb::LeaseRevokeResponse, etcd::KvAnswer<lease::RevokeResponse>>(std::move(reply), false));
  } else if (path == "/v3/lease/keepalive") {
    pb::LeaseKeepAliveRequest m;
    if (Status s = parse(req.body, &m); !s.is_ok()) {
      // etcd's gateway reads a stream's body itself: a bad one is Unknown (500).
      return reply(gateway_error(gateway_http_status(kGrpcUnknown), kGrpcUnknown, s.message()));
    }
    lease.keepalive(m.id(), call, answer_with<pb::LeaseKeepAliveResponse, etcd::KeepAliveAnswer>(std::move(reply), true));
  } else if (path == "/v3/lease/timetolive" || path == "/v3/kv/lease/timetolive") {
    pb::LeaseTimeToLiveRequest m;
    if (Status s = parse(req.body, &m); !s.is_ok()) return reply(error_of(s));
    lease.time_to_live(m.id(), m.keys(), call,
                       answer_with<pb::LeaseTimeToLiveResponse, etcd::TimeToLiveAnswer>(std::move(reply), false));
  } else {
    pb::LeaseLeasesRequest m;
    if (Status s = parse(req.body, &m); !s.is_ok()) return reply(error_of(s));
    lease.leases(answer_with<pb::LeaseLeasesResponse, etcd::LeasesAnswer>(std::move(reply), false));
  }
}

}  // namespace ckv::http
