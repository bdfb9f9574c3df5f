#include "service/ratelimit/fair_limiter.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "service/ratelimit/local_token_source.h"
#include "spdlog/sinks/ostream_sink.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/util/ratelimit_test_util.h"

namespace userpilot::gateway {
namespace {

using ::userpilot::gateway::testing::AnswerLog;
using ::userpilot::gateway::testing::Cause;
using ::userpilot::gateway::testing::Reason;
using ::userpilot::gateway::testing::RetryDelay;

// The test budget: 10 per second, so a burst of 10 fits and waiting calls are paced 100 ms
// apart.
constexpr absl::Duration kInterval = absl::Milliseconds(100);
const absl::Time kNever = absl::InfiniteFuture();

// Take() answers are kept until the test completes them; they outlive the source.
struct PendingTakes {
  struct Take {
    TakeKind kind;
    int64_t want;
    TokenSource::Done done;
  };
  std::mutex mu;
  std::deque<Take> takes;
  bool Complete(absl::StatusOr<TakeResult> result) {
    TokenSource::Done done;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (takes.empty()) return false;
      done = std::move(takes.front().done);
      takes.pop_front();
    }
    std::move(done)(std::move(result));
    return true;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return takes.size();
  }
  int64_t front_want() {
    std::lock_guard<std::mutex> lock(mu);
    return takes.empty() ? 0 : takes.front().want;
  }
  TakeKind front_kind() {
    std::lock_guard<std::mutex> lock(mu);
    return takes.empty() ? TakeKind::kImmediate : takes.front().kind;
  }
};

// An asynchronous source (like Redis): Take() completes when the test says; no TryTakeNow(),
// no Plan().
class AsyncTokenSource : public TokenSource {
 public:
  explicit AsyncTokenSource(std::shared_ptr<PendingTakes> pending) : pending_(std::move(pending)) {}
  void Take(absl::Time, TakeKind kind, int64_t want, Done done) override {
    std::lock_guard<std::mutex> lock(pending_->mu);
    pending_->takes.push_back({kind, want, std::move(done)});
  }
  void PauseUntil(absl::Time until) override { paused_until = until; }
  RateSpec spec() const override { return RateSpec{"async", 10, absl::Seconds(1)}; }
  absl::Time paused_until = absl::InfinitePast();

 private:
  std::shared_ptr<PendingTakes> pending_;
};

// A BudgetObserver that records what it is told, as "budget/caller/what" lines.
class RecordingObserver final : public BudgetObserver {
 public:
  void OnAdmitted(absl::string_view budget, absl::string_view caller,
                  absl::Duration wait) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(absl::StrCat(budget, "/", caller, "/admitted ", absl::FormatDuration(wait)));
  }
  void OnRejected(absl::string_view budget, absl::string_view caller,
                  absl::string_view reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(absl::StrCat(budget, "/", caller, "/", reason));
  }
  std::vector<std::string> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> events_;
};

class FairLimiterTest : public ::testing::Test {
 protected:
  void Make(FairLimiterOptions options = {}, int64_t limit = 10,
            absl::Duration window = absl::Seconds(1)) {
    limiter_ = std::make_unique<FairLimiter>(
        std::make_unique<LocalTokenSource>(RateSpec{"identify", limit, window}), scheduler_,
        std::move(options));
  }
  void Acquire(const std::string& caller, const std::string& key, absl::Time deadline = kNever) {
    limiter_->Acquire(caller, deadline, log_.Callback(key));
  }
  // Spends the whole window now (10 calls admitted inline) and leaves no idle credit: calls that
  // wait from here are paced, the first when the window frees at t0 + 1 s.
  void FillWindow(const std::string& caller = "filler") {
    for (int i = 0; i < 10; ++i) Acquire(caller, absl::StrCat("fill", i));
    ASSERT_EQ(log_.Admitted().size(), 10u);
  }
  absl::Time T(absl::Duration d) const { return t0_ + d; }

  FakeScheduler scheduler_;
  const absl::Time t0_ = scheduler_.Now();
  AnswerLog log_{scheduler_};
  std::unique_ptr<FairLimiter> limiter_;
};

TEST_F(FairLimiterTest, AdmitsInsideAcquireWithoutATimerWhenNobodyWaits) {
  Make();
  bool answered_inside = false;
  limiter_->Acquire("a", kNever, [&](CallStatus status) {
    EXPECT_TRUE(status.ok()) << status;
    // No lock of the limiter is held while calling back: this would deadlock otherwise.
    EXPECT_EQ(limiter_->Stats().queued, 0u);
    answered_inside = true;
  });
  EXPECT_TRUE(answered_inside);  // Before Acquire() returned, on this thread.
  for (int i = 2; i <= 10; ++i) Acquire("a", absl::StrCat("a", i));
  EXPECT_EQ(log_.Admitted().size(), 9u);  // Each inside its own Acquire().
  EXPECT_EQ(scheduler_.pending(), 0u);    // No timer, no scheduler wake-up.
  const FairLimiterStats stats = limiter_->Stats();
  EXPECT_EQ(stats.admitted_inline, 10u);
  EXPECT_EQ(stats.admitted_without_wait, 10u);
  EXPECT_EQ(stats.admitted_after_wait, 0u);
  EXPECT_EQ(stats.tokens_available, 0);
}

