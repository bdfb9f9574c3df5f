#include "service/common/scheduler.h"

#include <atomic>
#include <future>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

TEST(ThreadSchedulerTest, RunsInTimeOrderThenInsertionOrder) {
  ThreadScheduler scheduler;
  std::mutex mu;
  std::vector<int> order;
  std::promise<void> done;
  const absl::Time base = absl::Now() + absl::Milliseconds(20);
  auto record = [&](int n) {
    return [&, n] {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(n);
      if (order.size() == 4) done.set_value();
    };
  };
  scheduler.RunAt(base + absl::Milliseconds(10), record(3));
  scheduler.RunAt(base, record(1));
  scheduler.RunAt(base, record(2));
  scheduler.RunAt(base + absl::Milliseconds(20), record(4));
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_THAT(order, ::testing::ElementsAre(1, 2, 3, 4));
}

TEST(ThreadSchedulerTest, NeverRunsBeforeItsTime) {
  ThreadScheduler scheduler;
  std::promise<absl::Time> ran;
  const absl::Time when = absl::Now() + absl::Milliseconds(30);
  scheduler.RunAt(when, [&] { ran.set_value(absl::Now()); });
  auto future = ran.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_GE(future.get(), when);
}

TEST(ThreadSchedulerTest, CancelledTimerNeverRuns) {
  ThreadScheduler scheduler;
  std::atomic<bool> ran{false};
  auto id = scheduler.RunAfter(absl::Milliseconds(50), [&] { ran = true; });
  EXPECT_TRUE(scheduler.Cancel(id));
  EXPECT_FALSE(scheduler.Cancel(id));
  std::promise<void> later;
  scheduler.RunAfter(absl::Milliseconds(80), [&] { later.set_value(); });
  ASSERT_EQ(later.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_FALSE(ran);
  EXPECT_EQ(scheduler.pending(), 0u);
}

TEST(ThreadSchedulerTest, CallbackMaySetAnotherTimer) {
  ThreadScheduler scheduler;
  std::promise<void> second;
  scheduler.RunAfter(absl::ZeroDuration(), [&] {
    scheduler.RunAfter(absl::Milliseconds(1), [&] { second.set_value(); });
  });
  EXPECT_EQ(second.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
}

TEST(ThreadSchedulerTest, DestructionDropsPendingTimers) {
  std::atomic<bool> ran{false};
  {
    ThreadScheduler scheduler;
    scheduler.RunAfter(absl::Hours(1), [&] { ran = true; });
    EXPECT_EQ(scheduler.pending(), 1u);
  }
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace userpilot::gateway
