// etcd's Watch stream: WatchRequests to watch::Stream calls, deliveries to WatchResponses (see watch_grpc_service.h).
#include "etcd/watch_grpc_service.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "etcd/cluster_view.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/auth_service.h"
#include "etcd/grpc_credentials.h"
#include "etcd/kv_convert.h"
#include "etcd/server_errors.h"
#include "fsm/kv_state_machine.h"
#include "node/node.h"
#include "watch/watch_hub.h"

namespace ckv::etcd {

namespace {

watch::WatchSpec spec_from(const pb::WatchCreateRequest& r) {
  watch::WatchSpec s;
  s.key = r.key();
  s.range_end = r.range_end();
  s.start_revision = r.start_revision();
  s.prev_kv = r.prev_kv();
  s.progress_notify = r.progress_notify();
  s.fragment = r.fragment();
  for (int f : r.filters()) {
    if (f == pb::WatchCreateRequest::NOPUT) s.no_put = true;
    if (f == pb::WatchCreateRequest::NODELETE) s.no_delete = true;
  }
  return s;
}

class Service;

class Reactor final : public grpc::ServerBidiReactor<pb::WatchRequest, pb::WatchResponse> {
 public:
  Reactor(Service& svc, grpc::CallbackServerContext* ctx);
  // Opens the hub stream and starts reading; the status to finish with if refused.
  std::optional<grpc::Status> start();
  // Ends the call (at most once; after the write in flight, if any).
  void finish(grpc::Status st);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override { finish(grpc::Status::CANCELLED); }
  void OnDone() override;

 private:
  // Sends the next delivery unless a write is in flight.
  void pump();
  void to_responses(watch::Delivery d);
  void handle(const pb::WatchRequest& req);

  Service& svc_;
  grpc::CallbackServerContext* ctx_;
  std::unique_ptr<watch::Stream> stream_;

 public:
  bool require_leader_ = false;  // opened with "hasleader" (set in start(), read by the monitor under the service's mu_)

 private:
  pb::WatchRequest req_;
  std::mutex mu_;  // the fields below; taken before the hub's lock (pump -> next)
  bool writing_ = false;
  bool finished_ = false;
  std::optional<grpc::Status> finish_after_write_;
  std::deque<pb::WatchResponse> out_;  // the responses of one delivery (several when fragmented)
};

class Service final : public pb::Watch::CallbackService, public WatchGrpcService {
 public:
  Service(node::Node& node, AuthService* auth)
      : node_(node), auth_(auth), monitor_([this] { monitor_leader(); }) {}
  ~Service() override { shutdown(); }

  grpc::ServerBidiReactor<pb::WatchRequest, pb::WatchResponse>* Watch(
      grpc::CallbackServerContext* ctx) override {
    auto* r = new Reactor(*this, ctx);
    // start() under mu_, so shutdown() cannot finish the call halfway
    // through it; finishing outside it (OnDone takes mu_).
    std::optional<grpc::Status> refused;
    {
      std::lock_guard l(mu_);
      if (stopped_) {
        refused = grpc::Status(grpc::StatusCode::UNAVAILABLE, kErrStopped);
      } else {
        live_.insert(r);
        refused = r->start();
      }
    }
    if (refused) r->finish(std::move(*refused));
    return r;
  }

  grpc::Service* service() override { return this; }

  void shutdown() override {
    {
      std::lock_guard l(monitor_mu_);
      monitor_stop_ = true;
    }
    monitor_cv_.notify_all();
    if (monitor_.joinable() && monitor_.get_id() != std::this_thread::get_id()) monitor_.join();
    // mu_ is recursive and the set is copied: should grpc++ run a
    // reactor's OnDone inline from Finish, it re-enters done() on this
    // thread; other reactors cannot go meanwhile (their OnDone waits for mu_).
    std::lock_guard l(mu_);
    stopped_ = true;
    const std::vector<Reactor*> open(live_.begin(), live_.end());
    for (Reactor* r : open) r->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, kErrStopped));
  }

