// KeyChecker over a recording probe and a fake clock: when checks run, what each answer means,
// and that nothing is observed after Stop(). (What the probe sends, GET /v1/validate, is
// http_userpilot_stub_test's; the whole path, metrics included, is
// e2e.trace_and_key_check's.)
#include "service/upstream/key_checker.h"

#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/mocks/fake_scheduler.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr absl::Duration kInterval = absl::Minutes(5);
constexpr absl::Duration kTimeout = absl::Seconds(30);

CallStatus Failure(absl::StatusCode code, ErrorReason reason, int http_status = 0) {
  CallFacts facts;
  facts.reason = reason;
  facts.upstream.http_status = http_status;
  return CallStatus(absl::Status(code, "failed"), facts);
}

CallStatus Rejected() {
  return Failure(absl::StatusCode::kInternal, ErrorReason::kUpstreamCredentialsRejected, 401);
}
CallStatus Unavailable() {
  return Failure(absl::StatusCode::kUnavailable, ErrorReason::kUpstreamUnavailable, 503);
}

class KeyCheckerTest : public ::testing::Test {
 protected:
  // A probe that records each check and keeps its callback to be answered by Answer(); it holds
  // `held_` as a probe holds its HTTP stub.
  KeyProbe Probe() {
    return [this, held = held_](const CallOptions& options,
                                absl::AnyInvocable<void(CallStatus) &&> done) {
      calls_.push_back(options);
      pending_.push_back(std::move(done));
    };
  }

  std::unique_ptr<KeyChecker> MakeChecker() {
    KeyCheckObserver observer;
    observer.on_check = [this](KeyVerdict verdict, const CallStatus&) {
      checks_.push_back(verdict);
    };
    observer.on_change = [this](bool accepted, const CallStatus& answer) {
      changes_.emplace_back(accepted, answer.facts().upstream.http_status);
    };
    return std::make_unique<KeyChecker>(Probe(), scheduler_, KeyCheckOptions{kInterval, kTimeout},
                                        std::move(observer));
  }

  // Answers the oldest pending check.
  void Answer(const CallStatus& answer) {
    ASSERT_FALSE(pending_.empty());
    absl::AnyInvocable<void(CallStatus)&&> done = std::move(pending_.front());
    pending_.pop_front();
    std::move(done)(answer);
  }

  FakeScheduler scheduler_;
  std::shared_ptr<int> held_ = std::make_shared<int>(0);
  std::vector<CallOptions> calls_;
  std::deque<absl::AnyInvocable<void(CallStatus) &&>> pending_;
  std::vector<KeyVerdict> checks_;
  std::vector<std::pair<bool, int>> changes_;
};

TEST(KeyVerdictTest, OnlyACredentialsRejectionRejects) {
  EXPECT_EQ(KeyVerdictOf(CallStatus()), KeyVerdict::kAccepted);
  EXPECT_EQ(KeyVerdictOf(Rejected()), KeyVerdict::kRejected);
  EXPECT_EQ(KeyVerdictOf(Failure(absl::StatusCode::kInternal,
                                 ErrorReason::kUpstreamCredentialsRejected, 403)),
            KeyVerdict::kRejected);
  for (const CallStatus& other :
       {Unavailable(),
        Failure(absl::StatusCode::kUnavailable, ErrorReason::kUpstreamRateLimited, 429),
        Failure(absl::StatusCode::kResourceExhausted, ErrorReason::kBudgetExhausted),
        Failure(absl::StatusCode::kUnavailable, ErrorReason::kCircuitOpen),
        Failure(absl::StatusCode::kDeadlineExceeded, ErrorReason::kNone),
        Failure(absl::StatusCode::kInternal, ErrorReason::kUpstreamBadResponse, 200)}) {
    EXPECT_EQ(KeyVerdictOf(other), KeyVerdict::kInconclusive) << other;
  }
  EXPECT_EQ(KeyVerdictName(KeyVerdict::kAccepted), "accepted");
  EXPECT_EQ(KeyVerdictName(KeyVerdict::kRejected), "rejected");
  EXPECT_EQ(KeyVerdictName(KeyVerdict::kInconclusive), "inconclusive");
}

TEST_F(KeyCheckerTest, FirstCheckRunsOnTheSchedulerAtOnceWithADeadline) {
  auto checker = MakeChecker();
  checker->Start();
  EXPECT_TRUE(calls_.empty());  // Never inside Start().
  scheduler_.RunDue();
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].deadline, scheduler_.Now() + kTimeout);
  EXPECT_EQ(calls_[0].caller, "key-check");
  EXPECT_TRUE(calls_[0].trace.empty());
  EXPECT_EQ(checker->accepted(), std::nullopt);
}

