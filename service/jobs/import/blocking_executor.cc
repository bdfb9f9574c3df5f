#include "service/jobs/import/blocking_executor.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

namespace userpilot::gateway {

BlockingExecutor::BlockingExecutor(int threads, std::string name) {
  threads = std::max(threads, 1);
  name.resize(std::min<size_t>(name.size(), 15));
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, name] {
      pthread_setname_np(pthread_self(), name.c_str());
      Work();
    });
  }
}

BlockingExecutor::~BlockingExecutor() { Shutdown(); }

void BlockingExecutor::Post(Task task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      tasks_.push_back(std::move(task));
      wake_.notify_one();
      return;
    }
  }
  std::move(task)();
}

void BlockingExecutor::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (const std::thread& t : threads_) {
    if (t.get_id() == std::this_thread::get_id()) return;  // The destructor joins.
  }
  std::call_once(join_once_, [this] {
    for (std::thread& t : threads_) t.join();
  });
}

void BlockingExecutor::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // Stopping, and everything queued has run.
    Task task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    std::move(task)();
    task = nullptr;  // Destroy captures outside the lock.
    lock.lock();
  }
}

}  // namespace userpilot::gateway
