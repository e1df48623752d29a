// The KV request layer (see kv_service.h): validation, read barrier, proposals on any node, gRPC forwarding from full followers.
#include "etcd/kv_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_credentials.h"
#include "etcd/work_pool.h"
#include "etcd/grpc_tls.h"
#include "etcd/kv_convert.h"
#include "fsm/kv_state_machine.h"
#include "mvcc/request_checks.h"

namespace ckv::etcd {

namespace {

// The largest answer a follower accepts from the leader for a forwarded
// call (a txn's ranges can be large; grpc's default of 4 MiB is too small
// for what a leader may legitimately send back).
constexpr int kMaxForwardedResponseBytes = 256 << 20;
// Reconnect backoff of a channel to a leader. grpc's defaults (1 s, growing
// to 120 s) would leave a follower unable to forward for minutes after the
// leader it knows restarted a few times; a leader is worth retrying soon.
constexpr int kLeaderReconnectMinBackoffMs = 100;
constexpr int kLeaderReconnectMaxBackoffMs = 1000;

// A call's `done`, callable once: by whoever answers first, the call's own
// path or stop() (see KvService::Impl::track).
template <typename T>
class OnceDone {
 public:
  explicit OnceDone(KvDone<T> done) : done_(std::move(done)) {}
  void fire(Result<KvAnswer<T>> r) {
    if (!fired_.exchange(true)) done_(std::move(r));
  }

 private:
  KvDone<T> done_;
  std::atomic<bool> fired_{false};
};

// One forwarded call's state: grpc++ needs the context, request and
// response alive until its callback runs.
template <typename PbReq, typename PbResp>
struct ForwardCall {
  grpc::ClientContext ctx;
  PbReq req;
  PbResp resp;
};

// As the seed API's Idempotency-Key header: at most
// fsm::kMaxIdempotencyKeyBytes of printable ASCII (it is logged and stored
// in the replicated state). Empty means none.
Status check_idempotency_key(const std::string& key) {
  if (key.size() > fsm::kMaxIdempotencyKeyBytes) {
    return Status(StatusCode::kInvalid,
                  std::string("consensuskv: ") + kIdempotencyKeyMetadata + " is " +
                      std::to_string(key.size()) + " bytes, over the limit of " +
                      std::to_string(fsm::kMaxIdempotencyKeyBytes) + " bytes");
  }
  for (unsigned char c : key) {
    if (c < 0x20 || c > 0x7e) {
      return Status(StatusCode::kInvalid, std::string("consensuskv: ") +
                                              kIdempotencyKeyMetadata +
                                              " must be printable ASCII");
    }
  }
  return Status::ok();
}

const char* request_name(const fsm::Request& r) {
  static constexpr const char* kNames[] = {"Put", "DeleteRange", "Txn", "Compact",
                                           "LeaseGrant", "LeaseRevoke", "an auth change"};
  return kNames[r.index()];
}

}  // namespace

class KvService::Impl {
  using FollowUp = std::function<bool(std::function<void()>&)>;

 public:
  Impl(node::Node& node, KvServiceOptions options)
      : node_(node),
        options_(std::move(options)),
        credentials_(member_channel_credentials(options_.tls)),
        pool_(options_.workers, "ckv-kv-worker"),
        answers_(pool_) {}

  ~Impl() { stop(); }

  void stop() {
    std::vector<std::pair<grpc::ClientContext*, std::shared_ptr<void>>> cancel;
    std::unordered_map<uint64_t, std::function<void()>> unanswered;
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      cancel.assign(in_flight_.begin(), in_flight_.end());
      unanswered.swap(pending_);
    }
    // A stopped Node never runs the callbacks of what was posted to it:
    // answer every call still waiting (kv_service.h, stop()).
    for (auto& [id, answer_stopped] : unanswered) answer_stopped();
    // Forwarded calls answer their callers with "cancelled" (outcome unknown).
    // Outside mu_: a cancelled call's callback takes it. The shared pointers
    // keep each context alive until it is cancelled.
    for (auto& [ctx, keep_alive] : cancel) ctx->TryCancel();
    cancel.clear();
    {
      std::unique_lock lock(mu_);
      forwards_done_.wait(lock, [this] { return in_flight_.empty(); });
    }
    pool_.stop();
  }

