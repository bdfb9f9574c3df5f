// ExactWindow, the rule on its own: bursts, the window bound, pacing, credit, and Plan() as an
// exact replay of Take(). Property tests draw random arrival patterns from fixed seeds.
#include "service/ratelimit/exact_window.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/util/ratelimit_test_util.h"

namespace userpilot::gateway {
namespace {

using ::userpilot::gateway::testing::MaxInAnyWindow;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(ExactWindowTest, IntervalIsTheWindowOverTheLimitRoundedUp) {
  EXPECT_EQ(ExactWindow::IntervalFor(absl::Seconds(1), 10), absl::Milliseconds(100));
  const absl::Duration window = absl::Minutes(1) + absl::Milliseconds(100);
  const absl::Duration interval = ExactWindow::IntervalFor(window, 600);
  EXPECT_GE(interval * 600, window);
  EXPECT_LT(interval - window / 600, absl::Nanoseconds(2));
  const absl::Duration third = ExactWindow::IntervalFor(absl::Seconds(1), 3);
  EXPECT_GE(third * 3, absl::Seconds(1));
}

TEST(ExactWindowTest, ABurstThatFitsGoesAtOnceAndTheNextWaitsForTheOldestToLeave) {
  ExactWindow window(600, absl::Minutes(1));
  for (int i = 0; i < 100; ++i) ASSERT_EQ(window.Take(kT0, TakeKind::kImmediate).granted, 1);
  const absl::Time t1 = kT0 + absl::Seconds(1);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(window.Take(t1, TakeKind::kImmediate).granted, 1);
  EXPECT_EQ(window.Room(t1), 0);
  const TakeResult refused = window.Take(t1, TakeKind::kImmediate);
  EXPECT_EQ(refused.granted, 0);
  EXPECT_EQ(refused.retry_at, kT0 + absl::Minutes(1));  // The first burst leaves the window.
  // Exactly then, 100 fit again, at once.
  const absl::Time free = kT0 + absl::Minutes(1);
  EXPECT_EQ(window.Room(free), 100);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(window.Take(free, TakeKind::kImmediate).granted, 1) << i;
  }
  EXPECT_EQ(window.Take(free, TakeKind::kImmediate).retry_at, t1 + absl::Minutes(1));
}

TEST(ExactWindowTest, PacedTakesComeOneIntervalApart) {
  ExactWindow window(10, absl::Seconds(1));  // Interval 100 ms.
  // The first ask after an idle spell earns credit; asking again at once spends none of the
  // interval, so no credit is left.
  ASSERT_EQ(window.Take(kT0, TakeKind::kImmediate).granted, 1);
  EXPECT_EQ(window.credit(), 9);
  ASSERT_EQ(window.Take(kT0, TakeKind::kImmediate).granted, 1);
  EXPECT_EQ(window.credit(), 0);
  TakeResult first = window.Take(kT0, TakeKind::kPaced);
  ASSERT_EQ(first.granted, 1);  // The pace is free: nothing paced went before.
  EXPECT_EQ(first.retry_at, kT0 + absl::Milliseconds(100));
  TakeResult early = window.Take(kT0 + absl::Milliseconds(99), TakeKind::kPaced);
  EXPECT_EQ(early.granted, 0);
  EXPECT_EQ(early.retry_at, kT0 + absl::Milliseconds(100));
  EXPECT_EQ(window.Take(kT0 + absl::Milliseconds(100), TakeKind::kPaced).granted, 1);
  // An immediate ask ignores the pace (nobody waits), the window alone decides.
  EXPECT_EQ(window.Take(kT0 + absl::Milliseconds(100), TakeKind::kImmediate).granted, 1);
}

TEST(ExactWindowTest, CreditFromIdleTimeLetsWaitingCallsGoBackToBack) {
  ExactWindow window(10, absl::Seconds(1));
  for (int i = 0; i < 10; ++i) ASSERT_EQ(window.Take(kT0, TakeKind::kImmediate).granted, 1);
  // Nobody asks for 950 ms; then a batch arrives while the window is still full.
  const absl::Time batch = kT0 + absl::Milliseconds(950);
  EXPECT_EQ(window.Take(batch, TakeKind::kImmediate).granted, 0);
  EXPECT_EQ(window.credit(), 9);  // Nine whole intervals of nobody asking.
  // When the window frees, all ten go at once: the credit pays for nine, the pace for one.
  const absl::Time free = kT0 + absl::Seconds(1);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(window.Take(free, TakeKind::kPaced).granted, 1) << i;
  EXPECT_EQ(window.credit(), 0);
}

TEST(ExactWindowTest, AsksMoreOftenThanOnceAnIntervalEarnNoCredit) {
  ExactWindow window(10, absl::Seconds(1));
  for (int i = 0; i < 10; ++i) ASSERT_EQ(window.Take(kT0, TakeKind::kImmediate).granted, 1);
  for (absl::Time t = kT0; t < kT0 + absl::Seconds(1); t += absl::Milliseconds(50)) {
    window.Take(t, TakeKind::kImmediate);  // Refused: the window is full.
  }
  EXPECT_EQ(window.credit(), 0);
  const absl::Time free = kT0 + absl::Seconds(1);
  EXPECT_EQ(window.Take(free, TakeKind::kPaced).granted, 1);
  EXPECT_EQ(window.Take(free, TakeKind::kPaced).granted, 0);  // Paced from here.
}

TEST(ExactWindowTest, SlackKeepsThePaceWhenTheAskerIsLate) {
  // A pace of 100 ms in a window too long to bind; two asks at once leave no credit.
  ExactWindow window(1000, absl::Seconds(100), absl::Milliseconds(5));
  ASSERT_EQ(window.Take(kT0, TakeKind::kImmediate).granted, 1);
  ASSERT_EQ(window.Take(kT0, TakeKind::kImmediate).granted, 1);
  absl::Time t = kT0;
  int granted = 0;
  // Asks come 2 ms after each slot the source names: the schedule must not drift.
  for (int i = 0; i < 100; ++i) {
    TakeResult r = window.Take(t, TakeKind::kPaced);
    if (r.granted > 0) {
      ++granted;
      t = std::max(t, r.retry_at) + absl::Milliseconds(2);
    } else {
      t = r.retry_at + absl::Milliseconds(2);
    }
  }
  // 100 paced grants, the last at 99 intervals less the slack plus 2 ms, not at 99 * 102 ms.
  EXPECT_EQ(granted, 100);
  EXPECT_EQ(t - kT0, absl::Milliseconds(9997));
}

TEST(ExactWindowTest, AClockThatStepsBackNeverRecordsASendEarlier) {
  ExactWindow window(2, absl::Seconds(1));
  ASSERT_EQ(window.Take(kT0 + absl::Seconds(5), TakeKind::kImmediate).granted, 1);
  ASSERT_EQ(window.Take(kT0, TakeKind::kImmediate).granted, 1);  // Recorded at +5 s.
  const TakeResult r = window.Take(kT0, TakeKind::kImmediate);
  EXPECT_EQ(r.granted, 0);
  EXPECT_EQ(r.retry_at, kT0 + absl::Seconds(6));
}

// Random asks: bursts, single calls, immediate and paced, over a few windows.
struct Ask {
  absl::Time at;
  TakeKind kind;
};

std::vector<Ask> RandomAsks(std::mt19937_64& rng, absl::Duration window, int64_t limit) {
  std::vector<Ask> asks;
  std::uniform_int_distribution<int64_t> span(0, absl::ToInt64Nanoseconds(window * 4));
  std::uniform_int_distribution<int> burst(1, static_cast<int>(limit) * 2);
  std::bernoulli_distribution paced(0.5);
  const int groups = std::uniform_int_distribution<int>(1, 40)(rng);
  for (int g = 0; g < groups; ++g) {
    const absl::Time at = kT0 + absl::Nanoseconds(span(rng));
    const int n = burst(rng);
    const TakeKind kind = paced(rng) ? TakeKind::kPaced : TakeKind::kImmediate;
    for (int i = 0; i < n; ++i) asks.push_back({at, kind});
  }
  std::sort(asks.begin(), asks.end(), [](const Ask& a, const Ask& b) { return a.at < b.at; });
  return asks;
}

TEST(ExactWindowPropertyTest, NeverMoreThanTheLimitInAnyWindowForRandomAsks) {
  // 200 seeds x (limit, window, slack) drawn at random; sliding windows at every send, and
  // fixed windows aligned anywhere (a sliding bound implies them).
  std::mt19937_64 rng(20261205);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t limit = std::uniform_int_distribution<int64_t>(1, 50)(rng);
    const absl::Duration window =
        absl::Milliseconds(std::uniform_int_distribution<int>(10, 5000)(rng));
    const absl::Duration slack = absl::Milliseconds(std::uniform_int_distribution<int>(0, 20)(rng));
    ExactWindow rule(limit, window, slack);
    std::vector<absl::Time> sends;
    for (const Ask& ask : RandomAsks(rng, window, limit)) {
      if (rule.Take(ask.at, ask.kind).granted > 0) sends.push_back(ask.at);
    }
    ASSERT_LE(MaxInAnyWindow(sends, window), limit)
        << "trial " << trial << " limit " << limit << " window " << window;
  }
}

