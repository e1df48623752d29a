// etcd's v3lock service (Lock, Unlock) as a request layer over the KV and Lease layers and the watch hub.
//
// Shared by the gRPC Lock service (lock_grpc_service.h) and the gateway's
// /v3/lock/* routes (http/etcd_lock_json.h). It runs etcd's client-side
// mutex recipe (clientv3/concurrency.Mutex, which etcd's own v3lock server
// runs on an in-process client) here, on this node's request layers, so it
// is exactly as safe as that recipe over our KV, Lease and Watch:
//
//   lease   the request's, or (lease 0) a new one with etcd's session TTL
//           (kLockSessionTtlSec) that nobody keeps alive: the lock then
//           goes 60 s after it was taken unless the caller keeps it alive
//           (its id is the key's lease), as on etcd.
//   key     name + "/" + the lease id in lower-case hex (etcd's myKey).
//   take    one txn: if the key was never created, put it (empty value,
//           the lease) else read it; and read the oldest key under
//           name + "/". Our revision is the key's create revision. Locking
//           twice with one lease is the same key: a no-op, as on etcd.
//   wait    while a key under the prefix was created before ours, watch the
//           newest such key until it is deleted, then look again (etcd's
//           waitDeletes: each waiter watches one key, no thundering herd).
//   check   our key must still exist once we are first (its lease may have
//           expired while we waited): else "mutex: session is expired",
//           as etcd 3.5 does (3.4 granted the lock anyway).
//   answer  the header of the last call and the key: held until Unlock
//           deletes it or its lease ends.
// Unlock deletes the key (any key: etcd does not check it is a lock's).
//
// Errors are answered as etcd's v3lock server does: every error carries
// etcd's text with gRPC code Unknown (its in-process client's errors are
// not gRPC statuses), which its gateway maps to 500.
//
// Cancel: a caller that goes away while waiting (the gRPC call is
// cancelled) gives up the attempt, and the key it created is deleted, as
// etcd's Mutex.Lock does on a failed wait.
//
// Limits: at most kMaxWaitingLocks attempts wait at once (each holds one
// watch stream); past it "etcdserver: too many requests".
//
// Threads: every method may be called from any thread and returns at once;
// `done` runs exactly once, on a request layer's worker thread, the watch
// hub's notifier thread, or inline (a refused call).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "etcd/kv_service.h"

namespace ckv::node {
class Node;
}

namespace ckv::etcd {

class LeaseService;

// clientv3/concurrency's defaultSessionTTL: the lease a Lock without one gets.
inline constexpr int64_t kLockSessionTtlSec = 60;
// Lock calls waiting for an earlier holder at once, on this node.
inline constexpr size_t kMaxWaitingLocks = 4096;
// etcd 3.5's concurrency.ErrSessionExpired.
inline constexpr const char* kErrLockSessionExpired = "mutex: session is expired";

struct LockAnswer {
  Header header;
  std::string key;
};

struct UnlockAnswer {
  Header header;
};

// The answer's status is already etcd's (text and gRPC code): kv_convert.h's
// to_grpc_status gives the code and text a front end sends.
using LockDone = std::function<void(Result<LockAnswer>)>;
using UnlockDone = std::function<void(Result<UnlockAnswer>)>;

class LockService {
 public:
  LockService(node::Node& node, KvService& kv, LeaseService& lease);
  ~LockService();
  LockService(const LockService&) = delete;
  LockService& operator=(const LockService&) = delete;

  // Gives up a lock attempt (a cancelled call): safe to call at any time,
  // more than once, and after the attempt was answered (then a no-op).
  using Cancel = std::function<void()>;
  Cancel lock(std::string name, int64_t lease, KvCall call, LockDone done);
  void unlock(std::string key, KvCall call, UnlockDone done);

  // Answers every waiting attempt "etcdserver: server stopped"; later calls too. Idempotent.
  void stop();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// The key a lock taken with `lease` gets under `name` (etcd's fmt "%s/%x").
std::string lock_key(const std::string& name, int64_t lease);

}  // namespace ckv::etcd
