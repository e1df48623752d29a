// etcd's KV service: generated messages in, kv_convert.h to mvcc structs, KvService, and back (see kv_grpc_service.h).
#include "etcd/kv_grpc_service.h"

#include <string>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_credentials.h"
#include "etcd/grpc_metrics.h"
#include "etcd/kv_convert.h"
#include "etcd/kv_service.h"
#include "etcd/server_errors.h"
#include "metrics/instruments.h"

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
  if (auto it = md.find(kRequireLeaderMetadata); it != md.end()) call.require_leader = it->second == "true";
  call.credentials = credentials_from(*ctx);
  return call;
}

// Finishes the call with the status and records it (these calls have no
// metrics interceptor: grpc_metrics.h).
void finish(grpc::ServerUnaryReactor* reactor, const GrpcCallMetrics& metrics, const grpc::Status& status) {
  metrics.record(status.error_code());
  reactor->Finish(status);
}

// Finishes the call with the answer: the response filled in, or etcd's code and text.
template <typename T, typename PbResp>
KvDone<T> finish_with(grpc::ServerUnaryReactor* reactor, GrpcCallMetrics metrics, PbResp* resp) {
  return [reactor, metrics, resp](Result<KvAnswer<T>> r) {
    if (!r.is_ok()) return finish(reactor, metrics, to_grpc_status(r.status()));
    to_pb(r.value().body, &r.value().header, resp);
    finish(reactor, metrics, grpc::Status::OK);
  };
}

// etcd refuses a write whose request exceeds --max-request-bytes before proposing it.
template <typename PbReq>
bool too_large(const PbReq& req, grpc::ServerUnaryReactor* reactor, const GrpcCallMetrics& metrics) {
  if (req.ByteSizeLong() <= kMaxRequestBytes) return false;
  finish(reactor, metrics, to_grpc_status(Status(StatusCode::kTooLarge, kErrRequestTooLarge)));
  return true;
}

class KvGrpcService final : public pb::KV::CallbackService {
 public:
  explicit KvGrpcService(KvService& kv) : kv_(kv) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const pb::RangeRequest* req,
                                  pb::RangeResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const GrpcCallMetrics metrics(range_method_);
    kv_.range(from_pb(*req), call_from(ctx), finish_with<mvcc::RangeResponse>(reactor, metrics, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const pb::PutRequest* req,
                                pb::PutResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const GrpcCallMetrics metrics(put_method_);
    if (too_large(*req, reactor, metrics)) return reactor;
    kv_.put(from_pb(*req), call_from(ctx), finish_with<mvcc::PutResponse>(reactor, metrics, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const pb::DeleteRangeRequest* req,
                                        pb::DeleteRangeResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const GrpcCallMetrics metrics(delete_range_method_);
    if (too_large(*req, reactor, metrics)) return reactor;
    kv_.delete_range(from_pb(*req), call_from(ctx),
                     finish_with<mvcc::DeleteRangeResponse>(reactor, metrics, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx, const pb::TxnRequest* req,
                                pb::TxnResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const GrpcCallMetrics metrics(txn_method_);
    if (too_large(*req, reactor, metrics)) return reactor;
    kv_.txn(from_pb(*req), call_from(ctx), finish_with<mvcc::TxnResponse>(reactor, metrics, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx,
                                    const pb::CompactionRequest* req,
                                    pb::CompactionResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const GrpcCallMetrics metrics(compact_method_);
    kv_.compact(from_pb(*req), call_from(ctx),
                finish_with<mvcc::CompactionResponse>(reactor, metrics, resp));
    return reactor;
  }

 private:
  KvService& kv_;
  // Each method's metrics label, looked up once.
  const size_t range_method_ = metrics::grpc_method_index("/etcdserverpb.KV/Range");
  const size_t put_method_ = metrics::grpc_method_index("/etcdserverpb.KV/Put");
  const size_t delete_range_method_ = metrics::grpc_method_index("/etcdserverpb.KV/DeleteRange");
  const size_t txn_method_ = metrics::grpc_method_index("/etcdserverpb.KV/Txn");
  const size_t compact_method_ = metrics::grpc_method_index("/etcdserverpb.KV/Compact");
};

}  // namespace

std::unique_ptr<grpc::Service> make_kv_grpc_service(KvService& kv) {
  return std::make_unique<KvGrpcService>(kv);
}

}  // namespace ckv::etcd
