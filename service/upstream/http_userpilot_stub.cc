#include "service/upstream/http_userpilot_stub.h"

#include <type_traits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "service/upstream/error_mapping.h"
#include "service/upstream/json_mapping.h"

namespace userpilot::gateway {

struct HttpUserpilotStub::Endpoint {
  absl::string_view method;
  absl::string_view path;  // The job id, if any, is appended to it.
  absl::string_view name;  // For messages and ErrorInfo; never holds a job id.
};

struct HttpUserpilotStub::Settings {
  std::string base_url;  // Without trailing slashes.
  std::string api_key;
  absl::Duration request_timeout;
  absl::Duration upload_timeout;
  HttpHeaders headers;  // Sent on every call, in this order.
  Clock clock;
};

namespace {

// What the caller of `endpoint` gets from `result`: the mapped error, or the parsed answer.
template <typename Response>
absl::StatusOr<Response> Conclude(const HttpResult& result, absl::string_view endpoint,
                                  absl::Time now) {
  absl::Status status = MapHttpResult(result, endpoint, now);
  if (!status.ok()) return status;
  if constexpr (std::is_same_v<Response, v1::Job>) {
    absl::StatusOr<v1::Job> job = ParseJob(result.response.body);
    if (!job.ok()) return UpstreamBadResponseError(result, endpoint, job.status().message());
    return job;
  } else if constexpr (std::is_same_v<Response, v1::ListJobsResponse>) {
    absl::StatusOr<v1::ListJobsResponse> jobs = ParseJobList(result.response.body);
    if (!jobs.ok()) return UpstreamBadResponseError(result, endpoint, jobs.status().message());
    return jobs;
  } else {
    // Acknowledgements: Userpilot's body (if any) carries nothing the caller needs.
    Response response;
    response.set_upstream_request_id(UpstreamRequestId(result.response));
    return response;
  }
}

}  // namespace

std::string EncodePathSegment(absl::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  encoded.reserve(segment.size() * 3);
  for (const char c : segment) {
    const auto byte = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(byte) || c == '-' || c == '_' || c == '~') {
      encoded += c;
    } else {
      encoded += '%';
      encoded += kHex[byte >> 4];
      encoded += kHex[byte & 0xF];
    }
  }
  return encoded;
}

HttpUserpilotStub::HttpUserpilotStub(HttpClient& http, UpstreamOptions options, Clock clock)
    : http_(http) {
  auto settings = std::make_shared<Settings>();
  absl::string_view base_url = options.base_url;
  while (absl::ConsumeSuffix(&base_url, "/")) {
  }
  settings->base_url = std::string(base_url);
  settings->headers = {{"Authorization", absl::StrCat("Token ", options.api_key)},
                       {"X-API-Version", std::string(kUserpilotApiVersion)},
                       {"Accept", "application/json"}};
  settings->api_key = std::move(options.api_key);
  settings->request_timeout = options.request_timeout;
  settings->upload_timeout = options.upload_timeout;
  settings->clock = std::move(clock);
  settings_ = std::move(settings);
}

template <typename Response>
void HttpUserpilotStub::Send(const CallOptions& options, const Endpoint& endpoint,
                             absl::string_view path_suffix, std::string body,
                             StubCallback<Response> done, MultipartBody upload) {
  const bool uploading = upload.source != nullptr;
  const absl::Duration attempt_timeout =
      uploading ? settings_->upload_timeout : settings_->request_timeout;
  const absl::Time attempt_deadline = settings_->clock() + attempt_timeout;
  // True when the per-attempt cap, not the caller's deadline, bounds this request.
  const bool capped = attempt_deadline < options.deadline;

  HttpRequest request;
  request.method = std::string(endpoint.method);
  request.url = absl::StrCat(settings_->base_url, endpoint.path, path_suffix);
  request.headers = settings_->headers;
  if (uploading) {
    request.headers.emplace_back("Content-Type", std::move(upload.content_type));
    request.body_source = std::move(upload.source);
  } else if (!body.empty()) {
    request.headers.emplace_back("Content-Type", "application/json");
  }
  request.body = std::move(body);
  request.deadline = capped ? attempt_deadline : options.deadline;

  http_.Send(std::move(request), [settings = settings_, name = endpoint.name, capped,
                                  attempt_timeout, trace = options.trace,
                                  done = std::move(done)](HttpResult result) mutable {
    if (trace != nullptr) {
      ++trace->attempts;
      if (result.transport_status.ok()) {
        trace->last_http_status = static_cast<int>(result.response.status_code);
        trace->upstream_request_id = UpstreamRequestId(result.response);
      }
    }
    if (capped && absl::IsDeadlineExceeded(result.transport_status)) {
      // The caller's deadline has not passed: report a slow upstream, which is worth a retry.
      result.transport_status = absl::UnavailableError(absl::StrCat(
          "no answer within the per-attempt timeout of ", absl::FormatDuration(attempt_timeout),
          " (", result.transport_status.message(), ")"));
    }
    absl::StatusOr<Response> answer = Conclude<Response>(result, name, settings->clock());
    if (!answer.ok()) answer = RedactSecret(answer.status(), settings->api_key);
    std::move(done)(std::move(answer));
  });
}

