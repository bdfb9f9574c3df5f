#include "service/common/call_result.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

TEST(CallStatusTest, ABareStatusHasNoFacts) {
  const CallStatus status = absl::UnavailableError("down");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "down");
  EXPECT_EQ(status.facts().reason, ErrorReason::kNone);
  EXPECT_TRUE(CallStatus().ok());
}

TEST(CallStatusTest, SetMessageKeepsCodeAndFacts) {
  CallFacts facts;
  facts.reason = ErrorReason::kCircuitOpen;
  CallStatus status(absl::UnavailableError("open"), facts);
  status.set_message("open (and more)");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "open (and more)");
  EXPECT_EQ(status.facts().reason, ErrorReason::kCircuitOpen);
}

TEST(ResultTest, AValueOrAnErrorWithFactsEitherWay) {
  CallFacts facts;
  facts.upstream.http_status = 202;
  Result<std::string> ok(std::string("job"), facts);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, "job");
  EXPECT_EQ(ok->size(), 3u);
  EXPECT_EQ(ok.facts().upstream.http_status, 202);

  facts.reason = ErrorReason::kUpstreamNotFound;
  facts.upstream.http_status = 404;
  Result<std::string> missing(CallStatus(absl::NotFoundError("no job"), facts));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  const CallStatus error = missing.error();
  EXPECT_EQ(error.message(), "no job");
  EXPECT_EQ(error.facts().reason, ErrorReason::kUpstreamNotFound);

  Result<std::string> bare = absl::InternalError("x");
  EXPECT_EQ(bare.facts().reason, ErrorReason::kNone);
}

TEST(InvalidArgumentErrorTest, NamesEveryViolationAndKeepsThemAsFacts) {
  const CallStatus status =
      InvalidArgumentError({{"users[3].user_id", "is required"}, {"metadata.plan", "is nested"}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("users[3].user_id: is required"));
  ASSERT_EQ(status.facts().violations.size(), 2u);
  EXPECT_EQ(status.facts().violations[0].field, "users[3].user_id");
  EXPECT_EQ(status.facts().violations[1].field, "metadata.plan");
}

TEST(NamesTest, ReasonsSourcesAndStopReasons) {
  EXPECT_EQ(ErrorReasonName(ErrorReason::kNone), "");
  EXPECT_EQ(ErrorReasonName(ErrorReason::kGatewayInternal), "GATEWAY_INTERNAL_ERROR");
  EXPECT_EQ(ErrorReasonName(ErrorReason::kUpstreamCredentialsRejected),
            "UPSTREAM_CREDENTIALS_REJECTED");
  EXPECT_EQ(RetryDelaySourceName(RetryDelaySource::kRateLimitReset), "x-ratelimit-reset");
  EXPECT_EQ(RetryDelaySourceName(RetryDelaySource::kGateway), "");
  EXPECT_TRUE((RetryDelay{absl::Seconds(1), RetryDelaySource::kRetryAfter}).FromUpstream());
  EXPECT_FALSE((RetryDelay{absl::Seconds(1), RetryDelaySource::kDefault}).FromUpstream());
  EXPECT_EQ(StopReasonName(StopReason::kRetryBudgetExhausted), "retry_budget_exhausted");
}

}  // namespace
}  // namespace userpilot::gateway