TEST_F(FairLimiterTest, ABurstThatDoesNotFitIsRefusedAtOnceWithWhenTheWindowFrees) {
  Make();
  for (int i = 1; i <= 11; ++i) Acquire("a", absl::StrCat("a", i), T(absl::Milliseconds(500)));
  EXPECT_EQ(log_.Admitted().size(), 10u);
  EXPECT_FALSE(log_.Has("a11"));  // A refusal is posted, never run inside Acquire().
  scheduler_.RunDue();
  const AnswerLog::Entry refused = log_.Get("a11");
  EXPECT_EQ(refused.at, t0_);  // At once.
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status.status())) << refused.status;
  EXPECT_EQ(Reason(refused.status), "BUDGET_EXHAUSTED");
  EXPECT_EQ(Cause(refused.status), kCauseWaitExceedsDeadline);
  EXPECT_EQ(RetryDelay(refused.status), absl::Seconds(1));  // When the burst leaves the window.
  auto quota = wire::Detail<google::rpc::QuotaFailure>(refused.status);
  ASSERT_TRUE(quota.has_value());
  ASSERT_EQ(quota->violations_size(), 1);
  EXPECT_EQ(quota->violations(0).subject(), "identify");
  EXPECT_TRUE(absl::StrContains(quota->violations(0).description(), "10 requests per 1s"))
      << quota->violations(0).description();
  auto info = wire::Detail<google::rpc::ErrorInfo>(refused.status);
  EXPECT_EQ(info->domain(), kErrorDomain);
  EXPECT_EQ(info->metadata().at("budget"), "identify");
  EXPECT_EQ(limiter_->Stats().rejected_wait_exceeds_deadline, 1u);
  EXPECT_EQ(scheduler_.pending(), 0u);
}

TEST_F(FairLimiterTest, WaitingCallsArePacedOneIntervalApartOnceTheWindowFrees) {
  Make();
  FillWindow();
  for (int i = 1; i <= 5; ++i) Acquire("a", absl::StrCat("a", i));
  scheduler_.AdvanceBy(absl::Seconds(2));
  for (int i = 1; i <= 5; ++i) {
    EXPECT_EQ(log_.Get(absl::StrCat("a", i)).at, T(absl::Seconds(1) + kInterval * (i - 1))) << i;
  }
  const FairLimiterStats stats = limiter_->Stats();
  EXPECT_EQ(stats.admitted_inline, 10u);
  EXPECT_EQ(stats.admitted_after_wait, 5u);
  EXPECT_EQ(stats.total_wait, absl::Seconds(5) + kInterval * 10);
}

TEST_F(FairLimiterTest, ABatchArrivingJustBeforeTheWindowFreesGoesWhenItFrees) {
  Make();
  FillWindow();
  // Nobody asked for 950 ms: the budget earned 9 intervals of credit.
  scheduler_.AdvanceTo(T(absl::Milliseconds(950)));
  for (int i = 1; i <= 10; ++i) Acquire("batch", absl::StrCat("b", i), T(absl::Seconds(3)));
  scheduler_.AdvanceBy(absl::Seconds(1));
  for (int i = 1; i <= 10; ++i) {
    EXPECT_EQ(log_.Get(absl::StrCat("b", i)).at, T(absl::Seconds(1))) << i;
  }
}

TEST_F(FairLimiterTest, RefusesAtOnceExactlyWhenThePermitComesAfterTheDeadline) {
  Make();
  FillWindow();
  for (int i = 1; i <= 10; ++i) Acquire("a", absl::StrCat("a", i));  // Planned 1.0 s .. 1.9 s.
  Acquire("a", "late", T(absl::Seconds(2)));  // Its permit: 2.0 s, not before its deadline.
  Acquire("a", "fits", T(absl::Seconds(2) + absl::Nanoseconds(1)));  // 2.0 s: just before.
  scheduler_.RunDue();
  const CallStatus late = log_.Get("late").status;
  EXPECT_TRUE(absl::IsResourceExhausted(late.status())) << late;
  EXPECT_EQ(Cause(late), kCauseWaitExceedsDeadline);
  EXPECT_EQ(RetryDelay(late), absl::Seconds(2));
  EXPECT_TRUE(wire::Detail<google::rpc::QuotaFailure>(late).has_value());
  EXPECT_FALSE(log_.Has("fits"));
  scheduler_.AdvanceBy(absl::Seconds(3));
  EXPECT_TRUE(log_.Get("fits").status.ok());
  EXPECT_EQ(log_.Get("fits").at, T(absl::Seconds(2)));
  EXPECT_EQ(limiter_->Stats().rejected_wait_exceeds_deadline, 1u);
  EXPECT_EQ(limiter_->Stats().deadline_exceeded, 0u);
}

TEST_F(FairLimiterTest, DeadlinePassedOnArrivalIsDeadlineExceeded) {
  Make();
  Acquire("a", "a1", t0_);
  scheduler_.RunDue();
  EXPECT_TRUE(absl::IsDeadlineExceeded(log_.Get("a1").status.status()));
}

TEST_F(FairLimiterTest, APauseRefusesAtOnceTheWaitingCallsItPushesPastTheirDeadlines) {
  Make();
  FillWindow();
  Acquire("b", "b1", T(absl::Milliseconds(1500)));  // Planned at 1 s.
  Acquire("c", "c1");
  scheduler_.AdvanceTo(T(absl::Milliseconds(500)));
  limiter_->OnUpstreamRateLimited(absl::Seconds(5), t0_);  // Paused until 5.5 s.
  EXPECT_FALSE(log_.Has("b1"));
  scheduler_.RunDue();
  const AnswerLog::Entry b1 = log_.Get("b1");
  EXPECT_TRUE(absl::IsResourceExhausted(b1.status.status())) << b1.status;
  EXPECT_EQ(Cause(b1.status), kCauseWaitExceedsDeadline);
  EXPECT_EQ(b1.at, T(absl::Milliseconds(500)));  // Told at once, not at its deadline.
  scheduler_.AdvanceBy(absl::Seconds(10));
  EXPECT_EQ(log_.Get("b1").count, 1);
  EXPECT_EQ(log_.Get("c1").at, T(absl::Milliseconds(5500)));
  EXPECT_EQ(limiter_->Stats().deadline_exceeded, 0u);
}

