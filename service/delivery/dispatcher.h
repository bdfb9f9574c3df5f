// Dispatcher: delivers what Enqueue stored. It leases ready records from a DeliveryStore, sends
// each through the gateway's own upstream stack (the same UserpilotStub every synchronous call
// goes through: the same budgets, retries, breaker and job lanes) and records the outcome.
//
// Order. The store leases only records at the head of every one of their ordering keys
// ("user:<id>", "company:<id>"), and a leased record keeps its keys until Complete(): so at most
// one call per user (per company) is in flight, and calls for one user reach Userpilot in the
// order they were acknowledged.
//
// Budgets. Each call spends its budget like a synchronous one (caller name `caller`, so the
// budget's fair queue serves synchronous callers beside it). On top, the dispatcher paces
// itself per budget to (1 - sync_share) of the budget's rate (shared budgets: of this
// replica's part of it), so a deep backlog leaves synchronous callers at least `sync_share` of
// every window. Records waiting for their pace are held leased (counted in max_in_flight) and
// sent from a timer: no thread waits.
//
// Outcomes. Success: delivered. Userpilot refusing the request itself (a 4xx that is not about
// rates or credentials: ErrorReason UPSTREAM_REJECTED_REQUEST, e.g. a 400) or the gateway's own
// validation refusing it: a dead letter, with the reason. Anything else (budget refusals, 429,
// 5xx, timeouts, rejected credentials, shutdown): retried later, after
// max(the error's retry delay, backoff(attempts)) where backoff doubles from `min_backoff` to
// `max_backoff`. A record leased again after a crash (in_doubt) may be a duplicate: counted.
//
// Bounds: at most `max_in_flight` records leased at once; one Lease() outstanding at a time;
// an idle dispatcher looks again every `idle_poll` (retry waits end, other replicas' leases
// expire) or at once when Wake() says a call was enqueued.
//
// Thread-safety: every public method may be called from any thread. Callbacks of the store,
// the stub and the scheduler run on their threads; none blocks. Stop() then Join() before
// destroying: Join() blocks until every callback the dispatcher is owed has run, so the stub
// (and its HTTP client) must be shut down or keep answering meanwhile.
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_DISPATCHER_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_DISPATCHER_H_

#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/common/call_result.h"
#include "service/common/scheduler.h"
#include "service/delivery/delivery_store.h"
#include "service/ratelimit/gcra.h"
#include "service/upstream/userpilot_stub.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// How one delivery attempt ended (the metric label).
enum class DeliveryAttemptOutcome { kDelivered, kRetry, kDead };
absl::string_view DeliveryAttemptOutcomeName(DeliveryAttemptOutcome outcome);

// What the dispatcher reports (metrics). Every member may be null. Called from the
// dispatcher's callbacks: thread-safe, short.
struct DispatcherObserver {
  // An attempt ended; `in_doubt`: the record had been leased before without an outcome.
  std::function<void(DeliveryAttemptOutcome outcome, bool in_doubt)> on_attempt;
  // A Lease() or Complete() of the store failed.
  std::function<void(const absl::Status& status)> on_store_error;
};

struct DispatcherOptions {
  size_t max_in_flight = 64;  // >= 1
  absl::Duration idle_poll = absl::Milliseconds(500);
  // The deadline of each delivery call (the stack's retries happen within it).
  absl::Duration attempt_deadline = absl::Seconds(30);
  absl::Duration min_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(5);
  // The `x-caller` name dispatched calls spend budgets under.
  std::string caller = "delivery";
  // Per BudgetId: the dispatcher's own pace, an interval between its calls; nullopt: not paced
  // beyond the budget itself. PaceFor() computes it from a budget's rate and sync_share.
  std::array<std::optional<absl::Duration>, kBudgetCount> pace;
  DispatcherObserver observer;
};

// The interval that keeps the dispatcher at (1 - sync_share) of `limit` per `window`, spread
// over `replicas` dispatchers; at least one call per window, so the queue never stalls.
absl::Duration PaceFor(int64_t limit, absl::Duration window, double sync_share, int replicas);

class Dispatcher {
 public:
  // `store`, `stub` and `scheduler` must outlive the dispatcher.
  Dispatcher(DeliveryStore& store, UserpilotStub& stub, Scheduler& scheduler,
             DispatcherOptions options);
  ~Dispatcher();  // Stop() and Join().

  // Starts leasing.
  void Start();
  // A call was enqueued: look for ready records now rather than at the next idle poll.
  void Wake();
  // Stops leasing; records waiting for their pace are handed back (retry at once). Calls in
  // flight finish and record their outcome. After it returns the stub is never called again.
  // Idempotent; blocks only while a call is being handed to the stub.
  void Stop();
  // Blocks until every outstanding store call, stub call and timer has answered. After Stop().
  void Join();

  // Records leased and not yet completed (for tests and metrics).
  size_t in_flight() const;

 private:
  struct Held {
    LeasedDelivery record;
    v1::EnqueueRequest request;
    BudgetId budget = BudgetId::kIdentify;
  };

  void Pump();
  void OnLeased(absl::StatusOr<std::vector<LeasedDelivery>> leased);
  void Drain();
  void Send(Held held);
  void Finish(const DeliveryInfo& info, bool in_doubt, const absl::Status& status,
              const CallFacts& facts);
  void Complete(const std::string& id, DeliveryOutcome outcome);
  void SchedulePollLocked(absl::Time when);
  void EndOpLocked();
  absl::Duration BackoffFor(uint32_t attempts) const;

  DeliveryStore& store_;
  UserpilotStub& stub_;
  Scheduler& scheduler_;
  const DispatcherOptions options_;

  // Held while a call is handed to the stub, and by Stop(): once Stop() returns, no call is
  // being or will be handed to the stub (so the stub may be destroyed before Join()).
  std::mutex send_mu_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  bool started_ = false;
  bool stopping_ = false;
  bool lease_outstanding_ = false;
  bool woken_ = false;  // Wake() while a Lease() was outstanding.
  size_t in_flight_ = 0;
  size_t ops_ = 0;  // Outstanding store calls, stub calls and timers.
  std::optional<Scheduler::TimerId> poll_timer_;
  std::array<std::deque<Held>, kBudgetCount> waiting_;  // Leased, waiting for their pace.
  std::array<std::optional<Gcra>, kBudgetCount> pacers_;
  std::array<std::optional<Scheduler::TimerId>, kBudgetCount> pace_timers_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_DISPATCHER_H_