void HttpUserpilotStub::IdentifyUser(const CallOptions& options,
                                     const v1::IdentifyUserRequest& request,
                                     StubCallback<v1::IdentifyUserResponse> done) {
  static constexpr Endpoint kEndpoint{"POST", "/v1/identify", "POST /v1/identify"};
  Send(options, kEndpoint, "", RequestBody(request), std::move(done));
}

void HttpUserpilotStub::IdentifyCompany(const CallOptions& options,
                                        const v1::IdentifyCompanyRequest& request,
                                        StubCallback<v1::IdentifyCompanyResponse> done) {
  static constexpr Endpoint kEndpoint{"POST", "/v1/companies/identify",
                                      "POST /v1/companies/identify"};
  Send(options, kEndpoint, "", RequestBody(request), std::move(done));
}

void HttpUserpilotStub::BulkIdentifyUsers(const CallOptions& options,
                                          const v1::BulkIdentifyUsersRequest& request,
                                          StubCallback<v1::Job> done) {
  static constexpr Endpoint kEndpoint{"POST", "/v1/users/bulk_identify",
                                      "POST /v1/users/bulk_identify"};
  Send(options, kEndpoint, "", RequestBody(request), std::move(done));
}

void HttpUserpilotStub::BulkIdentifyCompanies(const CallOptions& options,
                                              const v1::BulkIdentifyCompaniesRequest& request,
                                              StubCallback<v1::Job> done) {
  static constexpr Endpoint kEndpoint{"POST", "/v1/companies/bulk_identify",
                                      "POST /v1/companies/bulk_identify"};
  Send(options, kEndpoint, "", RequestBody(request), std::move(done));
}

void HttpUserpilotStub::TrackEvent(const CallOptions& options, const v1::TrackEventRequest& request,
                                   StubCallback<v1::TrackEventResponse> done) {
  static constexpr Endpoint kEndpoint{"POST", "/v1/track", "POST /v1/track"};
  Send(options, kEndpoint, "", RequestBody(request), std::move(done));
}

void HttpUserpilotStub::ListJobs(const CallOptions& options, const v1::ListJobsRequest& request,
                                 StubCallback<v1::ListJobsResponse> done) {
  static constexpr Endpoint kEndpoint{"GET", "/v1/background_jobs", "GET /v1/background_jobs"};
  Send(options, kEndpoint, "", std::string(), std::move(done));
}

void HttpUserpilotStub::GetJob(const CallOptions& options, const v1::GetJobRequest& request,
                               StubCallback<v1::Job> done) {
  static constexpr Endpoint kEndpoint{"GET", "/v1/background_jobs/",
                                      "GET /v1/background_jobs/{job_id}"};
  Send(options, kEndpoint, EncodePathSegment(request.job_id()), std::string(), std::move(done));
}

void HttpUserpilotStub::DeleteUsers(const CallOptions& options,
                                    const v1::DeleteUsersRequest& request,
                                    StubCallback<v1::DeleteUsersResponse> done) {
  static constexpr Endpoint kEndpoint{"DELETE", "/v1/users", "DELETE /v1/users"};
  Send(options, kEndpoint, "", RequestBody(request), std::move(done));
}

void HttpUserpilotStub::DeleteCompanies(const CallOptions& options,
                                        const v1::DeleteCompaniesRequest& request,
                                        StubCallback<v1::DeleteCompaniesResponse> done) {
  static constexpr Endpoint kEndpoint{"DELETE", "/v1/companies", "DELETE /v1/companies"};
  Send(options, kEndpoint, "", RequestBody(request), std::move(done));
}

void HttpUserpilotStub::ImportFile(const CallOptions& options, const ImportFileRequest& request,
                                   StubCallback<v1::Job> done) {
  static constexpr Endpoint kImports{"POST", "/v1/imports", "POST /v1/imports"};
  static constexpr Endpoint kUsers{"POST", "/v1/users/bulk_identify",
                                   "POST /v1/users/bulk_identify"};
  static constexpr Endpoint kCompanies{"POST", "/v1/companies/bulk_identify",
                                       "POST /v1/companies/bulk_identify"};
  const Endpoint* endpoint = nullptr;
  switch (request.target) {
    case v1::IMPORT_TARGET_HISTORICAL_IMPORT:
      endpoint = &kImports;
      break;
    case v1::IMPORT_TARGET_USERS_BULK:
      endpoint = &kUsers;
      break;
    case v1::IMPORT_TARGET_COMPANIES_BULK:
      endpoint = &kCompanies;
      break;
    default:
      break;
  }
  absl::string_view content_type;
  if (request.format == v1::IMPORT_FORMAT_CSV) content_type = "text/csv";
  if (request.format == v1::IMPORT_FORMAT_NDJSON) content_type = "application/x-ndjson";
  if (endpoint == nullptr || content_type.empty() || request.file == nullptr ||
      request.filename.empty()) {
    // A programming error above this layer (ImportData validates all of these). Answered
    // through the HTTP client like every other outcome, so never inside this call: an invalid
    // request is refused by the client without being sent.
    HttpRequest unsendable;
    http_.Send(std::move(unsendable), [done = std::move(done)](HttpResult) mutable {
      std::move(done)(absl::InvalidArgumentError(
          "ImportFile needs a target, a format, a filename and a file; nothing was sent"));
    });
    return;
  }
  Send(options, *endpoint, "", std::string(), std::move(done),
       MakeMultipartFileBody("file", request.filename, content_type, request.file));
}

}  // namespace userpilot::gateway
