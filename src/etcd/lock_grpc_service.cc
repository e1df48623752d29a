// etcd's v3lock service over grpc++'s callback API (see lock_grpc_service.h).
#include "etcd/lock_grpc_service.h"

#include <mutex>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.grpc.pb.h"
#include "etcd/grpc_credentials.h"
#include "etcd/kv_convert.h"
#include "etcd/lease_convert.h"
#include "etcd/lock_service.h"

namespace ckv::etcd {

namespace {

namespace lockpb = v3lockpb;

// No idempotency key: a Lock is several requests, which one key would fold into the first.
KvCall call_from(const grpc::CallbackServerContext* ctx) {
  KvCall call;
  call.forwarded = ctx->client_metadata().find(kForwardedMetadata) != ctx->client_metadata().end();
  call.credentials = credentials_from(*ctx);
  return call;
}

// etcd's v3lock server returns its in-process client's errors, which are not gRPC statuses:
// every error reaches the client as Unknown with etcd's text.
grpc::Status lock_error(const Status& s) {
  return grpc::Status(grpc::StatusCode::UNKNOWN, to_grpc_status(s).error_message());
}

// One Lock call. The answer may come after the call was cancelled and the
// reactor deleted: it reaches the reactor only through Shared, under its lock.
class LockReactor final : public grpc::ServerUnaryReactor {
 public:
  LockReactor(LockService& lock, const lockpb::LockRequest& req, lockpb::LockResponse* resp, KvCall call)
      : shared_(std::make_shared<Shared>()) {
    std::lock_guard l(shared_->mu);  // an inline answer must not see a half-built reactor
    shared_->reactor = this;
    shared_->resp = resp;
    auto shared = shared_;
    shared_->cancel = lock.lock(req.name(), req.lease(), std::move(call), [shared](Result<LockAnswer> r) {
      std::lock_guard l(shared->mu);
      if (shared->reactor == nullptr || shared->finished) return;
      shared->finished = true;
      if (!r.is_ok()) return shared->reactor->Finish(lock_error(r.status()));
      fill_lease_header(r.value().header, shared->resp->mutable_header());
      shared->resp->set_key(r.value().key);
      shared->reactor->Finish(grpc::Status::OK);
    });
  }

  void OnCancel() override {
    LockService::Cancel cancel;
    {
      std::lock_guard l(shared_->mu);
      cancel = shared_->cancel;
    }
    if (cancel) cancel();  // answers the call (ignored by grpc++ now) and deletes the key
  }

  void OnDone() override {
    {
      std::lock_guard l(shared_->mu);
      shared_->reactor = nullptr;
    }
    delete this;
  }

 private:
  struct Shared {
    std::recursive_mutex mu;  // grpc++ may run a reaction inline from Finish
    LockReactor* reactor = nullptr;
    lockpb::LockResponse* resp = nullptr;
    LockService::Cancel cancel;
    bool finished = false;
  };
  std::shared_ptr<Shared> shared_;
};

class LockGrpcService final : public lockpb::Lock::CallbackService {
 public:
  explicit LockGrpcService(LockService& lock) : lock_(lock) {}

  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* ctx, const lockpb::LockRequest* req,
                                 lockpb::LockResponse* resp) override {
    return new LockReactor(lock_, *req, resp, call_from(ctx));
  }

  grpc::ServerUnaryReactor* Unlock(grpc::CallbackServerContext* ctx, const lockpb::UnlockRequest* req,
                                   lockpb::UnlockResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    lock_.unlock(req->key(), call_from(ctx), [reactor, resp](Result<UnlockAnswer> r) {
      if (!r.is_ok()) return reactor->Finish(lock_error(r.status()));
      fill_lease_header(r.value().header, resp->mutable_header());
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

 private:
  LockService& lock_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_lock_grpc_service(LockService& lock) {
  return std::make_unique<LockGrpcService>(lock);
}

}  // namespace ckv::etcd
