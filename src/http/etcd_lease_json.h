// etcd's JSON gateway for Lease (/v3/lease/*, /v3/kv/lease/*): routes, bodies in protobuf's JSON mapping, onto the LeaseService request layer.
//
// As etcd 3.4's grpc-gateway: POST only; field names as in rpc.proto ("ID",
// "TTL", "grantedTTL"), 64-bit integers as strings, zero values omitted;
// errors {"error","message","code"} with grpc-gateway's HTTP status.
// /v3/lease/keepalive is a stream in etcd's gateway: one JSON request in,
// one answer out, wrapped as {"result":{...}} plus a newline, which is what
// etcd answers for a single message (checked against etcd 3.4.23); a body
// that is not JSON answers code 2 (Unknown) with HTTP 500 there, as etcd's.
// The generated code stays in the .cc.
#pragma once

#include <string>

#include "http/api.h"

namespace ckv::etcd {
class LeaseService;
}

namespace ckv::http {

// /v3/lease/{grant,revoke,keepalive,timetolive,leases} and the aliases
// /v3/kv/lease/{revoke,timetolive,leases}.
bool is_etcd_lease_route(const std::string& path);

// Serves a lease route; reply is called exactly once, inline or on the
// request layer's thread (lease_service.h).
void etcd_lease_gateway(const Request& req, const std::string& path, etcd::LeaseService& lease,
                        Reply reply);

}  // namespace ckv::http