TEST_F(FairLimiterTest, AdmissionHeadroomIsLeftBeforeTheDeadline) {
  FairLimiterOptions options;
  options.admission_headroom = absl::Milliseconds(200);
  Make(options);
  FillWindow();
  Acquire("a", "a1", T(absl::Milliseconds(1150)));  // Permit at 1 s, after 1150 - 200 ms.
  Acquire("a", "a2", T(absl::Milliseconds(1300)));  // Permit at 1 s, before 1100 ms.
  scheduler_.RunDue();
  EXPECT_EQ(Cause(log_.Get("a1").status), kCauseWaitExceedsDeadline);
  scheduler_.AdvanceBy(absl::Seconds(2));
  EXPECT_EQ(log_.Get("a2").at, T(absl::Seconds(1)));
}

TEST_F(FairLimiterTest, FloodingCallerDoesNotStarveAModestOne) {
  Make();
  FillWindow();
  for (int i = 1; i <= 100; ++i) Acquire("flood", absl::StrCat("a", i));
  for (int i = 1; i <= 5; ++i) Acquire("modest", absl::StrCat("b", i));
  scheduler_.AdvanceBy(absl::Seconds(3));
  for (int i = 1; i <= 5; ++i) {
    const AnswerLog::Entry b = log_.Get(absl::StrCat("b", i));
    EXPECT_TRUE(b.status.ok());
    // Interleaved one for one with the flood: b_i is the 2i-th paced admission.
    EXPECT_EQ(b.at, T(absl::Seconds(1) + kInterval * (2 * i - 1))) << i;
  }
  EXPECT_EQ(log_.Get("a1").at, T(absl::Seconds(1)));
  EXPECT_EQ(log_.Get("a2").at, T(absl::Seconds(1) + kInterval * 2));
}

TEST_F(FairLimiterTest, LateArrivingModestCallerJoinsAtTheCurrentVirtualTime) {
  Make();
  FillWindow();
  for (int i = 1; i <= 100; ++i) Acquire("flood", absl::StrCat("a", i));
  scheduler_.AdvanceTo(T(absl::Seconds(3)) - absl::Nanoseconds(1));  // 20 of the flood admitted.
  Acquire("modest", "b1", T(absl::Seconds(4)));
  scheduler_.AdvanceBy(absl::Seconds(1));
  EXPECT_TRUE(log_.Get("b1").status.ok());
  EXPECT_LE(log_.Get("b1").at, T(absl::Seconds(3)) + kInterval);
}

TEST_F(FairLimiterTest, TheWaitCountsOnlyWhatFairnessPutsAhead) {
  Make();
  FillWindow();
  for (int i = 1; i <= 50; ++i) Acquire("flood", absl::StrCat("a", i));
  Acquire("modest", "b1", T(absl::Milliseconds(1050)));
  Acquire("flood", "a51", T(absl::Milliseconds(1050)));
  scheduler_.RunDue();
  EXPECT_EQ(RetryDelay(log_.Get("b1").status), absl::Seconds(1) + kInterval);  // After a1.
  EXPECT_EQ(RetryDelay(log_.Get("a51").status), absl::Seconds(1) + 50 * kInterval);
}

TEST_F(FairLimiterTest, WeightsShareAdmissionsProportionally) {
  FairLimiterOptions options;
  options.callers["heavy"] = CallerPolicy{3.0, 0};
  Make(options);
  FillWindow();
  for (int i = 1; i <= 60; ++i) Acquire("heavy", absl::StrCat("h", i));
  for (int i = 1; i <= 60; ++i) Acquire("light", absl::StrCat("l", i));
  scheduler_.AdvanceTo(T(absl::Seconds(1) + kInterval * 40) - absl::Nanoseconds(1));
  int heavy = 0;
  int light = 0;
  for (const std::string& key : log_.Admitted()) {
    if (key[0] == 'h') ++heavy;
    if (key[0] == 'l') ++light;
  }
  EXPECT_EQ(heavy + light, 40);
  EXPECT_NEAR(heavy, 30, 1);
  EXPECT_NEAR(light, 10, 1);
}

TEST_F(FairLimiterTest, PerCallerCapRefusesOnlyThatCaller) {
  FairLimiterOptions options;
  options.callers["capped"] = CallerPolicy{1.0, 2};
  Make(options);
  FillWindow();
  Acquire("capped", "c1");
  Acquire("capped", "c2");
  Acquire("capped", "c3");
  Acquire("other", "o1");
  Acquire("other", "o2");
  Acquire("other", "o3");
  scheduler_.RunDue();
  const CallStatus refused = log_.Get("c3").status;
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused;
  EXPECT_EQ(Cause(refused), kCauseCallerQueueFull);
  EXPECT_EQ(wire::Detail<google::rpc::QuotaFailure>(refused)->violations(0).subject(), "identify");
  scheduler_.AdvanceBy(absl::Seconds(2));
  EXPECT_EQ(log_.Admitted().size(), 15u);
  EXPECT_EQ(limiter_->Stats().rejected_caller_cap, 1u);
}

