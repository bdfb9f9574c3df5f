// The emulated Userpilot REST API: routing, authentication, rate limits, validation and jobs,
// answering one request at a time as userpilot-api-notes.md and the OpenAPI document describe.
//
// This is the logic only: it knows nothing of sockets or civetweb (emulator.h wires it) and
// nothing of fault injection (applied before a request reaches it).
//
// Thread-safety: UserpilotApi is thread-safe; Handle() runs concurrently on server threads.
// It borrows the limiter and job store, which must outlive it.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_USERPILOT_API_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_USERPILOT_API_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "tests/emulator/job_store.h"
#include "tests/emulator/profile_store.h"
#include "tests/emulator/rate_limiter.h"
#include "tests/emulator/request_log.h"
#include "tests/emulator/validation.h"

namespace userpilot::gateway::testing {

// The endpoints Userpilot documents, plus kUnknown for anything else.
enum class Endpoint {
  kIdentify,         // POST /v1/identify
  kCompanyIdentify,  // POST /v1/companies/identify
  kBulkUsers,        // POST /v1/users/bulk_identify
  kBulkCompanies,    // POST /v1/companies/bulk_identify
  kTrack,            // POST /v1/track
  kListJobs,         // GET /v1/background_jobs
  kGetJob,           // GET /v1/background_jobs/{job_id}
  kImports,          // POST /v1/imports
  kDeleteUsers,      // DELETE /v1/users
  kDeleteCompanies,  // DELETE /v1/companies
  kValidate,         // GET /v1/validate
  kUnknown,
};

// The stats name of an endpoint: "identify", "companies_identify", "users_bulk_identify",
// "companies_bulk_identify", "track", "list_jobs", "get_job", "imports", "delete_users",
// "delete_companies", "validate", "unknown".
absl::string_view EndpointName(Endpoint endpoint);

// Where a request goes.
struct Route {
  Endpoint endpoint = Endpoint::kUnknown;
  std::string job_id;  // kGetJob: the id, percent-decoded as one path segment.
};

// Routes `method` + `raw_path` (still percent-encoded). A job id that is not valid
// percent-encoding routes to kUnknown.
Route Classify(absl::string_view method, absl::string_view raw_path);

// An answer: status, JSON body and any headers beyond the standard ones.
struct ApiResponse {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool rate_limited = false;  // A 429 from the limiter.
  // Fault injection only: the Content-Type ("" means application/json; charset=utf-8), and a
  // status line written instead of `HTTP/1.1 <status> <reason>` ("" for the normal one).
  std::string content_type;
  std::string status_line;
};

// Userpilot's error body: {"errors":[{"error":..,"error_code":..,"message":..,"details":..}]}.
std::string ErrorBody(absl::string_view error, absl::string_view error_code,
                      absl::string_view message, absl::string_view details);
// A 400 body listing every violation (details = the field path).
std::string ViolationsBody(const Violations& violations);

struct ApiOptions {
  std::string api_key;               // The accepted `Authorization: Token <key>`.
  bool empty_accepted_body = false;  // 202 answers of identify/track/delete: "" instead of "{}".
};

class UserpilotApi {
 public:
  // `profiles` gets every accepted identify and bulk job's rows.
  UserpilotApi(ApiOptions options, SlidingWindowLimiter* limiter, JobStore* jobs,
               ProfileStore* profiles);

  // Answers `request`, already routed to `route`. Thread-safe.
  ApiResponse Handle(const RecordedRequest& request, const Route& route) const;

 private:
  ApiResponse IdentifyUser(const RecordedRequest& request) const;
  ApiResponse IdentifyCompany(const RecordedRequest& request) const;
  ApiResponse Track(const RecordedRequest& request) const;
  ApiResponse BulkIdentify(const RecordedRequest& request, bool users) const;
  ApiResponse Imports(const RecordedRequest& request) const;
  ApiResponse ListJobs(const RecordedRequest& request) const;
  ApiResponse GetJob(const RecordedRequest& request, const std::string& job_id) const;
  ApiResponse Delete(const RecordedRequest& request, bool users) const;

  ApiResponse Accepted() const;
  // `created_id` (optional) gets the new job's id; left empty when none was created.
  ApiResponse CreateJob(const RecordedRequest& request, JobKind kind, std::string filename,
                        int64_t file_size, int64_t total_rows,
                        std::string* created_id = nullptr) const;
  // The job object; `links` is built from the request's Host header.
  std::string JobJson(const RecordedRequest& request, const JobSnapshot& job,
                      bool with_completed_rows, bool counts_as_strings) const;

  const ApiOptions options_;
  SlidingWindowLimiter* const limiter_;
  JobStore* const jobs_;
  ProfileStore* const profiles_;
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_USERPILOT_API_H_
