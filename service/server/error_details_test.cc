#include "service/server/error_details.h"

#include <map>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

std::map<std::string, std::string> Metadata(const google::rpc::Status& rpc) {
  for (const auto& any : rpc.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return {info.metadata().begin(), info.metadata().end()};
  }
  return {};
}

TEST(ErrorDetailsTest, AnAccessRefusalNamesTheCallerAndTheRpc) {
  CallFacts facts;
  facts.reason = ErrorReason::kCallerNotAllowed;
  facts.access_refusal = AccessRefusal{"billing", "DeleteUsers"};
  const google::rpc::Status rpc = ToRpcStatus(absl::PermissionDeniedError("no"), facts);
  ASSERT_EQ(rpc.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(rpc.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "CALLER_NOT_ALLOWED");
  EXPECT_EQ(info.domain(), kErrorDomain);
  EXPECT_EQ(Metadata(rpc),
            (std::map<std::string, std::string>{{"caller", "billing"}, {"rpc", "DeleteUsers"}}));
  facts = CallFacts();
  facts.reason = ErrorReason::kCallerUnauthenticated;
  const google::rpc::Status unauthenticated =
      ToRpcStatus(absl::UnauthenticatedError("who?"), facts);
  ASSERT_TRUE(unauthenticated.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "CALLER_UNAUTHENTICATED");
  EXPECT_TRUE(Metadata(unauthenticated).empty());
}

TEST(ErrorDetailsTest, OkHasNoDetails) {
  CallFacts facts;
  facts.reason = ErrorReason::kUpstreamRateLimited;
  const google::rpc::Status rpc = ToRpcStatus(absl::OkStatus(), facts);
  EXPECT_EQ(rpc.code(), 0);
  EXPECT_EQ(rpc.details_size(), 0);
}

TEST(ErrorDetailsTest, AnUpstreamAnswerBecomesErrorInfoAndRetryInfo) {
  CallFacts facts;
  facts.reason = ErrorReason::kUpstreamRateLimited;
  facts.upstream.endpoint = "POST /v1/track";
  facts.upstream.http_status = 429;
  facts.upstream.request_id = "r-7";
  facts.upstream.error_code = "too_many";
  facts.upstream.reach = Reach::kAnswered;
  facts.retry_delay = RetryDelay{absl::Milliseconds(1500), RetryDelaySource::kRetryAfter};
  const google::rpc::Status rpc = ToRpcStatus(absl::ResourceExhaustedError("slow down"), facts);
  EXPECT_EQ(rpc.code(), static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(rpc.message(), "slow down");
  ASSERT_EQ(rpc.details_size(), 2);
  EXPECT_EQ(rpc.details(0).type_url(), "type.googleapis.com/google.rpc.ErrorInfo");
  EXPECT_EQ(rpc.details(1).type_url(), "type.googleapis.com/google.rpc.RetryInfo");
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(rpc.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(info.domain(), "userpilot-gateway");
  EXPECT_EQ(Metadata(rpc),
            (std::map<std::string, std::string>{{"endpoint", "POST /v1/track"},
                                                {"http_status", "429"},
                                                {"upstream_request_id", "r-7"},
                                                {"upstream_error_code", "too_many"},
                                                {"retry_delay_source", "retry-after"}}));
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(rpc.details(1).UnpackTo(&retry));
  EXPECT_EQ(retry.retry_delay().seconds(), 1);
  EXPECT_EQ(retry.retry_delay().nanos(), 500000000);
}

TEST(ErrorDetailsTest, TransportFailuresSayWhetherTheRequestMayHaveBeenSent) {
  CallFacts facts;
  facts.reason = ErrorReason::kUpstreamUnavailable;
  facts.upstream.endpoint = "POST /v1/identify";
  facts.upstream.transport = TransportFailure::kConnection;
  facts.upstream.reach = Reach::kNever;
  EXPECT_EQ(Metadata(ToRpcStatus(absl::UnavailableError("refused"), facts)),
            (std::map<std::string, std::string>{{"endpoint", "POST /v1/identify"},
                                                {"request_may_have_been_sent", "false"}}));
  facts.upstream.reach = Reach::kUnknown;
  EXPECT_EQ(Metadata(ToRpcStatus(absl::UnavailableError("reset"), facts))
                .at("request_may_have_been_sent"),
            "true");
}

TEST(ErrorDetailsTest, ABudgetRefusalCarriesQuotaFailureAndTheRetryLayersFacts) {
  CallFacts facts;
  facts.reason = ErrorReason::kBudgetExhausted;
  facts.budget_refusal = BudgetRefusal{"identify", "queue_full", "at most 600 requests"};
  facts.retry_delay = RetryDelay{absl::Seconds(2), RetryDelaySource::kGateway};
  facts.retry = RetryFacts{3, StopReason::kNonRetryable};
  const google::rpc::Status rpc = ToRpcStatus(absl::ResourceExhaustedError("full"), facts);
  ASSERT_EQ(rpc.details_size(), 3);
  EXPECT_EQ(rpc.details(1).type_url(), "type.googleapis.com/google.rpc.QuotaFailure");
  google::rpc::QuotaFailure quota;
  ASSERT_TRUE(rpc.details(1).UnpackTo(&quota));
  ASSERT_EQ(quota.violations_size(), 1);
  EXPECT_EQ(quota.violations(0).subject(), "identify");
  EXPECT_EQ(quota.violations(0).description(), "at most 600 requests");
  // The gateway's own estimate names no source.
  EXPECT_EQ(Metadata(rpc),
            (std::map<std::string, std::string>{{"budget", "identify"},
                                                {"cause", "queue_full"},
                                                {"attempts", "3"},
                                                {"retry_stopped_because", "non_retryable"}}));
}

TEST(ErrorDetailsTest, WithoutAReasonNoErrorInfoEvenWhenRetryFactsExist) {
  CallFacts facts;
  facts.retry = RetryFacts{2, StopReason::kShutdown};
  facts.retry_delay = RetryDelay{absl::Seconds(5), RetryDelaySource::kGateway};
  const google::rpc::Status rpc = ToRpcStatus(absl::UnavailableError("bye"), facts);
  ASSERT_EQ(rpc.details_size(), 1);
  EXPECT_EQ(rpc.details(0).type_url(), "type.googleapis.com/google.rpc.RetryInfo");
}

TEST(ErrorDetailsTest, ViolationsBecomeBadRequestAndTheOthersTheirOwnKeys) {
  CallFacts facts;
  facts.violations = {{"users[0].user_id", "required"}, {"metadata.plan", "nested"}};
  google::rpc::Status rpc = ToRpcStatus(absl::InvalidArgumentError("bad"), facts);
  ASSERT_EQ(rpc.details_size(), 1);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(rpc.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 2);
  EXPECT_EQ(bad_request.field_violations(1).field(), "metadata.plan");
  EXPECT_EQ(bad_request.field_violations(1).description(), "nested");

  CallFacts others;
  others.reason = ErrorReason::kCircuitOpen;
  others.circuit_upstream = "https://api.userpilot.test";
  EXPECT_EQ(Metadata(ToRpcStatus(absl::UnavailableError("open"), others)),
            (std::map<std::string, std::string>{{"upstream", "https://api.userpilot.test"}}));
  others = CallFacts();
  others.reason = ErrorReason::kJobInProgress;
  others.job_id = "bulk:jobs:1";
  EXPECT_EQ(Metadata(ToRpcStatus(absl::DeadlineExceededError("late"), others)),
            (std::map<std::string, std::string>{{"job_id", "bulk:jobs:1"}}));
}

}  // namespace
}  // namespace userpilot::gateway
