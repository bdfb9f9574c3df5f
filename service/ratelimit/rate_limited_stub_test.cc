#include "service/ratelimit/rate_limited_stub.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/upstream/error_mapping.h"
#include "tests/mocks/fake_http_client.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/mocks/mock_userpilot_stub.h"
#include "tests/util/ratelimit_test_util.h"

namespace userpilot::gateway {
namespace {

using ::testing::_;
using ::testing::StrictMock;
using ::userpilot::gateway::testing::Cause;
using ::userpilot::gateway::testing::Reason;

// Answers a mocked call at once with a default response of the callback's type.
// The feedback of an answer, read from its code and facts.
UpstreamFeedback Classify(const CallStatus& answer) {
  return ClassifyUpstreamAnswer(answer.status(), answer.facts());
}

struct AnswerOk {
  template <typename Request, typename Response>
  void operator()(const CallOptions&, const Request&, StubCallback<Response> done) const {
    std::move(done)(Response());
  }
};

// Answers a mocked call at once with `status`.
struct AnswerError {
  CallStatus status;
  template <typename Request, typename Response>
  void operator()(const CallOptions&, const Request&, StubCallback<Response> done) const {
    std::move(done)(status);
  }
};

ImportFileRequest Import(v1::ImportTarget target) {
  ImportFileRequest request;
  request.target = target;
  request.format = v1::IMPORT_FORMAT_NDJSON;
  request.filename = "rows.ndjson";
  return request;
}

RateLimitOptions TestOptions() {
  RateLimitOptions options;
  options.spacing_margin = absl::ZeroDuration();
  return options;
}

class RateLimitedStubTest : public ::testing::Test {
 protected:
  RateLimitedStubTest() {
    auto budgets = MakeBudgets(TestOptions(), scheduler_);
    EXPECT_TRUE(budgets.ok()) << budgets.status();
    budgets_ = *budgets;
    stub_ = std::make_unique<RateLimitedStub>(mock_, budgets_);
  }

  // Records the answer of one call.
  template <typename Response>
  StubCallback<Response> Record(std::optional<CallStatus>* out) {
    return [out](Result<Response> result) { *out = std::move(result).error(); };
  }

  uint64_t Admitted(const std::shared_ptr<FairLimiter>& budget) const {
    const FairLimiterStats stats = budget->Stats();
    return stats.admitted_without_wait + stats.admitted_after_wait;
  }

