// A simulated overload with a virtual clock: many callers against one budget, through the
// real decorator, limiter and GCRA, with Userpilot mocked. Checks what the issue promises:
// Userpilot never sees more than the limit in any window, the budget is used to >= 99%, every
// caller is answered - admitted, refused or expired - no later than its deadline, the queue
// stays bounded, and a modest caller beside floods is not pushed into rejection.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/ratelimit/rate_limited_stub.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/mocks/mock_userpilot_stub.h"
#include "tests/util/ratelimit_test_util.h"

namespace userpilot::gateway {
namespace {

using ::testing::_;
using ::userpilot::gateway::testing::MaxInAnyWindow;
using ::userpilot::gateway::testing::Reason;

struct Call {
  std::string caller;
  absl::Time arrival;
  absl::Time deadline;
  int answers = 0;
  absl::Time answered_at;
  CallStatus status;
};

struct Traffic {
  std::string caller;
  int per_minute;  // Mean arrival rate.
  absl::Duration min_deadline;
  absl::Duration max_deadline;
};

struct Outcome {
  std::vector<Call> calls;
  std::vector<absl::Time> upstream;  // When Userpilot received each request.
  size_t max_queued = 0;
  FairLimiterStats stats;
};

// Sends `traffic` at IdentifyUser for `duration` of virtual time, then lets everything drain.
Outcome Simulate(const std::vector<Traffic>& traffic, absl::Duration duration, uint64_t seed) {
  FakeScheduler scheduler;
  const absl::Time t0 = scheduler.Now();
  RateLimitOptions options;
  options.spacing_margin = absl::ZeroDuration();
  auto budgets = MakeBudgets(options, scheduler);
  EXPECT_TRUE(budgets.ok());
  auto mock = std::make_shared<::testing::NiceMock<MockUserpilotStub>>();
  Outcome outcome;
  ON_CALL(*mock, IdentifyUser(_, _, _))
      .WillByDefault([&](const CallOptions&, const v1::IdentifyUserRequest&,
                         StubCallback<v1::IdentifyUserResponse> done) {
        outcome.upstream.push_back(scheduler.Now());
        std::move(done)(v1::IdentifyUserResponse());
      });
  RateLimitedStub stub(mock, *budgets);

  std::mt19937_64 rng(seed);
  for (const Traffic& t : traffic) {
    const int count = static_cast<int>(t.per_minute * (duration / absl::Minutes(1)));
    std::uniform_int_distribution<int64_t> at(0, absl::ToInt64Nanoseconds(duration) - 1);
    std::uniform_int_distribution<int64_t> deadline(absl::ToInt64Nanoseconds(t.min_deadline),
                                                    absl::ToInt64Nanoseconds(t.max_deadline));
    for (int i = 0; i < count; ++i) {
      Call call;
      call.caller = t.caller;
      call.arrival = t0 + absl::Nanoseconds(at(rng));
      call.deadline = call.arrival + absl::Nanoseconds(deadline(rng));
      outcome.calls.push_back(call);
    }
  }
  for (size_t i = 0; i < outcome.calls.size(); ++i) {
    scheduler.RunAt(outcome.calls[i].arrival, [&, i] {
      Call& call = outcome.calls[i];
      CallOptions call_options;
      call_options.caller = call.caller;
      call_options.deadline = call.deadline;
      v1::IdentifyUserRequest request;
      request.set_user_id(absl::StrCat("u", i));
      stub.IdentifyUser(call_options, request, [&, i](Result<v1::IdentifyUserResponse> result) {
        Call& answered = outcome.calls[i];
        ++answered.answers;
        answered.answered_at = scheduler.Now();
        answered.status = std::move(result).error();
      });
    });
  }
  // Sample the queue depth every 100 ms.
  for (absl::Time at = t0; at < t0 + duration + absl::Seconds(30); at += absl::Milliseconds(100)) {
    scheduler.RunAt(at, [&] {
      outcome.max_queued = std::max(outcome.max_queued, budgets->identify->Stats().queued);
    });
  }
  scheduler.AdvanceTo(t0 + duration + absl::Minutes(1));
  outcome.stats = budgets->identify->Stats();
  return outcome;
}

void ExpectEveryCallAnsweredInTime(const Outcome& outcome) {
  for (const Call& call : outcome.calls) {
    ASSERT_EQ(call.answers, 1) << call.caller;
    EXPECT_LE(call.answered_at, call.deadline) << call.caller;
    EXPECT_GE(call.answered_at, call.arrival);
    if (!call.status.ok()) {
      EXPECT_TRUE(absl::IsResourceExhausted(call.status.status()) ||
                  absl::IsDeadlineExceeded(call.status.status()))
          << call.status;
      EXPECT_EQ(Reason(call.status), "BUDGET_EXHAUSTED") << call.status;
    }
  }
}

TEST(OverloadTest, FiveTimesTheBudgetForAVirtualMinute) {
  // Five callers, each alone enough to use the whole identify budget (600/min): 5x overload.
  std::vector<Traffic> traffic;
  for (int c = 0; c < 5; ++c) {
    traffic.push_back({absl::StrCat("svc", c), 600, absl::Milliseconds(500), absl::Seconds(10)});
  }
  const Outcome outcome = Simulate(traffic, absl::Minutes(1), 42);
  ASSERT_GT(outcome.calls.size(), 2900u);

  // Userpilot's view: never more than 600 in any 60 s window...
  EXPECT_LE(MaxInAnyWindow(outcome.upstream, absl::Minutes(1)), 600);
  // ... and the budget used: at least 99% in the minute after the first request.
  ASSERT_FALSE(outcome.upstream.empty());
  const absl::Time first = outcome.upstream.front();
  int64_t in_first_minute = 0;
  for (absl::Time t : outcome.upstream) in_first_minute += t < first + absl::Minutes(1);
  EXPECT_GE(in_first_minute, 594);

  ExpectEveryCallAnsweredInTime(outcome);
  // Bounded memory: the queue stays well under its bound (deadlines refuse what cannot fit).
  EXPECT_LE(outcome.max_queued, RateLimitOptions().identify.max_queue);

  // Fair shares: each caller got about a fifth of the admissions.
  std::map<std::string, int> admitted;
  for (const Call& call : outcome.calls) admitted[call.caller] += call.status.ok();
  for (const auto& [caller, count] : admitted) {
    EXPECT_NEAR(count, static_cast<int>(outcome.upstream.size()) / 5, 25) << caller;
  }
  EXPECT_EQ(outcome.stats.upstream_rate_limited, 0u);
}

TEST(OverloadTest, ModestCallerBesideFloodsIsNeverRejected) {
  // Four floods at 750/min each (5x the budget together) and one modest caller at 30/min,
  // well inside its fair fifth of the budget (120/min), with ordinary deadlines (3 to 10 s;
  // its random arrivals sometimes bunch up, and a bunch waits its fair turn like anyone's).
  std::vector<Traffic> traffic;
  for (int c = 0; c < 4; ++c) {
    traffic.push_back({absl::StrCat("flood", c), 750, absl::Seconds(1), absl::Seconds(30)});
  }
  traffic.push_back({"modest", 30, absl::Seconds(3), absl::Seconds(10)});
  const Outcome outcome = Simulate(traffic, absl::Minutes(1), 7);
  EXPECT_LE(MaxInAnyWindow(outcome.upstream, absl::Minutes(1)), 600);
  ExpectEveryCallAnsweredInTime(outcome);
  int modest = 0;
  absl::Duration total_wait;
  absl::Duration max_wait;
  for (const Call& call : outcome.calls) {
    if (call.caller != "modest") continue;
    ++modest;
    EXPECT_TRUE(call.status.ok()) << call.status;
    total_wait += call.answered_at - call.arrival;
    max_wait = std::max(max_wait, call.answered_at - call.arrival);
  }
  // With five callers waiting, a lone modest call goes within ~5 intervals (its fair fifth);
  // two of its own arriving close together queue behind each other, 5 intervals apart.
  EXPECT_LE(total_wait / modest, absl::Milliseconds(500));
  EXPECT_LE(max_wait, absl::Milliseconds(1500));
  EXPECT_EQ(modest, 30);
}

}  // namespace
}  // namespace userpilot::gateway
