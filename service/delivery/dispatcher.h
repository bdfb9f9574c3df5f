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
// The bulk check (BulkGateOptions; dispatcher_gate.cc). A row of a bulk job whose end the
// dispatcher did not see may still be applied by Userpilot later; sending it again, or letting a
// later call of its user go, while that job runs would let the old row overwrite newer
// properties. So such records wait in the gate, leased (their keys held: nothing of their user
// goes meanwhile), until Userpilot reports that no bulk job runs (Userpilot runs one bulk job,
// users or companies, at a time per account; once none runs, the old job has ended and the
// next send cannot be overtaken by it). Records that wait there:
//   - leased in doubt (DeliveryStore in_doubt: the process or replica died, or stopped, while
//     an attempt was under way) and of a kind a bulk row can express: an identify a row
//     expresses exactly (bulk_rows.h), user or company; track and the rest never were rows;
//   - the rows of this dispatcher's job when the job may still run: the job's deadline cut it,
//     it could not be watched, or the bulk call failed in a way that may have started a job
//     (a request was made and its answer, if any, was not in the 4xx range).
// One ListJobs call (through the same stub: the job_read budget, caller `caller`) answers for
// every record waiting when it was made: no unfinished bulk job (job_lane.h UnfinishedJobOn)
// releases them to be sent singly (as a failed job's rows); records that came in after it
// was made wait for the next check, made at once. A job still running: checked again after
// `poll_interval`. A failed check: again after max(backoff(failures), poll_interval, the
// error's retry delay); nothing is released early. One check outstanding at a time, none when
// nothing waits. Every record waits at most `timeout` from when it came in; then it is released
// all the same (the job is taken for stuck), counted and reported (on_gate_released).
// Gated records are counted apart from max_in_flight (gated_rows()): they are bounded by what
// was in flight before (a crash hands back at most one job's rows and the single calls held).
//
// Coalescing (CoalesceOptions; off without a JobWatchRegistry or with threshold 0). When at
// least `threshold` identify calls of one kind (identify_user, or identify_company) are pending
// in the store (Stats().pending_by_kind), and no coalesced job is running, the dispatcher leases
// up to `max_rows` ready records of that kind at once - all heads of their ordering keys, so
// distinct users - and sends those a bulk row can express (bulk_rows.h) as ONE BulkIdentifyUsers
// (BulkIdentifyCompanies) call through the same stub, so the job lane keeps Userpilot's one bulk
// job at a time. The rows stay leased (their users' keys held: a later call for one of those
// users waits) until the job's outcome is known, watched through the JobWatchRegistry (polls on
// the job_read budget) with a deadline of `job_timeout`:
//   COMPLETED            every row delivered (an attempt each, counted "delivered");
//   FAILED, unknown job, the bulk call refused, the deadline, the job unreadable
//                        every row goes back to be sent as a single call: it stays leased (its
//                        keys held, so nothing of its user overtakes it) and joins the single
//                        calls' queue (through the bulk check first when the job may still
//                        run), so its next attempt is single by construction, never a bulk
//                        row again; no attempt is counted and nothing is written.
// Leases that expire (the Redis store: DeliveryStore::LeaseTimeout(), --queue_redis_lease_timeout)
// are renewed while the dispatcher holds records unsent: the running job's rows (a bulk job runs
// for minutes, far longer than a lease) and the records waiting for their pace (a failed job's
// rows may wait long). Every third of the lease timeout a scheduler timer hands the ids of what
// is held to one DeliveryStore::Renew(); its answer arms the next timer, so one Renew() is
// outstanding at a time; when nothing is held no timer runs. A record Renew() reports as no longer
// leased here (it expired after all, e.g. Redis was unreachable for most of the timeout, and
// another replica took it over, in doubt) is dropped: no outcome is recorded for it here, and it
// is counted (on_leases_lost). If this replica dies while a job runs, its rows' leases lapse and
// other replicas take them over after the lease timeout and send them singly (in doubt).
// Records of the coalescing lease that no row can express, or that do not fit, are sent singly
// (the same way) or handed back at once. A lease yielding fewer than 2 rows starts no job: its
// records are sent singly, and coalescing waits `idle_poll` before looking again. One coalesced
// job at a time; single calls (of every kind) keep flowing beside it.
//
// Bounds: at most `max_in_flight` single records leased at once, plus one coalesced job's rows
// (at most `max_rows`; when a job's rows fall back to single calls they count as single records
// and no new job starts until those drop below `max_in_flight`), plus the records waiting for
// the bulk check (above); one Lease() outstanding at a
// time; at most 256 outcomes being recorded at the store at once (the rest wait, in order); an
// idle dispatcher looks again every `idle_poll` (retry waits end, other replicas'
// leases expire) or at once when Wake() says a call was enqueued.
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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/common/call_result.h"
#include "service/common/scheduler.h"
#include "service/delivery/delivery_store.h"
#include "service/ratelimit/gcra.h"
#include "service/upstream/userpilot_stub.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

