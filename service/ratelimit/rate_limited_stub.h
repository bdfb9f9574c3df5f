// RateLimitedStub: a UserpilotStub decorator that asks the call's budget (budgets.h) for a
// permit before forwarding each call, and tells the budget how Userpilot answered.
//
// Per call: Acquire(options.caller, options.deadline) on the budget of the call's route (the
// Budget column of upstream/upstream_rpcs.h). Bulk identify and import calls have no budget
// (Budgets::For gives null: their rule is one job at a time, job_lane.h) and go straight
// through.
// Refused: the caller gets the budget's refusal (RESOURCE_EXHAUSTED with the BUDGET_EXHAUSTED
// facts, DEADLINE_EXCEEDED, or UNAVAILABLE) and nothing is sent. Admitted: the call goes to the
// inner stub with the same options and a copy of the request (taken before waiting, since the
// caller's reference is valid only during the call). The inner stub's answer is passed through
// with the wait added to its facts (budget_wait: the limiter's own measure from Acquire() to
// the permit, the value its wait histogram observed; a refusal carries the time the call spent
// in the budget before it), after feedback to the budget:
//  - RESOURCE_EXHAUSTED with reason UPSTREAM_RATE_LIMITED (Userpilot's 429):
//    OnUpstreamRateLimited(Retry-After, admission time). error_mapping gives every 429 a retry
//    delay, substituting kDefaultRateLimitedRetryDelay (1 s) when Userpilot named none, and
//    records where it came from (RetryDelay::source). Only a delay Userpilot asked for
//    (Retry-After or X-RateLimit-Reset) is passed on as Retry-After, so the budget pauses
//    exactly that long; the default is not, so the budget backs off exponentially instead.
//  - OK: OnUpstreamSuccess(admission time).
//  - anything else: no feedback (5xx and transport failures are the retry policy's and
//    circuit breaker's business, not the budget's).
//
// Stack order: put this decorator INSIDE the retry decorator (retry -> rate limit -> HTTP), so
// every attempt, retries included, spends the budget and sees 429 feedback. The retry policy
// must not retry a BUDGET_EXHAUSTED refusal: the budget has already judged the deadline.
//
// Thread-safety: as UserpilotStub: every method from any thread. Callbacks run on the
// Scheduler's thread (refusals, admissions after a wait) or the inner stub's thread (answers);
// a call admitted inside Acquire() is forwarded on the caller's thread, so its answer runs
// inside the call when the inner stub answers inline.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_RATE_LIMITED_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_RATE_LIMITED_STUB_H_

#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/ratelimit/budgets.h"
#include "service/upstream/forwarding_stub.h"

namespace userpilot::gateway {

// What a Userpilot answer means for the budget that admitted it.
struct UpstreamFeedback {
  enum class Kind { kSuccess, kRateLimited, kNone };
  Kind kind = Kind::kNone;
  std::optional<absl::Duration> retry_after;  // kRateLimited only, when Userpilot sent one.
};
// Classifies an answer (its code and facts) as described in the file comment.
UpstreamFeedback ClassifyUpstreamAnswer(const absl::Status& status, const CallFacts& facts);

class RateLimitedStub final : public ForwardingStub<RateLimitedStub> {
 public:
  // `inner` and every budget must be non-null. Admitted calls keep `inner` alive (shared) until
  // they are forwarded, so the stub may be destroyed while calls wait.
  RateLimitedStub(std::shared_ptr<UserpilotStub> inner, Budgets budgets);

  // Every RPC (ForwardingStub's hook): admission by the route's budget, then the call.
  template <typename Rpc>
  void Call(const CallOptions& options, const typename Rpc::Request& request,
            StubCallback<typename Rpc::Response> done);

  const Budgets& budgets() const { return budgets_; }

 private:
  const Budgets budgets_;
};

// Instantiated in the .cc file, where Call<Rpc> is defined.
extern template class RpcDispatcher<RateLimitedStub>;

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_RATE_LIMITED_STUB_H_
