// What the emulator saw: a bounded ring of recorded requests (so a long benchmark cannot grow
// memory without bound) and counters per endpoint, per status and per fault.
//
// Only Userpilot-path requests are recorded and counted; the /_emulator/ admin API is not.
// Bodies are kept in full, byte-exact.
//
// Thread-safety: RequestLog is thread-safe. A recorded request is immutable once recorded and
// shared with the handler that serves it, so recording copies nothing.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_REQUEST_LOG_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_REQUEST_LOG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace userpilot::gateway::testing {

// What became of a request.
enum class Outcome {
  kPending,        // Still being served.
  kAnswered,       // Answered by the emulated API (any status, 429 from the limiter included).
  kInjectedError,  // Answered with a status chosen by fault injection.
  kDropped,        // Connection closed without an answer (fault injection).
  kHung,           // Held unanswered (fault injection); the connection closes when it ends.
};

// "pending", "answered", "injected_error", "dropped" or "hung".
absl::string_view OutcomeName(Outcome outcome);

// One request as received.
struct RecordedRequest {
  uint64_t seq = 0;      // 1, 2, 3, ... in order of arrival; survives ClearRequests().
  std::string method;    // "POST", "GET", ...
  std::string raw_path;  // The path exactly as sent, still percent-encoded, without the query.
  std::string path;      // raw_path percent-decoded ("%2F" becomes "/").
  std::string query;     // The raw query string without '?', "" when absent.
  std::vector<std::pair<std::string, std::string>> headers;  // Names lower-cased, in order.
  std::string body;                                          // Byte-exact.
  absl::Time received_at;
  int response_status = 0;  // 0 while pending and for dropped or hung requests.
  Outcome outcome = Outcome::kPending;

  // The value of the first header named `name` (give it lower-case), or "" when absent.
  absl::string_view Header(absl::string_view name) const;
};

// Counters since start (or the last ResetStats). Plain data.
struct EmulatorStats {
  int64_t requests = 0;                        // Userpilot-path requests received.
  std::map<std::string, int64_t> by_endpoint;  // "identify", "track", ..., "unknown".
  std::map<int, int64_t> by_status;            // Answers sent, by HTTP status.
  int64_t rate_limited = 0;                    // 429 answers from the rate limiter.
  int64_t injected_errors = 0;                 // Status answers chosen by fault injection.
  int64_t dropped = 0;                         // Connections dropped by fault injection.
  int64_t hung = 0;                            // Requests hung by fault injection.
};

class RequestLog {
 public:
  // Keeps the newest `capacity` requests; 0 records none (the counters still count).
  explicit RequestLog(size_t capacity) : capacity_(capacity) {}

  // Records a request that just arrived and counts it. Returns the shared, immutable record;
  // its `seq` is set. Thread-safe.
  std::shared_ptr<const RecordedRequest> Record(RecordedRequest request) ABSL_LOCKS_EXCLUDED(mu_);

  // Notes what became of request `seq` and counts it under `endpoint`. Thread-safe.
  void Finish(uint64_t seq, absl::string_view endpoint, Outcome outcome, int status,
              bool rate_limited) ABSL_LOCKS_EXCLUDED(mu_);

  // The retained requests, oldest first; only the newest `limit` when limit > 0. Thread-safe.
  std::vector<RecordedRequest> Requests(size_t limit = 0) const ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the retained requests (sequence numbers keep counting). Thread-safe.
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);
  // Requests recorded since the last Clear() that the ring no longer holds (overwritten by
  // newer ones, or never kept with capacity 0). Thread-safe.
  int64_t Evicted() const ABSL_LOCKS_EXCLUDED(mu_);

  EmulatorStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);
  void ResetStats() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Slot {
    std::shared_ptr<const RecordedRequest> request;
    int status = 0;
    Outcome outcome = Outcome::kPending;
  };

  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::vector<Slot> ring_ ABSL_GUARDED_BY(mu_);  // Grows to capacity_, then wraps.
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;         // Ring index of the next record.
  size_t size_ ABSL_GUARDED_BY(mu_) = 0;         // Live records in the ring.
  uint64_t last_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t evicted_ ABSL_GUARDED_BY(mu_) = 0;
  EmulatorStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_REQUEST_LOG_H_
