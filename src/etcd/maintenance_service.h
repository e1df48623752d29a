// etcd's Maintenance.Alarm, Defragment, Hash and HashKV as a request layer shared by gRPC (grpc_server.cc) and the /v3 gateway.
//
// What each does here (docs/api.md, "Maintenance"):
//   alarm       GET lists the replicated alarms (fsm/alarm_table.h) after a
//               read barrier, so a member answers what the cluster agreed;
//               ACTIVATE / DEACTIVATE go through the Raft log (a follower
//               forwards them), as etcd's. No permission is checked, as
//               etcd 3.4 checks none.
//   defragment  Node::defragment on THIS member: a snapshot now, the log and
//               WAL segments it covers dropped, freed memory returned.
//   hash        fsm::KvStateMachine::hash_state: the MVCC history at the
//               current revision plus leases, auth and alarms.
//   hash_kv     fsm::KvStateMachine::hash_kv(rev): etcd's HashKV.
// Defragment, Hash and HashKV need root once auth is enabled, as etcd 3.4's
// authMaintenanceServer requires.
//
// Threading: every call returns at once; done runs exactly once, on the
// Raft thread (alarm, defragment) or on this layer's hash worker (hash,
// hash_kv: O(keys), never on the Raft thread or an HTTP I/O thread), and
// must only hand the answer off. Errors are Status in the words
// kv_convert.h's to_grpc_status maps to etcd's (kInvalid with mvcc's
// compacted / future revision texts, kNoSpace, kCorrupt, ...).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/status.h"
#include "etcd/cluster_view.h"
#include "fsm/alarm_table.h"
#include "node/node.h"

namespace ckv::fsm {
struct StateHash;
}

namespace ckv::etcd {

class AuthService;
class WorkPool;
struct Credentials;

struct AlarmAnswer {
  Header header;
  std::vector<fsm::AlarmMember> alarms;
};
struct HashAnswer {
  Header header;  // revision: the store's current revision when the hash began
  uint32_t hash = 0;
  int64_t compact_revision = 0;  // HashKV's: the store's compaction then (-1: none yet)
};

// Hash passes queued at once (each O(keys)); past it a call is refused
// kUnavailable rather than queued without bound.
inline constexpr size_t kMaxQueuedHashes = 16;

class MaintenanceService {
 public:
  // auth: null when auth is not served (nothing is checked).
  MaintenanceService(node::Node& node, AuthService* auth);
  ~MaintenanceService();
  MaintenanceService(const MaintenanceService&) = delete;
  MaintenanceService& operator=(const MaintenanceService&) = delete;

  template <typename T>
  using Done = std::function<void(Result<T>)>;

  // kInvalid for an action or type outside etcd's enums. With auth enabled,
  // ACTIVATE and DEACTIVATE need root (a raised NOSPACE stops every write
  // of the cluster: etcd 3.4 let anyone raise it, etcd 3.6 needs admin);
  // GET needs no role, as on etcd 3.4.
  void alarm(fsm::AlarmRequest r, const Credentials& creds, int timeout_ms, Done<AlarmAnswer> done);
  void defragment(const Credentials& creds, Done<Header> done);
  void hash(const Credentials& creds, Done<HashAnswer> done);
  void hash_kv(const Credentials& creds, int64_t revision, Done<HashAnswer> done);

  // Ends the hash worker (queued hashes still run). Idempotent; the destructor calls it.
  void stop();

 private:
  Status require_root(const Credentials& creds, const char* what) const;
  void run_hash(Done<HashAnswer> done, std::function<Result<fsm::StateHash>()> pass);

  node::Node& node_;
  AuthService* const auth_;
  std::unique_ptr<WorkPool> hash_worker_;
};

}  // namespace ckv::etcd