TEST_F(FairLimiterTest, FullQueuePushesOutTheLargestShareForASmallerOne) {
  FairLimiterOptions options;
  options.max_queue = 10;
  Make(options);
  FillWindow();
  for (int i = 1; i <= 10; ++i) Acquire("flood", absl::StrCat("a", i));
  Acquire("modest", "b1");
  Acquire("flood", "a11");  // The flood is still the largest share: refused itself.
  scheduler_.RunDue();
  const CallStatus pushed = log_.Get("a10").status;
  EXPECT_TRUE(absl::IsResourceExhausted(pushed.status())) << pushed;
  EXPECT_EQ(Cause(pushed), kCausePushedOut);
  EXPECT_GT(RetryDelay(pushed), absl::ZeroDuration());
  EXPECT_EQ(Cause(log_.Get("a11").status), kCauseQueueFull);
  scheduler_.AdvanceBy(absl::Seconds(3));
  EXPECT_TRUE(log_.Get("b1").status.ok());
  EXPECT_EQ(log_.Get("b1").at, T(absl::Seconds(1) + kInterval));
  EXPECT_EQ(log_.Admitted().size(), 20u);
  EXPECT_EQ(limiter_->Stats().pushed_out, 1u);
}

TEST_F(FairLimiterTest, ACallThatFairnessServesFirstDisplacesOnlyAWaiterItMakesLate) {
  Make();
  FillWindow();
  for (int i = 1; i <= 4; ++i) Acquire("flood", absl::StrCat("a", i), T(absl::Seconds(5)));
  // a5's permit comes at 1.4 s, just in time for its deadline.
  Acquire("flood", "a5", T(absl::Milliseconds(1450)));
  // The modest call is served second (fair queueing): every flood call after a1 moves back one
  // permit, and a5 would get 1.5 s. It is told at once.
  Acquire("modest", "b1", T(absl::Seconds(5)));
  EXPECT_FALSE(log_.Has("a5"));
  scheduler_.RunDue();
  const AnswerLog::Entry a5 = log_.Get("a5");
  EXPECT_TRUE(absl::IsResourceExhausted(a5.status.status())) << a5.status;
  EXPECT_EQ(Cause(a5.status), kCauseDisplaced);
  EXPECT_EQ(a5.at, t0_);
  scheduler_.AdvanceBy(absl::Seconds(3));
  EXPECT_EQ(log_.Get("b1").at, T(absl::Seconds(1) + kInterval));
  EXPECT_EQ(log_.Get("a4").at, T(absl::Seconds(1) + kInterval * 4));
  const FairLimiterStats stats = limiter_->Stats();
  EXPECT_EQ(stats.displaced, 1u);
  EXPECT_EQ(stats.deadline_exceeded, 0u);
}

TEST_F(FairLimiterTest, RateLimitedWithRetryAfterPausesTheWholeBudgetForIt) {
  Make();
  Acquire("a", "a1");
  ASSERT_TRUE(log_.Get("a1").status.ok());
  limiter_->OnUpstreamRateLimited(absl::Seconds(5), t0_);
  FairLimiterStats stats = limiter_->Stats();
  EXPECT_TRUE(stats.paused);
  EXPECT_EQ(stats.paused_until, T(absl::Seconds(5)));
  Acquire("b", "b1");                       // Waits out the pause.
  Acquire("a", "a2", T(absl::Seconds(3)));  // Cannot make it: refused at once.
  EXPECT_FALSE(log_.Has("b1"));
  scheduler_.AdvanceTo(T(absl::Seconds(5)) - absl::Nanoseconds(1));
  EXPECT_FALSE(log_.Has("b1"));
  EXPECT_EQ(Cause(log_.Get("a2").status), kCauseWaitExceedsDeadline);
  EXPECT_GE(RetryDelay(log_.Get("a2").status), absl::Seconds(5));
  scheduler_.AdvanceTo(T(absl::Seconds(5)));
  EXPECT_TRUE(log_.Get("b1").status.ok());
  EXPECT_EQ(log_.Get("b1").at, T(absl::Seconds(5)));
  stats = limiter_->Stats();
  EXPECT_FALSE(stats.paused);
  EXPECT_EQ(stats.upstream_rate_limited, 1u);
  EXPECT_EQ(stats.rate_decreases, 1u);
  EXPECT_EQ(stats.backoff, absl::Seconds(1));  // Retry-After does not grow the backoff.
}

