// The Lease request layer (see lease_service.h): proposals and renewals on the leader, gRPC forwarding from followers, retries within a deadline.
#include "etcd/lease_service.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "common/thread_name.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_credentials.h"
#include "etcd/grpc_tls.h"
#include "etcd/kv_convert.h"
#include "fsm/kv_state_machine.h"

namespace ckv::etcd {

int64_t min_lease_ttl_sec(int election_timeout_ms) {
  // etcd: minTTL = ceil((3 * electionTicks / 2) * heartbeat), in seconds.
  const int64_t ms = (3 * static_cast<int64_t>(election_timeout_ms) + 1) / 2;
  return (ms + 999) / 1000;
}

namespace {

using SteadyClock = std::chrono::steady_clock;

// Reconnect backoff of a channel to a leader (as kv_service.cc's, same reason).
constexpr int kLeaderReconnectMinBackoffMs = 100;
constexpr int kLeaderReconnectMaxBackoffMs = 1000;

// One thread that runs tasks at or after a time: Node callbacks hand off to
// it (never work on the Raft thread) and retries wait on it. After stop()
// tasks are dropped: every call they would answer was answered "stopped".
class Scheduler {
 public:
  Scheduler() : thread_(named_thread("ckv-lease-timer", [this] { run(); })) {}
  ~Scheduler() { stop(); }