TEST(ExactWindowPropertyTest, PlanIsExactlyWhatPacedTakesAtTheNamedTimesGet) {
  // From a random history, Plan(k) must equal the times at which k paced asks, each made at
  // the time the previous answer named, are granted.
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t limit = std::uniform_int_distribution<int64_t>(1, 30)(rng);
    const absl::Duration window =
        absl::Milliseconds(std::uniform_int_distribution<int>(10, 3000)(rng));
    const absl::Duration slack = absl::Milliseconds(std::uniform_int_distribution<int>(0, 3)(rng));
    ExactWindow rule(limit, window, slack);
    absl::Time now = kT0;
    for (const Ask& ask : RandomAsks(rng, window, limit)) {
      rule.Take(ask.at, ask.kind);
      now = ask.at;
    }
    const int64_t k = std::uniform_int_distribution<int64_t>(1, 3 * limit + 2)(rng);
    const absl::Time start =
        now + absl::Milliseconds(std::uniform_int_distribution<int>(0, 500)(rng));
    std::vector<absl::Time> plan;
    rule.Plan(now, k, start, absl::ZeroDuration(), &plan);
    ASSERT_EQ(static_cast<int64_t>(plan.size()), k);
    ExactWindow replay = rule;
    absl::Time t = start;
    for (int64_t i = 0; i < k; ++i) {
      TakeResult r = replay.Take(t, TakeKind::kPaced);
      if (r.granted == 0) {
        ASSERT_GT(r.retry_at, t);
        t = r.retry_at;
        r = replay.Take(t, TakeKind::kPaced);
      }
      ASSERT_EQ(r.granted, 1) << "trial " << trial << " ask " << i;
      ASSERT_EQ(t, plan[static_cast<size_t>(i)]) << "trial " << trial << " ask " << i;
    }
  }
}

