// etcd's gRPC port on our HTTP/2 server: KV answered here, the rest relayed to grpc++ in process (see grpc_frontend.h).
#include "etcd/grpc_frontend.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <utility>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/grpc_credentials.h"
#include "etcd/grpc_metrics.h"
#include "etcd/kv_convert.h"
#include "etcd/kv_grpc_service.h"
#include "etcd/kv_service.h"
#include "etcd/server_errors.h"
#include "grpcfront/h2_server.h"
#include "metrics/instruments.h"

namespace ckv::etcd {

namespace {

using grpcfront::CallHandler;
using grpcfront::CallHead;
using grpcfront::CallWriter;
using grpcfront::GrpcCode;

// Bytes of one relayed call's messages waiting on either side (client
// messages grpc++ has not taken, answers the client's socket has not);
// past it the relay stops reading that side until it drains, and a client
// that keeps sending regardless is failed.
constexpr size_t kMaxRelayQueuedBytes = size_t{8} << 20;
// How long stop() waits for grpc++ to finish the relayed calls it cancelled.
constexpr int kRelayDrainTimeoutMs = 5'000;

// What the front end knows of a KV call (kv_service.h): as kv_grpc_service.cc reads it from grpc++.
KvCall kv_call_from(const CallHead& head) {
  KvCall call;
  if (const std::string* v = head.find(kIdempotencyKeyMetadata)) call.idempotency_key = *v;
  call.forwarded = head.find(kForwardedMetadata) != nullptr;
  if (const std::string* v = head.find(kRequireLeaderMetadata)) call.require_leader = *v == "true";
  call.credentials = credentials_from_metadata(
      [&head](std::string_view name) -> std::optional<std::string_view> {
        const std::string* v = head.find(name);
        if (v == nullptr) return std::nullopt;
        return std::string_view{*v};
      },
      head.client_cn);
  return call;
}

void finish_with_status(CallWriter& w, const grpc::Status& s) {
  w.finish(static_cast<GrpcCode>(s.error_code()), s.error_message());
}

// One unary KV call: its request message, then KvService, then the answer.
template <typename PbReq, typename PbResp, typename MvccResp>
class KvUnaryCall final : public CallHandler {
 public:
  using Invoke = void (*)(KvService&, const PbReq&, KvCall, KvDone<MvccResp>);

  KvUnaryCall(KvService& kv, size_t metric, bool is_write, Invoke invoke, const CallHead& head,
              std::shared_ptr<CallWriter> writer)
      : kv_(kv), metrics_(metric), is_write_(is_write), invoke_(invoke), call_(kv_call_from(head)),
        writer_(std::move(writer)) {
    // The read after the barrier, or the write's answer, runs on this
    // connection's thread and replies from there: one thread hop per call.
    call_.run_follow_up = [w = writer_](std::function<void()>& task) { return w->run(task); };
  }

  void on_message(std::string body) override {
    if (got_) return fail(GrpcCode::kInternal, "grpc: a unary call sent more than one request message");
    got_ = true;
    body_ = std::move(body);
  }

  void on_half_close() override {
    if (done_) return;
    if (!got_) return fail(GrpcCode::kInternal, "grpc: a unary call sent no request message");
    done_ = true;
    PbReq req;
    if (!req.ParseFromString(body_)) {
      return finish(GrpcCode::kInternal, "grpc: error unmarshalling request: cannot parse the message");
    }
    body_.clear();
    // etcd refuses a write whose request exceeds --max-request-bytes before proposing it.
    if (is_write_ && req.ByteSizeLong() > kMaxRequestBytes) {
      const grpc::Status s = to_grpc_status(Status(StatusCode::kTooLarge, kErrRequestTooLarge));
      return finish(static_cast<GrpcCode>(s.error_code()), s.error_message());
    }
    invoke_(kv_, req, std::move(call_),
            [writer = writer_, metrics = metrics_](Result<KvAnswer<MvccResp>> r) {
              if (!r.is_ok()) {
                const grpc::Status s = to_grpc_status(r.status());
                metrics.record(s.error_code());
                return finish_with_status(*writer, s);
              }
              PbResp resp;
              to_pb(r.value().body, &r.value().header, &resp);
              metrics.record(0);
              writer->reply(resp.SerializeAsString());
            });
  }

