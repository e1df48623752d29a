// etcd's JSON gateway for Maintenance.Alarm, Defragment and Hash (/v3/maintenance/*), onto the MaintenanceService request layer.
//
// As etcd 3.4's grpc-gateway: POST only; bodies in protobuf's JSON mapping
// (enums by name or number, 64-bit integers as strings). etcd maps both Hash
// and HashKV to /v3/maintenance/hash, where Hash wins (a revision in the
// body is ignored there, as etcd ignores it); /v3/maintenance/hashkv is
// ours, for HashKV over HTTP (docs/api.md). The generated code stays in the .cc.
#pragma once

#include <string>

#include "http/api.h"

namespace ckv::etcd {
class MaintenanceService;
}

namespace ckv::http {

// /v3/maintenance/{alarm,defragment,hash,hashkv}.
bool is_etcd_maintenance_route(const std::string& path);

// Serves one of them; reply is called exactly once, inline, on the Raft
// thread or on the hash worker (maintenance_service.h).
void etcd_maintenance_gateway(const Request& req, const std::string& path, etcd::MaintenanceService& ops,
                              int timeout_ms, Reply reply);

}  // namespace ckv::http
