// Time and timers for everything that waits: budgets admitting a queued call, retry backoff,
// circuit-breaker probes, job polling.
//
// Nothing in the gateway sleeps on a thread. A component that must wait asks a Scheduler to run
// a callback at a time; production uses ThreadScheduler (one timer thread), tests use
// FakeScheduler (tests/mocks/fake_scheduler.h), whose clock moves only when the test says, so
// time-dependent behaviour is tested fast and exactly.
//
// Thread-safety: every method may be called from any thread, including from inside a callback.
// Callbacks run on the scheduler's thread (for the fake: the thread that advances time); they
// must be short and must not block.
#ifndef USERPILOT_GATEWAY_SERVICE_COMMON_SCHEDULER_H_
#define USERPILOT_GATEWAY_SERVICE_COMMON_SCHEDULER_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace userpilot::gateway {

class Scheduler {
 public:
  using TimerId = uint64_t;
  using Callback = absl::AnyInvocable<void() &&>;

  virtual ~Scheduler() = default;

  // The current time on this scheduler's clock.
  virtual absl::Time Now() = 0;

  // Runs `callback` once at or soon after `when` (at once, but never inside this call, when
  // `when` has passed). Returns an id for Cancel().
  virtual TimerId RunAt(absl::Time when, Callback callback) = 0;

  // Cancels a timer that has not started running. True when it was cancelled (its callback is
  // destroyed without running); false when it already ran, is running, or never existed.
  virtual bool Cancel(TimerId id) = 0;

  TimerId RunAfter(absl::Duration delay, Callback callback) {
    return RunAt(Now() + delay, std::move(callback));
  }
};

// A Scheduler on the real clock with one timer thread. Timers due at the same time run in the
// order they were set. The destructor stops the thread; timers not yet run are destroyed
// without running, so owners must not rely on them firing during shutdown.
class ThreadScheduler final : public Scheduler {
 public:
  ThreadScheduler();
  ~ThreadScheduler() override;
  ThreadScheduler(const ThreadScheduler&) = delete;
  ThreadScheduler& operator=(const ThreadScheduler&) = delete;

  absl::Time Now() override { return absl::Now(); }
  TimerId RunAt(absl::Time when, Callback callback) override;
  bool Cancel(TimerId id) override;

  // Timers waiting to run (for metrics and tests).
  size_t pending() const;

 private:
  void Loop();

  // std::mutex, not absl::Mutex: Debian's Abseil is built without ThreadSanitizer annotations,
  // so TSan cannot see absl::Mutex's synchronisation; it does see std::mutex.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  // (when, id) -> callback; ids grow, so equal times run in the order they were set.
  std::map<std::pair<absl::Time, TimerId>, Callback> timers_;
  std::map<TimerId, absl::Time> when_by_id_;
  TimerId next_id_ = 1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_COMMON_SCHEDULER_H_