  void post(std::function<void()> f) { post_at(SteadyClock::now(), std::move(f)); }
  void post_at(SteadyClock::time_point t, std::function<void()> f) {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    tasks_.emplace(t, std::move(f));
    cv_.notify_one();
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    tasks_.clear();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (tasks_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto first = tasks_.begin();
      if (first->first > SteadyClock::now()) {
        cv_.wait_until(lock, first->first);
        continue;
      }
      std::function<void()> f = std::move(first->second);
      tasks_.erase(first);
      lock.unlock();
      f();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<SteadyClock::time_point, std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

template <typename T>
class Once {
 public:
  explicit Once(LeaseDone<T> done) : done_(std::move(done)) {}
  void fire(Result<T> r) {
    if (!fired_.exchange(true)) done_(std::move(r));
  }

 private:
  LeaseDone<T> done_;
  std::atomic<bool> fired_{false};
};

// Errors worth another attempt before the deadline: no primary leader yet,
// leadership moved, or the leader could not be reached.
bool retryable(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kNotLeader ||
         s.code() == StatusCode::kTimeout;
}

// A LeaseKeepAlive stream to the leader carrying one request: written,
// one answer read, writes closed; the leader then finishes the stream.
class KeepAliveForward final
    : public grpc::ClientBidiReactor<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse> {
 public:
  using Done = std::function<void(Result<int64_t>)>;
  KeepAliveForward(std::shared_ptr<grpc::ClientContext> ctx, int64_t id, Done done)
      : ctx_(std::move(ctx)), done_(std::move(done)) {
    req_.set_id(id);
  }
  void start(pb::Lease::Stub* stub) {
    stub->async()->LeaseKeepAlive(ctx_.get(), this);
    StartWrite(&req_);
    StartRead(&resp_);
    StartCall();
  }
  void OnWriteDone(bool ok) override {
    if (ok) StartWritesDone();
  }
  void OnReadDone(bool ok) override { got_ = ok; }
  void OnDone(const grpc::Status& s) override {
    if (got_) {
      done_(resp_.ttl());
    } else {
      done_(s.ok() ? Status(StatusCode::kTimeout, kErrTimeoutConnectionLost) : from_grpc_status(s));
    }
    delete this;
  }

 private:
  std::shared_ptr<grpc::ClientContext> ctx_;
  pb::LeaseKeepAliveRequest req_;
  pb::LeaseKeepAliveResponse resp_;
  bool got_ = false;
  Done done_;
};

}  // namespace

class LeaseService::Impl {
 public:
  Impl(node::Node& node, LeaseServiceOptions options)
      : node_(node),
        options_(std::move(options)),
        credentials_(member_channel_credentials(options_.tls)),
        rng_(std::random_device{}()) {}
  ~Impl() { stop(); }

  void stop() {
    std::unordered_map<uint64_t, std::function<void()>> unanswered;
    std::vector<std::shared_ptr<grpc::ClientContext>> cancel;
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      unanswered.swap(pending_);
      for (auto& [p, c] : forwards_) cancel.push_back(c);
    }
    for (auto& [id, answer] : unanswered) answer();
    // Outside mu_: a cancelled call's callback takes it.
    for (auto& c : cancel) c->TryCancel();
    cancel.clear();
    {
      std::unique_lock lock(mu_);
      forwards_done_.wait(lock, [this] { return forwards_.empty(); });
    }
    sched_.stop();
  }

  template <typename T>
  LeaseDone<T> track(LeaseDone<T> done) {
    auto once = std::make_shared<Once<T>>(std::move(done));
    uint64_t id = 0;
    {
      std::lock_guard lock(mu_);
      if (!stopped_) {
        id = next_pending_++;
        pending_.emplace(id, [once] { once->fire(Status(StatusCode::kUnavailable, kErrStopped)); });
      }
    }
    if (id == 0) {
      once->fire(Status(StatusCode::kUnavailable, kErrStopped));
      return nullptr;
    }
    return [this, once, id](Result<T> r) {
      {
        std::lock_guard lock(mu_);
        pending_.erase(id);
      }
      once->fire(std::move(r));
    };
  }

  // ---- grant and revoke: proposals -------------------------------------------

  void grant(lease::GrantRequest r, LeaseCall call, LeaseDone<KvAnswer<lease::GrantResponse>> done) {
    if (r.ttl > lease::kMaxLeaseTtlSec) {
      return done(Status(StatusCode::kInvalid, lease::kErrLeaseTtlTooLarge));
    }
    done = track(std::move(done));
    if (!done) return;
    const node::NodeStatus st = node_.status();
    if (is_leader(st)) {
      if (r.ttl < options_.min_ttl_sec) r.ttl = options_.min_ttl_sec;
      while (r.id == lease::kNoLease) r.id = pick_id();
      return propose<lease::GrantResponse>(r, std::move(done));
    }
    pb::LeaseGrantRequest req;
    req.set_id(r.id);
    req.set_ttl(r.ttl);
    forward_write<lease::GrantResponse, pb::LeaseGrantRequest, pb::LeaseGrantResponse>(
        st, call, std::move(req), std::move(done),
        [](pb::Lease::Stub* s, grpc::ClientContext* c, const pb::LeaseGrantRequest* q,
           pb::LeaseGrantResponse* a, std::function<void(grpc::Status)> cb) {
          s->async()->LeaseGrant(c, q, a, std::move(cb));
        },
        [](const pb::LeaseGrantResponse& a) {
          lease::GrantResponse g;
          g.id = a.id();
          g.ttl = a.ttl();
          return g;
        });
  }

  void revoke(int64_t id, LeaseCall call, LeaseDone<KvAnswer<lease::RevokeResponse>> done) {
    if (options_.auth == nullptr) return revoke_checked(id, call, auth::Caller{}, std::move(done));
    // WRITE on every key attached to the lease, on an auth state that may
    // lag: a refusal stands only after a read barrier (check_current).
    options_.auth->check_current(
        "LeaseRevoke", [this, creds = call.credentials](const AuthDone<auth::Caller>& d) { d(options_.auth->resolve(creds)); },
        [this, id](const auth::Caller& who) {
          fsm::Command c;
          c.request = lease::RevokeRequest{id};
          c.caller = who;
          return node_.state_machine().authorize(c);
        },
        [this, id, call, done = std::move(done)](Result<auth::Caller> who) mutable {
          if (!who.is_ok()) return done(who.status());
          revoke_checked(id, call, std::move(who).value(), std::move(done));
        });
  }

  void revoke_checked(int64_t id, const LeaseCall& call, auth::Caller caller,
                      LeaseDone<KvAnswer<lease::RevokeResponse>> done) {
    done = track(std::move(done));
    if (!done) return;
    const node::NodeStatus st = node_.status();
    if (is_leader(st)) {
      return propose<lease::RevokeResponse>(lease::RevokeRequest{id}, std::move(done), std::move(caller));
    }
    pb::LeaseRevokeRequest req;
    req.set_id(id);
    forward_write<lease::RevokeResponse, pb::LeaseRevokeRequest, pb::LeaseRevokeResponse>(
        st, call, std::move(req), std::move(done),
        [](pb::Lease::Stub* s, grpc::ClientContext* c, const pb::LeaseRevokeRequest* q,
           pb::LeaseRevokeResponse* a, std::function<void(grpc::Status)> cb) {
          s->async()->LeaseRevoke(c, q, a, std::move(cb));
        },
        [](const pb::LeaseRevokeResponse&) { return lease::RevokeResponse{}; });
  }

  // ---- keepalive and time to live: the leader's clock ---------------------------

  void keepalive(int64_t id, LeaseCall call, LeaseDone<KeepAliveAnswer> done) {
    done = track(std::move(done));
    if (!done) return;
    auto answer = [this, id, done](Result<int64_t> ttl) {
      if (!ttl.is_ok() && ttl.status().code() != StatusCode::kNotFound) return done(ttl.status());
      // etcd answers a keepalive for a lease it does not know with TTL 0.
      done(KeepAliveAnswer{header(), id, ttl.is_ok() ? ttl.value() : 0});
    };
    retry_on_leader(deadline(), call, answer, [this, id](const node::NodeStatus& st,
                                                         std::function<void(Result<int64_t>)> cb) {
      if (is_leader(st)) return node_.lease_renew(id, std::move(cb));
      forward_keepalive(st.leader.grpc_address, id, std::move(cb));
    });
  }

  void time_to_live(int64_t id, bool keys, LeaseCall call, LeaseDone<TimeToLiveAnswer> done) {
    done = track(std::move(done));
    if (!done) return;
    // The TTL left comes from the leader; keys and granted TTL from the
    // replicated table (here on the leader; a follower relays the leader's).
    auto result = std::make_shared<TimeToLiveAnswer>();
    auto answer = [this, id, done, result](Result<int64_t> ms) {
      if (!ms.is_ok() && ms.status().code() != StatusCode::kNotFound) return done(ms.status());
      TimeToLiveAnswer a;
      if (ms.is_ok()) a = std::move(*result);
      a.header = header();
      a.id = id;
      if (!ms.is_ok()) a.ttl = -1;  // etcd's answer for a lease it does not know
      done(std::move(a));
    };
    retry_on_leader(deadline(), call, answer,
                    [this, id, keys, result](const node::NodeStatus& st,
                                             std::function<void(Result<int64_t>)> cb) {
                      if (is_leader(st)) {
                        std::optional<lease::LeaseInfo> info = node_.state_machine().lease_info(id);
                        if (!info) return cb(Status(StatusCode::kNotFound, lease::kErrLeaseNotFound));
                        *result = TimeToLiveAnswer{};
                        if (keys) result->keys = std::move(info->keys);
                        result->granted_ttl = info->ttl;
                        return node_.lease_remaining(id, [result, cb = std::move(cb)](Result<int64_t> ms) {
                          if (ms.is_ok()) result->ttl = ms.value() / 1000;  // etcd truncates
                          cb(std::move(ms));
                        });
                      }
                      forward_time_to_live(st.leader.grpc_address, id, keys, result, std::move(cb));
                    });
  }

  void leases(LeaseDone<LeasesAnswer> done) {
    done = track(std::move(done));
    if (!done) return;
    node_.read_barrier(options_.request_timeout_ms, [this, done](Status s) {
      sched_.post([this, s, done] {
        if (!s.is_ok()) return done(s);
        LeasesAnswer a;
        for (const auto& [id, ttl] : node_.state_machine().lease_ttls()) a.ids.push_back(id);
        a.header = header();
        done(std::move(a));
      });
    });
  }

 private:
  using Attempt = std::function<void(const node::NodeStatus&, std::function<void(Result<int64_t>)>)>;

  static bool is_leader(const node::NodeStatus& st) {
    return st.leader_id != raft::kNoNode && st.leader_id == st.id;
  }

  SteadyClock::time_point deadline() const {
    return SteadyClock::now() + std::chrono::milliseconds(options_.request_timeout_ms);
  }

  Header header() const {
    Header h = header_for(node_.status(), false);
    h.revision = static_cast<uint64_t>(node_.state_machine().revision());
    return h;
  }

  int64_t pick_id() {
    std::lock_guard lock(mu_);
    // Positive ids only, as etcd's v3server.
    return static_cast<int64_t>(rng_() & ((uint64_t{1} << 63) - 1));
  }

  // Runs attempt against the current leader (this node or a forward) until
  // it answers something other than a retryable error, or the deadline.
  void retry_on_leader(SteadyClock::time_point until, const LeaseCall& call,
                       std::function<void(Result<int64_t>)> answer, Attempt attempt) {
    const node::NodeStatus st = node_.status();
    auto again = [this, until, call, answer, attempt](Status why) {
      if (SteadyClock::now() + std::chrono::milliseconds(kLeaseRetryMs) >= until) {
        spdlog::debug("etcd lease call gave up: {}", why.to_string());
        return answer(Status(StatusCode::kTimeout, kErrTimeout));
      }
      sched_.post_at(SteadyClock::now() + std::chrono::milliseconds(kLeaseRetryMs),
                     [this, until, call, answer, attempt] { retry_on_leader(until, call, answer, attempt); });
    };
    if (!is_leader(st)) {
      if (call.forwarded) {
        // Forwarded because the sender thought we lead: never forward again.
        return answer(Status(StatusCode::kNotLeader, kErrLeaderChanged));
      }
      if (st.leader_id == raft::kNoNode || st.leader.grpc_address.empty()) {
        return again(Status(StatusCode::kUnavailable, kErrNoLeader));
      }
    }
    attempt(st, [this, answer, again](Result<int64_t> r) {
      sched_.post([r = std::move(r), answer, again]() mutable {
        if (!r.is_ok() && retryable(r.status())) return again(r.status());
        answer(std::move(r));
      });
    });
  }

  template <typename Resp, typename Req>
  void propose(Req r, LeaseDone<KvAnswer<Resp>> done, auth::Caller caller = {}) {
    fsm::Command c;
    c.request = std::move(r);
    c.caller = caller;
    node_.propose(std::move(c), options_.request_timeout_ms, [this, done, caller](Result<node::WriteResult> wr) {
      sched_.post([this, wr = std::move(wr), done, caller]() mutable {
        if (!wr.is_ok()) return done(wr.status());
        if (!wr->status.is_ok()) {
          if (options_.auth != nullptr) options_.auth->note_if_refused(
              std::is_same_v<Req, lease::RevokeRequest> ? "LeaseRevoke" : "LeaseGrant", caller, wr->status);
          return done(wr->status);
        }
        Resp* body = std::get_if<Resp>(&wr->response);
        if (body == nullptr) return done(Status(StatusCode::kIo, "consensuskv: unexpected response kind"));
        Header h = header();
        h.revision = static_cast<uint64_t>(body->header.revision);
        done(KvAnswer<Resp>{h, std::move(*body)});
      });
    });
  }

  std::shared_ptr<pb::Lease::Stub> stub_for(const std::string& address) {
    std::lock_guard lock(mu_);
    auto it = stubs_.find(address);
    if (it != stubs_.end()) return it->second;
    if (stubs_.size() >= kMaxLeaderChannels) stubs_.clear();  // leaders rarely move among many
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kLeaderReconnectMinBackoffMs);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kLeaderReconnectMinBackoffMs);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kLeaderReconnectMaxBackoffMs);
    auto stub = std::shared_ptr<pb::Lease::Stub>(
        pb::Lease::NewStub(grpc::CreateCustomChannel(address, credentials_, args)));
    stubs_[address] = stub;
    return stub;
  }

