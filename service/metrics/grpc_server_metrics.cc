// GrpcServerMetrics (gateway_metrics.h): families, known methods and their series.
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "service/metrics/gateway_metrics.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {
namespace {

constexpr char kUnknown[] = "unknown";

}  // namespace

const google::protobuf::ServiceDescriptor& UserpilotGatewayDescriptor() {
  const google::protobuf::ServiceDescriptor* service =
      v1::IdentifyUserRequest::descriptor()->file()->FindServiceByName("UserpilotGateway");
  if (service == nullptr) std::abort();  // The contract's own file declares it.
  return *service;
}

absl::string_view RpcTypeName(GrpcServerMetrics::RpcType type) {
  switch (type) {
    case GrpcServerMetrics::RpcType::kUnary:
      return "unary";
    case GrpcServerMetrics::RpcType::kClientStream:
      return "client_stream";
    case GrpcServerMetrics::RpcType::kServerStream:
      return "server_stream";
    case GrpcServerMetrics::RpcType::kBidiStream:
      return "bidi_stream";
  }
  return kUnknown;
}

absl::string_view GrpcCodeName(int code) {
  // gRPC's codes and absl::StatusCode share numbers and names (0..16).
  if (code < 0 || code > 16) code = static_cast<int>(absl::StatusCode::kUnknown);
  static const auto* const kNames = [] {
    auto* names = new std::array<std::string, 17>();
    for (int i = 0; i <= 16; ++i) {
      (*names)[i] = absl::StatusCodeToString(static_cast<absl::StatusCode>(i));
    }
    return names;
  }();
  return (*kNames)[code];
}

const std::vector<double>& GrpcServerMetrics::HandlingBuckets() {
  static const auto* const kBuckets =
      new std::vector<double>{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                              0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
  return *kBuckets;
}

GrpcServerMetrics::GrpcServerMetrics(prometheus::Registry& registry)
    : started(prometheus::BuildCounter()
                  .Name("grpc_server_started_total")
                  .Help("RPCs started on the server.")
                  .Register(registry)),
      handled(prometheus::BuildCounter()
                  .Name("grpc_server_handled_total")
                  .Help("RPCs completed on the server, by gRPC status code.")
                  .Register(registry)),
      msg_received(prometheus::BuildCounter()
                       .Name("grpc_server_msg_received_total")
                       .Help("RPC messages received by the server.")
                       .Register(registry)),
      msg_sent(prometheus::BuildCounter()
                   .Name("grpc_server_msg_sent_total")
                   .Help("RPC messages sent by the server.")
                   .Register(registry)),
      handling_seconds(prometheus::BuildHistogram()
                           .Name("grpc_server_handling_seconds")
                           .Help("Time from the start of an RPC to its status being sent.")
                           .Register(registry)),
      undecodable(prometheus::BuildCounter()
                      .Name("userpilot_gateway_requests_undecodable_total")
                      .Help("Requests protobuf could not decode (invalid UTF-8, nesting too "
                            "deep, malformed wire data), answered INVALID_ARGUMENT.")
                      .Register(registry)) {
  AddMethod("grpc.health.v1.Health", "Check", RpcType::kUnary, false);
  AddMethod("grpc.health.v1.Health", "Watch", RpcType::kServerStream, false);
  AddMethod("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo",
            RpcType::kBidiStream, false);
}

void GrpcServerMetrics::RecordUndecodable(absl::string_view method) {
  // Family::Add is thread-safe; the method names are the service's own (a bounded set).
  undecodable.Add({{"grpc_method", std::string(method)}}).Increment();
}

void GrpcServerMetrics::AddService(const google::protobuf::ServiceDescriptor& service) {
  for (int i = 0; i < service.method_count(); ++i) {
    const google::protobuf::MethodDescriptor& method = *service.method(i);
    RpcType type = RpcType::kUnary;
    if (method.client_streaming() && method.server_streaming()) {
      type = RpcType::kBidiStream;
    } else if (method.client_streaming()) {
      type = RpcType::kClientStream;
    } else if (method.server_streaming()) {
      type = RpcType::kServerStream;
    }
    AddMethod(service.full_name(), method.name(), type, true);
  }
}

void GrpcServerMetrics::AddMethod(absl::string_view service, absl::string_view method, RpcType type,
                                  bool precreate) {
  auto series = std::make_unique<MethodSeries>();
  series->labels = {{"grpc_type", std::string(RpcTypeName(type))},
                    {"grpc_service", std::string(service)},
                    {"grpc_method", std::string(method)}};
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] =
      methods_.emplace(absl::StrCat("/", service, "/", method), std::move(series));
  if (precreate) Create(*it->second);
}

void GrpcServerMetrics::Create(MethodSeries& series) {
  if (series.started != nullptr) return;
  series.started = &started.Add(series.labels);
  series.msg_received = &msg_received.Add(series.labels);
  series.msg_sent = &msg_sent.Add(series.labels);
  series.handling_seconds = &handling_seconds.Add(series.labels, HandlingBuckets());
  auto labels = series.labels;
  labels["grpc_code"] = "OK";
  series.handled[0].store(&handled.Add(labels), std::memory_order_release);
}

GrpcServerMetrics::MethodSeries& GrpcServerMetrics::SeriesFor(absl::string_view full_method) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = methods_.find(full_method);
  if (it == methods_.end()) {
    it = methods_.find("");
    if (it == methods_.end()) {
      auto series = std::make_unique<MethodSeries>();
      series->labels = {
          {"grpc_type", kUnknown}, {"grpc_service", kUnknown}, {"grpc_method", kUnknown}};
      it = methods_.emplace("", std::move(series)).first;
    }
  }
  Create(*it->second);
  return *it->second;
}

void GrpcServerMetrics::RecordHandled(MethodSeries& series, int grpc_code, double seconds) {
  if (grpc_code < 0 || grpc_code > 16) grpc_code = static_cast<int>(absl::StatusCode::kUnknown);
  prometheus::Counter* counter = series.handled[grpc_code].load(std::memory_order_acquire);
  if (counter == nullptr) {
    auto labels = series.labels;
    labels["grpc_code"] = std::string(GrpcCodeName(grpc_code));
    counter = &handled.Add(labels);  // Returns the existing series when another thread won.
    series.handled[grpc_code].store(counter, std::memory_order_release);
  }
  counter->Increment();
  series.handling_seconds->Observe(seconds);
}

}  // namespace userpilot::gateway
