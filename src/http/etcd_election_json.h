// etcd's JSON gateway for v3election (/v3/election/campaign, proclaim, leader, resign; observe's lines): bodies in protobuf's JSON mapping, onto the ElectionService request layer.
//
// As etcd 3.4's grpc-gateway: POST only; bytes as base64, 64-bit integers
// as strings; every error code 2 (Unknown) with HTTP 500 and etcd's text,
// as etcd's v3election answers (election_service.h); a body that is not
// JSON 400 with code 3. A Campaign waits to win; the gateway cannot see a
// client that leaves meanwhile, so such a Campaign still wins and holds
// the leadership until its lease ends (docs/api.md).
//
// /v3/election/observe streams (server.cc, serve_observe): one line per
// update, {"result": LeaderResponse}; an error as grpc-gateway's stream
// error {"error": {"grpc_code", "http_code", "message", "http_status"}}.
#pragma once

#include <string>

#include "common/status.h"
#include "http/api.h"

namespace ckv::etcd {
class ElectionService;
struct LeaderAnswer;
}

namespace ckv::http {

inline constexpr const char* kEtcdObservePath = "/v3/election/observe";

// The four unary routes and observe.
bool is_etcd_election_route(const std::string& path);

// Serves a unary election route; reply is called exactly once, inline or on a request layer's thread.
void etcd_election_gateway(const Request& req, const std::string& path, etcd::ElectionService& election, Reply reply);

// Observe's request: the election's name, or the gateway's answer to a body it cannot read.
Result<std::string> observe_name_from_json(const std::string& body);
// One line of an Observe stream (without its "\n").
std::string observe_result_json(const etcd::LeaderAnswer& a);
// grpc-gateway's stream error for an Observe that ended with s (etcd's text, code 2: HTTP 500).
std::string observe_error_json(const Status& s);

}  // namespace ckv::http
