#include "service/ratelimit/rate_limited_stub.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace userpilot::gateway {

UpstreamFeedback ClassifyUpstreamAnswer(const absl::Status& status, const CallFacts& facts) {
  UpstreamFeedback feedback;
  if (status.ok()) {
    feedback.kind = UpstreamFeedback::Kind::kSuccess;
  } else if (absl::IsResourceExhausted(status) &&
             facts.reason == ErrorReason::kUpstreamRateLimited) {
    // Userpilot's 429, not the gateway's own refusal (a budget, say).
    feedback.kind = UpstreamFeedback::Kind::kRateLimited;
    // Userpilot named no delay: the budget backs off instead.
    if (facts.retry_delay.has_value() && facts.retry_delay->FromUpstream()) {
      feedback.retry_after = facts.retry_delay->delay;
    }
  }
  return feedback;
}

RateLimitedStub::RateLimitedStub(std::shared_ptr<UserpilotStub> inner, Budgets budgets)
    : ForwardingStub(std::move(inner)), budgets_(std::move(budgets)) {
  for (const auto& budget : budgets_.All()) {
    if (budget == nullptr) {
      std::fprintf(stderr, "RateLimitedStub: null budget\n");
      std::abort();
    }
  }
}

template <typename Rpc>
void RateLimitedStub::Call(const CallOptions& options, const typename Rpc::Request& request,
                           StubCallback<typename Rpc::Response> done) {
  using Response = typename Rpc::Response;
  const std::shared_ptr<FairLimiter>& budget = budgets_.For(Routing<Rpc>::For(request).budget);
  if (budget == nullptr) {  // A job lane's call: no rate (job_lane.h keeps its rule).
    Forward<Rpc>(options, request, std::move(done));
    return;
  }
  budget->Acquire(options.caller, options.deadline,
                  [inner = inner(), weak_budget = std::weak_ptr<FairLimiter>(budget),
                   asked_at = budget->Now(), options, request = typename Rpc::Request(request),
                   done = std::move(done)](CallStatus admission) mutable {
                    if (!admission.ok()) {
                      // The time the call spent in the budget before the refusal (for one refused
                      // at once, the microseconds of the hop that delivers the answer).
                      if (auto refusing = weak_budget.lock()) {
                        admission.facts().budget_wait =
                            std::max(absl::ZeroDuration(), refusing->Now() - asked_at);
                      }
                      std::move(done)(std::move(admission));
                      return;
                    }
                    absl::Time admitted_at = absl::InfiniteFuture();
                    if (auto admitting = weak_budget.lock()) admitted_at = admitting->Now();
                    // The limiter's own measure, the one its wait histogram observed.
                    const absl::Duration wait = admission.facts().budget_wait;
                    InvokeRpc<Rpc>(
                        *inner, options, request,
                        [weak_budget, admitted_at, wait,
                         done = std::move(done)](Result<Response> result) mutable {
                          const UpstreamFeedback feedback =
                              ClassifyUpstreamAnswer(result.status(), result.facts());
                          if (feedback.kind != UpstreamFeedback::Kind::kNone) {
                            if (auto budget = weak_budget.lock()) {
                              if (feedback.kind == UpstreamFeedback::Kind::kSuccess) {
                                budget->OnUpstreamSuccess(admitted_at);
                              } else {
                                budget->OnUpstreamRateLimited(feedback.retry_after, admitted_at);
                                // The caller is told no longer a wait than the
                                // budget's own (capped) pause.
                                std::optional<RetryDelay>& delay = result.facts().retry_delay;
                                if (delay.has_value()) {
                                  delay->delay =
                                      std::min(delay->delay, budget->max_upstream_pause());
                                }
                              }
                            }
                          }
                          result.facts().budget_wait += wait;
                          std::move(done)(std::move(result));
                        });
                  });
}

// Every method of the interface, each calling its row's Call (declared extern in the header).
template class RpcDispatcher<RateLimitedStub>;

}  // namespace userpilot::gateway