  void done(Reactor* r) {
    std::lock_guard l(mu_);
    live_.erase(r);
  }

  node::Node& node() { return node_; }
  AuthService* auth() { return auth_; }

  // The header for a response at `revision`, with a raft_term at most
  // kWatchHeaderRefreshMs old.
  void fill_header(int64_t revision, pb::ResponseHeader* out) {
    const auto now = std::chrono::steady_clock::now();
    Header h;
    {
      std::lock_guard l(header_mu_);
      if (now - header_at_ > std::chrono::milliseconds(kWatchHeaderRefreshMs)) {
        header_ = header_for(node_.status(), false);
        header_at_ = now;
      }
      h = header_;
    }
    out->set_cluster_id(h.cluster_id);
    out->set_member_id(h.member_id);
    out->set_revision(revision);
    out->set_raft_term(h.raft_term);
  }

 private:
  // etcd's monitorLeader: streams opened with "hasleader" end with "etcdserver:
  // no leader" once this member has known no leader for kWatchNoLeaderCancelMs,
  // so that clients move to a member that still hears writes.
  void monitor_leader() {
    // A flag and a time, not an optional: GCC 12 warns (falsely) on the optional.
    bool leaderless = false;
    std::chrono::steady_clock::time_point leaderless_since{};
    std::unique_lock ml(monitor_mu_);
    while (!monitor_stop_) {
      monitor_cv_.wait_for(ml, std::chrono::milliseconds(kWatchLeaderCheckMs));
      if (monitor_stop_) break;
      ml.unlock();
      const auto now = std::chrono::steady_clock::now();
      if (node_.status().leader_id != raft::kNoNode) {
        leaderless = false;
      } else if (!leaderless) {
        leaderless = true;
        leaderless_since = now;
      } else if (now - leaderless_since >= std::chrono::milliseconds(kWatchNoLeaderCancelMs)) {
        std::lock_guard l(mu_);
        const std::vector<Reactor*> open(live_.begin(), live_.end());
        for (Reactor* r : open) {
          if (r->require_leader_) r->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, kErrNoLeader));
        }
      }
      ml.lock();
    }
  }

  node::Node& node_;
  AuthService* const auth_;
  std::recursive_mutex mu_;
  bool stopped_ = false;
  std::set<Reactor*> live_;
  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  bool monitor_stop_ = false;
  std::mutex header_mu_;
  Header header_;
  std::chrono::steady_clock::time_point header_at_{};
  std::thread monitor_;  // last: started once everything above exists
};

Reactor::Reactor(Service& svc, grpc::CallbackServerContext* ctx) : svc_(svc), ctx_(ctx) {}

std::optional<grpc::Status> Reactor::start() {
  const auto& md = ctx_->client_metadata();
  require_leader_ = md.find(kRequireLeaderMetadata) != md.end();
  if (require_leader_ && svc_.node().status().leader_id == raft::kNoNode) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, kErrNoLeader);
  }
  stream_ = svc_.node().watch_hub().open_stream([this] { pump(); });
  if (!stream_) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "consensuskv: too many watch streams on this member (limit " +
                            std::to_string(svc_.node().watch_hub().options().max_streams) + ")");
  }
  StartRead(&req_);
  return std::nullopt;
}

void Reactor::finish(grpc::Status st) {
  {
    std::lock_guard l(mu_);
    if (finished_) return;
    if (writing_) {
      if (!finish_after_write_) finish_after_write_ = std::move(st);
      return;
    }
    finished_ = true;
  }
  // grpc++ calls outside mu_: a reaction run inline would take it again.
  Finish(std::move(st));
}

