// The gRPC service on a real in-process server (port 0) over a mocked upstream stub.
#include "service/server/gateway_service.h"

#include <memory>
#include <thread>

#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/auth/authenticator.h"
#include "service/server/gateway_server.h"
#include "tests/mocks/mock_userpilot_stub.h"

namespace userpilot::gateway {
namespace {

using ::testing::_;
using ::testing::SaveArg;

class GatewayServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_unique<GatewayService>(validator_, stub_, GatewayServiceOptions{});
    auto server = GatewayServer::Start(*service_, {.listen = "127.0.0.1:0", .reflection = false});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    client_ = v1::UserpilotGateway::NewStub(channel_);
  }
  void TearDown() override { server_->Shutdown(absl::Now() + absl::Seconds(1)); }

  RequestValidator validator_{ValidationLimits{}};
  MockUserpilotStub stub_;
  std::unique_ptr<GatewayService> service_;
  std::unique_ptr<GatewayServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::UserpilotGateway::Stub> client_;
};

TEST_F(GatewayServiceTest, DeliveryRpcsWithoutAQueueAnswerFailedPrecondition) {
  EXPECT_CALL(stub_, TrackEvent).Times(0);
  v1::EnqueueRequest request;
  request.mutable_track_event()->set_user_id("u1");
  request.mutable_track_event()->set_event_name("e");
  grpc::ClientContext context;
  v1::EnqueueResponse response;
  grpc::Status status = client_->Enqueue(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("async delivery is off"));
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("--queue_dir"));
  grpc::ClientContext get_context;
  v1::GetDeliveryRequest get;
  get.set_delivery_id("x");
  v1::GetDeliveryResponse delivery;
  EXPECT_EQ(client_->GetDelivery(&get_context, get, &delivery).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(GatewayServiceTest, InvalidRequestNeverReachesUpstream) {
  EXPECT_CALL(stub_, BulkIdentifyUsers).Times(0);
  v1::BulkIdentifyUsersRequest request;
  request.add_users()->set_user_id("ok");
  request.add_users();  // users[1].user_id missing
  grpc::ClientContext context;
  v1::Job job;
  grpc::Status status = client_->BulkIdentifyUsers(&context, request, &job);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  ASSERT_GE(bad_request.field_violations_size(), 1);
  EXPECT_EQ(bad_request.field_violations(0).field(), "users[1].user_id");
}

TEST_F(GatewayServiceTest, PassesRequestCallerAndDeadlineToUpstream) {
  CallOptions seen;
  v1::IdentifyUserRequest seen_request;
  EXPECT_CALL(stub_, IdentifyUser)
      .WillOnce([&](const CallOptions& options, const v1::IdentifyUserRequest& request,
                    StubCallback<v1::IdentifyUserResponse> done) {
        seen = options;
        seen_request = request;
        v1::IdentifyUserResponse response;
        response.set_upstream_request_id("req-1");
        std::move(done)(response);
      });
  v1::IdentifyUserRequest request;
  request.set_user_id("u1");
  grpc::ClientContext context;
  context.AddMetadata("x-caller", "billing-service");
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  context.set_deadline(absl::ToChronoTime(deadline));
  v1::IdentifyUserResponse response;
  ASSERT_TRUE(client_->IdentifyUser(&context, request, &response).ok());
  EXPECT_EQ(response.upstream_request_id(), "req-1");
  EXPECT_EQ(seen.caller, "billing-service");
  EXPECT_EQ(seen_request.user_id(), "u1");
  // gRPC carries the deadline as a timeout: allow for transit and clock rounding.
  EXPECT_LT(absl::AbsDuration(seen.deadline - deadline), absl::Milliseconds(200));
}

TEST_F(GatewayServiceTest, PassesTheCallersTraceWithANewSpan) {
  CallOptions seen;
  EXPECT_CALL(stub_, ListJobs)
      .WillOnce([&](const CallOptions& options, const v1::ListJobsRequest&,
                    StubCallback<v1::ListJobsResponse> done) {
        seen = options;
        std::move(done)(v1::ListJobsResponse());
      });
  grpc::ClientContext context;
  context.AddMetadata("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  context.AddMetadata("tracestate", "congo=t61rcWkgMzE");
  v1::ListJobsResponse response;
  ASSERT_TRUE(client_->ListJobs(&context, v1::ListJobsRequest(), &response).ok());
  EXPECT_EQ(seen.trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(seen.trace.parent_span_id, "00f067aa0ba902b7");
  EXPECT_EQ(seen.trace.span_id.size(), 16u);
  EXPECT_NE(seen.trace.span_id, "00f067aa0ba902b7");
  EXPECT_EQ(seen.trace.flags, 0x01);
  EXPECT_EQ(seen.trace.tracestate, "congo=t61rcWkgMzE");
}

TEST_F(GatewayServiceTest, InvalidTraceparentStartsANewTrace) {
  CallOptions seen;
  EXPECT_CALL(stub_, ListJobs)
      .WillOnce([&](const CallOptions& options, const v1::ListJobsRequest&,
                    StubCallback<v1::ListJobsResponse> done) {
        seen = options;
        std::move(done)(v1::ListJobsResponse());
      });
  grpc::ClientContext context;
  context.AddMetadata("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01");
  context.AddMetadata("tracestate", "congo=t61rcWkgMzE");
  v1::ListJobsResponse response;
  ASSERT_TRUE(client_->ListJobs(&context, v1::ListJobsRequest(), &response).ok());
  EXPECT_EQ(seen.trace.trace_id.size(), 32u);
  EXPECT_NE(seen.trace.trace_id, "00000000000000000000000000000000");
  EXPECT_EQ(seen.trace.parent_span_id, "");
  EXPECT_EQ(seen.trace.flags, 0);
  EXPECT_EQ(seen.trace.tracestate, "");
}

TEST_F(GatewayServiceTest, CallWithoutDeadlineGetsTheDefault) {
  CallOptions seen;
  EXPECT_CALL(stub_, ListJobs)
      .WillOnce([&](const CallOptions& options, const v1::ListJobsRequest&,
                    StubCallback<v1::ListJobsResponse> done) {
        seen = options;
        std::move(done)(v1::ListJobsResponse());
      });
  grpc::ClientContext context;
  v1::ListJobsResponse response;
  const absl::Time before = absl::Now();
  ASSERT_TRUE(client_->ListJobs(&context, v1::ListJobsRequest(), &response).ok());
  EXPECT_GE(seen.deadline, before + absl::Seconds(29));
  EXPECT_LE(seen.deadline, absl::Now() + absl::Seconds(30));
  EXPECT_EQ(seen.caller, "unknown");
}

TEST_F(GatewayServiceTest, UpstreamErrorReachesCallerWithDetails) {
  EXPECT_CALL(stub_, GetJob)
      .WillOnce([](const CallOptions&, const v1::GetJobRequest&, StubCallback<v1::Job> done) {
        CallFacts facts;
        facts.reason = ErrorReason::kJobInProgress;
        std::move(done)(
            CallStatus(absl::FailedPreconditionError("a bulk job is already running"), facts));
      });
  v1::GetJobRequest request;
  request.set_job_id("bulk:jobs:NX-1");
  grpc::ClientContext context;
  v1::Job job;
  grpc::Status status = client_->GetJob(&context, request, &job);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), "a bulk job is already running");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "JOB_IN_PROGRESS");
}