TEST_F(KeyCheckerTest, ChecksNeverOverlapAndFollowTheIntervalAfterEachAnswer) {
  auto checker = MakeChecker();
  checker->Start();
  scheduler_.RunDue();
  scheduler_.AdvanceBy(kInterval * 3);  // The first check is still unanswered.
  EXPECT_EQ(calls_.size(), 1u);
  Answer(CallStatus());
  scheduler_.AdvanceBy(kInterval - absl::Seconds(1));
  EXPECT_EQ(calls_.size(), 1u);
  scheduler_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(calls_.size(), 2u);
}

TEST_F(KeyCheckerTest, ReportsEachChangeOnceAndIgnoresInconclusiveAnswers) {
  auto checker = MakeChecker();
  checker->Start();
  scheduler_.RunDue();
  Answer(CallStatus());  // accepted: the first verdict is a change
  EXPECT_EQ(checker->accepted(), true);
  scheduler_.AdvanceBy(kInterval);
  Answer(Rejected());  // rejected
  EXPECT_EQ(checker->accepted(), false);
  scheduler_.AdvanceBy(kInterval);
  Answer(Unavailable());  // no verdict: still rejected
  scheduler_.AdvanceBy(kInterval);
  Answer(Rejected());  // rejected again: no change
  scheduler_.AdvanceBy(kInterval);
  Answer(CallStatus());  // accepted again
  EXPECT_EQ(checker->accepted(), true);
  EXPECT_THAT(checks_,
              ElementsAre(KeyVerdict::kAccepted, KeyVerdict::kRejected, KeyVerdict::kInconclusive,
                          KeyVerdict::kRejected, KeyVerdict::kAccepted));
  EXPECT_THAT(changes_, ElementsAre(Pair(true, 0), Pair(false, 401), Pair(true, 0)));
}

TEST_F(KeyCheckerTest, InconclusiveAnswersAloneDecideNothing) {
  auto checker = MakeChecker();
  checker->Start();
  scheduler_.RunDue();
  Answer(Unavailable());
  scheduler_.AdvanceBy(kInterval);
  Answer(Failure(absl::StatusCode::kResourceExhausted, ErrorReason::kBudgetExhausted));
  EXPECT_EQ(checker->accepted(), std::nullopt);
  EXPECT_TRUE(changes_.empty());
  EXPECT_EQ(checks_.size(), 2u);
}

TEST_F(KeyCheckerTest, NothingIsObservedOrSentAfterStop) {
  auto checker = MakeChecker();
  checker->Start();
  scheduler_.RunDue();
  Answer(CallStatus());
  scheduler_.AdvanceBy(kInterval);
  ASSERT_EQ(calls_.size(), 2u);
  checker->Stop();
  Answer(Rejected());  // The check in flight ends unobserved.
  scheduler_.AdvanceBy(kInterval * 10);
  EXPECT_EQ(calls_.size(), 2u);
  EXPECT_EQ(checks_.size(), 1u);
  EXPECT_THAT(changes_, ElementsAre(Pair(true, 0)));
  EXPECT_EQ(scheduler_.pending(), 0u);
}

TEST_F(KeyCheckerTest, StopLetsGoOfTheProbeWhileACheckIsInFlight) {
  auto checker = MakeChecker();
  checker->Start();
  scheduler_.RunDue();
  ASSERT_EQ(pending_.size(), 1u);
  EXPECT_EQ(held_.use_count(), 2);
  checker->Stop();
  // The check in flight holds the checker's state, which no longer holds the probe: dropping
  // what the probe holds (the HTTP stub) can end the check.
  EXPECT_EQ(held_.use_count(), 1);
}

TEST_F(KeyCheckerTest, StopBeforeTheFirstCheckCancelsIt) {
  auto checker = MakeChecker();
  checker->Start();
  checker.reset();
  scheduler_.RunDue();
  EXPECT_TRUE(calls_.empty());
  EXPECT_EQ(scheduler_.pending(), 0u);
}

TEST_F(KeyCheckerTest, AnAnswerAfterTheCheckerIsGoneIsHarmless) {
  auto checker = MakeChecker();
  checker->Start();
  scheduler_.RunDue();
  checker.reset();
  Answer(Rejected());
  EXPECT_TRUE(checks_.empty());
  EXPECT_EQ(scheduler_.pending(), 0u);
}

}  // namespace
}  // namespace userpilot::gateway
