// The operator's endpoints: /metrics (Prometheus), /healthz and /readyz (Kubernetes probes), etcd's /health, the /ui status page.
//
// docs/operations.md ("Probes", "Status page") and docs/metrics.md describe
// what they answer. All are served on the API port, by every node, about
// that node (the page asks each member through /status?member=, which the
// node forwards to that member's API: addresses from the replicated
// membership only).
//
// Threading: as Api::handle (api.h); the read barriers of /readyz and
// /health answer on the Raft thread, where the reply is only handed off.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "http/api.h"
#include "node/node.h"

namespace ckv::http {

// /healthz: the Raft thread woke within this (it wakes at least once a
// tick, 50 ms by default; an fsync of many seconds means a dead disk).
inline constexpr int64_t kHealthzMaxRaftLoopAgeMs = 5000;
// /readyz: applied may trail commit by at most this many entries.
inline constexpr uint64_t kReadyzMaxApplyLagEntries = 1000;
// /readyz: the linearizable read barrier must pass within this; below
// Kubernetes' default probe timeout (1 s), so a slow barrier fails the check
// rather than the probe.
inline constexpr int kReadyzReadTimeoutMs = 800;
// etcd's /health reads with a 1 s deadline (etcd 3.4, etcdhttp/metrics.go).
inline constexpr int kHealthReadTimeoutMs = 1000;
// /status?member=NAME: how long this node waits for that member's answer.
inline constexpr int kMemberStatusTimeoutMs = 2000;

// The HTTP route label of a request target (query and /v3beta prefix
// folded; metrics/instruments.h, http_route_index).
size_t http_metrics_route(std::string_view target);

// Serves the request if its path is one of the operator endpoints above, or
// /status?member= naming another member (forwarded there). Returns false
// (and leaves reply untouched) for any other request.
bool serve_observability(node::Node& node, const Request& req, const std::string& path,
                         const std::map<std::string, std::string>& params, Reply& reply);

// The /metrics text (exposed for tests).
std::string render_metrics(node::Node& node);

}  // namespace ckv::http
