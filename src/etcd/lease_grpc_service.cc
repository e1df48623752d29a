// etcd's Lease service over grpc++'s callback API (see lease_grpc_service.h).
#include "etcd/lease_grpc_service.h"

#include <mutex>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_credentials.h"
#include "etcd/kv_convert.h"
#include "etcd/lease_convert.h"
#include "etcd/lease_service.h"

namespace ckv::etcd {

namespace {

LeaseCall call_from(const grpc::CallbackServerContext* ctx) {
  LeaseCall call;
  call.forwarded = ctx->client_metadata().find(kForwardedMetadata) != ctx->client_metadata().end();
  call.credentials = credentials_from(*ctx);
  return call;
}

template <typename T, typename PbResp>
LeaseDone<T> finish_with(grpc::ServerUnaryReactor* reactor, PbResp* resp) {
  return [reactor, resp](Result<T> r) {
    if (!r.is_ok()) return reactor->Finish(to_grpc_status(r.status()));
    to_pb(r.value(), resp);
    reactor->Finish(grpc::Status::OK);
  };
}

// One LeaseKeepAlive stream. The request layer's answer may arrive after
// the stream was cancelled and the reactor deleted: it reaches the reactor
// only through Shared, under its lock, while the reactor still lives.
class KeepAliveReactor final
    : public grpc::ServerBidiReactor<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse> {
 public:
  KeepAliveReactor(LeaseService& lease, LeaseCall call)
      : lease_(lease), call_(call), shared_(std::make_shared<Shared>()) {
    shared_->reactor = this;
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(shared_->mu);
    if (!ok) return finish(grpc::Status::OK);  // the client closed its side, or the call ended
    waiting_ = true;
    auto shared = shared_;
    lease_.keepalive(req_.id(), call_, [shared](Result<KeepAliveAnswer> r) {
      std::lock_guard lock(shared->mu);
      if (shared->reactor != nullptr) shared->reactor->answered(std::move(r));
    });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(shared_->mu);
    if (!ok) return finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed"));
    if (!finished_) StartRead(&req_);
  }

  void OnCancel() override {
    std::lock_guard lock(shared_->mu);
    // A pending read fails and finishes the stream; a pending answer does not.
    if (waiting_) finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override {
    {
      std::lock_guard lock(shared_->mu);
      shared_->reactor = nullptr;
    }
    delete this;
  }

 private:
  struct Shared {
    std::recursive_mutex mu;  // grpc++ may run a reaction inline from Finish
    KeepAliveReactor* reactor = nullptr;
  };

  // Under shared_->mu.
  void answered(Result<KeepAliveAnswer> r) {
    waiting_ = false;
    if (finished_) return;
    if (!r.is_ok()) return finish(to_grpc_status(r.status()));
    resp_.Clear();
    to_pb(r.value(), &resp_);
    StartWrite(&resp_);
  }

  void finish(const grpc::Status& s) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  LeaseService& lease_;
  const LeaseCall call_;
  std::shared_ptr<Shared> shared_;
  pb::LeaseKeepAliveRequest req_;
  pb::LeaseKeepAliveResponse resp_;
  bool waiting_ = false;   // a keepalive is with the request layer
  bool finished_ = false;  // Finish was called
};

class LeaseGrpcService final : public pb::Lease::CallbackService {
 public:
  explicit LeaseGrpcService(LeaseService& lease) : lease_(lease) {}

  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* ctx,
                                       const pb::LeaseGrantRequest* req,
                                       pb::LeaseGrantResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    lease_.grant(lease::GrantRequest{req->id(), req->ttl()}, call_from(ctx),
                 finish_with<KvAnswer<lease::GrantResponse>>(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseRevoke(grpc::CallbackServerContext* ctx,
                                        const pb::LeaseRevokeRequest* req,
                                        pb::LeaseRevokeResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    lease_.revoke(req->id(), call_from(ctx), finish_with<KvAnswer<lease::RevokeResponse>>(reactor, resp));
    return reactor;
  }

  grpc::ServerBidiReactor<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>* LeaseKeepAlive(
      grpc::CallbackServerContext* ctx) override {
    return new KeepAliveReactor(lease_, call_from(ctx));
  }

  grpc::ServerUnaryReactor* LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                            const pb::LeaseTimeToLiveRequest* req,
                                            pb::LeaseTimeToLiveResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    lease_.time_to_live(req->id(), req->keys(), call_from(ctx),
                        finish_with<TimeToLiveAnswer>(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseLeases(grpc::CallbackServerContext* ctx, const pb::LeaseLeasesRequest*,
                                        pb::LeaseLeasesResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    lease_.leases(finish_with<LeasesAnswer>(reactor, resp));
    return reactor;
  }

 private:
  LeaseService& lease_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_lease_grpc_service(LeaseService& lease) {
  return std::make_unique<LeaseGrpcService>(lease);
}

}  // namespace ckv::etcd
