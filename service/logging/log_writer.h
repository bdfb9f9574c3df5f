// LogWriter: the Logger's bounded queue of finished lines and the one thread ("upgw-log") that
// writes them out in batches, waking once per batch rather than once per line.
//
// Written by hand because the packaged queue does not do this: spdlog's asynchronous logger
// (spdlog::details::thread_pool) notifies its writer's condition variable on every line queued,
// so at moderate rates the writer wakes, and the caller makes a futex call, once per line, and
// context switches are what a call costs most on a small machine. Here the writer sleeps on a
// timed wait (the linger) while lines gather, and a caller wakes it only when it must:
//
//   - the writer is idle (it found nothing queued at the end of a linger) and a line arrives;
//     it then lingers from that moment before writing, so a burst is still one batch;
//   - the writer is lingering and the line is urgent (a warning or error, to appear at once),
//     or the queue has reached half its bound or `wake_bytes` of text;
//   - Flush() and the destructor.
//
// Each wake is made by one caller only: whoever finds the writer asleep and not yet woken marks
// it woken before notifying, so lines that follow make no system call. Under steady traffic the
// writer wakes once per linger, however many lines arrive, and callers never notify.
//
// Thread-safety: Push(), Flush(), dropped() and wakeups() may be called from any thread. The
// queue is guarded by a std::mutex (not absl::Mutex, whose synchronisation ThreadSanitizer
// cannot see; see service/common/scheduler.h), held only to move lines in or out.
#ifndef USERPILOT_GATEWAY_SERVICE_LOGGING_LOG_WRITER_H_
#define USERPILOT_GATEWAY_SERVICE_LOGGING_LOG_WRITER_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "spdlog/common.h"

namespace userpilot::gateway {

// A finished line waiting for the writer: when it was logged, its level, and its JSON members
// (the Logger's formatter puts time and level in front of them).
struct QueuedLogLine {
  spdlog::log_clock::time_point time;
  spdlog::level::level_enum level = spdlog::level::info;
  std::string members;
};

class LogWriter {
 public:
  // Writes `lines` (in order, never empty) out; runs on the writer thread, without the queue's
  // lock, so callers keep queueing meanwhile.
  using WriteBatch = std::function<void(const std::vector<QueuedLogLine>& lines)>;

  // Starts the writer thread. `queue_lines` (> 0) bounds the queue; `linger` is the longest a
  // line waits for others to join its batch; the writer is woken early once `wake_bytes` of text
  // or half of `queue_lines` are queued.
  LogWriter(size_t queue_lines, std::chrono::nanoseconds linger, size_t wake_bytes,
            WriteBatch write);
  // Writes out every queued line (without lingering), then joins the writer.
  ~LogWriter();

  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Queues `line`, never waiting for the writer: when the queue is full its oldest line is
  // dropped and counted. `urgent` lines (warnings, errors) wake a lingering writer.
  void Push(QueuedLogLine line, bool urgent);

  // Returns once every line queued before the call has been written (or dropped). Blocks while
  // the output is stalled, as a synchronous write would: not for the call path.
  void Flush();

  // Lines dropped because the queue was full, since start.
  uint64_t dropped() const;
  // How many times the writer thread has returned from a wait (notified, timed out or spurious),
  // since start: what the design keeps low (tests, benchmarks).
  uint64_t wakeups() const;

 private:
  // What the writer is doing; a caller may notify it only while it sleeps (kIdle, kLingering).
  enum class State { kWriting, kLingering, kIdle };

  void Run();
  // Whether the writer must write what is queued now rather than linger. Holds mu_.
  bool MustWriteLocked() const;
  // Sleeps as `state` until woken or (when given) `deadline`. Holds mu_.
  void Sleep(std::unique_lock<std::mutex>& lock, State state,
             std::optional<std::chrono::steady_clock::time_point> deadline);
  // Marks the sleeping writer woken; true when the caller must notify cv_. Holds mu_.
  bool WakeLocked();

  const size_t capacity_;
  const std::chrono::nanoseconds linger_;
  const size_t wake_bytes_;
  const size_t wake_lines_;
  const WriteBatch write_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // Wakes the writer.
  std::condition_variable done_cv_;  // Wakes Flush() callers when a batch has been written.
  // The queue: a ring of capacity_ slots, size_ lines from head_, bytes_ of members in them.
  std::vector<QueuedLogLine> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
  size_t bytes_ = 0;
  uint64_t pushed_ = 0;        // Lines ever queued (dropped ones included).
  uint64_t written_ = 0;       // Lines ever queued that are written out or dropped.
  uint64_t flush_target_ = 0;  // The largest pushed_ a Flush() waits for.
  uint64_t dropped_ = 0;
  uint64_t wakeups_ = 0;
  bool urgent_ = false;  // An urgent line is queued.
  bool stopping_ = false;
  State state_ = State::kWriting;
  bool woken_ = false;  // The sleeping writer has been notified (no further caller notifies).

  // The writer thread's own: the lines being written (capacity_ reserved once).
  std::vector<QueuedLogLine> batch_;
  std::thread thread_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_LOGGING_LOG_WRITER_H_