TEST_F(FairLimiterTest, AnUpstreamPauseBeyondTheCapIsCutLoggedAndCounted) {
  std::ostringstream out;
  Logger logger(LoggerOptions{}, std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  FairLimiterOptions options;
  options.logger = &logger;
  options.max_upstream_pause = absl::Minutes(2);
  Make(options);
  limiter_->OnUpstreamRateLimited(absl::Hours(24), absl::InfiniteFuture());  // Retry-After: 86400
  FairLimiterStats stats = limiter_->Stats();
  EXPECT_EQ(stats.paused_until, T(absl::Minutes(2)));
  EXPECT_EQ(stats.upstream_pauses_capped, 1u);
  // X-RateLimit-Reset: 99999999999 arrives as a delay of ~3,000 years: the same cap.
  limiter_->OnUpstreamRateLimited(absl::Hours(24 * 365) * 3000, absl::InfiniteFuture());
  stats = limiter_->Stats();
  EXPECT_EQ(stats.paused_until, T(absl::Minutes(2)));
  EXPECT_EQ(stats.upstream_pauses_capped, 2u);
  // Within the cap: as asked, not counted.
  limiter_->OnUpstreamRateLimited(absl::Minutes(1), absl::InfiniteFuture());
  EXPECT_EQ(limiter_->Stats().upstream_pauses_capped, 2u);
  logger.Flush();
  const std::string logged = out.str();
  EXPECT_TRUE(absl::StrContains(logged, "upstream pause capped")) << logged;
  EXPECT_TRUE(absl::StrContains(logged, "\"budget\":\"identify\"")) << logged;
  EXPECT_TRUE(absl::StrContains(logged, "\"requested\":\"24h\"")) << logged;
  EXPECT_TRUE(absl::StrContains(logged, "\"cap\":\"2m\"")) << logged;
  Acquire("a", "a1", T(absl::Minutes(3)));
  scheduler_.AdvanceBy(absl::Minutes(3));
  EXPECT_EQ(log_.Get("a1").at, T(absl::Minutes(2)));
}

TEST_F(FairLimiterTest, RateLimitedWithoutRetryAfterBacksOffExponentiallyAndResetsOnSuccess) {
  FairLimiterOptions options;
  options.max_backoff = absl::Seconds(4);
  Make(options);
  Acquire("a", "a1");
  ASSERT_TRUE(log_.Get("a1").status.ok());
  std::vector<absl::Duration> pauses;
  for (int i = 1; i <= 5; ++i) {
    const AnswerLog::Entry admitted = log_.Get(absl::StrCat("a", i));
    ASSERT_EQ(scheduler_.Now(), admitted.at);
    limiter_->OnUpstreamRateLimited(std::nullopt, admitted.at);
    const std::string next = absl::StrCat("a", i + 1);
    Acquire("a", next);
    while (!log_.Has(next)) scheduler_.AdvanceTo(scheduler_.next_due());
    pauses.push_back(log_.Get(next).at - admitted.at);
  }
  EXPECT_EQ(pauses,
            (std::vector<absl::Duration>{absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                                         absl::Seconds(4), absl::Seconds(4)}));
  // A success after the last pause resets the backoff: the next 429 pauses 1 s again.
  const absl::Time last = log_.Get("a6").at;
  limiter_->OnUpstreamSuccess(last);
  Acquire("a", "a7");
  limiter_->OnUpstreamRateLimited(std::nullopt, last);
  scheduler_.AdvanceBy(absl::Seconds(10));
  EXPECT_EQ(log_.Get("a7").at - last, absl::Seconds(1));
}

TEST_F(FairLimiterTest, EchoesOfOneCongestionDecreaseOnce) {
  Make();
  for (int i = 1; i <= 3; ++i) Acquire("a", absl::StrCat("a", i));
  scheduler_.AdvanceBy(absl::Milliseconds(300));
  limiter_->OnUpstreamRateLimited(std::nullopt, T(absl::ZeroDuration()));
  limiter_->OnUpstreamRateLimited(std::nullopt, T(kInterval));      // In flight: an echo.
  limiter_->OnUpstreamRateLimited(std::nullopt, T(2 * kInterval));  // Likewise.
  FairLimiterStats stats = limiter_->Stats();
  EXPECT_EQ(stats.upstream_rate_limited, 3u);
  EXPECT_EQ(stats.rate_decreases, 1u);
  EXPECT_DOUBLE_EQ(stats.current_limit, 7.0);
  EXPECT_EQ(stats.backoff, absl::Seconds(2));
  EXPECT_EQ(stats.paused_until, T(absl::Milliseconds(1300)));
  // An echo's Retry-After still extends the pause; successes from before the decrease do not
  // count as recovery.
  limiter_->OnUpstreamRateLimited(absl::Seconds(10), T(2 * kInterval));
  limiter_->OnUpstreamSuccess(T(2 * kInterval));
  stats = limiter_->Stats();
  EXPECT_EQ(stats.paused_until, T(absl::Milliseconds(10300)));
  EXPECT_DOUBLE_EQ(stats.current_limit, 7.0);
  EXPECT_EQ(stats.backoff, absl::Seconds(2));
}

TEST_F(FairLimiterTest, AdaptiveRateDropsAfterA429ThenRecoversWithSuccesses) {
  Make();
  for (int i = 1; i <= 200; ++i) Acquire("a", absl::StrCat("a", i));
  ASSERT_EQ(log_.Admitted().size(), 10u);  // The burst that fits.
  limiter_->OnUpstreamRateLimited(absl::ZeroDuration(), t0_);
  EXPECT_DOUBLE_EQ(limiter_->Stats().current_limit, 7.0);
  scheduler_.AdvanceBy(absl::Seconds(3));
  // At 7 per second, admissions are ~143 ms apart (the ceiling), not 100 ms.
  std::vector<std::string> admitted = log_.Admitted();
  ASSERT_GE(admitted.size(), 20u);
  for (size_t i = 11; i < admitted.size(); ++i) {
    const absl::Duration gap = log_.Get(admitted[i]).at - log_.Get(admitted[i - 1]).at;
    EXPECT_NEAR(absl::ToDoubleMilliseconds(gap), 1000.0 / 7, 0.01) << i;
  }
  EXPECT_NEAR(static_cast<double>(admitted.size()), 10 + 1 + 2 * 7, 1);
  // Additive recovery: each success gives back 0.1 * 10 / current requests per window, so
  // from 7 to 10 takes (10^2 - 7^2) / 2 = 25.5 successes.
  for (int i = 0; i < 10; ++i) limiter_->OnUpstreamSuccess(scheduler_.Now());
  const double partial = limiter_->Stats().current_limit;
  EXPECT_GT(partial, 7.0);
  EXPECT_LT(partial, 10.0);
  for (int i = 0; i < 20; ++i) limiter_->OnUpstreamSuccess(scheduler_.Now());
  EXPECT_DOUBLE_EQ(limiter_->Stats().current_limit, 10.0);
  const size_t before = log_.Admitted().size();
  scheduler_.AdvanceBy(absl::Seconds(2));
  EXPECT_NEAR(static_cast<double>(log_.Admitted().size() - before), 20, 1);
}

TEST_F(FairLimiterTest, AdaptiveRateHasAFloor) {
  FairLimiterOptions options;
  options.min_rate_fraction = 0.25;
  Make(options);
  for (int i = 0; i < 20; ++i) {
    limiter_->OnUpstreamRateLimited(absl::ZeroDuration(), absl::InfiniteFuture());
  }
  EXPECT_DOUBLE_EQ(limiter_->Stats().current_limit, 2.5);
}

TEST_F(FairLimiterTest, ShutdownAnswersEveryWaitingCallUnavailable) {
  Make();
  FillWindow();
  for (int i = 1; i <= 3; ++i) Acquire("a", absl::StrCat("a", i), T(absl::Seconds(30)));
  limiter_->Shutdown();
  for (int i = 1; i <= 3; ++i) {  // Answered on this thread, without the scheduler.
    const CallStatus status = log_.Get(absl::StrCat("a", i)).status;
    EXPECT_TRUE(absl::IsUnavailable(status.status())) << status;
    EXPECT_EQ(status.message(), "gateway shutting down");
  }
  Acquire("a", "late");
  scheduler_.AdvanceBy(absl::Minutes(1));
  EXPECT_TRUE(absl::IsUnavailable(log_.Get("late").status.status()));
  EXPECT_EQ(log_.Get("a2").count, 1);
  EXPECT_EQ(limiter_->Stats().cancelled_by_shutdown, 3u);
  EXPECT_EQ(scheduler_.pending(), 0u);  // Deadline and pump timers cancelled.
  limiter_->Shutdown();                 // Idempotent.
}

TEST_F(FairLimiterTest, DestructionAnswersWaitingCalls) {
  Make();
  FillWindow();
  Acquire("a", "a1");
  Acquire("a", "a2");
  limiter_.reset();
  EXPECT_TRUE(absl::IsUnavailable(log_.Get("a1").status.status()));
  EXPECT_TRUE(absl::IsUnavailable(log_.Get("a2").status.status()));
  scheduler_.AdvanceBy(absl::Minutes(1));  // Leftover timers (none, or no-ops) are harmless.
}

TEST_F(FairLimiterTest, AnAsynchronousSourceAdmitsABurstWithOneTakeAndChainsTheNext) {
  auto pending = std::make_shared<PendingTakes>();
  limiter_ = std::make_unique<FairLimiter>(std::make_unique<AsyncTokenSource>(pending), scheduler_);
  for (int i = 1; i <= 100; ++i) Acquire("a", absl::StrCat("a", i), T(absl::Seconds(2)));
  EXPECT_FALSE(log_.Has("a1"));  // A round trip is needed: never inside Acquire().
  scheduler_.RunDue();
  ASSERT_EQ(pending->size(), 1u);        // One Take() at a time ...
  EXPECT_EQ(pending->front_want(), 64);  // ... for the burst (at most 64 permits).
  EXPECT_EQ(pending->front_kind(), TakeKind::kImmediate);
  ASSERT_TRUE(pending->Complete(TakeResult{64, absl::InfinitePast()}));
  EXPECT_EQ(log_.Admitted().size(), 64u);
  // The next Take() starts from the completion, without a scheduler hop.
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ(pending->front_want(), 36);
  // The shared window has room for 6 more: the rest waits, paced, for the time Redis names,
  // and the calls that this puts past their deadlines are told at once.
  ASSERT_TRUE(pending->Complete(TakeResult{6, T(absl::Seconds(1))}));
  EXPECT_EQ(log_.Admitted().size(), 70u);
  EXPECT_EQ(pending->size(), 0u);
  EXPECT_EQ(limiter_->Stats().rejected_wait_exceeds_deadline, 20u);  // 1 s + 10 x 100 ms.
  EXPECT_EQ(limiter_->Stats().queued, 10u);
  scheduler_.AdvanceTo(T(absl::Seconds(1)));
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ(pending->front_kind(), TakeKind::kPaced);
  EXPECT_EQ(pending->front_want(), 1);
  limiter_.reset();
  EXPECT_TRUE(pending->Complete(TakeResult{1, absl::InfinitePast()}));  // Late: ignored.
}

TEST_F(FairLimiterTest, SourceErrorsAnswerUnavailableAndAsyncCompletionsAreHandled) {
  auto pending = std::make_shared<PendingTakes>();
  auto source = std::make_unique<AsyncTokenSource>(pending);
  AsyncTokenSource* raw = source.get();
  limiter_ = std::make_unique<FairLimiter>(std::move(source), scheduler_);
  Acquire("a", "a1");
  Acquire("a", "a2");
  scheduler_.RunDue();
  ASSERT_EQ(pending->size(), 1u);
  ASSERT_TRUE(pending->Complete(absl::UnavailableError("redis down")));
  for (const char* key : {"a1", "a2"}) {  // The calls that Take() was for.
    const CallStatus status = log_.Get(key).status;
    EXPECT_TRUE(absl::IsUnavailable(status.status())) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), "redis down"));
  }
  Acquire("a", "a3");
  Acquire("a", "a4");
  scheduler_.RunDue();
  ASSERT_TRUE(pending->Complete(TakeResult{1, T(absl::Seconds(1))}));
  EXPECT_TRUE(log_.Get("a3").status.ok());
  EXPECT_FALSE(log_.Has("a4"));
  EXPECT_EQ(pending->size(), 0u);
  scheduler_.AdvanceTo(T(absl::Seconds(1)));
  EXPECT_EQ(pending->size(), 1u);  // Asked again when the source said.
  limiter_->OnUpstreamRateLimited(absl::Seconds(3), absl::InfiniteFuture());
  EXPECT_EQ(raw->paused_until, T(absl::Seconds(4)));  // The pause reaches the source.
  EXPECT_EQ(limiter_->Stats().source_errors, 2u);
  // Destroyed with a Take() outstanding: the late completion is ignored.
  limiter_.reset();
  EXPECT_TRUE(absl::IsUnavailable(log_.Get("a4").status.status()));
  EXPECT_TRUE(pending->Complete(TakeResult{1, absl::InfinitePast()}));
  EXPECT_EQ(log_.Get("a4").count, 1);
}

