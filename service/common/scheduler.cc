#include "service/common/scheduler.h"

namespace userpilot::gateway {

ThreadScheduler::ThreadScheduler() : thread_([this] { Loop(); }) {}

ThreadScheduler::~ThreadScheduler() {
  std::map<std::pair<absl::Time, TimerId>, Callback> abandoned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    abandoned.swap(timers_);
    when_by_id_.clear();
  }
  wake_.notify_one();
  thread_.join();
  // `abandoned` is destroyed here, outside the lock: a callback's captures may call back in.
}

Scheduler::TimerId ThreadScheduler::RunAt(absl::Time when, Callback callback) {
  TimerId id;
  bool earliest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_id_++;
    if (stopping_) return id;  // Dropped: the scheduler is going away.
    auto it = timers_.emplace(std::make_pair(when, id), std::move(callback)).first;
    when_by_id_.emplace(id, when);
    earliest = it == timers_.begin();
  }
  if (earliest) wake_.notify_one();
  return id;
}

bool ThreadScheduler::Cancel(TimerId id) {
  Callback cancelled;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = when_by_id_.find(id);
    if (it == when_by_id_.end()) return false;
    auto timer = timers_.find(std::make_pair(it->second, id));
    cancelled = std::move(timer->second);
    timers_.erase(timer);
    when_by_id_.erase(it);
  }
  return true;  // `cancelled` is destroyed outside the lock.
}

size_t ThreadScheduler::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return timers_.size();
}

void ThreadScheduler::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (timers_.empty()) {
      wake_.wait(lock);
      continue;
    }
    auto first = timers_.begin();
    const absl::Time when = first->first.first;
    if (when > absl::Now()) {
      wake_.wait_until(lock, absl::ToChronoTime(when));
      continue;
    }
    Callback callback = std::move(first->second);
    when_by_id_.erase(first->first.second);
    timers_.erase(first);
    lock.unlock();
    std::move(callback)();
    lock.lock();
  }
}

}  // namespace userpilot::gateway