  // Wraps done so that stop() can answer the call if nothing else does;
  // null (and done answered "server stopped") once stopped.
  template <typename T>
  KvDone<T> track(KvDone<T> done) {
    auto once = std::make_shared<OnceDone<T>>(std::move(done));
    uint64_t id = 0;
    {
      std::lock_guard lock(mu_);
      if (!stopped_) {
        id = next_pending_id_++;
        pending_.emplace(id, [once] { once->fire(Status(StatusCode::kUnavailable, kErrStopped)); });
      }
    }
    if (id == 0) {
      once->fire(Status(StatusCode::kUnavailable, kErrStopped));
      return nullptr;
    }
    return [this, once, id](Result<KvAnswer<T>> r) {
      {
        std::lock_guard lock(mu_);
        pending_.erase(id);
      }
      once->fire(std::move(r));
    };
  }

  // ---- range ----------------------------------------------------------------

  // Resolves the call's credentials into call.caller; false (done
  // answered) if they are bad (an unknown or expired token).
  template <typename Resp>
  bool identify(KvCall& call, const KvDone<Resp>& done) {
    if (options_.auth == nullptr) return true;
    Result<auth::Caller> who = options_.auth->resolve(call.credentials);
    if (!who.is_ok()) {
      done(who.status());
      return false;
    }
    call.caller = std::move(who).value();
    return true;
  }

  // A refusal by the permission checks, logged (rate-limited) on its way out.
  template <typename Resp>
  Result<KvAnswer<Resp>> note(const char* what, const auth::Caller& caller, Result<KvAnswer<Resp>> r) {
    if (!r.is_ok() && options_.auth != nullptr &&
        (r.status().code() == StatusCode::kPermissionDenied ||
         r.status().code() == StatusCode::kUnauthenticated)) {
      options_.auth->note_refusal(what, caller, r.status());
    }
    return r;
  }

  void range(mvcc::RangeRequest r, KvCall call, KvDone<mvcc::RangeResponse> done) {
    if (Status s = mvcc::check_range_request(r); !s.is_ok()) return done(s);
    if (!identify(call, done)) return;
    const bool serializable = r.serializable;
    // Copied before the call: arguments are initialized in no set order, so
    // the lambda must not read `call` beside the argument moved from it.
    auth::Caller caller = call.caller;
    read<mvcc::RangeRequest, mvcc::RangeResponse, pb::RangeRequest, pb::RangeResponse>(
        std::move(r), std::move(call), std::move(done), serializable,
        [this, caller = std::move(caller)](const mvcc::RangeRequest& q) {
          return note("Range", caller, answer_read(node_.state_machine().range_as(caller, q)));
        },
        [](pb::KV::Stub* stub, grpc::ClientContext* c, const pb::RangeRequest* q,
           pb::RangeResponse* a,
           std::function<void(grpc::Status)> cb) { stub->async()->Range(c, q, a, std::move(cb)); });
  }

  // ---- writes ---------------------------------------------------------------

  void put(mvcc::PutRequest r, KvCall call, KvDone<mvcc::PutResponse> done) {
    if (!identify(call, done)) return;
    const Status s = mvcc::check_put_request(r);
    write<mvcc::PutRequest, mvcc::PutResponse, pb::PutRequest, pb::PutResponse>(
        std::move(r), std::move(call), std::move(done), s,
        [](pb::KV::Stub* stub, grpc::ClientContext* c, const pb::PutRequest* q, pb::PutResponse* a,
           std::function<void(grpc::Status)> cb) { stub->async()->Put(c, q, a, std::move(cb)); });
  }

  void delete_range(mvcc::DeleteRangeRequest r, KvCall call,
                    KvDone<mvcc::DeleteRangeResponse> done) {
    if (!identify(call, done)) return;
    const Status s = mvcc::check_delete_request(r);
    write<mvcc::DeleteRangeRequest, mvcc::DeleteRangeResponse, pb::DeleteRangeRequest,
          pb::DeleteRangeResponse>(
        std::move(r), std::move(call), std::move(done), s,
        [](pb::KV::Stub* stub, grpc::ClientContext* c, const pb::DeleteRangeRequest* q,
           pb::DeleteRangeResponse* a, std::function<void(grpc::Status)> cb) {
          stub->async()->DeleteRange(c, q, a, std::move(cb));
        });
  }

