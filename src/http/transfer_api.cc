// Leadership transfer on the HTTP port: the seed API's POST /transfer?to=ID and etcd's gateway POST /v3/maintenance/transfer-leadership.
#include <nlohmann/json.hpp>

#include <cstdlib>

#include "etcd/cluster_view.h"
#include "etcd/maintenance_ops.h"
#include "http/api.h"
#include "http/etcd_gateway.h"

namespace ckv::http {

namespace {

using nlohmann::json;

Response json_reply(unsigned status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// A member named by its -id (what /status lists), or by its etcd member id
// (hex, as etcdctl prints it, or decimal).
const node::MemberStatus* find_member(const node::NodeStatus& st, const std::string& to) {
  for (const node::MemberStatus& m : st.members) {
    if (m.info.name == to) return &m;
  }
  for (int base : {16, 10}) {
    char* end = nullptr;
    const unsigned long long id = std::strtoull(to.c_str(), &end, base);
    if (to.empty() || end == nullptr || *end != '\0') continue;
    for (const node::MemberStatus& m : st.members) {
      if (m.id == id) return &m;
    }
  }
  return nullptr;
}

}  // namespace

void Api::handle_transfer(const Request& req, const std::map<std::string, std::string>& params, Reply reply) {
  auto to = params.find("to");
  if (to == params.end() || to->second.empty()) {
    return reply(error_response(400, "missing to (the -id or member id of the member to lead)"));
  }
  if (route_to_leader(req, etcd::kMoveLeaderTimeoutMs + 2000, reply)) return;
  const node::NodeStatus st = node_.status();
  const node::MemberStatus* target = find_member(st, to->second);
  if (target == nullptr) {
    return reply(json_reply(404, json{{"error", "no such member"}, {"to", to->second}}));
  }
  if (target->role != "voter") {
    return reply(error_response(409, "member " + target->info.name + " is a learner: only a voter can lead"));
  }
  json ok{{"leader", target->info.name}, {"leaderRaftAddress", target->info.raft_address},
          {"from", st.name}};
  node_.transfer_leadership(target->id, etcd::kMoveLeaderTimeoutMs,
                            [reply = std::move(reply), ok = std::move(ok)](const Status& s) mutable {
                              if (s.is_ok()) return reply(json_reply(200, ok));
                              // Lost the leadership meanwhile: nothing was asked of anyone.
                              if (s.code() == StatusCode::kNotLeader) {
                                return reply(error_response(503, "leadership changed; retry"));
                              }
                              if (s.code() == StatusCode::kTimeout) {
                                return reply(error_response(504, s.message() + "; retry"));
                              }
                              reply(error_response(s));
                            });
}

void Api::handle_gateway_move_leader(const Request& req, Reply reply) {
  // etcd's body: {"targetID": N}, the id as a JSON number or (uint64) string.
  const json body = json::parse(req.body.empty() ? std::string("{}") : req.body, nullptr, false);
  uint64_t target = 0;
  if (body.is_discarded() || !body.is_object()) {
    return reply(gateway_error_response(etcd::grpc_code::kInvalidArgument, "invalid character in the request body"));
  }
  if (auto it = body.find("targetID"); it != body.end()) {
    if (it->is_number_unsigned()) {
      target = it->get<uint64_t>();
    } else if (it->is_string()) {
      char* end = nullptr;
      const std::string s = it->get<std::string>();
      target = std::strtoull(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0') {
        return reply(gateway_error_response(etcd::grpc_code::kInvalidArgument, "targetID must be a uint64"));
      }
    } else if (!it->is_null()) {
      return reply(gateway_error_response(etcd::grpc_code::kInvalidArgument, "targetID must be a uint64"));
    }
  }
  node_.transfer_leadership(target, etcd::kMoveLeaderTimeoutMs, [this, reply = std::move(reply)](const Status& s) {
    if (const etcd::EtcdError e = etcd::move_leader_error(s); !e.ok()) {
      return reply(gateway_error_response(e.code, e.message));
    }
    reply(gateway_header_response(etcd::header_for(node_.status(), true)));
  });
}

}  // namespace ckv::http
