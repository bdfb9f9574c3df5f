#include "service/metrics/grpc_server_interceptor.h"

#include <atomic>
#include <chrono>
#include <utility>
#include <vector>

#include "grpcpp/support/interceptor.h"

namespace userpilot::gateway {
namespace {

using grpc::experimental::InterceptionHookPoints;

class ServerMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  ServerMetricsInterceptor(GrpcServerMetrics& metrics, GrpcServerMetrics::MethodSeries& series)
      : metrics_(metrics), series_(series), start_(std::chrono::steady_clock::now()) {
    series_.started->Increment();
  }

  ~ServerMetricsInterceptor() override { Handled(static_cast<int>(grpc::StatusCode::CANCELLED)); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() != nullptr) {
      series_.msg_received->Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      series_.msg_sent->Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Handled(static_cast<int>(methods->GetSendStatus().error_code()));
    }
    methods->Proceed();
  }

 private:
  // Counts the call as handled with `code`, the first time only.
  void Handled(int code) {
    if (handled_.exchange(true)) return;
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
    metrics_.RecordHandled(series_, code, elapsed.count());
  }

  GrpcServerMetrics& metrics_;
  GrpcServerMetrics::MethodSeries& series_;
  const std::chrono::steady_clock::time_point start_;
  // A streaming call's reads and writes may be intercepted concurrently; the status is sent
  // once, and the destructor runs after every interception.
  std::atomic<bool> handled_{false};
};

class ServerMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ServerMetricsInterceptorFactory(GrpcServerMetrics& metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const char* method = info->method();
    return new ServerMetricsInterceptor(metrics_,
                                        metrics_.SeriesFor(method == nullptr ? "" : method));
  }

 private:
  GrpcServerMetrics& metrics_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeServerMetricsInterceptorFactory(GrpcServerMetrics& metrics) {
  return std::make_unique<ServerMetricsInterceptorFactory>(metrics);
}

void AddServerMetrics(grpc::ServerBuilder& builder, GrpcServerMetrics& metrics) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(MakeServerMetricsInterceptorFactory(metrics));
  builder.experimental().SetInterceptorCreators(std::move(creators));
}

}  // namespace userpilot::gateway
