#include "service/logging/log_writer.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

namespace userpilot::gateway {

LogWriter::LogWriter(size_t queue_lines, std::chrono::nanoseconds linger, size_t wake_bytes,
                     WriteBatch write)
    : capacity_(std::max<size_t>(queue_lines, 1)),
      linger_(std::max(linger, std::chrono::nanoseconds::zero())),
      wake_bytes_(wake_bytes),
      wake_lines_(std::max<size_t>(capacity_ / 2, 1)),
      write_(std::move(write)),
      slots_(capacity_) {
  batch_.reserve(capacity_);
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "upgw-log");
    Run();
  });
}

LogWriter::~LogWriter() {
  bool notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    notify = WakeLocked();
  }
  if (notify) cv_.notify_one();
  thread_.join();
}

void LogWriter::Push(QueuedLogLine line, bool urgent) {
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (size_ == capacity_) {  // Full: the oldest line makes room (its slot takes `line`).
      bytes_ -= slots_[head_].members.size();
      head_ = (head_ + 1) % capacity_;
      --size_;
      ++dropped_;
    }
    bytes_ += line.members.size();
    slots_[(head_ + size_) % capacity_] = std::move(line);
    ++size_;
    ++pushed_;
    if (urgent) urgent_ = true;
    // An idle writer is woken by any line (it then lingers); a lingering one only when it must
    // write now.
    if (state_ == State::kIdle || (state_ == State::kLingering && MustWriteLocked())) {
      notify = WakeLocked();
    }
  }
  if (notify) cv_.notify_one();
}

void LogWriter::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = pushed_;
  if (written_ >= target) return;
  flush_target_ = std::max(flush_target_, target);
  if (WakeLocked()) cv_.notify_one();
  done_cv_.wait(lock, [&] { return written_ >= target; });
}

uint64_t LogWriter::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

uint64_t LogWriter::wakeups() const {
  std::lock_guard<std::mutex> lock(mu_);
  return wakeups_;
}

bool LogWriter::MustWriteLocked() const {
  return stopping_ || urgent_ || flush_target_ > written_ || size_ >= wake_lines_ ||
         bytes_ >= wake_bytes_;
}

bool LogWriter::WakeLocked() {
  if (state_ == State::kWriting || woken_) return false;
  woken_ = true;
  return true;
}

void LogWriter::Sleep(std::unique_lock<std::mutex>& lock, State state,
                      std::optional<std::chrono::steady_clock::time_point> deadline) {
  state_ = state;
  woken_ = false;
  while (!woken_) {
    std::cv_status status = std::cv_status::no_timeout;
    if (deadline.has_value()) {
      status = cv_.wait_until(lock, *deadline);
    } else {
      cv_.wait(lock);
    }
    ++wakeups_;
    if (status == std::cv_status::timeout) break;
  }
  state_ = State::kWriting;
}

void LogWriter::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Let lines gather for a linger, unless what is queued must go now.
    if (!MustWriteLocked())
      Sleep(lock, State::kLingering, std::chrono::steady_clock::now() + linger_);
    if (size_ == 0) {
      if (stopping_) return;
      // Nothing came during a whole linger: sleep until a line does, then linger from there.
      Sleep(lock, State::kIdle, std::nullopt);
      continue;
    }
    for (size_t i = 0; i < size_; ++i) batch_.push_back(std::move(slots_[(head_ + i) % capacity_]));
    head_ = 0;
    size_ = 0;
    bytes_ = 0;
    urgent_ = false;
    const uint64_t through = pushed_;
    lock.unlock();
    write_(batch_);
    batch_.clear();
    lock.lock();
    written_ = through;
    if (flush_target_ > 0 && flush_target_ <= written_) {
      flush_target_ = 0;
      done_cv_.notify_all();
    }
  }
}

}  // namespace userpilot::gateway
