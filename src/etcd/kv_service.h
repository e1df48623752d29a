// etcd's KV request layer (Range, Put, DeleteRange, Txn, Compact): validate, route to the leader, wait, answer.
//
// One layer for both front ends: the gRPC KV service (kv_grpc_service.h)
// and the /v3/kv/* JSON gateway (http/etcd_kv_gateway.h) call these
// methods with mvcc structs; neither talks to the other (no gRPC over
// loopback from the gateway).
//
// What each call does (docs/api.md, "etcd v3 API"):
//   range   validate (mvcc::check_range_request); `serializable`: read this
//           node's state machine now; otherwise (etcd's default,
//           linearizable) pass the read barrier first (thesis §6.4,
//           ReadIndex) so the read sees every write acknowledged before it.
//   writes  validate (request_checks.h), then Node::propose on any node
//           and answer with the result of applying it HERE (so a
//           serializable read here that follows sees it, as on etcd): a
//           follower's node forwards the proposal to the leader over the
//           peer transport (node/forward_waiters.h). A member that knows
//           no leader waits for one (node.h, "No leader"), as etcd's
//           proposals do, then answers etcd's "etcdserver: no leader"
//           (Unavailable; clients retry), at once if the call carries
//           "hasleader" (kRequireLeaderMetadata). Only a follower whose disk is full (it takes no
//           entries, so it could not apply its own) forwards the call to
//           the leader's gRPC address (MemberInfo.grpc_address) with
//           kForwardedMetadata set, so it is forwarded at most once.
//   txn     one that writes is proposed like a write; one that writes
//           nothing (mvcc::is_txn_read_only, etcd's isTxnReadonly) is served
//           like a range, with no log entry: the read barrier unless every
//           op is a serializable range (etcd's isTxnSerializable), then
//           evaluated on this node's state under its shared lock, so its
//           compares and ranges see one revision.
// Every answer carries this node's header: cluster_id, member_id and
// raft_term from cluster_view.h, and the revision of the store the answer
// was computed from (for a write, the revision it created or saw).
//
// Errors are Status values with etcd's texts; kv_convert.h's
// to_grpc_status gives their gRPC code (the gateway derives the HTTP status
// from that code, as etcd's grpc-gateway does).
//
// Threads: every method may be called from any thread and returns at once.
// `done` is called exactly once: inline (a request that fails validation, a
// serializable read) or on one of this layer's worker threads (or the auth
// service's, for a write refused at first: AuthService::check_current, or
// the call's own KvCall::run_follow_up), never on the Raft thread (Node's callbacks are handed off to the workers). Lifecycle:
// stop() (or the destructor) after Node::stop() and before the Node is
// destroyed: a stopped Node never calls back, so stop() answers every call
// still waiting, and every later call, "etcdserver: server stopped".
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "auth/types.h"
#include "common/status.h"
#include "etcd/auth_service.h"
#include "etcd/cluster_view.h"
#include "mvcc/types.h"
#include "node/node.h"
#include "tls/tls_files.h"

namespace ckv::etcd {

// gRPC metadata a follower sets on a call it forwards to the leader; a node
// receiving it never forwards again (a stale view cannot bounce a call
// around the cluster). Its value is "1".
inline constexpr const char* kForwardedMetadata = "ckv-forwarded";
// gRPC metadata naming a write's idempotency key (Command::idempotency_key):
// a retry with the same key returns the first result without applying again.
// At most fsm::kMaxIdempotencyKeyBytes; longer is InvalidArgument.
inline constexpr const char* kIdempotencyKeyMetadata = "idempotency-key";

// Leaders this node keeps a gRPC channel to (least recently used goes
// first); leadership rarely moves among more than a handful of members.
inline constexpr size_t kMaxLeaderChannels = 8;
// Threads that run Node callbacks and forwarded answers (conversion,
// range reads after a barrier), off the Raft thread.
inline constexpr int kDefaultKvWorkers = 2;
// A forwarded call's deadline is the layer's own timeout plus this, so the
// leader answers with its own timeout error first.
inline constexpr int kForwardDeadlineMarginMs = 2000;

struct KvServiceOptions {
  int request_timeout_ms = 5000;  // propose, read barrier and forwarding (-commit-timeout-ms)
  int workers = kDefaultKvWorkers;
  // This node's client TLS (-cert-file ...): set, forwards to the leader's
  // gRPC API go over TLS (etcd/grpc_tls.h, member_channel_credentials).
  std::optional<tls::TlsMaterial> tls;
  // Who callers are (auth_service.h); null: nobody is checked (tests).
  // With it, every call is checked against the caller's permissions
  // (fsm/authorize.h) before it is read or proposed, and again at apply.
  AuthService* auth = nullptr;
};

// Per-call context from the front end.
struct KvCall {
  std::string idempotency_key;  // empty: none
  bool forwarded = false;       // arrived with kForwardedMetadata
  // etcd's "hasleader" metadata (clientv3.WithRequireLeader): a member that
  // knows no leader answers "etcdserver: no leader" at once instead of waiting for one.
  bool require_leader = false;
  Credentials credentials{};    // token / certificate name (auth_service.h)
  // Where the layer runs the call's follow-up (the read after its barrier,
  // the answer to its write) instead of on its own workers: our gRPC front
  // end runs it on the call's connection thread, saving a thread hop per
  // call (grpc_frontend.h). false: it cannot take the task (the connection
  // is gone), which then runs on the workers. Never run on the Raft thread.
  std::function<bool(std::function<void()>&)> run_follow_up;
  // Set by the layer from credentials: the caller proposals carry.
  auth::Caller caller{};
};

template <typename T>
struct KvAnswer {
  Header header;  // header.revision == body.header.revision
  T body;
};

template <typename T>
using KvDone = std::function<void(Result<KvAnswer<T>>)>;

class KvService {
 public:
  explicit KvService(node::Node& node, KvServiceOptions options = {});
  ~KvService();
  KvService(const KvService&) = delete;
  KvService& operator=(const KvService&) = delete;

  void range(mvcc::RangeRequest r, KvCall call, KvDone<mvcc::RangeResponse> done);
  void put(mvcc::PutRequest r, KvCall call, KvDone<mvcc::PutResponse> done);
  void delete_range(mvcc::DeleteRangeRequest r, KvCall call,
                    KvDone<mvcc::DeleteRangeResponse> done);
  void txn(mvcc::TxnRequest r, KvCall call, KvDone<mvcc::TxnResponse> done);
  void compact(mvcc::CompactionRequest r, KvCall call, KvDone<mvcc::CompactionResponse> done);

  // Answers every call not answered yet with "etcdserver: server stopped"
  // (Unavailable; a write's outcome is then unknown, as on etcd), cancels
  // forwarded calls and waits for them, joins the workers. Idempotent.
  void stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckv::etcd