class JobWatchRegistry;
class JobSubscription;

// How one delivery attempt ended (the metric label).
enum class DeliveryAttemptOutcome { kDelivered, kRetry, kDead };
absl::string_view DeliveryAttemptOutcomeName(DeliveryAttemptOutcome outcome);

// What became of a coalesced job's rows (the metric label): "delivered", "returned" (to be sent
// as single calls, or left to the next lease at a stop).
enum class CoalescedRowOutcome { kDelivered, kReturned };
absl::string_view CoalescedRowOutcomeName(CoalescedRowOutcome outcome);

// How a coalesced bulk job ended (the metric label): "completed", "failed" (FAILED, or
// Userpilot no longer knows it), "refused" (the bulk call failed: no job), "timeout" (not
// ended within job_timeout, or unreadable), "stopped" (the dispatcher stopped while it ran).
enum class CoalescedJobOutcome { kCompleted, kFailed, kRefused, kTimeout, kStopped };
absl::string_view CoalescedJobOutcomeName(CoalescedJobOutcome outcome);

// What one bulk check (ListJobs) found (the metric label): "no_job" (no unfinished bulk job:
// the records it answered for go), "job_running", "failed" (the call failed: checked again
// after a backoff).
enum class BulkCheckResult { kNoJob, kJobRunning, kFailed };
absl::string_view BulkCheckResultName(BulkCheckResult result);

// Why records left the bulk check's wait (the metric label): "no_job" (a check found no bulk job
// running), "deadline" (BulkGateOptions::timeout passed first: sent all the same).
enum class BulkGateRelease { kNoJob, kDeadline };
absl::string_view BulkGateReleaseName(BulkGateRelease why);

// What the dispatcher reports (metrics). Every member may be null. Called from the
// dispatcher's callbacks: thread-safe, short.
struct DispatcherObserver {
  // An attempt ended; `in_doubt`: the record had been leased before without an outcome.
  std::function<void(DeliveryAttemptOutcome outcome, bool in_doubt)> on_attempt;
  // A Lease() or Complete() of the store failed.
  std::function<void(const absl::Status& status)> on_store_error;
  // A coalesced job ended, with `rows` rows, which had `row_outcome`; `why` says how it ended
  // (for a log line).
  std::function<void(CoalescedJobOutcome job, CoalescedRowOutcome row_outcome, size_t rows,
                     const std::string& why)>
      on_coalesced_job;
  // Renew() said `records` held records (unsent) were no longer leased by this replica: another
  // replica took them over; no outcome is recorded for them here.
  std::function<void(size_t records)> on_leases_lost;
  // A bulk check answered; `waiting`: records waiting for it then; `detail`: the running job's
  // id (kJobRunning), or the failure (kFailed).
  std::function<void(BulkCheckResult result, size_t waiting, const std::string& detail)>
      on_bulk_check;
  // `records` left the bulk check's wait; for kDeadline `detail` says what was last known (the
  // job seen running, or the last failure).
  std::function<void(BulkGateRelease why, size_t records, const std::string& detail)>
      on_gate_released;
};