TEST_F(FairLimiterTest, ObserverHearsOfEveryAdmissionWithItsWaitAndEveryRefusalWithItsCause) {
  RecordingObserver observer;
  FairLimiterOptions options;
  options.max_queue = 4;
  options.callers["capped"].max_queued = 1;
  options.observer = &observer;
  Make(options);
  FillWindow("f");
  Acquire("a", "a2");                         // Waits for the window.
  Acquire("a", "late", T(absl::Seconds(1)));  // Its permit comes after its deadline.
  Acquire("a", "gone", t0_);                  // Deadline already passed.
  Acquire("capped", "c1");                    // Waits...
  Acquire("capped", "c2");                    // ... and its cap refuses a second.
  Acquire("a", "a3");                         //
  Acquire("a", "a4");                         // Fills the queue.
  Acquire("b", "b1");                         // Pushes out a4 (largest share).
  Acquire("a", "a5");                         // Full, and a holds the largest share.
  // Admissions inside Acquire() and refusals are reported there, before callbacks run.
  std::vector<std::string> expected(10, "identify/f/admitted 0");
  for (const char* event :
       {"identify/a/wait_exceeds_deadline", "identify/a/deadline_reached",
        "identify/capped/caller_queue_full", "identify/a/pushed_out", "identify/a/queue_full"}) {
    expected.push_back(event);
  }
  EXPECT_EQ(observer.events(), expected);
  EXPECT_FALSE(log_.Has("late"));
  scheduler_.AdvanceTo(T(absl::Seconds(2)));
  const std::vector<std::string> events = observer.events();
  ASSERT_EQ(events.size(), 19u);
  EXPECT_EQ(std::vector<std::string>(events.begin() + 15, events.end()),
            (std::vector<std::string>{"identify/a/admitted 1s", "identify/capped/admitted 1.1s",
                                      "identify/b/admitted 1.2s", "identify/a/admitted 1.3s"}));

  // Inline admissions again once the window has room, then shutdown and a call after it.
  Acquire("b", "b2");
  limiter_->Shutdown();
  Acquire("b", "b3");
  const std::vector<std::string> after = observer.events();
  ASSERT_EQ(after.size(), 21u);
  EXPECT_EQ(std::vector<std::string>(after.begin() + 19, after.end()),
            (std::vector<std::string>{"identify/b/admitted 0", "identify/b/shutdown"}));
}

