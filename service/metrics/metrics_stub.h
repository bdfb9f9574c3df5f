// MetricsStub: the UserpilotStub decorator that counts what reaches Userpilot - requests by
// endpoint and HTTP status class, their latency, and errors by ErrorInfo reason - into
// UpstreamMetrics.
//
// Stack position: directly around the HTTP stub, innermost of the decorators,
//     RetryingStub -> RateLimitedStub -> MetricsStub -> HttpUserpilotStub
// so that each HTTP attempt (retries included) is one request, its latency is the attempt's,
// and the gateway's own refusals (budget, circuit breaker) never count as upstream traffic.
// The status class comes from the outcome itself (OK, or the ErrorInfo `http_status` the
// error mapping sets), not from CallTrace, which the retry layer shares between attempts.
//
// Lifetimes: `inner` is shared with calls in flight; `metrics` must outlive the stub and every
// call it started.
//
// Thread-safety: as UserpilotStub. The callback runs where the inner stub runs it (the HTTP
// event thread), after one short metrics update.
#ifndef USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_STUB_H_

#include <memory>

#include "absl/strings/string_view.h"
#include "service/metrics/gateway_metrics.h"
#include "service/upstream/userpilot_stub.h"

namespace userpilot::gateway {

class MetricsStub final : public UserpilotStub {
 public:
  // Creates every endpoint's series at zero (UpstreamMetrics::PrecreateEndpoints).
  MetricsStub(std::shared_ptr<UserpilotStub> inner, UpstreamMetrics& metrics);

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
  // Counted under the endpoint of the request's target ("POST /v1/imports", or the bulk
  // identify endpoint the file goes to).
  void ImportFile(const CallOptions& options, const ImportFileRequest& request,
                  StubCallback<v1::Job> done) override;

 private:
  template <typename Request, typename Response>
  void Call(absl::string_view endpoint,
            void (UserpilotStub::*method)(const CallOptions&, const Request&,
                                          StubCallback<Response>),
            const CallOptions& options, const Request& request, StubCallback<Response> done);

  const std::shared_ptr<UserpilotStub> inner_;
  UpstreamMetrics& metrics_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_STUB_H_
