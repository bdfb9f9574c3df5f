// The Userpilot REST API as an asynchronous C++ interface: one method per endpoint.
//
// Requests and responses are the gateway's own proto messages (proto/userpilot/gateway/v1), so
// the gRPC layer hands a validated request straight through. Implementations:
//  - HttpUserpilotStub (http_userpilot_stub.h): maps to JSON and sends it over an HttpClient.
//  - decorators (retry, rate limit, metrics, logging) that implement this interface and wrap
//    another stub; one factory stacks them so their order is visible in one place.
//  - test fakes and mocks (tests/mocks/).
//
// Errors are absl::Status with google.rpc details as payloads (common/status_details.h), coded
// by what the caller should do next; see README "Errors".
//
// Lifetimes: `options` and `request` are valid only during the call; an implementation copies
// what it keeps (the JSON body, or the request itself for a retry).
//
// Thread-safety: every method may be called from any thread, concurrently. The callback runs
// exactly once, on an implementation-defined thread (usually the HTTP event thread), never
// inside the call itself; it must not block.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_USERPILOT_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_USERPILOT_STUB_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/http/http_client.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// What happened to one call on its way through the upstream stack, filled in by the layers
// that know (the budget: queue wait; retries: attempts; HTTP: status and request id) and read
// by the access log and metrics when the call ends. Owned by the call; layers that outlive a
// call's callback must not touch it.
struct CallTrace {
  std::string method;                    // RPC name, e.g. "IdentifyUser".
  int attempts = 0;                      // Upstream HTTP attempts made.
  absl::Duration queue_wait;             // Time spent waiting for a budget.
  int last_http_status = 0;              // Last upstream HTTP status; 0 when none arrived.
  std::string upstream_request_id;       // Last upstream `x-request-id`, when sent.
  std::string retry_stopped_because;     // Why retrying stopped, when it did.
};

// Per-call context that every layer may use.
struct CallOptions {
  // When the caller stops waiting. No upstream request is sent, or retried, past it.
  absl::Time deadline = absl::InfiniteFuture();
  // Who is calling (the `x-caller` metadata); used for fairness and logs, never sent upstream.
  std::string caller;
  // Where layers record what happened (may be null: then nothing is recorded). Shared so a copy
  // of the options kept by a retry or a queued admission still records into the same trace.
  std::shared_ptr<CallTrace> trace;
};

template <typename T>
using StubCallback = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

// A file to upload to Userpilot as multipart/form-data (field `file`), read while it is sent:
// the upload never needs the file in memory. Not a proto message because the bytes live on the
// gateway's local disk (ImportData spools them there), not in the request.
struct ImportFileRequest {
  // Where it goes: HISTORICAL_IMPORT -> POST /v1/imports, USERS_BULK ->
  // POST /v1/users/bulk_identify, COMPANIES_BULK -> POST /v1/companies/bulk_identify.
  v1::ImportTarget target = v1::IMPORT_TARGET_UNSPECIFIED;
  // CSV (text/csv) or NDJSON (application/x-ndjson): the file part's Content-Type.
  v1::ImportFormat format = v1::IMPORT_FORMAT_UNSPECIFIED;
  // The multipart `filename` (what Userpilot shows as Job.filename). Non-empty.
  std::string filename;
  // The file's bytes, already validated. Every attempt reads it again from offset 0, so a
  // decorator may retry by passing the same request on; it stays readable while shared.
  std::shared_ptr<const HttpBodySource> file;
};

class UserpilotStub {
 public:
  virtual ~UserpilotStub() = default;

  // POST /v1/identify
  virtual void IdentifyUser(const CallOptions& options, const v1::IdentifyUserRequest& request,
                            StubCallback<v1::IdentifyUserResponse> done) = 0;
  // POST /v1/companies/identify
  virtual void IdentifyCompany(const CallOptions& options,
                               const v1::IdentifyCompanyRequest& request,
                               StubCallback<v1::IdentifyCompanyResponse> done) = 0;
  // POST /v1/users/bulk_identify
  virtual void BulkIdentifyUsers(const CallOptions& options,
                                 const v1::BulkIdentifyUsersRequest& request,
                                 StubCallback<v1::Job> done) = 0;
  // POST /v1/companies/bulk_identify
  virtual void BulkIdentifyCompanies(const CallOptions& options,
                                     const v1::BulkIdentifyCompaniesRequest& request,
                                     StubCallback<v1::Job> done) = 0;
  // POST /v1/track
  virtual void TrackEvent(const CallOptions& options, const v1::TrackEventRequest& request,
                          StubCallback<v1::TrackEventResponse> done) = 0;
  // GET /v1/background_jobs
  virtual void ListJobs(const CallOptions& options, const v1::ListJobsRequest& request,
                        StubCallback<v1::ListJobsResponse> done) = 0;
  // GET /v1/background_jobs/{job_id}
  virtual void GetJob(const CallOptions& options, const v1::GetJobRequest& request,
                      StubCallback<v1::Job> done) = 0;
  // DELETE /v1/users
  virtual void DeleteUsers(const CallOptions& options, const v1::DeleteUsersRequest& request,
                           StubCallback<v1::DeleteUsersResponse> done) = 0;
  // DELETE /v1/companies
  virtual void DeleteCompanies(const CallOptions& options,
                               const v1::DeleteCompaniesRequest& request,
                               StubCallback<v1::DeleteCompaniesResponse> done) = 0;
  // POST /v1/imports, /v1/users/bulk_identify or /v1/companies/bulk_identify with a multipart
  // file (see ImportFileRequest). Not idempotent: every accepted upload starts a job, so a
  // retrying decorator may repeat it only when the request certainly never reached Userpilot
  // (or it was refused with 429). A 409 arrives as FAILED_PRECONDITION / JOB_IN_PROGRESS.
  //
  // Not pure, so that decorators written before this method existed still compile: the
  // default completes with UNIMPLEMENTED (inside the call: an exception to the rule above that
  // callers of ImportFile must tolerate). Every decorator should override it and forward.
  virtual void ImportFile(const CallOptions& options, const ImportFileRequest& request,
                          StubCallback<v1::Job> done) {
    std::move(done)(absl::UnimplementedError(
        "ImportFile is not supported by this upstream stub (a decorator does not forward it)"));
  }
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_USERPILOT_STUB_H_