TEST_F(FairLimiterTest, ObserverHearsOfExpiriesAndSourceErrors) {
  RecordingObserver observer;
  FairLimiterOptions options;
  options.observer = &observer;
  auto pending = std::make_shared<PendingTakes>();
  limiter_ = std::make_unique<FairLimiter>(std::make_unique<AsyncTokenSource>(pending), scheduler_,
                                           options);
  Acquire("x", "x1");
  scheduler_.RunDue();
  Acquire("y", "y1", T(absl::Seconds(2)));  // Joins while x1's Take() is in flight.
  ASSERT_TRUE(pending->Complete(absl::UnavailableError("redis down")));  // x1: source error.
  scheduler_.RunDue();
  ASSERT_TRUE(pending->Complete(TakeResult{0, T(absl::Seconds(1))}));
  scheduler_.AdvanceTo(T(absl::Seconds(1)));  // Asks again; Redis does not answer in time...
  scheduler_.AdvanceTo(T(absl::Seconds(2)));  // ... and y1 expires while waiting.
  EXPECT_EQ(observer.events(),
            (std::vector<std::string>{"async/x/source_error", "async/y/deadline_reached"}));
  EXPECT_TRUE(absl::IsDeadlineExceeded(log_.Get("y1").status.status()));
}

// One budget shared by two limiters, as two replicas share one through Redis: asynchronous to
// the limiters (no TryTakeNow(), no Plan()), so they estimate. It does not name the next slot
// after a grant, so the two limiters race for each slot and take turns.
class SharedSource final : public TokenSource {
 public:
  explicit SharedSource(std::shared_ptr<LocalTokenSource> shared) : shared_(std::move(shared)) {}
  void Take(absl::Time now, TakeKind kind, int64_t want, Done done) override {
    shared_->Take(now, kind, want, [done = std::move(done)](absl::StatusOr<TakeResult> r) mutable {
      if (r.ok() && r->granted > 0) r->retry_at = absl::InfinitePast();
      std::move(done)(std::move(r));
    });
  }
  void PauseUntil(absl::Time until) override { shared_->PauseUntil(until); }
  RateSpec spec() const override { return shared_->spec(); }

 private:
  std::shared_ptr<LocalTokenSource> shared_;
};

