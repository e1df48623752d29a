// etcd's Watch stream: WatchRequests to watch::Stream calls, deliveries to WatchResponses (see watch_grpc_service.h).
#include "etcd/watch_grpc_service.h"

#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <vector>
#include <utility>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "etcd/cluster_view.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/kv_convert.h"
#include "node/node.h"
#include "watch/watch_hub.h"

namespace ckv::etcd {

namespace {

// etcd's metadata for clientv3.WithRequireLeader (rpctypes.MetadataRequireLeaderKey).
constexpr char kRequireLeaderMetadata[] = "hasleader";

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

void event_to_pb(const mvcc::Event& e, ::mvccpb::Event* out) {
  out->set_type(e.type == mvcc::Event::Type::kPut ? ::mvccpb::Event::PUT : ::mvccpb::Event::DELETE);
  to_pb(e.kv, out->mutable_kv());
  if (e.prev_kv) to_pb(*e.prev_kv, out->mutable_prev_kv());
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
  pb::WatchRequest req_;
  std::mutex mu_;  // the fields below; taken before the hub's lock (pump -> next)
  bool writing_ = false;
  bool finished_ = false;
  std::optional<grpc::Status> finish_after_write_;
  std::deque<pb::WatchResponse> out_;  // the responses of one delivery (several when fragmented)
};

class Service final : public pb::Watch::CallbackService, public WatchGrpcService {
 public:
  explicit Service(node::Node& node) : node_(node) {}

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
  node::Node& node_;
  std::recursive_mutex mu_;
  bool stopped_ = false;
  std::set<Reactor*> live_;
  std::mutex header_mu_;
  Header header_;
  std::chrono::steady_clock::time_point header_at_{};
};

Reactor::Reactor(Service& svc, grpc::CallbackServerContext* ctx) : svc_(svc), ctx_(ctx) {}

std::optional<grpc::Status> Reactor::start() {
  const auto& md = ctx_->client_metadata();
  if (md.find(kRequireLeaderMetadata) != md.end() &&
      svc_.node().status().leader_id == raft::kNoNode) {
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
    case pb::WatchRequest::kCreateRequest:
      stream_->create(spec_from(req.create_request()), req.create_request().watch_id());
      break;
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
  for (const mvcc::Event& e : d.events) event_to_pb(e, whole.add_events());
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
      event_to_pb(d.events[i], part.add_events());
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

std::unique_ptr<WatchGrpcService> WatchGrpcService::create(node::Node& node) {
  return std::make_unique<Service>(node);
}

}  // namespace ckv::etcd