  // A forward to the leader: its context, registered so that stop() can
  // cancel it and wait for it; null (and nothing registered) when stopped or
  // past kMaxLeaseForwardsInFlight.
  std::shared_ptr<grpc::ClientContext> begin_forward(int timeout_ms, Status* refused) {
    auto ctx = std::make_shared<grpc::ClientContext>();
    ctx->AddMetadata(kForwardedMetadata, "1");
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    std::lock_guard lock(mu_);
    if (stopped_) {
      *refused = Status(StatusCode::kUnavailable, kErrStopped);
      return nullptr;
    }
    if (forwards_.size() >= kMaxLeaseForwardsInFlight) {
      *refused = Status(StatusCode::kUnavailable, "consensuskv: too many lease calls forwarded to the leader");
      return nullptr;
    }
    forwards_.emplace(ctx.get(), ctx);
    return ctx;
  }
  void end_forward(grpc::ClientContext* ctx) {
    std::lock_guard lock(mu_);
    forwards_.erase(ctx);
    if (forwards_.empty()) forwards_done_.notify_all();
  }

  void forward_keepalive(const std::string& leader, int64_t id, std::function<void(Result<int64_t>)> cb) {
    Status refused;
    auto ctx = begin_forward(options_.request_timeout_ms, &refused);
    if (!ctx) return cb(refused);
    auto stub = stub_for(leader);
    // Deletes itself when done; the stub outlives it in the callback.
    auto* f = new KeepAliveForward(ctx, id, [this, stub, ctx, cb](Result<int64_t> r) {
      if (r.is_ok() && r.value() <= 0) r = Status(StatusCode::kNotFound, lease::kErrLeaseNotFound);
      cb(std::move(r));
      end_forward(ctx.get());
    });
    f->start(stub.get());
  }

