// RateLimitedStub: a UserpilotStub decorator that asks the method's budget (budgets.h) for a
// permit before forwarding each call, and tells the budget how Userpilot answered.
//
// Per call: Acquire(options.caller, options.deadline) on the budget of the method (the table
// in budgets.h). Refused: the caller gets the budget's status (RESOURCE_EXHAUSTED +
// BUDGET_EXHAUSTED details, DEADLINE_EXCEEDED, or UNAVAILABLE) and nothing is sent. Admitted:
// the call goes to the inner stub with the same options and a copy of the request (taken
// before waiting, since the caller's reference is valid only during the call). The inner
// stub's answer is passed through unchanged, after feedback to the budget:
//  - RESOURCE_EXHAUSTED with ErrorInfo UPSTREAM_RATE_LIMITED (Userpilot's 429):
//    OnUpstreamRateLimited(Retry-After, admission time). error_mapping gives every 429 a
//    RetryInfo, substituting kDefaultRateLimitedRetryDelay (1 s) when Userpilot named no delay,
//    and records which it was in the ErrorInfo metadata `retry_delay_source`
//    (RetryDelayFromUpstream). Only a delay Userpilot asked for (Retry-After or
//    X-RateLimit-Reset) is passed on as Retry-After, so the budget pauses exactly that long;
//    the default is not, so the budget backs off exponentially instead.
//  - OK: OnUpstreamSuccess(admission time).
//  - anything else: no feedback (5xx and transport failures are the retry policy's and
//    circuit breaker's business, not the budget's).
//
// Stack order: put this decorator INSIDE the retry decorator (retry -> rate limit -> HTTP), so
// every attempt, retries included, spends the budget and sees 429 feedback. The retry policy
// must not retry a BUDGET_EXHAUSTED refusal: the budget has already judged the deadline.
//
// Thread-safety: as UserpilotStub: every method from any thread. Callbacks run on the
// Scheduler's thread (refusals, admissions) or the inner stub's thread (answers), never inside
// the call.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_RATE_LIMITED_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_RATE_LIMITED_STUB_H_

#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/ratelimit/budgets.h"
#include "service/upstream/userpilot_stub.h"

namespace userpilot::gateway {

// What a Userpilot answer means for the budget that admitted it.
struct UpstreamFeedback {
  enum class Kind { kSuccess, kRateLimited, kNone };
  Kind kind = Kind::kNone;
  std::optional<absl::Duration> retry_after;  // kRateLimited only, when Userpilot sent one.
};
// Classifies `status` as described in the file comment.
UpstreamFeedback ClassifyUpstreamStatus(const absl::Status& status);

class RateLimitedStub final : public UserpilotStub {
 public:
  // `inner` and every budget must be non-null. Admitted calls keep `inner` alive (shared) until
  // they are forwarded, so the stub may be destroyed while calls wait.
  RateLimitedStub(std::shared_ptr<UserpilotStub> inner, Budgets budgets);

  void IdentifyUser(const CallOptions& options, const v1::IdentifyUserRequest& request,
                    StubCallback<v1::IdentifyUserResponse> done) override;
  void IdentifyCompany(const CallOptions& options, const v1::IdentifyCompanyRequest& request,
                       StubCallback<v1::IdentifyCompanyResponse> done) override;
  void BulkIdentifyUsers(const CallOptions& options, const v1::BulkIdentifyUsersRequest& request,
                         StubCallback<v1::Job> done) override;
  void BulkIdentifyCompanies(const CallOptions& options,
                             const v1::BulkIdentifyCompaniesRequest& request,
                             StubCallback<v1::Job> done) override;
  void TrackEvent(const CallOptions& options, const v1::TrackEventRequest& request,
                  StubCallback<v1::TrackEventResponse> done) override;
  void ListJobs(const CallOptions& options, const v1::ListJobsRequest& request,
                StubCallback<v1::ListJobsResponse> done) override;
  void GetJob(const CallOptions& options, const v1::GetJobRequest& request,
              StubCallback<v1::Job> done) override;
  void DeleteUsers(const CallOptions& options, const v1::DeleteUsersRequest& request,
                   StubCallback<v1::DeleteUsersResponse> done) override;
  void DeleteCompanies(const CallOptions& options, const v1::DeleteCompaniesRequest& request,
                       StubCallback<v1::DeleteCompaniesResponse> done) override;
  // USERS_BULK and COMPANIES_BULK spend the bulk budget; HISTORICAL_IMPORT (and an unset
  // target, which the inner stub refuses) the imports budget.
  void ImportFile(const CallOptions& options, const ImportFileRequest& request,
                  StubCallback<v1::Job> done) override;

  const Budgets& budgets() const { return budgets_; }

 private:
  template <typename Request, typename Response, typename Method>
  void Call(const std::shared_ptr<FairLimiter>& budget, const CallOptions& options,
            const Request& request, StubCallback<Response> done, Method method);

  const std::shared_ptr<UserpilotStub> inner_;
  const Budgets budgets_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_RATE_LIMITED_STUB_H_