  void txn(mvcc::TxnRequest r, KvCall call, KvDone<mvcc::TxnResponse> done) {
    if (!identify(call, done)) return;
    const Status s = mvcc::check_txn_request(r);
    auto invoke = [](pb::KV::Stub* stub, grpc::ClientContext* c, const pb::TxnRequest* q,
                     pb::TxnResponse* a, std::function<void(grpc::Status)> cb) {
      stub->async()->Txn(c, q, a, std::move(cb));
    };
    if (s.is_ok() && mvcc::is_txn_read_only(r)) {
      // etcd's Txn: a txn that writes nothing is served like a Range, with no
      // log entry; linearizable unless every op is a serializable range.
      // The idempotency key is still checked, though a read has nothing to dedupe.
      if (Status k = check_idempotency_key(call.idempotency_key); !k.is_ok()) return done(k);
      const bool serializable = mvcc::is_txn_serializable(r);
      auth::Caller caller = call.caller;  // before the call, as in range()
      return read<mvcc::TxnRequest, mvcc::TxnResponse, pb::TxnRequest, pb::TxnResponse>(
          std::move(r), std::move(call), std::move(done), serializable,
          [this, caller = std::move(caller)](const mvcc::TxnRequest& q) {
            return note("Txn", caller, answer_read(node_.state_machine().read_txn_as(caller, q)));
          },
          invoke);
    }
    write<mvcc::TxnRequest, mvcc::TxnResponse, pb::TxnRequest, pb::TxnResponse>(
        std::move(r), std::move(call), std::move(done), s, invoke);
  }

  void compact(mvcc::CompactionRequest r, KvCall call, KvDone<mvcc::CompactionResponse> done) {
    if (!identify(call, done)) return;
    write<mvcc::CompactionRequest, mvcc::CompactionResponse, pb::CompactionRequest,
          pb::CompactionResponse>(
        std::move(r), std::move(call), std::move(done), Status::ok(),
        [](pb::KV::Stub* stub, grpc::ClientContext* c, const pb::CompactionRequest* q,
           pb::CompactionResponse* a, std::function<void(grpc::Status)> cb) {
          stub->async()->Compact(c, q, a, std::move(cb));
        });
  }

 private:
  // This node's header (cluster_view.h's header_for), from the cheap route
  // view rather than a copy of the whole NodeStatus: it is built for every answer.
  Header header_at(int64_t revision) const {
    const node::RouteView v = node_.route_view();
    Header h;
    h.cluster_id = v.cluster_id;
    h.member_id = v.id;
    h.raft_term = v.term;
    h.revision = static_cast<uint64_t>(revision);
    return h;
  }

  // A read's answer under this node's header, at the revision it was read at.
  template <typename Resp>
  Result<KvAnswer<Resp>> answer_read(Result<Resp> res) const {
    if (!res.is_ok()) return res.status();
    const int64_t rev = res->header.revision;
    return KvAnswer<Resp>{header_at(rev), std::move(res).value()};
  }

  // Reads (Range, read-only Txn): `serializable` reads this node's state at
  // once; otherwise (thesis §6.4, ReadIndex) the barrier returns once this
  // node has applied everything committed when the read arrived, and only
  // then read_now runs (on a worker, under the state machine's shared lock).
  template <typename Req, typename Resp, typename PbReq, typename PbResp, typename Read,
            typename Invoke>
  void read(Req r, KvCall call, KvDone<Resp> done, bool serializable, Read read_now,
            Invoke invoke) {
    done = track(std::move(done));
    if (!done) return;
    if (serializable) return done(read_now(r));
    node_.read_barrier(options_.request_timeout_ms, [this, r = std::move(r), call = std::move(call),
                                                     done = std::move(done), read_now,
                                                     invoke](Status s) mutable {
      FollowUp on = call.run_follow_up;
      follow_up(on, [this, s, r = std::move(r), call = std::move(call), done = std::move(done),
                     read_now, invoke]() mutable {
        if (s.code() == StatusCode::kNoSpace && !call.forwarded) {
          // A follower whose disk is full cannot take part in ReadIndex;
          // the leader can answer the read (docs/design-notes.md, "Disk full").
          const node::NodeStatus st = node_.status();
          if (st.leader_id != raft::kNoNode && st.leader_id != st.id &&
              !st.leader.grpc_address.empty()) {
            PbReq req;
            to_pb(r, &req);
            return forward<Resp, PbReq, PbResp>(st.leader.grpc_address, std::move(req), call,
                                                std::move(done), invoke);
          }
        }
        if (!s.is_ok()) return done(s);
        done(read_now(r));
      });
    });
  }