// Coalescing queued identifies into bulk jobs (see the class comment).
struct CoalesceOptions {
  // Pending identify calls of one kind at which coalescing starts; 0: never.
  size_t threshold = 0;
  // Most rows in one job: at most the validator's max_bulk_rows (<= 10,000, Userpilot's limit)
  // and kMaxLeaseRecords.
  size_t max_rows = 10000;
  // The bulk request's bound, serialized (the validator's max_bulk_request_bytes).
  size_t max_request_bytes = 16 << 20;
  // How long the rows wait for the job's end, from sending the bulk call.
  absl::Duration job_timeout = absl::Minutes(20);
};

// The bulk check (see the class comment).
struct BulkGateOptions {
  // Between two checks while a bulk job runs (--job_lane_poll_interval: as often as a job lane
  // polls the job it waits for); > 0.
  absl::Duration poll_interval = absl::Seconds(2);
  // The longest a record waits for the check, from when it came in (--queue_coalesce_job_timeout).
  absl::Duration timeout = absl::Minutes(20);
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
  CoalesceOptions coalesce;
  BulkGateOptions bulk_gate;
  DispatcherObserver observer;
};

// The interval that keeps the dispatcher at (1 - sync_share) of `limit` per `window`, spread
// over `replicas` dispatchers; at least one call per window, so the queue never stalls.
absl::Duration PaceFor(int64_t limit, absl::Duration window, double sync_share, int replicas);

class Dispatcher {
 public:
  // `store`, `stub` and `scheduler` must outlive the dispatcher; `jobs` (null: no coalescing)
  // must stay valid until Stop() returns (the dispatcher closes its watch there).
  Dispatcher(DeliveryStore& store, UserpilotStub& stub, Scheduler& scheduler,
             DispatcherOptions options, JobWatchRegistry* jobs = nullptr);
  ~Dispatcher();  // Stop() and Join().

  // Starts leasing.
  void Start();
  // A call was enqueued: look for ready records now rather than at the next idle poll.
  void Wake();
  // Stops leasing; records waiting for their pace are handed back (retry at once). The rows of a
  // coalesced job sent and not yet ended, and the records waiting for the bulk check, are left
  // leased without an outcome: a restarted gateway (or, after the lease timeout, another
  // replica) leases them again in doubt, so they wait for the bulk check there. Calls in flight
  // finish and record their outcome. After it returns the stub is never called again.
  // Idempotent; blocks only while a call is being handed to the stub.
  void Stop();
  // Blocks until every outstanding store call, stub call and timer has answered. After Stop().
  void Join();

  // Records leased and not yet completed (for tests and metrics), but for the rows of a running
  // coalesced job (coalesced_rows()) and those waiting for the bulk check (gated_rows()).
  size_t in_flight() const;
  // Rows of the coalesced job now running (0: none): leased, waiting for the job's end.
  size_t coalesced_rows() const;
  // Records waiting for the bulk check: leased, unsent.
  size_t gated_rows() const;

 private:
  struct Held {
    LeasedDelivery record;
    v1::EnqueueRequest request;
    BudgetId budget = BudgetId::kIdentify;
  };
  class JobSink;
  // The coalesced job: its rows (leased, keys held) until its outcome is known.
  struct Job {
    uint64_t number = 0;
    uint32_t kind = 0;
    std::vector<Held> rows;
    // The request (one of the two, by kind); shared with the call in flight.
    std::shared_ptr<const v1::BulkIdentifyUsersRequest> users;
    std::shared_ptr<const v1::BulkIdentifyCompaniesRequest> companies;
    bool sent = false;   // The bulk call was handed to the stub.
    std::string job_id;  // Once Userpilot answered.
    std::shared_ptr<JobSubscription> subscription;
    JobSink* sink = nullptr;  // One reference held while subscribed.
    std::optional<Scheduler::TimerId> deadline_timer;
    std::optional<Scheduler::TimerId> rewatch_timer;  // The watch bound was reached: again.
  };

