// Issue 12's acceptance scenario on a virtual clock, at the gateway's default budgets (identify
// 600/min, 100 ms spacing margin, 100 ms admission headroom), through the identify budget as
// MakeBudgets builds it:
//   - 100 identify calls at once to an idle gateway all go at once (inside their Acquire());
//   - 450 more at once all succeed without waiting;
//   - the next 120 in the same minute: the 50 that fit succeed at once, the other 70 are
//     refused at once with RESOURCE_EXHAUSTED, RetryInfo (when the first burst leaves the
//     window) and QuotaFailure;
//   - never more than 600 in any 60 s, and a minute later the whole budget is there again.
// It prints the replay (times to admission per group); the same scenario on the real binary is
// tests/traffic/burst_test.py.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "service/ratelimit/budgets.h"
#include "service/ratelimit/exact_window.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/util/ratelimit_test_util.h"

namespace userpilot::gateway {
namespace {

using ::userpilot::gateway::testing::Cause;
using ::userpilot::gateway::testing::MaxInAnyWindow;
using ::userpilot::gateway::testing::RetryDelay;

struct Group {
  std::string name;
  int admitted = 0;
  int refused = 0;
  int inline_answers = 0;  // Answered before Acquire() returned.
  std::vector<absl::Duration> waits;
  std::vector<absl::Duration> refusal_delays;  // From the call to its refusal.
  std::vector<absl::Duration> retry_info;
};

class AcceptanceTest : public ::testing::Test {
 protected:
  AcceptanceTest() {
    auto budgets = MakeBudgets(RateLimitOptions(), scheduler_);
    EXPECT_TRUE(budgets.ok()) << budgets.status();
    budgets_ = *budgets;
  }

  // `n` IdentifyUser calls at once, each with the gateway's default deadline (30 s).
  Group Send(const std::string& name, int n) {
    Group group;
    group.name = name;
    const absl::Time sent = scheduler_.Now();
    for (int i = 0; i < n; ++i) {
      auto returned = std::make_shared<bool>(false);
      budgets_.identify->Acquire(
          "svc", sent + absl::Seconds(30), [&, sent, returned](CallStatus status) {
            if (!*returned) ++group.inline_answers;
            if (status.ok()) {
              ++group.admitted;
              group.waits.push_back(scheduler_.Now() - sent);
              sends_.push_back(scheduler_.Now());
            } else {
              ++group.refused;
              EXPECT_TRUE(absl::IsResourceExhausted(status.status())) << status;
              EXPECT_EQ(Cause(status), kCauseWaitExceedsDeadline);
              EXPECT_TRUE(wire::Detail<google::rpc::QuotaFailure>(status).has_value());
              group.refusal_delays.push_back(scheduler_.Now() - sent);
              group.retry_info.push_back(RetryDelay(status));
            }
          });
      *returned = true;
    }
    scheduler_.RunDue();  // Posted refusals.
    return group;
  }

  static void Print(const Group& g) {
    auto span = [](std::vector<absl::Duration> v) {
      if (v.empty()) return std::string("-");
      std::sort(v.begin(), v.end());
      return absl::FormatDuration(v.front()) + " / " + absl::FormatDuration(v[v.size() / 2]) +
             " / " + absl::FormatDuration(v.back());
    };
    std::printf(
        "%-28s admitted %3d (inside Acquire: %3d), time to admission min/p50/max %s; "
        "refused %2d, time to refusal %s, RetryInfo %s\n",
        g.name.c_str(), g.admitted, g.inline_answers, span(g.waits).c_str(), g.refused,
        span(g.refusal_delays).c_str(), span(g.retry_info).c_str());
  }

