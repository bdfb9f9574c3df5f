#include "service/retry/retry_decision.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/retry/retrying_stub.h"
#include "tests/util/retry_test_util.h"

namespace userpilot::gateway {
namespace {

using namespace retry_testing;  // NOLINT(build/namespaces): test helpers.
using Kind = FailureClassification::Kind;
using ::testing::ElementsAre;
using ::testing::Pair;

TEST(IdempotencyTest, TheGatewaysPolicyIsTheProtosLevel) {
  EXPECT_EQ(RetryOptions().idempotency, &IdempotencyOf);
  for (const RpcInfo& rpc : AllRpcs()) {
    SCOPED_TRACE(std::string(rpc.name));
    const bool may_repeat = rpc.name != "TrackEvent" && rpc.name != "ImportFile" &&
                            rpc.name != "BulkIdentifyUsers" && rpc.name != "BulkIdentifyCompanies";
    EXPECT_EQ(MayRepeat(IdempotencyOf(rpc.id)), may_repeat);
  }
}

// ----- The retry decision table: error x idempotency -----

struct DecisionCase {
  std::string name;
  CallStatus status;
  Kind idempotent;      // May repeat: IdentifyUser, GetJob, DeleteUsers, ...
  Kind non_idempotent;  // Default level: TrackEvent, the bulk identifies, ImportFile
  RetryCause cause;     // When retryable.
};

std::vector<DecisionCase> DecisionCases() {
  const Kind R = Kind::kRetryable;
  const Kind N = Kind::kNonRetryable;
  const Kind M = Kind::kMayHaveReachedUpstream;
  return {
      {"429", HttpError(429), R, R, RetryCause::kUpstreamRateLimited},
      {"429 with Retry-After", HttpError(429, {{"retry-after", "3"}}), R, R,
       RetryCause::kUpstreamRateLimited},
      {"500", HttpError(500), R, M, RetryCause::kUpstreamUnavailable},
      {"502", HttpError(502), R, M, RetryCause::kUpstreamUnavailable},
      {"503", HttpError(503), R, M, RetryCause::kUpstreamUnavailable},
      {"504", HttpError(504), R, M, RetryCause::kUpstreamUnavailable},
      {"408", HttpError(408), R, M, RetryCause::kUpstreamUnavailable},
      {"425", HttpError(425), R, M, RetryCause::kUpstreamUnavailable},
      {"transport, not sent", NotSentError(), R, R, RetryCause::kTransportFailure},
      {"transport, may have been sent", MaybeSentError(), R, M, RetryCause::kTransportFailure},
      {"bare UNAVAILABLE", absl::UnavailableError("x"), R, M, RetryCause::kTransportFailure},
      {"transport deadline", TransportDeadlineError(), N, N, {}},
      {"bare DEADLINE_EXCEEDED", absl::DeadlineExceededError("x"), N, N, {}},
      {"400", HttpError(400), N, N, {}},
      {"422", HttpError(422), N, N, {}},
      {"401 credentials", HttpError(401), N, N, {}},
      {"403 credentials", HttpError(403), N, N, {}},
      {"404", HttpError(404), N, N, {}},
      {"405", HttpError(405), N, N, {}},
      {"409 job in progress", HttpError(409), N, N, {}},
      {"302", HttpError(302), N, N, {}},
      {"gateway budget refusal", BudgetExhaustedError(), N, N, {}},
      {"gateway circuit open", CircuitOpenError(), N, N, {}},
      {"bare RESOURCE_EXHAUSTED", absl::ResourceExhaustedError("x"), N, N, {}},
      {"CANCELLED", absl::CancelledError("x"), N, N, {}},
      {"INTERNAL", absl::InternalError("x"), N, N, {}},
  };
}

TEST(RetryDecisionTest, EveryMethodTimesEveryError) {
  for (const DecisionCase& c : DecisionCases()) {
    for (const RpcInfo& rpc : AllRpcs()) {
      SCOPED_TRACE(c.name + " / " + std::string(rpc.name));
      const Idempotency idempotency = IdempotencyOf(rpc.id);
      const FailureClassification got = ClassifyFailure(c.status, idempotency);
      const Kind want = MayRepeat(idempotency) ? c.idempotent : c.non_idempotent;
      EXPECT_EQ(got.kind, want);
      if (want == Kind::kRetryable) {
        EXPECT_EQ(got.cause, c.cause);
      }
    }
  }
}

TEST(RetryDecisionTest, RequestedDelayComesFromRetryInfo) {
  EXPECT_EQ(RequestedRetryDelay(HttpError(429, {{"retry-after", "7"}})), absl::Seconds(7));
  EXPECT_EQ(RequestedRetryDelay(HttpError(429)), kDefaultRateLimitedRetryDelay);
  EXPECT_EQ(RequestedRetryDelay(HttpError(503, {{"retry-after", "2"}})), absl::Seconds(2));
  EXPECT_EQ(RequestedRetryDelay(HttpError(503)), std::nullopt);
  EXPECT_EQ(RequestedRetryDelay(NotSentError()), std::nullopt);
  EXPECT_EQ(RequestedRetryDelay(BudgetExhaustedError(absl::Milliseconds(1500))),
            absl::Milliseconds(1500));
}

TEST(RetryDecisionTest, HealthForTheCircuitBreaker) {
  EXPECT_EQ(ClassifyHealth(absl::OkStatus()), UpstreamHealth::kHealthy);
  for (const CallStatus& s : std::vector<CallStatus>{HttpError(500), HttpError(503), HttpError(408),
                                                     NotSentError(), MaybeSentError()}) {
    SCOPED_TRACE(s.ToString());
    EXPECT_EQ(ClassifyHealth(s), UpstreamHealth::kUnhealthy);
  }
  for (const CallStatus& s : std::vector<CallStatus>{HttpError(429), HttpError(400), HttpError(401),
                                                     HttpError(404), HttpError(409)}) {
    SCOPED_TRACE(s.ToString());
    EXPECT_EQ(ClassifyHealth(s), UpstreamHealth::kHealthy);
  }
  for (const CallStatus& s : std::vector<CallStatus>{
           BudgetExhaustedError(), CircuitOpenError(), absl::UnavailableError("limiter"),
           absl::DeadlineExceededError("x"), absl::CancelledError("x"),
           TransportDeadlineError()}) {  // The caller's own deadline is not Userpilot's failure.
    SCOPED_TRACE(s.ToString());
    EXPECT_EQ(ClassifyHealth(s), UpstreamHealth::kUnknown);
  }
}

TEST(AnnotateFinalErrorTest, KeepsCodeReasonAndDetailsAndSaysWhy) {
  const CallStatus last = HttpError(429, {{"retry-after", "3"}, {"x-request-id", "r9"}});
  const CallStatus got = AnnotateFinalError(last, "TrackEvent", 3, StopReason::kDeadline);
  EXPECT_EQ(got.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(got.message(),
            "Userpilot's rate limit was reached (HTTP 429 on POST /v1/identify); retry in 3s "
            "(TrackEvent gave up after 3 attempts: deadline would pass)");
  EXPECT_EQ(Reason(got), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(Info(got)->domain(), "userpilot-gateway");
  EXPECT_THAT(
      Metadata(got),
      ElementsAre(Pair("attempts", "3"), Pair("endpoint", "POST /v1/identify"),
                  Pair("http_status", "429"), Pair("retry_delay_source", "retry-after"),
                  Pair("retry_stopped_because", "deadline"), Pair("upstream_request_id", "r9")));
  EXPECT_EQ(wire::RetryDelay(got), absl::Seconds(3));
}

TEST(AnnotateFinalErrorTest, OneAttemptIsSingular) {
  const CallStatus got =
      AnnotateFinalError(HttpError(400), "IdentifyUser", 1, StopReason::kNonRetryable);
  EXPECT_EQ(got.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(got.message(),
            "Userpilot rejected the request (HTTP 400 on POST /v1/identify) (IdentifyUser gave up "
            "after 1 attempt: non-retryable error)");
  EXPECT_EQ(Metadata(got)["retry_stopped_because"], "non_retryable");
}

TEST(AnnotateFinalErrorTest, WithoutErrorInfoOnlyTheMessageChanges) {
  const CallStatus got = AnnotateFinalError(absl::UnavailableError("down"), "GetJob", 2,
                                            StopReason::kRetryBudgetExhausted);
  EXPECT_EQ(got.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(got.message(), "down (GetJob gave up after 2 attempts: retry budget exhausted)");
  EXPECT_FALSE(Info(got).has_value());
}

TEST(AnnotateFinalErrorTest, EveryStopReasonHasWords) {
  const std::vector<std::pair<StopReason, std::string>> want = {
      {StopReason::kRetryPolicyExhausted, "retry policy exhausted"},
      {StopReason::kDeadline, "deadline would pass"},
      {StopReason::kRetryBudgetExhausted, "retry budget exhausted"},
      {StopReason::kNotIdempotent, "not idempotent and may have reached Userpilot"},
      {StopReason::kNonRetryable, "non-retryable error"},
      {StopReason::kCircuitOpen, "circuit breaker open"},
      {StopReason::kShutdown, "gateway shutting down"},
  };
  ASSERT_EQ(want.size(), kStopReasonCount);
  for (const auto& [reason, text] : want) EXPECT_EQ(StopReasonText(reason), text);
}

}  // namespace
}  // namespace userpilot::gateway
