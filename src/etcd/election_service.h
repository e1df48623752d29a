// etcd's v3election service (Campaign, Proclaim, Leader, Observe, Resign) as a request layer over the KV and Lease layers and the watch hub.
//
// Shared by the gRPC Election service (election_grpc_service.h) and the
// gateway's /v3/election/* routes (http/etcd_election_json.h). etcd's own
// v3election server runs clientv3/concurrency's Election recipe on an
// in-process client; this runs the same recipe on this node's request
// layers, step for step (etcd 3.4, clientv3/concurrency/election.go):
//
//   session   the request's lease; lease 0 gets a new one of etcd's session
//             TTL (kElectionSessionTtlSec) that nobody keeps alive. As on
//             etcd this holds for Proclaim and Resign too: with lease 0 they
//             grant one first, and a Proclaim puts the key with it.
//   Campaign  key = name + "/" + hex(lease). One txn: if the key was never
//             created, put it (value, lease), else read it; its create
//             revision is the campaign's rev. A key already there with
//             another value is proclaimed (and resigned if that fails).
//             Then wait while a key under name + "/" was created before
//             ours: watch the newest such key until it is deleted, look
//             again (etcd's waitDeletes; no thundering herd). Answer: the
//             take txn's header and the leader key {name, key, rev, lease}.
//             As etcd 3.4, a campaigner whose key went meanwhile (its lease
//             ended) still wins: Proclaim and Resign then find it not leader.
//   Proclaim  txn: if the key's create revision is rev, put value with the
//             lease; else "election: not leader".
//   Resign    txn: if the key's create revision is rev, delete it. Not the
//             leader is no error (etcd's).
//   Leader    the oldest key under name + "/", or "election: no leader".
//   Observe   the oldest key's kv, then each of its later puts, until it is
//             deleted; then the next oldest (or the first put under the
//             prefix if none). etcd's Election.Observe.
//
// Errors are etcd's v3election server's: its in-process client's errors
// are not gRPC statuses, so every error reaches the client with etcd's text
// and gRPC code Unknown (its gateway: 500). A missing leader key in
// Proclaim or Resign is etcd's ErrMissingLeaderKey. An Observe ends
// (without error, as etcd's) when a read or its watch fails.
//
// Cancel: a Campaign whose caller goes away while it waits resigns (its
// key is deleted if still the one it created), as etcd's Campaign does on a
// cancelled context. An Observation is closed by its consumer.
//
// Limits: at most kMaxWaitingCampaigns campaigns wait and kMaxObservers
// observations are open at once on this node (each holds one watch
// stream); past them "etcdserver: too many requests". An observation holds
// at most kMaxObserveBacklog updates its consumer has not taken; past it
// the oldest is dropped (etcd's Observe promises the latest value, not
// every one), and a warning is logged.
//
// Threads: every method may be called from any thread and returns at once;
// `done` runs exactly once, on a request layer's worker thread, the watch
// hub's notifier thread, or inline (a refused call). stop() answers every
// waiting Campaign and ends every Observation with "etcdserver: server stopped".
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "etcd/kv_service.h"

namespace ckv::node {
class Node;
}

namespace ckv::etcd {

class LeaseService;

// clientv3/concurrency's defaultSessionTTL: the lease a call with lease 0 gets.
inline constexpr int64_t kElectionSessionTtlSec = 60;
// Campaign calls waiting for an earlier campaigner at once, on this node.
inline constexpr size_t kMaxWaitingCampaigns = 4096;
// Observe calls (gRPC streams and gateway streams) open at once, on this node.
inline constexpr size_t kMaxObservers = 1024;
// Updates one Observation holds for a consumer that does not take them.
inline constexpr size_t kMaxObserveBacklog = 256;

// concurrency.ErrElectionNotLeader, ErrElectionNoLeader; v3election.ErrMissingLeaderKey.
inline constexpr const char* kErrElectionNotLeader = "election: not leader";
inline constexpr const char* kErrElectionNoLeader = "election: no leader";
inline constexpr const char* kErrMissingLeaderKey = "\"leader\" field must be provided";

// v3electionpb.LeaderKey: what a campaign won, and what Proclaim and Resign name.
struct LeaderKey {
  std::string name;
  std::string key;
  int64_t rev = 0;
  int64_t lease = 0;
};

struct CampaignAnswer {
  Header header;
  LeaderKey leader;
};

// Proclaim's and Resign's answer.
struct ElectionHeaderAnswer {
  Header header;
};

// Leader's answer, and each update an Observation yields.
struct LeaderAnswer {
  Header header;
  mvcc::KeyValue kv;
};

// The answer's status is already etcd's (text; the front ends send code Unknown).
using CampaignDone = std::function<void(Result<CampaignAnswer>)>;
using ElectionHeaderDone = std::function<void(Result<ElectionHeaderAnswer>)>;
using LeaderDone = std::function<void(Result<LeaderAnswer>)>;

// One Observe call's updates, pulled by its consumer. Thread-safe.
class Observation {
 public:
  virtual ~Observation() = default;
  // The next update, or nothing now (wake is called when there is more).
  virtual std::optional<LeaderAnswer> next() = 0;
  // Once every update was taken: how the observation ended (ok: etcd's
  // quiet end); nothing while it goes on.
  virtual std::optional<Status> ended() = 0;
  // Stops it; wake is not called once this returned. Idempotent.
  virtual void close() = 0;
};

class ElectionService {
 public:
  ElectionService(node::Node& node, KvService& kv, LeaseService& lease);
  ~ElectionService();
  ElectionService(const ElectionService&) = delete;
  ElectionService& operator=(const ElectionService&) = delete;

  // Gives up a waiting campaign (a cancelled call): safe at any time, more
  // than once, and after the campaign was answered (then a no-op).
  using Cancel = std::function<void()>;
  Cancel campaign(std::string name, int64_t lease, std::string value, KvCall call, CampaignDone done);
  // leader: the request's LeaderKey, nothing if the request had none.
  void proclaim(std::optional<LeaderKey> leader, std::string value, KvCall call, ElectionHeaderDone done);
  void resign(std::optional<LeaderKey> leader, KvCall call, ElectionHeaderDone done);
  void leader(const std::string& name, KvCall call, LeaderDone done);
  // An Observation of name; wake (from any thread, never blocking) when it
  // has an update or ended. wake may run before observe returns: look at
  // next() and ended() once after it returned. A refused one (limits,
  // stopped) has ended at once.
  std::unique_ptr<Observation> observe(std::string name, KvCall call, std::function<void()> wake);

  // Answers every waiting campaign and ends every observation with "etcdserver: server stopped"; later calls too. Idempotent.
  void stop();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// The key a campaign with `lease` gets under `name` (etcd's fmt "%s/%x").
std::string election_key(const std::string& name, int64_t lease);

}  // namespace ckv::etcd
