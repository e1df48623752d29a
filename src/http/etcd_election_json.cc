// The v3election gateway: /v3/election/* routes, protobuf's JSON mapping of the election messages (see etcd_election_json.h).
#include "http/etcd_election_json.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "etcd/election_convert.h"
#include "etcd/election_service.h"
#include "http/etcd_gateway.h"
#include "http/etcd_kv_json.h"
#include "http/etcd_lock_json.h"
#include "http/gateway_pb_json.h"

namespace ckv::http {

namespace {

namespace electionpb = ::v3electionpb;

// The election messages nest one level (a LeaderKey, a KeyValue): a body nested deeper is refused before parsing.
constexpr int kMaxElectionJsonDepth = 8;

// Answers a unary route with the request layer's result, printed as etcd's gateway does.
template <typename Pb, typename Answer>
std::function<void(Result<Answer>)> printed(Reply reply) {
  return [reply = std::move(reply)](Result<Answer> r) {
    if (!r.is_ok()) return reply(recipe_gateway_error(r.status()));
    Pb out;
    etcd::to_pb(r.value(), &out);
    Response resp;
    resp.body = print_gateway_json(out);
    reply(std::move(resp));
  };
}

}  // namespace

bool is_etcd_election_route(const std::string& path) {
  return path == "/v3/election/campaign" || path == "/v3/election/proclaim" || path == "/v3/election/leader" ||
         path == "/v3/election/resign" || path == kEtcdObservePath;
}

void etcd_election_gateway(const Request& req, const std::string& path, etcd::ElectionService& election, Reply reply) {
  if (req.method != "POST") return reply(gateway_post_only());
  // A gateway call is a client's, never a member's forward; no idempotency key (recipe_grpc.h).
  etcd::KvCall call;
  call.credentials = gateway_credentials(req);
  auto parse = [&](google::protobuf::Message* m) {
    Status s = parse_gateway_json(req.body, kMaxElectionJsonDepth, m);
    if (!s.is_ok()) reply(gateway_bad_body(s));
    return s.is_ok();
  };
  if (path == "/v3/election/campaign") {
    electionpb::CampaignRequest m;
    if (!parse(&m)) return;
    election.campaign(m.name(), m.lease(), m.value(), std::move(call),
                      printed<electionpb::CampaignResponse, etcd::CampaignAnswer>(std::move(reply)));
  } else if (path == "/v3/election/proclaim") {
    electionpb::ProclaimRequest m;
    if (!parse(&m)) return;
    election.proclaim(etcd::leader_of(m), m.value(), std::move(call),
                      printed<electionpb::ProclaimResponse, etcd::ElectionHeaderAnswer>(std::move(reply)));
  } else if (path == "/v3/election/leader") {
    electionpb::LeaderRequest m;
    if (!parse(&m)) return;
    election.leader(m.name(), std::move(call), printed<electionpb::LeaderResponse, etcd::LeaderAnswer>(std::move(reply)));
  } else if (path == "/v3/election/resign") {
    electionpb::ResignRequest m;
    if (!parse(&m)) return;
    election.resign(etcd::leader_of(m), std::move(call),
                    printed<electionpb::ResignResponse, etcd::ElectionHeaderAnswer>(std::move(reply)));
  } else {
    // Observe streams (server.cc); it reaches this only where no server streams it (tests).
    reply(gateway_error(501, 12, "consensuskv: " + path + " is not streamed here"));
  }
}

Result<std::string> observe_name_from_json(const std::string& body) {
  electionpb::LeaderRequest m;
  if (Status s = parse_gateway_json(body, kMaxElectionJsonDepth, &m); !s.is_ok()) return s;
  return m.name();
}

std::string observe_result_json(const etcd::LeaderAnswer& a) {
  electionpb::LeaderResponse out;
  etcd::to_pb(a, &out);
  return R"({"result":)" + print_gateway_json(out) + "}";
}

std::string observe_error_json(const Status& s) {
  // In jsonpb's field order (grpc-gateway's internal.StreamError), not a JSON object's sorted one.
  const std::string message = nlohmann::json(grpc_error_for(s).message).dump(-1, ' ', false,
                                                                             nlohmann::json::error_handler_t::replace);
  return R"({"error":{"grpc_code":2,"http_code":)" + std::to_string(gateway_http_status(2)) +
         R"(,"message":)" + message + R"(,"http_status":"Internal Server Error"}})";
}

}  // namespace ckv::http