TEST(ExactWindowPropertyTest, UnderSustainedAsksPacedGrantsUseTheWholeBudget) {
  // Calls wait all the time (paced asks at the times the rule names), after a random history.
  // From the second window on, every window holds `limit` grants, less the interval's rounding.
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t limit = std::uniform_int_distribution<int64_t>(5, 600)(rng);
    const absl::Duration window = absl::Seconds(std::uniform_int_distribution<int>(1, 60)(rng));
    ExactWindow rule(limit, window, absl::Milliseconds(1));
    std::vector<absl::Time> sends;
    absl::Time t = kT0;
    for (const Ask& ask : RandomAsks(rng, window, limit)) {
      if (ask.at > kT0 + window) break;
      if (rule.Take(ask.at, TakeKind::kImmediate).granted > 0) sends.push_back(ask.at);
      t = ask.at;
    }
    const absl::Time overload_from = t;
    const absl::Time end = overload_from + window * 5;
    while (t < end) {
      const TakeResult r = rule.Take(t, TakeKind::kPaced);
      if (r.granted > 0) {
        sends.push_back(t);
      } else {
        t = r.retry_at;
      }
    }
    ASSERT_LE(MaxInAnyWindow(sends, window), limit);
    // Every window that starts two windows after the overload began holds >= 99% of the
    // limit. (The transition: the window may stay full for up to one window after the overload
    // begins, and credit the queue then spends at once leaves a hole one window later.)
    for (absl::Time from = overload_from + 2 * window; from + window <= end; from += window / 7) {
      const int64_t in = std::count_if(
          sends.begin(), sends.end(), [&](absl::Time s) { return s > from && s <= from + window; });
      if (in < limit * 99 / 100) {
        std::string dump;
        for (absl::Time s : sends) {
          if (s > from - window && s <= from + 2 * window) {
            dump += absl::StrCat(absl::ToDoubleMilliseconds(s - kT0), " ");
          }
        }
        ADD_FAILURE() << "from " << absl::ToDoubleMilliseconds(from - kT0) << " overload_from "
                      << absl::ToDoubleMilliseconds(overload_from - kT0) << " window " << window
                      << " sends: " << dump;
      }
      ASSERT_GE(in, limit * 99 / 100) << "trial " << trial << " limit " << limit;
    }
  }
}

}  // namespace
}  // namespace userpilot::gateway