  FakeScheduler scheduler_;
  std::shared_ptr<StrictMock<MockUserpilotStub>> mock_ =
      std::make_shared<StrictMock<MockUserpilotStub>>();
  Budgets budgets_;
  std::unique_ptr<RateLimitedStub> stub_;
};

TEST_F(RateLimitedStubTest, RoutesEachMethodToItsBudgetAndJobLanesToNone) {
  struct Route {
    std::string method;
    std::function<void()> expect;
    std::function<void(std::optional<CallStatus>*)> call;
    std::shared_ptr<FairLimiter> budget;
  };
  const CallOptions options;
  std::vector<Route> routes = {
      {"IdentifyUser", [&] { EXPECT_CALL(*mock_, IdentifyUser(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) { stub_->IdentifyUser(options, {}, Record<v1::IdentifyUserResponse>(out)); },
       budgets_.identify},
      {"IdentifyCompany",
       [&] { EXPECT_CALL(*mock_, IdentifyCompany(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) {
         stub_->IdentifyCompany(options, {}, Record<v1::IdentifyCompanyResponse>(out));
       },
       budgets_.identify},
      {"TrackEvent", [&] { EXPECT_CALL(*mock_, TrackEvent(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) { stub_->TrackEvent(options, {}, Record<v1::TrackEventResponse>(out)); },
       budgets_.track},
      {"DeleteUsers", [&] { EXPECT_CALL(*mock_, DeleteUsers(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) { stub_->DeleteUsers(options, {}, Record<v1::DeleteUsersResponse>(out)); },
       budgets_.deletes},
      {"DeleteCompanies",
       [&] { EXPECT_CALL(*mock_, DeleteCompanies(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) {
         stub_->DeleteCompanies(options, {}, Record<v1::DeleteCompaniesResponse>(out));
       },
       budgets_.deletes},
      {"GetJob", [&] { EXPECT_CALL(*mock_, GetJob(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) { stub_->GetJob(options, {}, Record<v1::Job>(out)); }, budgets_.job_reads},
      {"ListJobs", [&] { EXPECT_CALL(*mock_, ListJobs(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) { stub_->ListJobs(options, {}, Record<v1::ListJobsResponse>(out)); },
       budgets_.job_reads},
      {"BulkIdentifyUsers",
       [&] { EXPECT_CALL(*mock_, BulkIdentifyUsers(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) { stub_->BulkIdentifyUsers(options, {}, Record<v1::Job>(out)); }, nullptr},
      {"BulkIdentifyCompanies",
       [&] { EXPECT_CALL(*mock_, BulkIdentifyCompanies(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) { stub_->BulkIdentifyCompanies(options, {}, Record<v1::Job>(out)); },
       nullptr},
      {"ImportFile(USERS_BULK)",
       [&] { EXPECT_CALL(*mock_, ImportFile(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) {
         stub_->ImportFile(options, Import(v1::IMPORT_TARGET_USERS_BULK), Record<v1::Job>(out));
       },
       nullptr},
      {"ImportFile(COMPANIES_BULK)",
       [&] { EXPECT_CALL(*mock_, ImportFile(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) {
         stub_->ImportFile(options, Import(v1::IMPORT_TARGET_COMPANIES_BULK), Record<v1::Job>(out));
       },
       nullptr},
      {"ImportFile(HISTORICAL_IMPORT)",
       [&] { EXPECT_CALL(*mock_, ImportFile(_, _, _)).WillOnce(AnswerOk()); },
       [&](auto* out) {
         stub_->ImportFile(options, Import(v1::IMPORT_TARGET_HISTORICAL_IMPORT),
                           Record<v1::Job>(out));
       },
       nullptr},
  };
  for (Route& route : routes) {
    SCOPED_TRACE(route.method);
    std::vector<uint64_t> before;
    for (const auto& budget : budgets_.All()) before.push_back(Admitted(budget));
    route.expect();
    std::optional<CallStatus> answer;
    route.call(&answer);
    EXPECT_TRUE(answer.has_value());  // Nobody waits: admitted and answered inside the call.
    scheduler_.RunDue();
    ASSERT_TRUE(answer.has_value());
    EXPECT_TRUE(answer->ok()) << *answer;
    const std::vector<std::shared_ptr<FairLimiter>> all = budgets_.All();
    for (size_t i = 0; i < all.size(); ++i) {
      EXPECT_EQ(Admitted(all[i]) - before[i], all[i] == route.budget ? 1u : 0u) << all[i]->name();
    }
    // Job lanes' calls (no budget) spend none.
    if (route.budget != nullptr) {
      EXPECT_EQ(route.budget->Stats().upstream_successes, Admitted(route.budget));
    }
    ::testing::Mock::VerifyAndClearExpectations(mock_.get());
    scheduler_.AdvanceBy(absl::Seconds(10));  // Every budget has a permit again.
  }
}

TEST_F(RateLimitedStubTest, ForwardsAnIntactCopyOfTheRequestWithTheCallOptions) {
  // A pause makes the call wait until after its caller's request is gone.
  budgets_.track->OnUpstreamRateLimited(absl::Milliseconds(500), absl::InfiniteFuture());

  v1::TrackEventRequest expected;
  expected.set_user_id("u-1");
  expected.set_event_name("purchase_completed");
  (*expected.mutable_metadata()->mutable_fields())["plan"].set_string_value("pro");
  (*expected.mutable_metadata()->mutable_fields())["seats"].set_number_value(12);
  CallOptions options;
  options.caller = "billing";
  options.deadline = scheduler_.Now() + absl::Seconds(5);
  v1::TrackEventRequest forwarded;
  CallOptions forwarded_options;
  EXPECT_CALL(*mock_, TrackEvent(_, _, _))
      .WillOnce([&](const CallOptions& o, const v1::TrackEventRequest& request,
                    StubCallback<v1::TrackEventResponse> done) {
        forwarded = request;
        forwarded_options = o;
        std::move(done)(v1::TrackEventResponse());
      });
  std::optional<CallStatus> second;
  {
    auto request = std::make_unique<v1::TrackEventRequest>(expected);
    stub_->TrackEvent(options, *request, Record<v1::TrackEventResponse>(&second));
    request->set_user_id("changed after the call");
  }  // ... and destroyed.
  scheduler_.AdvanceBy(absl::Seconds(1));
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(second->ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(forwarded, expected))
      << forwarded.DebugString();
  EXPECT_EQ(forwarded_options.caller, "billing");
  EXPECT_EQ(forwarded_options.deadline, options.deadline);
  // The answer carries the wait, exactly as the budget measured it for its histogram.
  EXPECT_GE(second->facts().budget_wait, absl::Milliseconds(490));
  EXPECT_EQ(second->facts().budget_wait, budgets_.track->Stats().total_wait);
}

TEST_F(RateLimitedStubTest, ARefusalAfterWaitingCarriesTheWait) {
  EXPECT_CALL(*mock_, TrackEvent(_, _, _)).Times(0);
  budgets_.track->OnUpstreamRateLimited(absl::Milliseconds(500), absl::InfiniteFuture());
  CallOptions options;
  options.deadline = scheduler_.Now() + absl::Seconds(5);
  std::optional<CallStatus> answer;
  stub_->TrackEvent(options, {}, Record<v1::TrackEventResponse>(&answer));
  scheduler_.AdvanceBy(absl::Milliseconds(100));
  EXPECT_FALSE(answer.has_value());
  // A longer pause, which the waiting call cannot outlast: it is refused now, 100 ms in.
  budgets_.track->OnUpstreamRateLimited(absl::Seconds(30), absl::InfiniteFuture());
  scheduler_.RunDue();
  ASSERT_TRUE(answer.has_value());
  EXPECT_FALSE(answer->ok());
  EXPECT_EQ(answer->facts().budget_wait, absl::Milliseconds(100));
}

TEST_F(RateLimitedStubTest, RefusalReachesTheCallerAndNothingIsSent) {
  EXPECT_CALL(*mock_, IdentifyUser(_, _, _)).Times(0);
  CallOptions options;
  options.deadline = scheduler_.Now();  // Already over.
  std::optional<CallStatus> answer;
  stub_->IdentifyUser(options, {}, Record<v1::IdentifyUserResponse>(&answer));
  EXPECT_FALSE(answer.has_value());
  scheduler_.RunDue();
  ASSERT_TRUE(answer.has_value());
  EXPECT_TRUE(absl::IsDeadlineExceeded(answer->status())) << *answer;
  EXPECT_EQ(Reason(*answer), "BUDGET_EXHAUSTED");
}

TEST_F(RateLimitedStubTest, Upstream429WithRetryAfterPausesTheBudgetAndPassesThrough) {
  const absl::Time now = scheduler_.Now();
  const CallStatus limited = MapHttpResult(
      FakeHttpClient::Response(429, "", {{"Retry-After", "7"}}), "POST /v1/identify", now);
  EXPECT_CALL(*mock_, IdentifyCompany(_, _, _)).WillOnce(AnswerError{limited});
  std::optional<CallStatus> answer;
  stub_->IdentifyCompany(CallOptions(), {}, Record<v1::IdentifyCompanyResponse>(&answer));
  scheduler_.RunDue();
  ASSERT_TRUE(answer.has_value());
  // Unchanged, but for the budget wait (none here).
  EXPECT_EQ(answer->status(), limited.status());
  EXPECT_EQ(wire::Metadata(*answer), wire::Metadata(limited));
  EXPECT_EQ(wire::RetryDelay(*answer), absl::Seconds(7));
  EXPECT_EQ(answer->facts().budget_wait, absl::ZeroDuration());
  const FairLimiterStats stats = budgets_.identify->Stats();
  EXPECT_EQ(stats.upstream_rate_limited, 1u);
  EXPECT_EQ(stats.paused_until, now + absl::Seconds(7));
  EXPECT_DOUBLE_EQ(stats.current_limit, 600 * 0.7);
  EXPECT_EQ(stats.backoff, absl::Seconds(1));
  EXPECT_FALSE(budgets_.track->Stats().paused);  // Other budgets are not affected.

  // The next identify call waits out the pause.
  EXPECT_CALL(*mock_, IdentifyUser(_, _, _)).WillOnce(AnswerOk());
  std::optional<CallStatus> next;
  stub_->IdentifyUser(CallOptions(), {}, Record<v1::IdentifyUserResponse>(&next));
  scheduler_.AdvanceTo(now + absl::Seconds(7) - absl::Nanoseconds(1));
  EXPECT_FALSE(next.has_value());
  scheduler_.AdvanceTo(now + absl::Seconds(7));
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(next->ok());
}

TEST_F(RateLimitedStubTest, ADayLongRetryAfterIsCappedForTheBudgetAndTheCaller) {
  // Userpilot (or something posing as it) asks for a day: the budget pauses for
  // --max_upstream_pause at most, and the caller is told no longer a wait than that.
  const absl::Time now = scheduler_.Now();
  const absl::Duration cap = budgets_.identify->max_upstream_pause();
  ASSERT_LT(cap, absl::Hours(24));
  const CallStatus limited = MapHttpResult(
      FakeHttpClient::Response(429, "", {{"Retry-After", "86400"}}), "POST /v1/identify", now);
  ASSERT_EQ(wire::RetryDelay(limited), absl::Seconds(86400));
  EXPECT_CALL(*mock_, IdentifyCompany(_, _, _)).WillOnce(AnswerError{limited});
  std::optional<CallStatus> answer;
  stub_->IdentifyCompany(CallOptions(), {}, Record<v1::IdentifyCompanyResponse>(&answer));
  scheduler_.RunDue();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status().code(), limited.status().code());
  EXPECT_EQ(wire::RetryDelay(*answer), cap);
  const FairLimiterStats stats = budgets_.identify->Stats();
  EXPECT_EQ(stats.paused_until, now + cap);
  EXPECT_EQ(stats.upstream_pauses_capped, 1u);
}

TEST_F(RateLimitedStubTest, Upstream429WithoutRetryAfterBacksOffExponentially) {
  const CallStatus limited =
      MapHttpResult(FakeHttpClient::Response(429), "POST /v1/track", scheduler_.Now());
  EXPECT_CALL(*mock_, TrackEvent(_, _, _)).WillOnce(AnswerError{limited});
  std::optional<CallStatus> answer;
  stub_->TrackEvent(CallOptions(), {}, Record<v1::TrackEventResponse>(&answer));
  scheduler_.RunDue();
  const FairLimiterStats stats = budgets_.track->Stats();
  EXPECT_EQ(stats.rate_decreases, 1u);
  EXPECT_EQ(stats.paused_until, scheduler_.Now() + absl::Seconds(1));
  EXPECT_EQ(stats.backoff, absl::Seconds(2));  // Doubled: no Retry-After.
}

TEST_F(RateLimitedStubTest, Upstream429WithRetryAfterOfOneSecondPausesWithoutBackingOff) {
  // Equal to the gateway's default delay, yet Userpilot's own: a pause, not a backoff step.
  const CallStatus limited =
      MapHttpResult(FakeHttpClient::Response(429, "", {{"Retry-After", "1"}}), "POST /v1/track",
                    scheduler_.Now());
  EXPECT_CALL(*mock_, TrackEvent(_, _, _)).WillOnce(AnswerError{limited});
  std::optional<CallStatus> answer;
  stub_->TrackEvent(CallOptions(), {}, Record<v1::TrackEventResponse>(&answer));
  scheduler_.RunDue();
  const FairLimiterStats stats = budgets_.track->Stats();
  EXPECT_EQ(stats.rate_decreases, 1u);
  EXPECT_EQ(stats.paused_until, scheduler_.Now() + absl::Seconds(1));
  EXPECT_EQ(stats.backoff, absl::Seconds(1));  // Not doubled: Userpilot said when.
}

TEST(ClassifyUpstreamStatusTest, TellsUpstream429sFromEverythingElse) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  using Kind = UpstreamFeedback::Kind;
  UpstreamFeedback ok = Classify(absl::OkStatus());
  EXPECT_EQ(ok.kind, Kind::kSuccess);

  UpstreamFeedback with =
      Classify(MapHttpResult(FakeHttpClient::Response(429, "", {{"Retry-After", "30"}}), "x", now));
  EXPECT_EQ(with.kind, Kind::kRateLimited);
  EXPECT_EQ(with.retry_after, absl::Seconds(30));

  UpstreamFeedback without = Classify(MapHttpResult(FakeHttpClient::Response(429), "x", now));
  EXPECT_EQ(without.kind, Kind::kRateLimited);
  EXPECT_EQ(without.retry_after, std::nullopt);

  // "Retry-After: 1" is Userpilot's word even though it equals the gateway's default delay.
  UpstreamFeedback one_second =
      Classify(MapHttpResult(FakeHttpClient::Response(429, "", {{"Retry-After", "1"}}), "x", now));
  EXPECT_EQ(one_second.kind, Kind::kRateLimited);
  EXPECT_EQ(one_second.retry_after, absl::Seconds(1));
  UpstreamFeedback reset = Classify(
      MapHttpResult(FakeHttpClient::Response(429, "", {{"X-RateLimit-Reset", "4"}}), "x", now));
  EXPECT_EQ(reset.retry_after, absl::Seconds(4));

  // The gateway's own RESOURCE_EXHAUSTED (a budget refusal) is not Userpilot's 429.
  CallFacts budget;
  budget.reason = ErrorReason::kBudgetExhausted;
  const CallStatus own(absl::ResourceExhaustedError("budget"), budget);
  EXPECT_EQ(Classify(own).kind, Kind::kNone);
  EXPECT_EQ(Classify(absl::ResourceExhaustedError("bare")).kind, Kind::kNone);
  EXPECT_EQ(Classify(MapHttpResult(FakeHttpClient::Response(503), "x", now)).kind, Kind::kNone);
  EXPECT_EQ(Classify(MapHttpResult(FakeHttpClient::Response(400), "x", now)).kind, Kind::kNone);
}

}  // namespace
}  // namespace userpilot::gateway
