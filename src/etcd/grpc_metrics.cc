// The gRPC metrics interceptor (see grpc_metrics.h).
#include "etcd/grpc_metrics.h"

#include <chrono>
#include <memory>
#include <vector>

#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_interceptor.h>

#include "metrics/instruments.h"

namespace ckv::etcd {

namespace {

namespace gx = grpc::experimental;

class MetricsInterceptor final : public gx::Interceptor {
 public:
  explicit MetricsInterceptor(gx::ServerRpcInfo* info)
      : method_(metrics::grpc_method_index(info->method())), started_(std::chrono::steady_clock::now()) {}
  ~MetricsInterceptor() override {
    if (!recorded_) record(grpc::StatusCode::CANCELLED);  // ended without a status: the client left
  }
  MetricsInterceptor(const MetricsInterceptor&) = delete;
  MetricsInterceptor& operator=(const MetricsInterceptor&) = delete;

  void Intercept(gx::InterceptorBatchMethods* methods) override {
    if (!recorded_ && methods->QueryInterceptionHookPoint(gx::InterceptionHookPoints::PRE_SEND_STATUS)) {
      record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void record(grpc::StatusCode code) {
    recorded_ = true;
    metrics::instruments().grpc.record(method_, static_cast<size_t>(code),
                                       metrics::ScopedTimer::seconds_since(started_));
  }

  const size_t method_;
  const std::chrono::steady_clock::time_point started_;
  bool recorded_ = false;
};

class MetricsInterceptorFactory final : public gx::ServerInterceptorFactoryInterface {
 public:
  // grpc++ accepts nullptr: no interceptor for this call.
  gx::Interceptor* CreateServerInterceptor(gx::ServerRpcInfo* info) override {
    if (grpc_call_recorded_by_service(info->method())) return nullptr;
    return new MetricsInterceptor(info);
  }
};

}  // namespace

bool grpc_call_recorded_by_service(std::string_view full_method) {
  return full_method.starts_with("/etcdserverpb.KV/");
}

void GrpcCallMetrics::record(int status_code) const {
  metrics::instruments().grpc.record(method_, static_cast<size_t>(status_code),
                                     metrics::ScopedTimer::seconds_since(started_));
}

void install_grpc_metrics(grpc::ServerBuilder& builder) {
  std::vector<std::unique_ptr<gx::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<MetricsInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(creators));
}

}  // namespace ckv::etcd
