// FakeScheduler: a Scheduler whose clock moves only when a test calls AdvanceTo/AdvanceBy, so
// budgets, backoff, circuit breakers and pollers are tested fast and exactly, never by sleeping.
//
//   FakeScheduler scheduler;                    // starts at a fixed, arbitrary instant
//   scheduler.RunAfter(absl::Seconds(2), [&] { fired = true; });
//   scheduler.AdvanceBy(absl::Seconds(1));      // nothing runs
//   scheduler.AdvanceBy(absl::Seconds(1));      // runs the callback, on this thread
//
// Due callbacks run on the advancing thread, in time order then insertion order, with Now()
// equal to their due time; a callback that sets a timer due within the advance also runs.
// RunAt with a past time runs at the next Advance*/RunDue call, never inside RunAt.
//
// Thread-safety: RunAt/Cancel/Now are safe from any thread; advance from one thread at a time.
#ifndef USERPILOT_GATEWAY_TESTS_MOCKS_FAKE_SCHEDULER_H_
#define USERPILOT_GATEWAY_TESTS_MOCKS_FAKE_SCHEDULER_H_

#include <map>
#include <mutex>
#include <utility>

#include "service/common/scheduler.h"

namespace userpilot::gateway {

class FakeScheduler final : public Scheduler {
 public:
  explicit FakeScheduler(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}

  absl::Time Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }

  TimerId RunAt(absl::Time when, Callback callback) override {
    std::lock_guard<std::mutex> lock(mu_);
    const TimerId id = next_id_++;
    timers_.emplace(std::make_pair(when, id), std::move(callback));
    when_by_id_.emplace(id, when);
    return id;
  }

  bool Cancel(TimerId id) override {
    Callback cancelled;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = when_by_id_.find(id);
    if (it == when_by_id_.end()) return false;
    auto timer = timers_.find(std::make_pair(it->second, id));
    cancelled = std::move(timer->second);
    timers_.erase(timer);
    when_by_id_.erase(it);
    return true;
  }

  // Moves the clock to `target` (never backwards), running every timer due on the way.
  void AdvanceTo(absl::Time target) {
    while (true) {
      Callback callback;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto first = timers_.begin();
        if (first == timers_.end() || first->first.first > target) {
          if (target > now_) now_ = target;
          return;
        }
        if (first->first.first > now_) now_ = first->first.first;
        callback = std::move(first->second);
        when_by_id_.erase(first->first.second);
        timers_.erase(first);
      }
      std::move(callback)();
    }
  }

  void AdvanceBy(absl::Duration delta) { AdvanceTo(Now() + delta); }

  // Runs what is due now without moving the clock.
  void RunDue() { AdvanceTo(Now()); }

  // Timers waiting, and when the next one is due (InfiniteFuture when none).
  size_t pending() {
    std::lock_guard<std::mutex> lock(mu_);
    return timers_.size();
  }
  absl::Time next_due() {
    std::lock_guard<std::mutex> lock(mu_);
    return timers_.empty() ? absl::InfiniteFuture() : timers_.begin()->first.first;
  }

 private:
  std::mutex mu_;
  absl::Time now_;
  std::map<std::pair<absl::Time, TimerId>, Callback> timers_;
  std::map<TimerId, absl::Time> when_by_id_;
  TimerId next_id_ = 1;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_TESTS_MOCKS_FAKE_SCHEDULER_H_