void Reactor::handle(const pb::WatchRequest& req) {
  switch (req.request_union_case()) {
    case pb::WatchRequest::kCreateRequest: {
      const pb::WatchCreateRequest& c = req.create_request();
      if (svc_.auth() != nullptr) {
        if (Status s = svc_.auth()->require_read(credentials_from(*ctx_), c.key(), c.range_end(), "Watch");
            !s.is_ok()) {
          // etcd 3.4's answer (any refusal, a bad token too): created and
          // canceled at once, watch_id -1, the refusal's gRPC text as the reason.
          pb::WatchResponse refused;
          svc_.fill_header(svc_.node().state_machine().revision(), refused.mutable_header());
          refused.set_watch_id(-1);
          refused.set_created(true);
          refused.set_canceled(true);
          refused.set_cancel_reason(watch_cancel_reason(s));
          {
            std::lock_guard l(mu_);
            out_.push_back(std::move(refused));
          }
          pump();
          break;
        }
      }
      stream_->create(spec_from(c), c.watch_id());
      break;
    }
    case pb::WatchRequest::kCancelRequest:
      stream_->cancel(req.cancel_request().watch_id());
      break;
    case pb::WatchRequest::kProgressRequest:
      stream_->request_progress();
      break;
    default:
      break;  // etcd ignores a request with nothing set
  }
}

void Reactor::OnReadDone(bool ok) {
  // !ok: the client half-closed (or the call ended). etcd keeps sending
  // until the call ends, so do we; no more reads.
  if (!ok) return;
  handle(req_);
  {
    std::lock_guard l(mu_);
    if (finished_) return;
  }
  StartRead(&req_);
}

void Reactor::to_responses(watch::Delivery d) {
  pb::WatchResponse base;
  svc_.fill_header(d.revision, base.mutable_header());
  base.set_watch_id(d.watch_id);
  base.set_created(d.created);
  base.set_canceled(d.canceled);
  base.set_compact_revision(d.compact_revision);
  if (!d.cancel_reason.empty()) base.set_cancel_reason(d.cancel_reason);
  pb::WatchResponse whole = base;
  for (const mvcc::Event& e : d.events) to_pb(e, whole.add_events());
  // etcd's sendFragments: only when asked, over the limit, and with more than one event.
  if (!d.fragment || d.events.size() < 2 || whole.ByteSizeLong() < kWatchFragmentBytes) {
    out_.push_back(std::move(whole));
    return;
  }
  size_t i = 0;
  while (i < d.events.size()) {
    pb::WatchResponse part = base;
    part.set_fragment(true);
    while (i < d.events.size()) {
      to_pb(d.events[i], part.add_events());
      if (part.events_size() > 1 && part.ByteSizeLong() >= kWatchFragmentBytes) {
        part.mutable_events()->RemoveLast();
        break;
      }
      ++i;
    }
    if (i == d.events.size()) part.set_fragment(false);
    out_.push_back(std::move(part));
  }
}

void Reactor::pump() {
  {
    std::lock_guard l(mu_);
    if (writing_ || finished_ || !stream_) return;
    if (out_.empty()) {
      auto d = stream_->next();
      if (!d) return;
      to_responses(std::move(*d));
    }
    // out_.front() stays put while writing_ (only OnWriteDone pops it).
    writing_ = true;
  }
  StartWrite(&out_.front());
}

void Reactor::OnWriteDone(bool ok) {
  std::optional<grpc::Status> end;
  {
    std::lock_guard l(mu_);
    writing_ = false;
    out_.pop_front();
    if (finish_after_write_ || !ok) {
      finished_ = true;
      end = finish_after_write_ ? *finish_after_write_ : grpc::Status::CANCELLED;
    }
  }
  if (end) return Finish(*end);
  pump();
}

void Reactor::OnDone() {
  // After close() no wake calls pump() (watch_hub.h), so this can go.
  if (stream_) stream_->close();
  svc_.done(this);
  delete this;
}

}  // namespace

std::unique_ptr<WatchGrpcService> WatchGrpcService::create(node::Node& node, AuthService* auth) {
  return std::make_unique<Service>(node, auth);
}

}  // namespace ckv::etcd
