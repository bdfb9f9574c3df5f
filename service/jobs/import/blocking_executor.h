// BlockingExecutor: a few worker threads for work that may block or take CPU time - spooling
// import chunks to disk and validating them - so that gRPC's callback threads and the HTTP
// event thread never do.
//
// Tasks run in the order posted, on any worker. The queue is not bounded here: its users bound
// it (each import has at most one task queued, and imports are bounded by Importer).
//
// Thread-safety: Post() and Shutdown() from any thread, including from a task.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_BLOCKING_EXECUTOR_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_BLOCKING_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace userpilot::gateway {

class BlockingExecutor {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  // Starts `threads` (>= 1) workers named `name` (at most 15 characters show).
  BlockingExecutor(int threads, std::string name);
  // Shutdown().
  ~BlockingExecutor();

  BlockingExecutor(const BlockingExecutor&) = delete;
  BlockingExecutor& operator=(const BlockingExecutor&) = delete;

  // Queues `task`. After Shutdown() has begun, `task` runs at once on the calling thread
  // instead (nothing is ever dropped: a task may hold a call that must be finished).
  void Post(Task task);

  // Runs every queued task, then joins the workers. Idempotent. From a task it only stops new
  // queueing; the destructor joins.
  void Shutdown();

 private:
  void Work();

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Task> tasks_;  // Guarded by mu_.
  bool stopping_ = false;   // Guarded by mu_.
  std::vector<std::thread> threads_;
  std::once_flag join_once_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_BLOCKING_EXECUTOR_H_
