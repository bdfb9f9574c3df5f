// HttpUserpilotStub: the UserpilotStub that speaks Userpilot's REST API over an HttpClient.
//
// For each call it builds one HTTP request - method, `base_url` + path (a job id percent-encoded
// as one path segment), the JSON body of json_mapping.h, and the headers every Userpilot call
// takes:
//   Authorization: Token <api key>
//   X-API-Version: 2020-09-22
//   Accept: application/json
//   Content-Type: application/json        (only when there is a body)
// - with deadline min(caller's deadline, now + request_timeout), and maps the answer through
// error_mapping.h (status) and json_mapping.h (job bodies). Acknowledgement responses carry
// Userpilot's `x-request-id` as `upstream_request_id`.
//
// One attempt per call: retries, rate limiting and metrics are decorators stacked around this
// stub. When the per-attempt cap (not the caller's deadline) cuts a request short, the result
// is UNAVAILABLE, not DEADLINE_EXCEEDED: the caller still has time, and what it should do next
// is retry, not give up. Transport failures record in ErrorInfo whether the request may have
// reached Userpilot (error_mapping.h RequestCertainlyNotSent), for retry policies of
// non-idempotent calls. ImportFile sends a multipart file body streamed from its source
// (body_source.h) under its own per-attempt cap, `upload_timeout`.
//
// The API key appears only in the Authorization header handed to the HttpClient: it is never
// logged, and every error status passes through RedactSecret before reaching the caller.
//
// Thread-safety: immutable after construction; every method may be called from any thread,
// concurrently. Callbacks run on the HttpClient's completion thread, never inside the call
// (the HttpClient's own guarantee); they do only parsing, no blocking. A callback holds shared
// ownership of what it needs, so it stays valid if the stub is destroyed first; the HttpClient
// must outlive the stub and all its calls.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_HTTP_USERPILOT_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_HTTP_USERPILOT_STUB_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/http/body_source.h"
#include "service/http/http_client.h"
#include "service/upstream/userpilot_stub.h"

namespace userpilot::gateway {

// Where and how to reach Userpilot. Validated by the configuration layer before use.
struct UpstreamOptions {
  // Scheme and host, e.g. "https://analytex.userpilot.io" (US), "https://analytex-eu.userpilot.io"
  // (EU) or an enterprise host. Trailing slashes are ignored.
  std::string base_url;
  // The Userpilot API key (not an App Token). Secret: never logged, never in an error.
  std::string api_key;
  // The longest one HTTP attempt may take, however far away the caller's deadline is. Positive.
  absl::Duration request_timeout = absl::Seconds(10);
  // The same cap for a file upload (ImportFile), which carries up to 50 MB: at 10 Mbit/s a
  // full file takes 40 s to send. Positive.
  absl::Duration upload_timeout = absl::Minutes(5);
};

// The value of the `X-API-Version` header sent on every call.
inline constexpr absl::string_view kUserpilotApiVersion = "2020-09-22";

// Percent-encodes `segment` as exactly one URL path segment: every byte outside RFC 3986's
// unreserved set, and also `.`, becomes %XX (upper-case hex), so neither `/` nor a `.`/`..`
// segment can change the path. "bulk:jobs:NX-1" -> "bulk%3Ajobs%3ANX-1", "../x" -> "%2E%2E%2Fx".
std::string EncodePathSegment(absl::string_view segment);

class HttpUserpilotStub final : public UserpilotStub {
 public:
  // Returns the current time; used for deadlines and HTTP-date Retry-After values.
  using Clock = std::function<absl::Time()>;

  // `http` must outlive this stub and every call made through it. `clock` is injectable for
  // tests; it must be safe to call from any thread.
  HttpUserpilotStub(HttpClient& http, UpstreamOptions options, Clock clock = absl::Now);

  HttpUserpilotStub(const HttpUserpilotStub&) = delete;
  HttpUserpilotStub& operator=(const HttpUserpilotStub&) = delete;

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
  // `request.job_id` must be non-empty (validation guarantees it).
  void GetJob(const CallOptions& options, const v1::GetJobRequest& request,
              StubCallback<v1::Job> done) override;
  void DeleteUsers(const CallOptions& options, const v1::DeleteUsersRequest& request,
                   StubCallback<v1::DeleteUsersResponse> done) override;
  void DeleteCompanies(const CallOptions& options, const v1::DeleteCompaniesRequest& request,
                       StubCallback<v1::DeleteCompaniesResponse> done) override;
  // The file goes as multipart/form-data, field `file` (filename and Content-Type text/csv or
  // application/x-ndjson in the part), streamed from `request.file`; the request's own
  // Content-Type is multipart/form-data with a random boundary. Per-attempt cap:
  // upload_timeout. INVALID_ARGUMENT (nothing sent) for an unspecified target or format, a
  // missing file or filename.
  void ImportFile(const CallOptions& options, const ImportFileRequest& request,
                  StubCallback<v1::Job> done) override;

 private:
  struct Endpoint;
  struct Settings;

  // One request: `body` (JSON, may be empty) or, when `upload` has a source, that multipart
  // body (whose content type is `upload.content_type`).
  template <typename Response>
  void Send(const CallOptions& options, const Endpoint& endpoint, absl::string_view path_suffix,
            std::string body, StubCallback<Response> done, MultipartBody upload = {});

  HttpClient& http_;
  std::shared_ptr<const Settings> settings_;  // Shared with in-flight callbacks.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_HTTP_USERPILOT_STUB_H_