TEST_F(GatewayServiceTest, CallerNameIsSanitised) {
  std::string seen;
  EXPECT_CALL(stub_, ListJobs)
      .Times(2)
      .WillRepeatedly([&](const CallOptions& options, const v1::ListJobsRequest&,
                          StubCallback<v1::ListJobsResponse> done) {
        seen = options.caller;
        std::move(done)(v1::ListJobsResponse());
      });
  v1::ListJobsResponse response;
  {
    grpc::ClientContext context;
    context.AddMetadata("x-caller", "has space");
    ASSERT_TRUE(client_->ListJobs(&context, v1::ListJobsRequest(), &response).ok());
    EXPECT_EQ(seen, "invalid");
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("x-caller", std::string(65, 'a'));
    ASSERT_TRUE(client_->ListJobs(&context, v1::ListJobsRequest(), &response).ok());
    EXPECT_EQ(seen, "invalid");
  }
}

TEST_F(GatewayServiceTest, HealthIsServingThenNotServingOnShutdown) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const char* service : {"", GatewayServer::kServiceName}) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  // A Watch opened before the drain sees NOT_SERVING as the drain starts.
  grpc::ClientContext watch_context;
  watch_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::health::v1::HealthCheckRequest watch_request;
  watch_request.set_service(GatewayServer::kServiceName);
  auto reader = health->Watch(&watch_context, watch_request);
  grpc::health::v1::HealthCheckResponse update;
  ASSERT_TRUE(reader->Read(&update));
  EXPECT_EQ(update.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  std::thread drain([&] { server_->Shutdown(absl::Now() + absl::Seconds(2)); });
  ASSERT_TRUE(reader->Read(&update));
  EXPECT_EQ(update.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  watch_context.TryCancel();
  reader->Finish();
  drain.join();
}

// Clients behind a Kubernetes Service rebalance only if connections end: the server closes
// each one after max_connection_age (GOAWAY), and the client's channel goes idle, to reconnect
// (possibly elsewhere) on its next call.
TEST(GatewayServerTest, ConnectionsAgeOutSoClientsRebalance) {
  RequestValidator validator{ValidationLimits{}};
  MockUserpilotStub stub;
  EXPECT_CALL(stub, ListJobs)
      .Times(2)
      .WillRepeatedly(
          [](const CallOptions&, const v1::ListJobsRequest&,
             StubCallback<v1::ListJobsResponse> done) { std::move(done)(v1::ListJobsResponse()); });
  GatewayService service(validator, stub, GatewayServiceOptions{});
  GatewayServerOptions options;
  options.listen = "127.0.0.1:0";
  options.reflection = false;
  options.max_connection_age = absl::Milliseconds(300);
  options.max_connection_age_grace = absl::Milliseconds(100);
  auto server = GatewayServer::Start(service, options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto client = v1::UserpilotGateway::NewStub(channel);
  v1::ListJobsResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(client->ListJobs(&context, v1::ListJobsRequest(), &response).ok());
  }
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  grpc_connectivity_state state = GRPC_CHANNEL_READY;
  for (int i = 0; i < 100 && state == GRPC_CHANNEL_READY; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    state = channel->GetState(false);
  }
  EXPECT_NE(state, GRPC_CHANNEL_READY) << "the server never closed the aged connection";
  grpc::ClientContext context;
  EXPECT_TRUE(client->ListJobs(&context, v1::ListJobsRequest(), &response).ok());
  (*server)->Shutdown(absl::Now() + absl::Seconds(1));
}

// Authentication comes before validation and before the stub: an invalid request from a caller
// without credentials is UNAUTHENTICATED, and nothing is sent; streams are refused the same way.
TEST(GatewayServiceAuthTest, AuthenticationComesFirstForEveryRpc) {
  AuthenticatorOptions auth_options;
  auth_options.client_certificates = true;  // Plaintext calls carry none.
  Authenticator authenticator(std::move(auth_options));
  RequestValidator validator{ValidationLimits{}};
  MockUserpilotStub stub;
  EXPECT_CALL(stub, BulkIdentifyUsers).Times(0);
  GatewayServiceOptions options;
  options.authenticator = &authenticator;
  GatewayService service(validator, stub, options);
  auto server = GatewayServer::Start(service, {.listen = "127.0.0.1:0", .reflection = false});
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = v1::UserpilotGateway::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));

  v1::BulkIdentifyUsersRequest request;
  request.add_users();  // users[0].user_id missing: invalid, but never looked at.
  grpc::ClientContext context;
  context.AddMetadata("x-caller", "billing");
  v1::Job job;
  grpc::Status status = client->BulkIdentifyUsers(&context, request, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "CALLER_UNAUTHENTICATED");

  grpc::ClientContext watch_context;
  v1::WatchJobRequest watch;
  watch.set_job_id("job-1");
  auto reader = client->WatchJob(&watch_context, watch);
  v1::Job ignored;
  EXPECT_FALSE(reader->Read(&ignored));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  (*server)->Shutdown(absl::Now() + absl::Seconds(1));
}

}  // namespace
}  // namespace userpilot::gateway
