// JobLaneStub: Userpilot's job rule - one bulk identify job (users or companies) at a time, one
// import job at a time - kept by the gateway instead of an invented rate.
//
// Two lanes, by the route's budget column (upstream/upstream_rpcs.h): "bulk" for
// BulkIdentifyUsers, BulkIdentifyCompanies and ImportFile to a bulk target (BudgetId::kBulk),
// "imports" for ImportFile to a historical import (BudgetId::kImports). Every other call passes
// straight through.
//
// Per lane, the gateway remembers the job it last submitted there while that job may be
// unfinished. A new call on the lane:
//  1. waits its turn: one call per lane at a time is checked and sent; the others wait in a
//     FIFO of at most `max_waiting` calls (a fuller lane refuses at once); a waiting call whose
//     deadline (less `headroom`) comes is refused then, never left to expire;
//  2. if the remembered job may be unfinished, polls it (GetJob through the layers below, so
//     on the job_read budget) every `poll_interval` until it is COMPLETED or FAILED (or
//     Userpilot no longer knows it); when the next poll would come after the call's deadline
//     less `headroom`, the call is refused at once;
//  3. is sent. Its answer's job becomes the lane's remembered job (unless already finished).
//     A 409 (JOB_IN_PROGRESS: a job started elsewhere - another replica, another client of the
//     key) names no job, so the lane asks ListJobs for an unfinished job of its kind ("import"
//     for the imports lane, any other type for the bulk lane), remembers it and goes back to
//     step 2, once; when none is found the 409 is the answer.
// A refusal is FAILED_PRECONDITION with reason JOB_IN_PROGRESS (common/call_facts.h) and the
// running job's id when known (ErrorInfo metadata `job_id`): nothing was sent.
//
// Why here, outermost in the upstream stack (upstream_stack.h): a wait for a job is not an
// attempt, so it belongs above the retry layer; the polls go through retry and the job_read
// budget like any GetJob.
//
// Lifetime: the Scheduler must outlive the stub and every call made through it; waiting calls
// keep the lane state and the inner stub alive. Destroying the stub does not answer waiting
// calls early: each is answered by its poll or its deadline.
//
// Observable: Stats() (read at scrape by the lane metrics) and JobLaneOptions::observer (every
// send's wait).
//
// Thread-safety: as UserpilotStub: every method from any thread. Answers run on the inner
// stub's threads or the Scheduler's thread; a refusal for a full lane is posted to the
// Scheduler, never run inside the call.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_JOB_LANE_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_JOB_LANE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "service/common/scheduler.h"
#include "service/ratelimit/rate_limit_options.h"
#include "service/upstream/forwarding_stub.h"

namespace userpilot::gateway {

// A snapshot of one lane, for metrics (JobLaneMetrics, at scrape) and tests. Counters only grow.
struct JobLaneStats {
  std::string lane;            // "bulk", "imports"
  size_t waiting = 0;          // Calls waiting their turn (the one being checked not included).
  size_t max_waiting = 0;      // Their bound (JobLaneOptions::max_waiting).
  std::string remembered_job;  // The job the lane waits for before the next send; "" if none.
  uint64_t sent = 0;           // Sends to Userpilot (a call sent again after a 409: twice).
  // Of those, sent after waiting its turn or after a poll that found the job running.
  uint64_t waited = 0;
  // Calls the lane refused (FAILED_PRECONDITION / JOB_IN_PROGRESS, nothing sent), by why:
  uint64_t refused_lane_full = 0;  // max_waiting calls already waited.
  uint64_t refused_deadline = 0;   // Its deadline (less headroom) came while it waited its turn.
  uint64_t refused_job_unfinished = 0;  // The job would not end before its deadline.
  uint64_t conflicts = 0;               // 409s from Userpilot for a job started elsewhere.

  uint64_t refused() const { return refused_lane_full + refused_deadline + refused_job_unfinished; }
};

// The id of the first job in `jobs` (a ListJobs answer) that is not finished (neither COMPLETED
// nor FAILED) and runs on `lane`: BudgetId::kImports for an "import" job, BudgetId::kBulk for any
// other type (users or companies bulk identify). Empty: none. How a lane finds the job a 409 was
// about, and how the dispatcher learns whether a bulk job may still run (dispatcher.h).
std::string UnfinishedJobOn(BudgetId lane, const v1::ListJobsResponse& jobs);

class JobLaneStub final : public ForwardingStub<JobLaneStub> {
 public:
  // `inner` must not be null; `scheduler` must outlive the stub and its calls. Aborts on
  // invalid options (JobLaneOptions::Validate at start-up gives a clear error).
  JobLaneStub(std::shared_ptr<UserpilotStub> inner, Scheduler& scheduler, JobLaneOptions options);

  // Every RPC (ForwardingStub's hook): the lane's rule for the bulk and import routes, a plain
  // forward otherwise.
  template <typename Rpc>
  void Call(const CallOptions& options, const typename Rpc::Request& request,
            StubCallback<typename Rpc::Response> done);

  // Both lanes, bulk first.
  std::vector<JobLaneStats> Stats() const;

  class Lane;  // Defined in the .cc file.

  // One call on a lane, type-erased: `send(answer)` sends it (again after a 409) and hands
  // Userpilot's answer to `answer`; `answer` answers the caller (the sent call's result, or a
  // refusal).
  struct Entry {
    absl::Time deadline;
    absl::Time entered;  // When the call entered the lane (Scheduler::Now), for its wait.
    absl::AnyInvocable<void(StubCallback<v1::Job>)> send;
    StubCallback<v1::Job> answer;
  };

 private:
  void Enter(BudgetId lane, Entry entry);

  Scheduler& scheduler_;
  std::shared_ptr<Lane> bulk_;
  std::shared_ptr<Lane> imports_;
};

template <typename Rpc>
void JobLaneStub::Call(const CallOptions& options, const typename Rpc::Request& request,
                       StubCallback<typename Rpc::Response> done) {
  if constexpr (std::is_same_v<typename Rpc::Response, v1::Job>) {
    const BudgetId lane = Routing<Rpc>::For(request).budget;
    if (lane == BudgetId::kBulk || lane == BudgetId::kImports) {
      Entry entry;
      entry.deadline = options.deadline;
      // A copy of the request: the caller's reference is valid only during this call.
      entry.send = [inner = inner(), options, request = typename Rpc::Request(request)](
                       StubCallback<v1::Job> answer) mutable {
        InvokeRpc<Rpc>(*inner, options, request, std::move(answer));
      };
      entry.answer = std::move(done);
      Enter(lane, std::move(entry));
      return;
    }
  }
  Forward<Rpc>(options, request, std::move(done));
}

extern template class RpcDispatcher<JobLaneStub>;

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_JOB_LANE_H_