  // Validated writes: propose on the leader, forward from a follower.
  template <typename Req, typename Resp, typename PbReq, typename PbResp, typename Invoke>
  void write(Req r, KvCall call, KvDone<Resp> done, const Status& checked, Invoke invoke) {
    if (!checked.is_ok()) return done(checked);
    if (Status k = check_idempotency_key(call.idempotency_key); !k.is_ok()) return done(k);
    done = track(std::move(done));
    if (!done) return;
    const node::RouteView v = node_.route_view();
    if (v.leader_id != raft::kNoNode && v.leader_id == v.id) {
      return propose<Req, Resp>(std::move(r), std::move(call), std::move(done));
    }
    if (call.forwarded) {
      // An older member forwarded this over gRPC because it thought we lead;
      // we never forward again, so a stale view cannot bounce a call around.
      return done(Status(StatusCode::kNotLeader, kErrLeaderChanged));
    }
    // Without a leader the node waits for one (node.h, "No leader"), unless
    // the client asked for etcd's fail-fast (clientv3.WithRequireLeader).
    if (v.leader_id == raft::kNoNode && call.require_leader) {
      return done(Status(StatusCode::kUnavailable, kErrNoLeader));
    }
    if (!v.no_space) {
      // A follower proposes too: the node forwards the write to the leader
      // as a Raft proposal and answers once it applied it here (node.h).
      return propose<Req, Resp>(std::move(r), std::move(call), std::move(done));
    }
    // A full follower takes no entries, so it could never apply a write it
    // proposed: the leader answers it over gRPC, as before (design notes, "Disk full").
    const node::NodeStatus st = node_.status();
    if (st.leader_id == raft::kNoNode || st.leader.grpc_address.empty()) {
      return done(Status(StatusCode::kUnavailable, kErrNoLeader));
    }
    PbReq req;
    to_pb(r, &req);
    forward<Resp, PbReq, PbResp>(st.leader.grpc_address, std::move(req), call, std::move(done),
                                 invoke);
  }

  template <typename Req, typename Resp>
  void propose(Req r, KvCall call, KvDone<Resp> done) {
    fsm::Command c;
    c.request = std::move(r);
    c.idempotency_key = std::move(call.idempotency_key);
    c.caller = call.caller;
    // Refused here costs no log entry; apply checks again (fsm/authorize.h).
    if (options_.auth == nullptr) {
      if (Status s = node_.state_machine().authorize(c); !s.is_ok()) return done(s);
      return propose_checked<Resp>(std::move(c), std::move(done), call.run_follow_up);
    }
    // On a member that lags, a refusal stands only after a read barrier
    // (AuthService::check_current), the caller resolved again then.
    auto cmd = std::make_shared<fsm::Command>(std::move(c));
    const std::string what = request_name(cmd->request);
    options_.auth->check_current(
        what, [this, creds = call.credentials](const AuthDone<auth::Caller>& d) { d(options_.auth->resolve(creds)); },
        [this, cmd](const auth::Caller& who) {
          cmd->caller = who;
          return node_.state_machine().authorize(*cmd);
        },
        [this, cmd, creds = call.credentials, on = call.run_follow_up,
         done = std::move(done)](const Result<auth::Caller>& who) mutable {
          if (!who.is_ok()) return done(who.status());
          propose_checked<Resp>(std::move(*cmd), refusal_at_apply_resolved_again(std::move(creds), std::move(done)),
                                std::move(on));
        });
  }

  // Apply refuses a write whose caller was resolved at an older auth
  // revision (etcd's "revision of auth store is old"): a user, role or
  // password changed between the check and the apply, e.g. a change this
  // member had not applied yet when the call came. That change is applied
  // now, so the credentials are resolved again: a token or user it dropped
  // answers its refusal (Unauthenticated), as the check would have had it
  // come first; otherwise the old-revision error stands (the client retries).
  template <typename Resp>
  KvDone<Resp> refusal_at_apply_resolved_again(Credentials creds, KvDone<Resp> done) {
    return [this, creds = std::move(creds), done = std::move(done)](Result<KvAnswer<Resp>> r) {
      if (!r.is_ok() && r.status().message() == auth::kErrAuthOldRevision) {
        if (Result<auth::Caller> again = options_.auth->resolve(creds); !again.is_ok()) return done(again.status());
      }
      done(std::move(r));
    };
  }

