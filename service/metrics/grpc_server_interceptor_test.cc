// The interceptor on a real in-process gRPC server: the gateway's own callback-API service
// (GatewayService, with the real validator) on a mock upstream stub, called over loopback.
#include "service/metrics/grpc_server_interceptor.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"
#include "service/metrics/metrics_registry.h"
#include "service/server/gateway_service.h"
#include "service/validation/request_validator.h"
#include "tests/mocks/mock_userpilot_stub.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway {
namespace {

using ::testing::_;
using Labels = std::map<std::string, std::string>;

constexpr char kService[] = "userpilot.gateway.v1.UserpilotGateway";

// One server for the suite (each test reads deltas, so their order does not matter).
class GrpcServerInterceptorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new MetricsRegistry();
    metrics_ = new GrpcServerMetrics(registry_->registry());
    metrics_->AddService(UserpilotGatewayDescriptor());
    upstream_ = new ::testing::NiceMock<MockUserpilotStub>();
    ON_CALL(*upstream_, IdentifyUser(_, _, _))
        .WillByDefault([](const CallOptions&, const v1::IdentifyUserRequest&,
                          StubCallback<v1::IdentifyUserResponse> done) {
          v1::IdentifyUserResponse response;
          response.set_upstream_request_id("req-1");
          std::move(done)(response);
        });
    validator_ = new RequestValidator();
    service_ = new GatewayService(*validator_, *upstream_, GatewayServiceOptions());
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_);
    AddServerMetrics(builder, *metrics_);
    server_ = builder.BuildAndStart().release();
    ASSERT_NE(server_, nullptr);
    channel_ = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }

  static void TearDownTestSuite() {
    delete channel_;
    server_->Shutdown();
    delete server_;
    delete service_;
    delete validator_;
    delete upstream_;
    delete metrics_;
    delete registry_;
  }

  static double Value(const std::string& name, const Labels& labels) {
    const auto metric = FindMetric(registry_->Collect(), name, labels);
    if (!metric.has_value()) return 0;
    return metric->counter.value;
  }

  static uint64_t HistogramCount(const Labels& labels) {
    const auto metric = FindMetric(registry_->Collect(), "grpc_server_handling_seconds", labels);
    return !metric.has_value() ? 0 : metric->histogram.sample_count;
  }

  static Labels Method(const std::string& method) {
    return {{"grpc_service", kService}, {"grpc_method", method}, {"grpc_type", "unary"}};
  }

  static Labels WithCode(Labels labels, const std::string& code) {
    labels["grpc_code"] = code;
    return labels;
  }

  static grpc::Status IdentifyUser(const std::string& user_id) {
    auto stub = v1::UserpilotGateway::NewStub(*channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::IdentifyUserRequest request;
    request.set_user_id(user_id);
    v1::IdentifyUserResponse response;
    return stub->IdentifyUser(&context, request, &response);
  }

  static MetricsRegistry* registry_;
  static GrpcServerMetrics* metrics_;
  static ::testing::NiceMock<MockUserpilotStub>* upstream_;
  static RequestValidator* validator_;
  static GatewayService* service_;
  static grpc::Server* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

MetricsRegistry* GrpcServerInterceptorTest::registry_ = nullptr;
GrpcServerMetrics* GrpcServerInterceptorTest::metrics_ = nullptr;
::testing::NiceMock<MockUserpilotStub>* GrpcServerInterceptorTest::upstream_ = nullptr;
RequestValidator* GrpcServerInterceptorTest::validator_ = nullptr;
GatewayService* GrpcServerInterceptorTest::service_ = nullptr;
grpc::Server* GrpcServerInterceptorTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* GrpcServerInterceptorTest::channel_ = nullptr;

TEST_F(GrpcServerInterceptorTest, EveryMethodIsVisibleBeforeItsFirstCall) {
  auto families = registry_->Collect();
  for (const char* method : {"IdentifyCompany", "TrackEvent", "GetJob", "DeleteCompanies"}) {
    EXPECT_NE(FindMetric(families, "grpc_server_handled_total", WithCode(Method(method), "OK")),
              std::nullopt)
        << method;
    EXPECT_NE(FindMetric(families, "grpc_server_handling_seconds", Method(method)), std::nullopt)
        << method;
  }
}

TEST_F(GrpcServerInterceptorTest, OkCallIsStartedHandledTimedAndItsMessagesCounted) {
  const Labels labels = Method("IdentifyUser");
  const double started = Value("grpc_server_started_total", labels);
  const double ok = Value("grpc_server_handled_total", WithCode(labels, "OK"));
  const double received = Value("grpc_server_msg_received_total", labels);
  const double sent = Value("grpc_server_msg_sent_total", labels);
  const uint64_t timed = HistogramCount(labels);

  ASSERT_TRUE(IdentifyUser("u-1").ok());

  EXPECT_EQ(Value("grpc_server_started_total", labels), started + 1);
  EXPECT_EQ(Value("grpc_server_handled_total", WithCode(labels, "OK")), ok + 1);
  EXPECT_EQ(Value("grpc_server_msg_received_total", labels), received + 1);
  EXPECT_EQ(Value("grpc_server_msg_sent_total", labels), sent + 1);
  EXPECT_EQ(HistogramCount(labels), timed + 1);
}

TEST_F(GrpcServerInterceptorTest, InvalidArgumentIsHandledWithItsCodeAndNoResponseMessage) {
  const Labels labels = Method("IdentifyUser");
  const double started = Value("grpc_server_started_total", labels);
  const double invalid = Value("grpc_server_handled_total", WithCode(labels, "INVALID_ARGUMENT"));
  const double ok = Value("grpc_server_handled_total", WithCode(labels, "OK"));
  const double sent = Value("grpc_server_msg_sent_total", labels);
  const uint64_t timed = HistogramCount(labels);

  EXPECT_EQ(IdentifyUser("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(IdentifyUser("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_EQ(Value("grpc_server_started_total", labels), started + 2);
  EXPECT_EQ(Value("grpc_server_handled_total", WithCode(labels, "INVALID_ARGUMENT")), invalid + 2);
  EXPECT_EQ(Value("grpc_server_handled_total", WithCode(labels, "OK")), ok);
  EXPECT_EQ(Value("grpc_server_msg_sent_total", labels), sent);
  EXPECT_EQ(HistogramCount(labels), timed + 2);
  // A refusal by validation alone is gateway-only work: it lands in the sub-millisecond
  // buckets (the first bucket bounds are 50 µs .. 1 ms).
  const auto histogram = FindMetric(registry_->Collect(), "grpc_server_handling_seconds", labels);
  ASSERT_TRUE(histogram.has_value());
  EXPECT_DOUBLE_EQ(histogram->histogram.bucket[0].upper_bound, 0.00005);
}

TEST_F(GrpcServerInterceptorTest, HealthChecksAreCountedUnderTheirOwnService) {
  const Labels labels = {
      {"grpc_service", "grpc.health.v1.Health"}, {"grpc_method", "Check"}, {"grpc_type", "unary"}};
  const double ok = Value("grpc_server_handled_total", WithCode(labels, "OK"));
  auto health = grpc::health::v1::Health::NewStub(*channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, request, &response).ok());
  EXPECT_EQ(Value("grpc_server_handled_total", WithCode(labels, "OK")), ok + 1);
}

TEST_F(GrpcServerInterceptorTest, UnknownMethodsNeverBecomeLabels) {
  const Labels unknown = {{"grpc_service", "unknown"},
                          {"grpc_method", "unknown"},
                          {"grpc_type", "unknown"},
                          {"grpc_code", "UNIMPLEMENTED"}};
  const double before = Value("grpc_server_handled_total", unknown);
  grpc::GenericStub generic(*channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice payload("x");
  grpc::ByteBuffer request(&payload, 1), response;
  grpc::Status status;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  generic.UnaryCall(&context, "/caller.Made/user-12345", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = std::move(s);
                      done = true;
                      cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; }));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  const std::string text = registry_->Serialize();
  EXPECT_EQ(text.find("user-12345"), std::string::npos);
  EXPECT_EQ(text.find("caller.Made"), std::string::npos);
  EXPECT_EQ(Value("grpc_server_handled_total", unknown), before + 1);
}

}  // namespace
}  // namespace userpilot::gateway
