// What the recipes' gRPC services (v3lock, v3election) share: the call's identity, errors as etcd's servers send them, a unary reactor whose long wait a cancel gives up.
//
// Included only by src/etcd/*_grpc_service.cc (it pulls in grpc++).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "etcd/grpc_credentials.h"
#include "etcd/kv_convert.h"
#include "etcd/kv_service.h"

namespace ckv::etcd {

// No idempotency key: a recipe's call is several requests, which one key would fold into the first.
inline KvCall recipe_call_from(const grpc::CallbackServerContext* ctx) {
  KvCall call;
  call.forwarded = ctx->client_metadata().find(kForwardedMetadata) != ctx->client_metadata().end();
  call.credentials = credentials_from(*ctx);
  return call;
}

// etcd's v3lock and v3election servers return their in-process client's
// errors, which are not gRPC statuses: every error reaches the client as
// Unknown with etcd's text.
inline grpc::Status recipe_error(const Status& s) {
  return grpc::Status(grpc::StatusCode::UNKNOWN, to_grpc_status(s).error_message());
}

// A unary call that may wait long (Lock, Campaign). The answer may come
// after the call was cancelled and the reactor deleted: it reaches the
// reactor only through Shared, under its lock. A cancel of the call runs
// the wait's cancel (which answers it; grpc++ ignores that answer then).
template <typename Response>
class WaitingReactor final : public grpc::ServerUnaryReactor {
 public:
  // Fills the response and says how the call ends; runs under the reactor's lock, at most once.
  using Answer = std::function<grpc::Status(Response*)>;
  using Finisher = std::function<void(const Answer&)>;
  using Cancel = std::function<void()>;

  // start begins the wait, answering through the Finisher, and returns its cancel.
  WaitingReactor(Response* resp, const std::function<Cancel(const Finisher&)>& start) : shared_(std::make_shared<Shared>()) {
    std::lock_guard l(shared_->mu);  // an inline answer must not see a half-built reactor
    shared_->reactor = this;
    shared_->resp = resp;
    shared_->cancel = start([shared = shared_](const Answer& answer) {
      std::lock_guard l(shared->mu);
      if (shared->reactor == nullptr || shared->finished) return;
      shared->finished = true;
      shared->reactor->Finish(answer(shared->resp));
    });
  }

  void OnCancel() override {
    Cancel cancel;
    {
      std::lock_guard l(shared_->mu);
      cancel = shared_->cancel;
    }
    if (cancel) cancel();
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
    WaitingReactor* reactor = nullptr;
    Response* resp = nullptr;
    Cancel cancel;
    bool finished = false;
  };
  std::shared_ptr<Shared> shared_;
};

}  // namespace ckv::etcd
