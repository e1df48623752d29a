// etcd's KV service: generated messages in, kv_convert.h to mvcc structs, KvService, and back (see kv_grpc_service.h).
#include "etcd/kv_grpc_service.h"

#include <string>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_credentials.h"
#include "etcd/kv_convert.h"
#include "etcd/kv_service.h"

namespace ckv::etcd {

namespace {

// What the front end knows of a call: its idempotency key and whether a
// member forwarded it (kv_service.h).
KvCall call_from(const grpc::CallbackServerContext* ctx) {
  KvCall call;
  const auto& md = ctx->client_metadata();
  if (auto it = md.find(kIdempotencyKeyMetadata); it != md.end()) {
    call.idempotency_key.assign(it->second.data(), it->second.size());
  }
  call.forwarded = md.find(kForwardedMetadata) != md.end();
  call.credentials = credentials_from(*ctx);
  return call;
}

// Finishes the call with the answer: the response filled in, or etcd's code and text.
template <typename T, typename PbResp>
KvDone<T> finish_with(grpc::ServerUnaryReactor* reactor, PbResp* resp) {
  return [reactor, resp](Result<KvAnswer<T>> r) {
    if (!r.is_ok()) return reactor->Finish(to_grpc_status(r.status()));
    to_pb(r.value().body, &r.value().header, resp);
    reactor->Finish(grpc::Status::OK);
  };
}

// etcd refuses a write whose request exceeds --max-request-bytes before proposing it.
template <typename PbReq>
bool too_large(const PbReq& req, grpc::ServerUnaryReactor* reactor) {
  if (req.ByteSizeLong() <= kMaxRequestBytes) return false;
  reactor->Finish(to_grpc_status(Status(StatusCode::kTooLarge, kErrRequestTooLarge)));
  return true;
}

class KvGrpcService final : public pb::KV::CallbackService {
 public:
  explicit KvGrpcService(KvService& kv) : kv_(kv) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const pb::RangeRequest* req,
                                  pb::RangeResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    kv_.range(from_pb(*req), call_from(ctx), finish_with<mvcc::RangeResponse>(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const pb::PutRequest* req,
                                pb::PutResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (too_large(*req, reactor)) return reactor;
    kv_.put(from_pb(*req), call_from(ctx), finish_with<mvcc::PutResponse>(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const pb::DeleteRangeRequest* req,
                                        pb::DeleteRangeResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (too_large(*req, reactor)) return reactor;
    kv_.delete_range(from_pb(*req), call_from(ctx),
                     finish_with<mvcc::DeleteRangeResponse>(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx, const pb::TxnRequest* req,
                                pb::TxnResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (too_large(*req, reactor)) return reactor;
    kv_.txn(from_pb(*req), call_from(ctx), finish_with<mvcc::TxnResponse>(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx,
                                    const pb::CompactionRequest* req,
                                    pb::CompactionResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    kv_.compact(from_pb(*req), call_from(ctx),
                finish_with<mvcc::CompactionResponse>(reactor, resp));
    return reactor;
  }

 private:
  KvService& kv_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_kv_grpc_service(KvService& kv) {
  return std::make_unique<KvGrpcService>(kv);
}

}  // namespace ckv::etcd
