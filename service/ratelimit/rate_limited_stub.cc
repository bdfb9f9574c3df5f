#include "service/ratelimit/rate_limited_stub.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "service/common/status_details.h"
#include "service/upstream/error_mapping.h"

namespace userpilot::gateway {

UpstreamFeedback ClassifyUpstreamStatus(const absl::Status& status) {
  UpstreamFeedback feedback;
  if (status.ok()) {
    feedback.kind = UpstreamFeedback::Kind::kSuccess;
    return feedback;
  }
  if (!absl::IsResourceExhausted(status)) return feedback;
  const auto info = GetDetail<google::rpc::ErrorInfo>(status);
  if (!info.has_value() || info->domain() != kErrorDomain ||
      info->reason() != kReasonUpstreamRateLimited) {
    return feedback;  // The gateway's own refusal (a budget, say), not Userpilot's 429.
  }
  feedback.kind = UpstreamFeedback::Kind::kRateLimited;
  if (!RetryDelayFromUpstream(status)) return feedback;  // Userpilot named no delay: back off.
  if (const auto retry = GetDetail<google::rpc::RetryInfo>(status);
      retry.has_value() && retry->has_retry_delay()) {
    feedback.retry_after = absl::Seconds(retry->retry_delay().seconds()) +
                           absl::Nanoseconds(retry->retry_delay().nanos());
  }
  return feedback;
}

RateLimitedStub::RateLimitedStub(std::shared_ptr<UserpilotStub> inner, Budgets budgets)
    : inner_(std::move(inner)), budgets_(std::move(budgets)) {
  for (const auto& budget : budgets_.All()) {
    if (inner_ == nullptr || budget == nullptr) {
      std::fprintf(stderr, "RateLimitedStub: null inner stub or budget\n");
      std::abort();
    }
  }
}

template <typename Request, typename Response, typename Method>
void RateLimitedStub::Call(const std::shared_ptr<FairLimiter>& budget, const CallOptions& options,
                           const Request& request, StubCallback<Response> done, Method method) {
  budget->Acquire(
      options.caller, options.deadline,
      [inner = inner_, weak_budget = std::weak_ptr<FairLimiter>(budget), options,
       request = Request(request), done = std::move(done), method](absl::Status admission) mutable {
        if (!admission.ok()) {
          std::move(done)(std::move(admission));
          return;
        }
        absl::Time admitted_at = absl::InfiniteFuture();
        if (auto admitting = weak_budget.lock()) admitted_at = admitting->Now();
        ((*inner).*method)(options, request,
                           [weak_budget, admitted_at,
                            done = std::move(done)](absl::StatusOr<Response> result) mutable {
                             const UpstreamFeedback feedback =
                                 ClassifyUpstreamStatus(result.status());
                             if (feedback.kind != UpstreamFeedback::Kind::kNone) {
                               if (auto budget = weak_budget.lock()) {
                                 if (feedback.kind == UpstreamFeedback::Kind::kSuccess) {
                                   budget->OnUpstreamSuccess(admitted_at);
                                 } else {
                                   budget->OnUpstreamRateLimited(feedback.retry_after, admitted_at);
                                 }
                               }
                             }
                             std::move(done)(std::move(result));
                           });
      });
}

void RateLimitedStub::IdentifyUser(const CallOptions& options,
                                   const v1::IdentifyUserRequest& request,
                                   StubCallback<v1::IdentifyUserResponse> done) {
  Call(budgets_.identify, options, request, std::move(done), &UserpilotStub::IdentifyUser);
}

void RateLimitedStub::IdentifyCompany(const CallOptions& options,
                                      const v1::IdentifyCompanyRequest& request,
                                      StubCallback<v1::IdentifyCompanyResponse> done) {
  Call(budgets_.identify, options, request, std::move(done), &UserpilotStub::IdentifyCompany);
}

void RateLimitedStub::BulkIdentifyUsers(const CallOptions& options,
                                        const v1::BulkIdentifyUsersRequest& request,
                                        StubCallback<v1::Job> done) {
  Call(budgets_.bulk, options, request, std::move(done), &UserpilotStub::BulkIdentifyUsers);
}

void RateLimitedStub::BulkIdentifyCompanies(const CallOptions& options,
                                            const v1::BulkIdentifyCompaniesRequest& request,
                                            StubCallback<v1::Job> done) {
  Call(budgets_.bulk, options, request, std::move(done), &UserpilotStub::BulkIdentifyCompanies);
}

void RateLimitedStub::TrackEvent(const CallOptions& options, const v1::TrackEventRequest& request,
                                 StubCallback<v1::TrackEventResponse> done) {
  Call(budgets_.track, options, request, std::move(done), &UserpilotStub::TrackEvent);
}

void RateLimitedStub::ListJobs(const CallOptions& options, const v1::ListJobsRequest& request,
                               StubCallback<v1::ListJobsResponse> done) {
  Call(budgets_.job_reads, options, request, std::move(done), &UserpilotStub::ListJobs);
}

void RateLimitedStub::GetJob(const CallOptions& options, const v1::GetJobRequest& request,
                             StubCallback<v1::Job> done) {
  Call(budgets_.job_reads, options, request, std::move(done), &UserpilotStub::GetJob);
}

void RateLimitedStub::DeleteUsers(const CallOptions& options, const v1::DeleteUsersRequest& request,
                                  StubCallback<v1::DeleteUsersResponse> done) {
  Call(budgets_.deletes, options, request, std::move(done), &UserpilotStub::DeleteUsers);
}

void RateLimitedStub::DeleteCompanies(const CallOptions& options,
                                      const v1::DeleteCompaniesRequest& request,
                                      StubCallback<v1::DeleteCompaniesResponse> done) {
  Call(budgets_.deletes, options, request, std::move(done), &UserpilotStub::DeleteCompanies);
}

void RateLimitedStub::ImportFile(const CallOptions& options, const ImportFileRequest& request,
                                 StubCallback<v1::Job> done) {
  const bool bulk = request.target == v1::IMPORT_TARGET_USERS_BULK ||
                    request.target == v1::IMPORT_TARGET_COMPANIES_BULK;
  Call(bulk ? budgets_.bulk : budgets_.imports, options, request, std::move(done),
       &UserpilotStub::ImportFile);
}

}  // namespace userpilot::gateway