  template <typename Resp>
  void propose_checked(fsm::Command c, KvDone<Resp> done, FollowUp on) {
    const char* what = request_name(c.request);
    auth::Caller who = c.caller;
    node_.propose(std::move(c), options_.request_timeout_ms,
                  [this, what, who = std::move(who), done = std::move(done),
                   on = std::move(on)](Result<node::WriteResult> wr) mutable {
                    std::function<void()> answer = [this, what, who, wr = std::move(wr),
                                                    done = std::move(done)]() mutable {
                      if (wr.is_ok() && options_.auth != nullptr) options_.auth->note_if_refused(what, who, wr->status);
                      answer_proposal<Resp>(std::move(wr), done);
                    };
                    if (on && on(answer)) return;
                    answers_.post(std::move(answer));
                  });
  }

  // Runs a call's follow-up where the call asked (KvCall::run_follow_up), else on the workers.
  void follow_up(const FollowUp& on, std::function<void()> task) {
    if (on && on(task)) return;
    pool_.post(std::move(task));
  }

  template <typename Resp>
  void answer_proposal(Result<node::WriteResult> wr, const KvDone<Resp>& done) {
    if (!wr.is_ok()) {
      // Replication's outcome (kNotLeader, kUnavailable, kTimeout, kNoSpace):
      // to_grpc_status gives etcd's words; ours go to the log.
      spdlog::debug("etcd KV write not applied: {}", wr.status().to_string());
      return done(wr.status());
    }
    node::WriteResult& w = wr.value();
    if (!w.status.is_ok()) return done(w.status);  // the request's own outcome, etcd's text
    Resp* body = std::get_if<Resp>(&w.response);
    if (body == nullptr) {
      // Only a retry whose idempotency key first named another kind of request.
      return done(Status(StatusCode::kInvalid,
                         "consensuskv: idempotency-key was first used by a different kind of "
                         "request; its first result is not this call's"));
    }
    const int64_t rev = body->header.revision;
    done(KvAnswer<Resp>{header_at(rev), std::move(*body)});
  }