  FakeScheduler scheduler_;
  const absl::Time t0_ = scheduler_.Now();
  Budgets budgets_;
  std::vector<absl::Time> sends_;
};

TEST_F(AcceptanceTest, BurstsThatFitGoAtOnceAndTheRestIsRefusedAtOnce) {
  const Group first = Send("100 at once, idle", 100);
  scheduler_.AdvanceBy(absl::Seconds(1));
  const Group second = Send("450 at once, +1 s", 450);
  scheduler_.AdvanceBy(absl::Seconds(1));
  const Group third = Send("120 at once, +2 s", 120);
  Print(first);
  Print(second);
  Print(third);

  EXPECT_EQ(first.admitted, 100);
  EXPECT_EQ(first.inline_answers, 100);  // No timer, no hop: all within 100 ms (within 0).
  EXPECT_EQ(second.admitted, 450);
  EXPECT_EQ(second.inline_answers, 450);
  for (absl::Duration wait : first.waits) EXPECT_EQ(wait, absl::ZeroDuration());
  for (absl::Duration wait : second.waits) EXPECT_EQ(wait, absl::ZeroDuration());
  EXPECT_EQ(third.admitted, 50);
  EXPECT_EQ(third.refused, 70);
  for (absl::Duration wait : third.waits) EXPECT_EQ(wait, absl::ZeroDuration());
  for (absl::Duration delay : third.refusal_delays) EXPECT_EQ(delay, absl::ZeroDuration());
  // RetryInfo: when the first burst (t0) leaves the 60.1 s window, 58.1 s from now.
  for (absl::Duration retry : third.retry_info) EXPECT_EQ(retry, absl::Milliseconds(58100));
  EXPECT_EQ(scheduler_.pending(), 0u);  // Nothing waits, no timer is set.

  // A minute later the whole budget is back, in the order it was spent.
  scheduler_.AdvanceTo(t0_ + absl::Seconds(70));
  const Group later = Send("600 at once, +70 s", 600);
  Print(later);
  EXPECT_EQ(later.admitted, 600);
  EXPECT_EQ(later.inline_answers, 600);
  EXPECT_LE(MaxInAnyWindow(sends_, absl::Seconds(60)), 600);
  EXPECT_EQ(sends_.size(), 1200u);
}

TEST_F(AcceptanceTest, CallsThatCanWaitForTheWindowAreAdmittedWhenItFrees) {
  // The same first minute, then 120 calls with 90 s deadlines: 50 at once, 70 queued and
  // admitted from when the window frees, at the pace (600 per 60.1 s, less the 10 ms slack):
  // the calls of the last second asked more often than once a pace, so they earned no credit.
  Send("100 at once", 100);
  scheduler_.AdvanceBy(absl::Seconds(1));
  Send("450 at once", 450);
  scheduler_.AdvanceBy(absl::Seconds(1));
  Group waiting;
  const absl::Time sent = scheduler_.Now();
  for (int i = 0; i < 120; ++i) {
    budgets_.identify->Acquire("svc", sent + absl::Seconds(90), [&](CallStatus status) {
      ASSERT_TRUE(status.ok()) << status;
      ++waiting.admitted;
      waiting.waits.push_back(scheduler_.Now() - sent);
      sends_.push_back(scheduler_.Now());
    });
  }
  scheduler_.AdvanceBy(absl::Seconds(90));
  waiting.name = "120 with 90 s deadlines";
  Print(waiting);
  EXPECT_EQ(waiting.admitted, 120);
  std::sort(waiting.waits.begin(), waiting.waits.end());
  EXPECT_EQ(waiting.waits[49], absl::ZeroDuration());
  EXPECT_EQ(waiting.waits[50], absl::Milliseconds(58100));  // When the first burst leaves.
  const absl::Duration pace = ExactWindow::IntervalFor(absl::Milliseconds(60100), 600);
  EXPECT_EQ(waiting.waits[119], absl::Milliseconds(58100) + pace * 69 - kPacingSlack);
  EXPECT_LE(MaxInAnyWindow(sends_, absl::Seconds(60)), 600);
}

}  // namespace
}  // namespace userpilot::gateway