  void Pump();
  void OnLeased(absl::StatusOr<std::vector<LeasedDelivery>> leased);
  // Coalescing (dispatcher_coalesce.cc).
  bool CoalescingOn() const;
  std::optional<uint32_t> CoalesceKind(absl::Time now) const;  // Reads the store's Stats().
  void OnCoalesceLeased(uint32_t kind, absl::StatusOr<std::vector<LeasedDelivery>> leased);
  void SendJob();
  void OnJobAnswer(uint64_t job, Result<v1::Job> answer);
  void WatchJob(uint64_t job);
  void OnJobWatchReady(uint64_t job);
  // `may_still_run`: the job may still run at Userpilot (its rows wait for the bulk check).
  void EndJob(uint64_t job, CoalescedJobOutcome outcome, const std::string& why,
              bool may_still_run);
  // Takes the job out (under mu_): its timers cancelled and subscription detached by Release.
  std::unique_ptr<Job> TakeJobLocked();
  void ReleaseJob(Job& job);
  bool ParseLocked(LeasedDelivery& record, Held& held,
                   std::vector<std::pair<std::string, std::string>>& undeliverable);
  // After a Lease() answered (not under mu_): reports its failure, records what ParseLocked
  // found undeliverable as dead letters.
  void AfterLease(const absl::Status& status,
                  std::vector<std::pair<std::string, std::string>>& undeliverable);
  // The bulk check (dispatcher_gate.cc).
  // True when `held` (parsed) is in doubt and may have been a bulk row.
  static bool MayBeInABulkJob(const Held& held);
  void GateLocked(Held held, absl::Time now);
  // Releases what passed its deadline, starts a check when one is due, arms the gate's timer.
  void RunGate();
  void OnGateChecked(uint64_t covers, Result<v1::ListJobsResponse> jobs);
  // Moves the first `n` gated records to the single calls' queue.
  void ReleaseGatedLocked(size_t n);
  void Drain();
  void Send(Held held);
  void Finish(const DeliveryInfo& info, bool in_doubt, const absl::Status& status,
              const CallFacts& facts);
  // Records an outcome. At most kMaxCompleting Complete()s are outstanding at the store at once
  // (a job's 10,000 rows end together; a Redis client refuses commands beyond its bound); the
  // rest wait in completions_, in order.
  void Complete(const std::string& id, DeliveryOutcome outcome);
  void IssueCompletions();
  void SchedulePollLocked(absl::Time when);
  // Lease renewal (see the class comment): arms the timer when records are held unsent.
  void ArmRenewalLocked(absl::Time from);
  void RenewHeld();
  void OnRenewed(const std::vector<std::string>& ids, const std::vector<absl::Status>& statuses,
                 absl::Time fired);
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
  // Every third of the store's lease timeout; InfiniteDuration: its leases never expire.
  const absl::Duration renew_interval_;
  std::optional<Scheduler::TimerId> renew_timer_;
  bool renew_outstanding_ = false;
  static constexpr size_t kMaxCompleting = 256;
  std::deque<std::pair<std::string, DeliveryOutcome>> completions_;  // Not yet handed over.
  size_t completing_ = 0;  // Complete()s outstanding at the store.
  bool issuing_ = false;   // A thread is in IssueCompletions()' loop.

  JobWatchRegistry* const jobs_;
  std::unique_ptr<Job> job_;  // The coalesced job running, if any.
  uint64_t next_job_ = 1;     // Job numbers, so late answers for an ended job are dropped.
  absl::Time coalesce_not_before_ = absl::InfinitePast();

  // The bulk check's wait: records in the order they came in, each with its number (a check
  // answers for those numbered below what was next when it was made) and deadline.
  struct Gated {
    Held held;
    uint64_t seq = 0;
    absl::Time deadline;
  };
  std::deque<Gated> gated_;
  uint64_t next_gate_seq_ = 1;
  bool gate_checking_ = false;  // A ListJobs outstanding.
  absl::Time gate_next_check_ = absl::InfinitePast();
  std::optional<Scheduler::TimerId> gate_timer_;
  absl::Time gate_timer_at_ = absl::InfiniteFuture();
  uint32_t gate_failures_ = 0;   // Checks failed in a row.
  std::string gate_last_known_;  // The job last seen running, or the last failure.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_DISPATCHER_H_
