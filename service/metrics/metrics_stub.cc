#include "service/metrics/metrics_stub.h"

#include <utility>

#include "absl/time/clock.h"

namespace userpilot::gateway {

MetricsStub::MetricsStub(std::shared_ptr<UserpilotStub> inner, UpstreamMetrics& metrics)
    : inner_(std::move(inner)), metrics_(metrics) {
  metrics_.PrecreateEndpoints();
}

template <typename Request, typename Response>
void MetricsStub::Call(absl::string_view endpoint,
                       void (UserpilotStub::*method)(const CallOptions&, const Request&,
                                                     StubCallback<Response>),
                       const CallOptions& options, const Request& request,
                       StubCallback<Response> done) {
  const absl::Time start = absl::Now();
  ((*inner_).*method)(options, request,
                      [&metrics = metrics_, endpoint, start,
                       done = std::move(done)](absl::StatusOr<Response> result) mutable {
                        metrics.RecordAttempt(endpoint, result.status(), absl::Now() - start);
                        std::move(done)(std::move(result));
                      });
}

void MetricsStub::IdentifyUser(const CallOptions& options, const v1::IdentifyUserRequest& request,
                               StubCallback<v1::IdentifyUserResponse> done) {
  Call("POST /v1/identify", &UserpilotStub::IdentifyUser, options, request, std::move(done));
}

void MetricsStub::IdentifyCompany(const CallOptions& options,
                                  const v1::IdentifyCompanyRequest& request,
                                  StubCallback<v1::IdentifyCompanyResponse> done) {
  Call("POST /v1/companies/identify", &UserpilotStub::IdentifyCompany, options, request,
       std::move(done));
}

void MetricsStub::BulkIdentifyUsers(const CallOptions& options,
                                    const v1::BulkIdentifyUsersRequest& request,
                                    StubCallback<v1::Job> done) {
  Call("POST /v1/users/bulk_identify", &UserpilotStub::BulkIdentifyUsers, options, request,
       std::move(done));
}

void MetricsStub::BulkIdentifyCompanies(const CallOptions& options,
                                        const v1::BulkIdentifyCompaniesRequest& request,
                                        StubCallback<v1::Job> done) {
  Call("POST /v1/companies/bulk_identify", &UserpilotStub::BulkIdentifyCompanies, options, request,
       std::move(done));
}

void MetricsStub::TrackEvent(const CallOptions& options, const v1::TrackEventRequest& request,
                             StubCallback<v1::TrackEventResponse> done) {
  Call("POST /v1/track", &UserpilotStub::TrackEvent, options, request, std::move(done));
}

void MetricsStub::ListJobs(const CallOptions& options, const v1::ListJobsRequest& request,
                           StubCallback<v1::ListJobsResponse> done) {
  Call("GET /v1/background_jobs", &UserpilotStub::ListJobs, options, request, std::move(done));
}

void MetricsStub::GetJob(const CallOptions& options, const v1::GetJobRequest& request,
                         StubCallback<v1::Job> done) {
  Call("GET /v1/background_jobs/{job_id}", &UserpilotStub::GetJob, options, request,
       std::move(done));
}

void MetricsStub::DeleteUsers(const CallOptions& options, const v1::DeleteUsersRequest& request,
                              StubCallback<v1::DeleteUsersResponse> done) {
  Call("DELETE /v1/users", &UserpilotStub::DeleteUsers, options, request, std::move(done));
}

void MetricsStub::DeleteCompanies(const CallOptions& options,
                                  const v1::DeleteCompaniesRequest& request,
                                  StubCallback<v1::DeleteCompaniesResponse> done) {
  Call("DELETE /v1/companies", &UserpilotStub::DeleteCompanies, options, request, std::move(done));
}

void MetricsStub::ImportFile(const CallOptions& options, const ImportFileRequest& request,
                             StubCallback<v1::Job> done) {
  absl::string_view endpoint = "POST /v1/imports";
  if (request.target == v1::IMPORT_TARGET_USERS_BULK) endpoint = "POST /v1/users/bulk_identify";
  if (request.target == v1::IMPORT_TARGET_COMPANIES_BULK) {
    endpoint = "POST /v1/companies/bulk_identify";
  }
  Call(endpoint, &UserpilotStub::ImportFile, options, request, std::move(done));
}

}  // namespace userpilot::gateway
