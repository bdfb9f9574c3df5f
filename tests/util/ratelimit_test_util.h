// Test helpers for the ratelimit tests (not linked into the gateway).
//
//   AnswerLog log(scheduler);
//   limiter.Acquire("a", deadline, log.Callback("a1"));
//   scheduler.RunDue();
//   EXPECT_TRUE(log.Get("a1").status.ok());
//
// Thread-safety: Callback() results may run on any thread; reads lock.
#ifndef USERPILOT_GATEWAY_TESTS_UTIL_RATELIMIT_TEST_UTIL_H_
#define USERPILOT_GATEWAY_TESTS_UTIL_RATELIMIT_TEST_UTIL_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/common/call_result.h"
#include "service/common/scheduler.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway::testing {

// Records each answer by key: its status, when it came, and how many times (must be once).
class AnswerLog {
 public:
  struct Entry {
    CallStatus status;
    absl::Time at;
    int count = 0;
  };

  explicit AnswerLog(Scheduler& clock) : clock_(clock) {}

  absl::AnyInvocable<void(CallStatus) &&> Callback(std::string key) {
    return [this, key = std::move(key)](CallStatus status) {
      std::lock_guard<std::mutex> lock(mu_);
      Entry& entry = entries_[key];
      entry.status = std::move(status);
      entry.at = clock_.Now();
      ++entry.count;
      order_.push_back(key);
    };
  }

  bool Has(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.count(key) > 0;
  }
  Entry Get(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    return it == entries_.end() ? Entry{absl::UnknownError("no answer"), absl::InfinitePast(), 0}
                                : it->second;
  }
  // Keys in the order their answers came.
  std::vector<std::string> Order() const {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }
  // Keys answered OK, in order.
  std::vector<std::string> Admitted() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> admitted;
    for (const std::string& key : order_) {
      if (entries_.at(key).status.ok()) admitted.push_back(key);
    }
    return admitted;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }

 private:
  Scheduler& clock_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;
};

// The most requests that any sliding window (t - window, t] holds, for sorted `times`.
inline int64_t MaxInAnyWindow(std::vector<absl::Time> times, absl::Duration window) {
  std::sort(times.begin(), times.end());
  int64_t best = 0;
  size_t first = 0;
  for (size_t last = 0; last < times.size(); ++last) {
    while (times[last] - times[first] >= window) ++first;
    best = std::max<int64_t>(best, static_cast<int64_t>(last - first + 1));
  }
  return best;
}

// The RetryInfo delay callers would see; -infinity without one.
inline absl::Duration RetryDelay(const CallStatus& status) {
  return wire::RetryDelay(status).value_or(-absl::InfiniteDuration());
}

// The ErrorInfo reason callers would see; "" without one.
inline std::string Reason(const CallStatus& status) { return wire::Reason(status); }

// The ErrorInfo metadata `cause` callers would see; "" without one.
inline std::string Cause(const CallStatus& status) {
  auto metadata = wire::Metadata(status);
  auto it = metadata.find("cause");
  return it == metadata.end() ? "" : it->second;
}

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_UTIL_RATELIMIT_TEST_UTIL_H_