  void forward_time_to_live(const std::string& leader, int64_t id, bool keys,
                            std::shared_ptr<TimeToLiveAnswer> result,
                            std::function<void(Result<int64_t>)> cb) {
    Status refused;
    auto ctx = begin_forward(options_.request_timeout_ms, &refused);
    if (!ctx) return cb(refused);
    auto stub = stub_for(leader);
    struct Call {
      pb::LeaseTimeToLiveRequest req;
      pb::LeaseTimeToLiveResponse resp;
    };
    auto c = std::make_shared<Call>();
    c->req.set_id(id);
    c->req.set_keys(keys);
    stub->async()->LeaseTimeToLive(ctx.get(), &c->req, &c->resp, [this, c, ctx, stub, result, cb](grpc::Status g) {
      Result<int64_t> r = from_grpc_status(g);
      if (g.ok() && c->resp.ttl() < 0) {
        r = Status(StatusCode::kNotFound, lease::kErrLeaseNotFound);
      } else if (g.ok()) {
        *result = TimeToLiveAnswer{};
        result->granted_ttl = c->resp.grantedttl();
        result->ttl = c->resp.ttl();
        for (const std::string& k : c->resp.keys()) result->keys.push_back(k);
        r = c->resp.ttl() * 1000;
      }
      cb(std::move(r));
      end_forward(ctx.get());
    });
  }