  std::shared_ptr<pb::KV::Stub> stub_for(const std::string& address) {
    std::lock_guard lock(mu_);
    auto it = stubs_.find(address);
    if (it != stubs_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.stub;
    }
    if (stubs_.size() >= kMaxLeaderChannels) {
      stubs_.erase(lru_.back());
      lru_.pop_back();
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxForwardedResponseBytes);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kLeaderReconnectMinBackoffMs);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kLeaderReconnectMinBackoffMs);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kLeaderReconnectMaxBackoffMs);
    auto channel = grpc::CreateCustomChannel(address, credentials_, args);
    lru_.push_front(address);
    Cached& c = stubs_[address];
    c.stub = std::shared_ptr<pb::KV::Stub>(pb::KV::NewStub(channel));
    c.lru = lru_.begin();
    return c.stub;
  }

  // Sends the call to the leader (kv_service.h, "writes") and answers with
  // its result once this node has applied that revision too.
  template <typename Resp, typename PbReq, typename PbResp, typename Invoke>
  void forward(const std::string& leader, PbReq req, const KvCall& call, KvDone<Resp> done,
               Invoke invoke) {
    auto fc = std::make_shared<ForwardCall<PbReq, PbResp>>();
    fc->req = std::move(req);
    // A fixed value: metadata must be printable ASCII, which member names need not be.
    fc->ctx.AddMetadata(kForwardedMetadata, "1");
    forward_credentials(call.credentials, &fc->ctx, options_.auth);
    if (!call.idempotency_key.empty()) {
      fc->ctx.AddMetadata(kIdempotencyKeyMetadata, call.idempotency_key);
    }
    fc->ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(options_.request_timeout_ms +
                                                   kForwardDeadlineMarginMs));
    bool stopping = false;
    {
      std::lock_guard lock(mu_);
      stopping = stopped_;
      if (!stopping) in_flight_.emplace(&fc->ctx, fc);
    }
    // Outside mu_: done (track's wrapper) takes it.
    if (stopping) return done(Status(StatusCode::kUnavailable, kErrStopped));
    std::shared_ptr<pb::KV::Stub> stub = stub_for(leader);
    // The callback runs on a grpc++ thread, never the Raft thread.
    invoke(stub.get(), &fc->ctx, &fc->req, &fc->resp,
           [this, fc, stub, leader, done = std::move(done)](grpc::Status g) mutable {
             if (!g.ok()) {
               spdlog::debug("etcd KV call forwarded to the leader at {} failed: {} {}", leader,
                             static_cast<int>(g.error_code()), g.error_message());
               finish_forward(&fc->ctx, [&] { done(from_grpc_status(g)); });
               return;
             }
             Resp body = from_pb(fc->resp);
             finish_forward(&fc->ctx,
                            [&] { answer_when_applied<Resp>(std::move(body), std::move(done)); });
           });
  }

  // Runs answer, then marks the call finished (stop() waits for it).
  template <typename F>
  void finish_forward(grpc::ClientContext* ctx, F&& answer) {
    answer();
    std::lock_guard lock(mu_);
    in_flight_.erase(ctx);
    if (in_flight_.empty()) forwards_done_.notify_all();
  }

  // etcd answers a follower's write once the follower applied it; so do we,
  // so that this node's serializable reads see its own clients' writes.
  template <typename Resp>
  void answer_when_applied(Resp body, KvDone<Resp> done) {
    const int64_t rev = body.header.revision;
    if (node_.state_machine().revision() >= rev) {
      return done(KvAnswer<Resp>{header_at(rev), std::move(body)});
    }
    node_.read_barrier(options_.request_timeout_ms,
                       [this, rev, body = std::move(body), done = std::move(done)](Status) mutable {
                         // Whatever the barrier says, the write is committed: answer it.
                         pool_.post([this, rev, body = std::move(body),
                                     done = std::move(done)]() mutable {
                           done(KvAnswer<Resp>{header_at(rev), std::move(body)});
                         });
                       });
  }

  struct Cached {
    std::shared_ptr<pb::KV::Stub> stub;
    std::list<std::string>::iterator lru;
  };

  node::Node& node_;
  const KvServiceOptions options_;
  // TLS when this node serves TLS (every member of a cluster does or none).
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  WorkPool pool_;
  // Applied writes' answers, handed off from the Raft thread a batch at a
  // time; its drains run in pool_. Destroyed before pool_, which is safe:
  // ~Impl's stop() has run every queued drain and joined pool_'s threads.
  BurstHandoff answers_;

  std::mutex mu_;
  bool stopped_ = false;
  // Calls not answered yet, each with how to answer it "server stopped".
  std::unordered_map<uint64_t, std::function<void()>> pending_;
  uint64_t next_pending_id_ = 1;
  // Forwarded calls not yet answered, each with what keeps its context alive.
  std::unordered_map<grpc::ClientContext*, std::shared_ptr<void>> in_flight_;
  std::condition_variable forwards_done_;
  std::unordered_map<std::string, Cached> stubs_;
  std::list<std::string> lru_;  // most recently used first
};

KvService::KvService(node::Node& node, KvServiceOptions options)
    : impl_(std::make_unique<Impl>(node, std::move(options))) {}
KvService::~KvService() { impl_->stop(); }

void KvService::range(mvcc::RangeRequest r, KvCall call, KvDone<mvcc::RangeResponse> done) {
  impl_->range(std::move(r), std::move(call), std::move(done));
}
void KvService::put(mvcc::PutRequest r, KvCall call, KvDone<mvcc::PutResponse> done) {
  impl_->put(std::move(r), std::move(call), std::move(done));
}
void KvService::delete_range(mvcc::DeleteRangeRequest r, KvCall call,
                             KvDone<mvcc::DeleteRangeResponse> done) {
  impl_->delete_range(std::move(r), std::move(call), std::move(done));
}
void KvService::txn(mvcc::TxnRequest r, KvCall call, KvDone<mvcc::TxnResponse> done) {
  impl_->txn(std::move(r), std::move(call), std::move(done));
}
void KvService::compact(mvcc::CompactionRequest r, KvCall call,
                        KvDone<mvcc::CompactionResponse> done) {
  impl_->compact(std::move(r), std::move(call), std::move(done));
}
void KvService::stop() { impl_->stop(); }

}  // namespace ckv::etcd