TEST_F(FairLimiterTest, EstimatesUseTheSpacingThisLimiterActuallyGetsFromASharedBudget) {
  auto shared = std::make_shared<LocalTokenSource>(RateSpec{"identify", 10, absl::Seconds(1)});
  FairLimiter a(std::make_unique<SharedSource>(shared), scheduler_);
  FairLimiter b(std::make_unique<SharedSource>(shared), scheduler_);
  for (int i = 0; i < 30; ++i) {
    a.Acquire("a", kNever, log_.Callback(absl::StrCat("a", i)));
    b.Acquire("b", kNever, log_.Callback(absl::StrCat("b", i)));
  }
  scheduler_.AdvanceBy(absl::Seconds(3));
  // The first window went to a burst; since then each got about half of the 10/s pace: its
  // grants came ~200 ms apart, not 100 ms.
  const FairLimiterStats stats = a.Stats();
  ASSERT_GE(stats.queued, 8u);
  const double ahead = static_cast<double>(stats.queued);
  // A call with as much time left as `ahead` configured intervals and a half would wait about
  // twice that: refused at once rather than queued to expire.
  const absl::Duration left = kInterval * (ahead + 1.5);
  a.Acquire("a", scheduler_.Now() + left, log_.Callback("late"));
  scheduler_.RunDue();
  ASSERT_TRUE(log_.Has("late"));
  const CallStatus late = log_.Get("late").status;
  EXPECT_TRUE(absl::IsResourceExhausted(late.status())) << late;
  EXPECT_EQ(Cause(late), kCauseWaitExceedsDeadline);
  EXPECT_GT(RetryDelay(late), kInterval * (1.6 * ahead));
  EXPECT_LT(RetryDelay(late), kInterval * (2.6 * ahead + 3));
  a.Shutdown();
  b.Shutdown();
}

TEST_F(FairLimiterTest, StatsDescribeTheBudget) {
  Make();
  FillWindow();
  for (int i = 1; i <= 4; ++i) Acquire(i % 2 ? "a" : "b", absl::StrCat("k", i));
  scheduler_.RunDue();
  const FairLimiterStats stats = limiter_->Stats();
  EXPECT_EQ(stats.budget, "identify");
  EXPECT_EQ(limiter_->name(), "identify");
  EXPECT_EQ(stats.configured_limit, 10);
  EXPECT_EQ(stats.window, absl::Seconds(1));
  EXPECT_DOUBLE_EQ(stats.current_limit, 10.0);
  EXPECT_EQ(stats.queued, 4u);
  EXPECT_EQ(stats.callers_waiting, 2u);
  EXPECT_EQ(stats.tokens_available, 0);
  EXPECT_FALSE(stats.paused);
  EXPECT_EQ(stats.backoff, absl::Seconds(1));
}

TEST(FairLimiterOptionsTest, ValidateNamesTheBadField) {
  EXPECT_TRUE(FairLimiterOptions().Validate().ok());
  auto invalid = [](auto mutate) {
    FairLimiterOptions options;
    mutate(options);
    return absl::IsInvalidArgument(options.Validate());
  };
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.max_queue = 0; }));
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.default_caller.weight = 0; }));
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.callers["x"].weight = -1; }));
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.initial_backoff = absl::ZeroDuration(); }));
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.max_backoff = absl::Milliseconds(10); }));
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.decrease_factor = 1.5; }));
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.min_rate_fraction = 0; }));
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.recovery_per_window = 0; }));
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.admission_headroom = -absl::Seconds(1); }));
  EXPECT_TRUE(invalid([](FairLimiterOptions& o) { o.max_upstream_pause = absl::ZeroDuration(); }));
}

// Real threads and the real timer thread, for ThreadSanitizer: callers on several threads,
// admissions inline and from the timer thread, feedback from the callbacks, destruction while
// calls wait.
TEST(FairLimiterThreadsTest, ConcurrentCallersFeedbackAndShutdown) {
  ThreadScheduler scheduler;
  auto limiter = std::make_shared<FairLimiter>(
      std::make_unique<LocalTokenSource>(RateSpec{"identify", 100, absl::Seconds(1)}), scheduler);
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  constexpr int kThreads = 4;
  constexpr int kCalls = 50;  // 200 calls: a burst of 100, then 100 paced at 10 ms.
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const absl::Time deadline = absl::Now() + absl::Seconds(20);
        limiter->Acquire(absl::StrCat("caller", t), deadline,
                         [&, weak = std::weak_ptr<FairLimiter>(limiter)](CallStatus status) {
                           if (auto l = weak.lock()) {
                             if (status.ok()) {
                               l->OnUpstreamSuccess(l->Now());
                             }
                             l->Stats();
                           }
                           answered.fetch_add(1);
                         });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (answered.load() < kThreads * kCalls && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(answered.load(), kThreads * kCalls);
  const FairLimiterStats stats = limiter->Stats();
  EXPECT_EQ(stats.admitted_without_wait + stats.admitted_after_wait,
            static_cast<uint64_t>(kThreads * kCalls));
  EXPECT_GE(stats.admitted_inline, 100u);
  // Now some that will wait, then shut down from another thread while they do.
  limiter->OnUpstreamRateLimited(absl::Seconds(30), absl::InfiniteFuture());
  for (int i = 0; i < 20; ++i) {
    limiter->Acquire("late", absl::Now() + absl::Minutes(5), [&](CallStatus status) {
      EXPECT_TRUE(absl::IsUnavailable(status.status()));
      answered.fetch_add(1);
    });
  }
  std::thread closer([&] { limiter->Shutdown(); });
  closer.join();
  EXPECT_EQ(answered.load(), kThreads * kCalls + 20);
  limiter.reset();
}

}  // namespace
}  // namespace userpilot::gateway