  // A follower's grant or revoke: the leader applies it; the answer waits
  // for a read barrier so that this node shows it too (as a KV write does).
  template <typename Resp, typename PbReq, typename PbResp, typename Invoke, typename Convert>
  void forward_write(const node::NodeStatus& st, const LeaseCall& call, PbReq req,
                     LeaseDone<KvAnswer<Resp>> done, Invoke invoke, Convert convert) {
    if (call.forwarded) return done(Status(StatusCode::kNotLeader, kErrLeaderChanged));
    if (st.leader_id == raft::kNoNode || st.leader.grpc_address.empty()) {
      return done(Status(StatusCode::kUnavailable, kErrNoLeader));
    }
    struct Call {
      PbReq req;
      PbResp resp;
    };
    auto c = std::make_shared<Call>();
    c->req = std::move(req);
    Status refused;
    auto ctx = begin_forward(options_.request_timeout_ms + kForwardDeadlineMarginMs, &refused);
    if (!ctx) return done(refused);
    forward_credentials(call.credentials, ctx.get(), options_.auth);
    auto stub = stub_for(st.leader.grpc_address);
    const std::string leader = st.leader.grpc_address;
    invoke(stub.get(), ctx.get(), &c->req, &c->resp, [this, c, ctx, stub, done, convert, leader](grpc::Status g) {
      if (!g.ok()) {
        Status s = from_grpc_status(g);
        // The channel failed, not the leader's answer: the caller sees etcd's
        // "possibly due to connection lost"; the log keeps grpc++'s reason.
        // (Grants and revokes are rare; a dead leader logs one per call in flight.)
        if (s.code() == StatusCode::kTimeout) {
          spdlog::warn("lease grant/revoke forwarded to the leader at {} failed: gRPC code {}: {}", leader,
                       static_cast<int>(g.error_code()), g.error_message());
        }
        done(s);
      } else {
        Resp body = convert(c->resp);
        body.header.revision = c->resp.header().revision();
        node_.read_barrier(options_.request_timeout_ms, [this, body, done](Status) {
          // Whatever the barrier says, the leader applied the write: answer it.
          sched_.post([this, body, done] {
            Header h = header();
            h.revision = static_cast<uint64_t>(body.header.revision);
            done(KvAnswer<Resp>{h, body});
          });
        });
      }
      end_forward(ctx.get());
    });
  }