  // KvService answers every call; the writer drops an answer to a call that is gone.
  void on_cancel() override { done_ = true; }

 private:
  void fail(GrpcCode code, std::string message) {
    if (done_) return;
    done_ = true;
    finish(code, std::move(message));
  }
  void finish(GrpcCode code, std::string message) {
    metrics_.record(static_cast<int>(code));
    writer_->finish(code, std::move(message));
  }

  KvService& kv_;
  const GrpcCallMetrics metrics_;
  const bool is_write_;
  Invoke invoke_;
  KvCall call_;
  std::shared_ptr<CallWriter> writer_;
  std::string body_;
  bool got_ = false;
  bool done_ = false;
};

// grpc's rules for a metadata key ([0-9a-z_.-]) and a text value (printable ASCII).
bool legal_metadata(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
  }
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

std::string bytes_of(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  out.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

grpc::ByteBuffer buffer_of(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// Relayed calls still open, so that stop() can wait for grpc++ to finish them.
class RelayCount {
 public:
  void add() {
    std::lock_guard l(mu_);
    ++open_;
  }
  void done() {
    std::lock_guard l(mu_);
    if (--open_ == 0) cv_.notify_all();
  }
  bool wait_idle(std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [this] { return open_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int open_ = 0;
};

// One relayed call, both directions. The client's side runs on the
// connection's strand (RelayCall below); grpc++'s reactions on its threads;
// the state they share is under mu_ (recursive: grpc++ may react inline
// from a Start call). grpc++ holds OnDone back (AddHold) until every answer
// has been read, so no message is dropped at the end of a stream. The
// reactor keeps itself alive until OnDone; the strand's side holds it too,
// since the client may still send after grpc++ is done.
class RelayReactor final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                           public std::enable_shared_from_this<RelayReactor> {
 public:
  RelayReactor(std::shared_ptr<CallWriter> writer, RelayCount& count) : writer_(std::move(writer)), count_(count) {
    count_.add();
  }

  void start(grpc::GenericStub& stub, const CallHead& head) {
    for (const auto& [name, value] : head.metadata) {
      // grpc++ owns "grpc-" names; "-bin" values are base64 on the wire and
      // would need decoding (etcd's clients send neither); the CN is ours to set.
      if (name.starts_with("grpc-") || name.ends_with("-bin") || name == kFrontEndClientCnMetadata) continue;
      // grpc++ aborts the process on metadata it deems illegal: pass only what it takes.
      if (!legal_metadata(name, value)) continue;
      ctx_.AddMetadata(name, value);
    }
    if (!head.client_cn.empty()) ctx_.AddMetadata(kFrontEndClientCnMetadata, head.client_cn);
    if (head.timeout_ms) ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(*head.timeout_ms));
    self_ = shared_from_this();
    stub.PrepareBidiStreamingCall(&ctx_, head.method, grpc::StubOptions(), this);
    AddHold();
    StartRead(&read_buf_);
    StartCall();
  }

  // The client's side (on the strand).
  void client_message(std::string body) {
    std::lock_guard l(mu_);
    if (ended_ || finished_) return;
    queued_in_ += body.size();
    if (queued_in_ > kMaxRelayQueuedBytes) {
      spdlog::warn("grpc: cancelling a relayed call: its client sent {} bytes the service has not taken",
                   queued_in_);
      ended_ = true;
      ctx_.TryCancel();
      return;
    }
    to_write_.push_back(std::move(body));
    if (!writing_) write_next_locked();
  }
  void client_half_close() {
    std::lock_guard l(mu_);
    if (ended_ || finished_ || half_closed_) return;
    half_closed_ = true;
    if (!writing_) {
      writing_ = true;
      StartWritesDone();
    }
  }
  void client_cancel() {
    std::lock_guard l(mu_);
    ended_ = true;
    if (finished_) return;
    ctx_.TryCancel();
    resume_reading_locked();
  }
  void client_drained() {
    std::lock_guard l(mu_);
    queued_out_ = 0;
    resume_reading_locked();
  }

  // grpc++'s side.
  void OnReadDone(bool ok) override {
    if (!ok) {
      RemoveHold();
      return;
    }
    std::string body = bytes_of(read_buf_);
    std::lock_guard l(mu_);
    if (!ended_) {
      queued_out_ += body.size();
      writer_->send_message(std::move(body));
    }
    if (ended_ || queued_out_ < kMaxRelayQueuedBytes) {
      StartRead(&read_buf_);
    } else {
      read_paused_ = true;  // until the client's socket takes what is queued (client_drained)
    }
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard l(mu_);
    writing_ = false;
    if (!ok) {
      to_write_.clear();
      return;
    }
    write_next_locked();
  }
  void OnWritesDoneDone(bool /*ok*/) override {}
  void OnDone(const grpc::Status& status) override {
    RelayCount& count = count_;
    std::shared_ptr<RelayReactor> self;
    {
      std::lock_guard l(mu_);
      if (!ended_) finish_with_status(*writer_, status);
      ended_ = true;
      finished_ = true;
      self = std::move(self_);
    }
    self.reset();  // this may be gone now (the strand's side let go first)
    count.done();
  }

 private:
  void write_next_locked() {
    if (to_write_.empty()) {
      if (half_closed_ && !writes_done_sent_) {
        writes_done_sent_ = true;
        writing_ = true;
        StartWritesDone();
      }
      return;
    }
    write_buf_ = buffer_of(to_write_.front());
    queued_in_ -= to_write_.front().size();
    to_write_.pop_front();
    writing_ = true;
    StartWrite(&write_buf_);
  }
  void resume_reading_locked() {
    if (!read_paused_ || finished_) return;
    read_paused_ = false;
    StartRead(&read_buf_);
  }

  std::shared_ptr<CallWriter> writer_;
  RelayCount& count_;
  grpc::ClientContext ctx_;
  grpc::ByteBuffer read_buf_;
  grpc::ByteBuffer write_buf_;
  std::recursive_mutex mu_;
  std::shared_ptr<RelayReactor> self_;  // until OnDone
  std::deque<std::string> to_write_;
  size_t queued_in_ = 0;
  size_t queued_out_ = 0;
  bool writing_ = false;
  bool half_closed_ = false;
  bool writes_done_sent_ = false;
  bool read_paused_ = false;
  bool ended_ = false;  // the client's side is gone or answered: nothing more goes to it
  bool finished_ = false;  // OnDone ran: no Start call may follow
};

// The strand's side of a relayed call: forwards its events to the reactor, which outlives it when needed.
class RelayCall final : public CallHandler {
 public:
  explicit RelayCall(std::shared_ptr<RelayReactor> reactor) : reactor_(std::move(reactor)) {}
  void on_message(std::string body) override { reactor_->client_message(std::move(body)); }
  void on_half_close() override { reactor_->client_half_close(); }
  void on_cancel() override { reactor_->client_cancel(); }
  void on_drained() override { reactor_->client_drained(); }

 private:
  std::shared_ptr<RelayReactor> reactor_;
};

}  // namespace

class GrpcFrontend::Impl {
 public:
  Impl(KvService& kv, std::shared_ptr<grpc::Channel> backend) : kv_(kv), stub_(std::move(backend)) {}

  std::unique_ptr<CallHandler> dispatch(const CallHead& head, std::shared_ptr<CallWriter> writer) {
    if (auto native = kv_call(head, writer)) return native;
    auto reactor = std::make_shared<RelayReactor>(std::move(writer), relays_);
    reactor->start(stub_, head);
    return std::make_unique<RelayCall>(std::move(reactor));
  }

  void set_server(std::unique_ptr<grpcfront::H2Server> server) { server_ = std::move(server); }
  uint16_t port() const { return server_->port(); }

  void stop() {
    std::call_once(stopped_, [this] {
      server_->stop();  // cancels every call: each relayed one's client_cancel
      if (!relays_.wait_idle(std::chrono::milliseconds(kRelayDrainTimeoutMs))) {
        spdlog::warn("grpc: relayed calls still open {} ms after stop", kRelayDrainTimeoutMs);
      }
    });
  }

 private:
  std::unique_ptr<CallHandler> kv_call(const CallHead& head, const std::shared_ptr<CallWriter>& writer) {
    const std::string& m = head.method;
    if (m == "/etcdserverpb.KV/Range") {
      return std::make_unique<KvUnaryCall<pb::RangeRequest, pb::RangeResponse, mvcc::RangeResponse>>(
          kv_, range_, false,
          [](KvService& kv, const pb::RangeRequest& r, KvCall c, KvDone<mvcc::RangeResponse> d) {
            kv.range(from_pb(r), std::move(c), std::move(d));
          },
          head, writer);
    }
    if (m == "/etcdserverpb.KV/Put") {
      return std::make_unique<KvUnaryCall<pb::PutRequest, pb::PutResponse, mvcc::PutResponse>>(
          kv_, put_, true,
          [](KvService& kv, const pb::PutRequest& r, KvCall c, KvDone<mvcc::PutResponse> d) {
            kv.put(from_pb(r), std::move(c), std::move(d));
          },
          head, writer);
    }
    if (m == "/etcdserverpb.KV/DeleteRange") {
      return std::make_unique<
          KvUnaryCall<pb::DeleteRangeRequest, pb::DeleteRangeResponse, mvcc::DeleteRangeResponse>>(
          kv_, delete_range_, true,
          [](KvService& kv, const pb::DeleteRangeRequest& r, KvCall c, KvDone<mvcc::DeleteRangeResponse> d) {
            kv.delete_range(from_pb(r), std::move(c), std::move(d));
          },
          head, writer);
    }
    if (m == "/etcdserverpb.KV/Txn") {
      return std::make_unique<KvUnaryCall<pb::TxnRequest, pb::TxnResponse, mvcc::TxnResponse>>(
          kv_, txn_, true,
          [](KvService& kv, const pb::TxnRequest& r, KvCall c, KvDone<mvcc::TxnResponse> d) {
            kv.txn(from_pb(r), std::move(c), std::move(d));
          },
          head, writer);
    }
    if (m == "/etcdserverpb.KV/Compact") {
      return std::make_unique<
          KvUnaryCall<pb::CompactionRequest, pb::CompactionResponse, mvcc::CompactionResponse>>(
          kv_, compact_, false,
          [](KvService& kv, const pb::CompactionRequest& r, KvCall c, KvDone<mvcc::CompactionResponse> d) {
            kv.compact(from_pb(r), std::move(c), std::move(d));
          },
          head, writer);
    }
    return nullptr;
  }

  KvService& kv_;
  grpc::GenericStub stub_;
  RelayCount relays_;
  std::unique_ptr<grpcfront::H2Server> server_;
  std::once_flag stopped_;
  const size_t range_ = metrics::grpc_method_index("/etcdserverpb.KV/Range");
  const size_t put_ = metrics::grpc_method_index("/etcdserverpb.KV/Put");
  const size_t delete_range_ = metrics::grpc_method_index("/etcdserverpb.KV/DeleteRange");
  const size_t txn_ = metrics::grpc_method_index("/etcdserverpb.KV/Txn");
  const size_t compact_ = metrics::grpc_method_index("/etcdserverpb.KV/Compact");
};

Result<std::unique_ptr<GrpcFrontend>> GrpcFrontend::start(const GrpcFrontendOptions& options, KvService& kv,
                                                          std::shared_ptr<grpc::Channel> backend) {
  auto impl = std::make_unique<Impl>(kv, std::move(backend));
  grpcfront::H2ServerOptions h2;
  h2.listen_address = options.listen_address;
  h2.tls = options.tls;
  h2.handshake_timeout_ms = options.handshake_timeout_ms;
  h2.max_message_bytes = options.max_message_bytes;
  Impl* raw = impl.get();
  auto server = grpcfront::H2Server::start(
      std::move(h2), [raw](CallHead head, std::shared_ptr<CallWriter> writer) {
        return raw->dispatch(head, std::move(writer));
      });
  if (!server.is_ok()) return server.status();
  impl->set_server(std::move(server.value()));
  return std::unique_ptr<GrpcFrontend>(new GrpcFrontend(std::move(impl)));
}

GrpcFrontend::GrpcFrontend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcFrontend::~GrpcFrontend() { stop(); }
uint16_t GrpcFrontend::port() const { return impl_->port(); }
void GrpcFrontend::stop() { impl_->stop(); }

}  // namespace ckv::etcd
