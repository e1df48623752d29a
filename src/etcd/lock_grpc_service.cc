// etcd's v3lock service over grpc++'s callback API (see lock_grpc_service.h).
#include "etcd/lock_grpc_service.h"

#include <utility>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.grpc.pb.h"
#include "etcd/header_convert.h"
#include "etcd/lease_convert.h"
#include "etcd/lock_service.h"
#include "etcd/recipe_grpc.h"

namespace ckv::etcd {

namespace {

namespace lockpb = v3lockpb;

class LockGrpcService final : public lockpb::Lock::CallbackService {
 public:
  explicit LockGrpcService(LockService& lock) : lock_(lock) {}

  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* ctx, const lockpb::LockRequest* req,
                                 lockpb::LockResponse* resp) override {
    using Reactor = WaitingReactor<lockpb::LockResponse>;
    return new Reactor(resp, [&](const Reactor::Finisher& finish) {
      return lock_.lock(req->name(), req->lease(), recipe_call_from(ctx), [finish](Result<LockAnswer> r) {
        finish([&r](lockpb::LockResponse* out) {
          if (!r.is_ok()) return recipe_error(r.status());
          fill_response_header(r.value().header, out->mutable_header());
          out->set_key(r.value().key);
          return grpc::Status::OK;
        });
      });
    });
  }

  grpc::ServerUnaryReactor* Unlock(grpc::CallbackServerContext* ctx, const lockpb::UnlockRequest* req,
                                   lockpb::UnlockResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    lock_.unlock(req->key(), recipe_call_from(ctx), [reactor, resp](Result<UnlockAnswer> r) {
      if (!r.is_ok()) return reactor->Finish(recipe_error(r.status()));
      fill_response_header(r.value().header, resp->mutable_header());
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