  node::Node& node_;
  const LeaseServiceOptions options_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  Scheduler sched_;

  std::mutex mu_;
  bool stopped_ = false;
  std::unordered_map<uint64_t, std::function<void()>> pending_;
  uint64_t next_pending_ = 1;
  // Forwards to the leader in flight (begin_forward), and their end.
  std::unordered_map<grpc::ClientContext*, std::shared_ptr<grpc::ClientContext>> forwards_;
  std::condition_variable forwards_done_;
  std::unordered_map<std::string, std::shared_ptr<pb::Lease::Stub>> stubs_;
  std::mt19937_64 rng_;
};

LeaseService::LeaseService(node::Node& node, LeaseServiceOptions options)
    : impl_(std::make_unique<Impl>(node, std::move(options))) {}
LeaseService::~LeaseService() { impl_->stop(); }

void LeaseService::grant(lease::GrantRequest r, LeaseCall call,
                         LeaseDone<KvAnswer<lease::GrantResponse>> done) {
  impl_->grant(r, call, std::move(done));
}
void LeaseService::revoke(int64_t id, LeaseCall call, LeaseDone<KvAnswer<lease::RevokeResponse>> done) {
  impl_->revoke(id, call, std::move(done));
}
void LeaseService::keepalive(int64_t id, LeaseCall call, LeaseDone<KeepAliveAnswer> done) {
  impl_->keepalive(id, call, std::move(done));
}
void LeaseService::time_to_live(int64_t id, bool keys, LeaseCall call, LeaseDone<TimeToLiveAnswer> done) {
  impl_->time_to_live(id, keys, call, std::move(done));
}
void LeaseService::leases(LeaseDone<LeasesAnswer> done) { impl_->leases(std::move(done)); }
void LeaseService::stop() { impl_->stop(); }

}  // namespace ckv::etcd
