// etcd's Lease request layer (Grant, Revoke, KeepAlive, TimeToLive, Leases): route to the leader, wait, answer.
//
// One layer under both front ends: the gRPC Lease service
// (lease_grpc_service.h) and the /v3/lease/* JSON gateway
// (http/etcd_gateway.h). What each call does (docs/api.md, "Leases"):
//   grant       picks the id when the client passes 0 (a random positive
//               id, as etcd's v3server does, so applying stays
//               deterministic), raises a TTL below min_ttl_sec to it,
//               refuses one over lease::kMaxLeaseTtlSec, then proposes
//               lease::GrantRequest on the leader, or forwards the call to
//               the leader's gRPC address from a follower (with
//               kForwardedMetadata: at most one hop) and answers after a
//               read barrier, so the lease is visible here too.
//   revoke      the same with lease::RevokeRequest: the lease's keys go in
//               one revision.
//   keepalive   the leader renews in memory (Node::lease_renew, no log
//               write); a follower forwards each request to the leader
//               over a short LeaseKeepAlive stream. An unknown or expired
//               lease answers TTL 0, as etcd does. A leader that is not
//               primary yet, a leadership change or a failed forward are
//               retried every kLeaseRetryMs until request_timeout_ms (as
//               etcd's LeaseRenew loops), then "etcdserver: request timed out".
//   time_to_live  remaining TTL from the leader's clock (a follower forwards
//               the call), granted TTL and keys from the replicated table;
//               an unknown lease answers TTL -1, as etcd does.
//   leases      every lease id, from this node's state after a read barrier.
// Every answer carries this node's header (cluster_view.h); errors are
// Status values with etcd's texts (kv_convert.h's table gives the codes).
//
// Threads: every method may be called from any thread and returns at once;
// `done` is called exactly once, inline, on this layer's own thread or (a
// revoke checked again, AuthService::check_current) the auth service's,
// never on the Raft thread. Lifecycle as KvService: stop() after
// Node::stop() answers every call still waiting "etcdserver: server stopped".
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "etcd/cluster_view.h"
#include "etcd/kv_service.h"
#include "lease/types.h"
#include "node/node.h"
#include "tls/tls_files.h"

namespace ckv::etcd {

// How often a keepalive or TimeToLive that found no primary leader (an
// election, a new leader still applying its predecessors' entries, a
// failed forward) tries again before its deadline (etcd throttles 50 ms).
inline constexpr int kLeaseRetryMs = 50;
// Forwarded keepalives and TimeToLives in flight to the leader at once;
// beyond it a call answers "etcdserver: too many requests"-like Unavailable
// and the client retries.
inline constexpr size_t kMaxLeaseForwardsInFlight = 4096;
// etcd's minimum lease TTL is 1.5 election timeouts, rounded up to a second.
int64_t min_lease_ttl_sec(int election_timeout_ms);

struct LeaseServiceOptions {
  int request_timeout_ms = 5000;  // proposals, barriers, forwards, keepalive retries
  int64_t min_ttl_sec = 2;        // min_lease_ttl_sec(tick_ms * election_ticks)
  std::optional<tls::TlsMaterial> tls;  // as KvServiceOptions::tls
  // As KvServiceOptions::auth: a revoke needs WRITE on every key attached
  // to the lease (fsm/authorize.h); grants and keepalives need nothing (etcd 3.4).
  AuthService* auth = nullptr;
};

struct LeaseCall {
  bool forwarded = false;   // arrived with kForwardedMetadata
  Credentials credentials{};  // forwarded to the leader with the call
};

struct KeepAliveAnswer {
  Header header;
  int64_t id = 0;
  int64_t ttl = 0;  // 0: no such lease (expired or revoked)
};

struct TimeToLiveAnswer {
  Header header;
  int64_t id = 0;
  int64_t ttl = -1;  // seconds left; -1: no such lease
  int64_t granted_ttl = 0;
  std::vector<std::string> keys;
};

struct LeasesAnswer {
  Header header;
  std::vector<int64_t> ids;  // ascending
};

template <typename T>
using LeaseDone = std::function<void(Result<T>)>;

class LeaseService {
 public:
  explicit LeaseService(node::Node& node, LeaseServiceOptions options = {});
  ~LeaseService();
  LeaseService(const LeaseService&) = delete;
  LeaseService& operator=(const LeaseService&) = delete;

  // r.id 0: this layer picks one; r.ttl as the client sent it.
  void grant(lease::GrantRequest r, LeaseCall call, LeaseDone<KvAnswer<lease::GrantResponse>> done);
  void revoke(int64_t id, LeaseCall call, LeaseDone<KvAnswer<lease::RevokeResponse>> done);
  void keepalive(int64_t id, LeaseCall call, LeaseDone<KeepAliveAnswer> done);
  void time_to_live(int64_t id, bool keys, LeaseCall call, LeaseDone<TimeToLiveAnswer> done);
  void leases(LeaseDone<LeasesAnswer> done);

  void stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckv::etcd
