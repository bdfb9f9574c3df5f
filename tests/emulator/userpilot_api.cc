#include "tests/emulator/userpilot_api.h"

#include <cmath>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/emulator/http_util.h"
#include "tests/emulator/json.h"
#include "tests/emulator/multipart.h"

namespace userpilot::gateway::testing {

using google::protobuf::Value;

namespace {

// Userpilot's documented bound on a bulk or import file.
constexpr size_t kMaxFileBytes = 50u * 1024 * 1024;

ApiResponse Error(int status, absl::string_view error, absl::string_view code,
                  absl::string_view message, absl::string_view details = "") {
  ApiResponse r;
  r.status = status;
  r.body = ErrorBody(error, code, message, details);
  return r;
}

ApiResponse BadRequest(absl::string_view code, absl::string_view message,
                       absl::string_view details = "") {
  return Error(400, "bad_request", code, message, details);
}

ApiResponse BadJson(const absl::Status& status) {
  return BadRequest("invalid_json", status.message());
}

ApiResponse Invalid(const Violations& violations) {
  ApiResponse r;
  r.status = 400;
  r.body = ViolationsBody(violations);
  return r;
}

// Parses the body as JSON, or explains why not.
absl::StatusOr<Value> ParseBody(const RecordedRequest& request) {
  if (absl::StripAsciiWhitespace(request.body).empty()) {
    return absl::InvalidArgumentError("the request body is empty; a JSON object is expected");
  }
  return ParseJson(request.body);
}

// The non-empty lines of an NDJSON or CSV file ("\r\n" endings allowed).
std::vector<absl::string_view> NonEmptyLines(absl::string_view data) {
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(data, '\n')) {
    line = absl::StripSuffix(line, "\r");
    if (!absl::StripAsciiWhitespace(line).empty()) lines.push_back(line);
  }
  return lines;
}

bool LooksLikeCsv(const MultipartPart& part) {
  if (absl::EndsWithIgnoreCase(part.filename, ".csv")) return true;
  if (absl::StrContains(absl::AsciiStrToLower(part.content_type), "csv")) return true;
  const absl::string_view start = absl::StripLeadingAsciiWhitespace(part.data);
  return !start.empty() && start.front() != '{';
}

}  // namespace

absl::string_view EndpointName(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kIdentify:
      return "identify";
    case Endpoint::kCompanyIdentify:
      return "companies_identify";
    case Endpoint::kBulkUsers:
      return "users_bulk_identify";
    case Endpoint::kBulkCompanies:
      return "companies_bulk_identify";
    case Endpoint::kTrack:
      return "track";
    case Endpoint::kListJobs:
      return "list_jobs";
    case Endpoint::kGetJob:
      return "get_job";
    case Endpoint::kImports:
      return "imports";
    case Endpoint::kDeleteUsers:
      return "delete_users";
    case Endpoint::kDeleteCompanies:
      return "delete_companies";
    case Endpoint::kValidate:
      return "validate";
    case Endpoint::kUnknown:
    default:
      return "unknown";
  }
}

Route Classify(absl::string_view method, absl::string_view raw_path) {
  Route route;
  const std::vector<absl::string_view> seg = SplitPathSegments(raw_path);
  if (seg.size() < 2 || seg[0] != "v1") return route;
  const bool get = method == "GET", post = method == "POST", del = method == "DELETE";
  if (seg.size() == 2) {
    if (post && seg[1] == "identify") route.endpoint = Endpoint::kIdentify;
    if (post && seg[1] == "track") route.endpoint = Endpoint::kTrack;
    if (post && seg[1] == "imports") route.endpoint = Endpoint::kImports;
    if (get && seg[1] == "background_jobs") route.endpoint = Endpoint::kListJobs;
    if (get && seg[1] == "validate") route.endpoint = Endpoint::kValidate;
    if (del && seg[1] == "users") route.endpoint = Endpoint::kDeleteUsers;
    if (del && seg[1] == "companies") route.endpoint = Endpoint::kDeleteCompanies;
  } else if (seg.size() == 3) {
    if (post && seg[1] == "companies" && seg[2] == "identify") {
      route.endpoint = Endpoint::kCompanyIdentify;
    } else if (post && seg[1] == "users" && seg[2] == "bulk_identify") {
      route.endpoint = Endpoint::kBulkUsers;
    } else if (post && seg[1] == "companies" && seg[2] == "bulk_identify") {
      route.endpoint = Endpoint::kBulkCompanies;
    } else if (get && seg[1] == "background_jobs" && !seg[2].empty()) {
      absl::StatusOr<std::string> id = PercentDecode(seg[2]);
      if (id.ok()) {
        route.endpoint = Endpoint::kGetJob;
        route.job_id = *std::move(id);
      }
    }
  }
  return route;
}

std::string ErrorBody(absl::string_view error, absl::string_view error_code,
                      absl::string_view message, absl::string_view details) {
  JsonWriter w;
  w.BeginObject().Key("errors").BeginArray().BeginObject();
  w.Field("error", error).Field("error_code", error_code).Field("message", message);
  w.Field("details", details).EndObject().EndArray().EndObject();
  return w.Release();
}

std::string ViolationsBody(const Violations& violations) {
  JsonWriter w;
  w.BeginObject().Key("errors").BeginArray();
  for (const Violation& v : violations) {
    w.BeginObject().Field("error", "bad_request").Field("error_code", v.error_code);
    w.Field("message", v.message).Field("details", v.field).EndObject();
  }
  w.EndArray().EndObject();
  return w.Release();
}

UserpilotApi::UserpilotApi(ApiOptions options, SlidingWindowLimiter* limiter, JobStore* jobs,
                           ProfileStore* profiles)
    : options_(std::move(options)), limiter_(limiter), jobs_(jobs), profiles_(profiles) {}

ApiResponse UserpilotApi::Handle(const RecordedRequest& request, const Route& route) const {
  if (route.endpoint == Endpoint::kUnknown) {
    return Error(404, "not_found", "not_found",
                 absl::StrCat("No route for ", request.method, " ", request.raw_path),
                 "See https://docs.userpilot.com for the HTTP API's endpoints");
  }

  // Authorization: Token <key>.
  absl::string_view auth = absl::StripAsciiWhitespace(request.Header("authorization"));
  bool authorized = false;
  if (auth.size() > 6 && absl::StartsWithIgnoreCase(auth, "token ")) {
    authorized = absl::StripAsciiWhitespace(auth.substr(6)) == options_.api_key;
  }
  if (!authorized) {
    return Error(401, "unauthorized", "invalid_api_key",
                 auth.empty() ? "Missing API key" : "Invalid API key",
                 "Send your environment's API key as 'Authorization: Token <API key>'");
  }

  // Rate limits count every authorized request to a limited endpoint, valid or not.
  std::optional<RateScope> scope;
  switch (route.endpoint) {
    case Endpoint::kIdentify:
    case Endpoint::kCompanyIdentify:
      scope = RateScope::kIdentify;
      break;
    case Endpoint::kTrack:
      scope = RateScope::kTrack;
      break;
    case Endpoint::kDeleteUsers:
    case Endpoint::kDeleteCompanies:
      scope = RateScope::kDelete;
      break;
    default:
      break;
  }
  if (scope) {
    const SlidingWindowLimiter::Decision d = limiter_->Admit(*scope, request.received_at);
    if (!d.admitted) {
      ApiResponse r = Error(429, "too_many_requests", "rate_limit_exceeded",
                            "Too many requests: rate limit exceeded",
                            absl::StrCat("Budget '",
                                         *scope == RateScope::kIdentify ? "identify"
                                         : *scope == RateScope::kTrack  ? "track"
                                                                        : "delete",
                                         "' is exhausted for the current window"));
      r.rate_limited = true;
      if (limiter_->limits().retry_after) {
        const int64_t seconds = std::max<int64_t>(
            1, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(d.retry_after))));
        r.headers.emplace_back("Retry-After", absl::StrCat(seconds));
      }
      return r;
    }
  }

  switch (route.endpoint) {
    case Endpoint::kIdentify:
      return IdentifyUser(request);
    case Endpoint::kCompanyIdentify:
      return IdentifyCompany(request);
    case Endpoint::kTrack:
      return Track(request);
    case Endpoint::kBulkUsers:
      return BulkIdentify(request, /*users=*/true);
    case Endpoint::kBulkCompanies:
      return BulkIdentify(request, /*users=*/false);
    case Endpoint::kImports:
      return Imports(request);
    case Endpoint::kListJobs:
      return ListJobs(request);
    case Endpoint::kGetJob:
      return GetJob(request, route.job_id);
    case Endpoint::kDeleteUsers:
      return Delete(request, /*users=*/true);
    case Endpoint::kDeleteCompanies:
      return Delete(request, /*users=*/false);
    case Endpoint::kValidate: {
      ApiResponse r;
      r.status = 200;
      r.body = "{}";
      return r;
    }
    default:
      return Error(404, "not_found", "not_found", "Unknown endpoint");
  }
}

ApiResponse UserpilotApi::Accepted() const {
  ApiResponse r;
  r.status = 202;
  if (!options_.empty_accepted_body) r.body = "{}";
  return r;
}

ApiResponse UserpilotApi::IdentifyUser(const RecordedRequest& request) const {
  absl::StatusOr<Value> body = ParseBody(request);
  if (!body.ok()) return BadJson(body.status());
  if (Violations v = ValidateIdentifyUser(*body); !v.empty()) return Invalid(v);
  profiles_->Identify(EntityKind::kUser, FindField(*body, "user_id")->string_value(),
                      FindField(*body, "metadata"));
  return Accepted();
}

ApiResponse UserpilotApi::IdentifyCompany(const RecordedRequest& request) const {
  absl::StatusOr<Value> body = ParseBody(request);
  if (!body.ok()) return BadJson(body.status());
  if (Violations v = ValidateIdentifyCompany(*body); !v.empty()) return Invalid(v);
  profiles_->Identify(EntityKind::kCompany, FindField(*body, "company_id")->string_value(),
                      FindField(*body, "metadata"));
  return Accepted();
}

ApiResponse UserpilotApi::Track(const RecordedRequest& request) const {
  absl::StatusOr<Value> body = ParseBody(request);
  if (!body.ok()) return BadJson(body.status());
  if (Violations v = ValidateTrack(*body); !v.empty()) return Invalid(v);
  return Accepted();
}

ApiResponse UserpilotApi::Delete(const RecordedRequest& request, bool users) const {
  absl::StatusOr<Value> body = ParseBody(request);
  if (!body.ok()) return BadJson(body.status());
  if (Violations v = ValidateDeleteBody(*body, users); !v.empty()) return Invalid(v);
  return Accepted();
}

ApiResponse UserpilotApi::BulkIdentify(const RecordedRequest& request, bool users) const {
  const absl::string_view key = users ? "users" : "companies";
  const absl::string_view id_field = users ? "user_id" : "company_id";
  const JobKind kind = users ? JobKind::kBulkUsers : JobKind::kBulkCompanies;
  // The accepted job's rows go to the profiles, applied when it completes.
  auto keep_rows = [&](const std::string& job_id, const std::vector<const Value*>& rows) {
    if (job_id.empty()) return;
    std::vector<std::pair<std::string, const Value*>> kept;
    kept.reserve(rows.size());
    for (const Value* row : rows) {
      kept.emplace_back(FindField(*row, id_field)->string_value(), FindField(*row, "metadata"));
    }
    profiles_->AddJob(users ? EntityKind::kUser : EntityKind::kCompany, job_id, std::move(kept));
  };
  const absl::string_view content_type = request.Header("content-type");

  if (IsMultipartFormData(content_type)) {
    // NDJSON file: one row object a line.
    absl::StatusOr<std::vector<MultipartPart>> parts = ParseMultipart(content_type, request.body);
    if (!parts.ok()) return BadRequest("invalid_multipart", parts.status().message());
    const MultipartPart* file = FindPart(*parts, "file");
    if (file == nullptr) {
      return BadRequest("missing_file", "multipart field 'file' is required", "file");
    }
    if (file->data.size() > kMaxFileBytes) {
      return Error(413, "payload_too_large", "file_too_large", "The file exceeds 50 MB", "file");
    }
    const std::vector<absl::string_view> lines = NonEmptyLines(file->data);
    if (lines.empty()) return BadRequest("no_rows", "the file holds no rows", "file");
    if (lines.size() > static_cast<size_t>(kMaxBulkRows)) {
      return BadRequest("too_many_rows",
                        absl::StrCat("the file holds ", lines.size(), " rows; at most ",
                                     kMaxBulkRows, " are accepted"),
                        "file");
    }
    Violations violations;
    std::vector<Value> parsed;
    parsed.reserve(lines.size());
    for (size_t i = 0; i < lines.size() && violations.size() < kMaxViolations; ++i) {
      const std::string where = absl::StrCat("file line ", i + 1);
      absl::StatusOr<Value> row = ParseJson(lines[i]);
      if (!row.ok()) {
        violations.push_back({where, "invalid_json", std::string(row.status().message())});
        continue;
      }
      ValidateBulkRow(*row, users, where, &violations);
      parsed.push_back(*std::move(row));
    }
    if (!violations.empty()) return Invalid(violations);
    std::string job_id;
    ApiResponse r = CreateJob(
        request, kind, file->filename.empty() ? absl::StrCat(key, ".ndjson") : file->filename,
        static_cast<int64_t>(file->data.size()), static_cast<int64_t>(lines.size()), &job_id);
    std::vector<const Value*> rows;
    for (const Value& row : parsed) rows.push_back(&row);
    keep_rows(job_id, rows);
    return r;
  }

  if (request.body.size() > kMaxFileBytes) {
    return Error(413, "payload_too_large", "file_too_large", "The payload exceeds 50 MB");
  }
  absl::StatusOr<Value> body = ParseBody(request);
  if (!body.ok()) return BadJson(body.status());
  if (Violations v = ValidateBulkBody(*body, users); !v.empty()) return Invalid(v);
  const google::protobuf::ListValue& list = FindField(*body, key)->list_value();
  std::string job_id;
  ApiResponse r = CreateJob(request, kind, absl::StrCat(key, ".json"),
                            static_cast<int64_t>(request.body.size()), list.values_size(), &job_id);
  std::vector<const Value*> rows;
  for (const Value& row : list.values()) rows.push_back(&row);
  keep_rows(job_id, rows);
  return r;
}

ApiResponse UserpilotApi::Imports(const RecordedRequest& request) const {
  const absl::string_view content_type = request.Header("content-type");
  if (!IsMultipartFormData(content_type)) {
    return BadRequest("invalid_content_type",
                      "POST /v1/imports takes multipart/form-data with a field 'file'",
                      "content-type");
  }
  absl::StatusOr<std::vector<MultipartPart>> parts = ParseMultipart(content_type, request.body);
  if (!parts.ok()) return BadRequest("invalid_multipart", parts.status().message());
  const MultipartPart* file = FindPart(*parts, "file");
  if (file == nullptr) {
    return BadRequest("missing_file", "multipart field 'file' is required", "file");
  }
  if (file->data.size() > kMaxFileBytes) {
    return Error(413, "payload_too_large", "file_too_large", "The file exceeds 50 MB", "file");
  }
  const std::vector<absl::string_view> lines = NonEmptyLines(file->data);
  int64_t rows = 0;
  if (LooksLikeCsv(*file)) {
    rows = lines.empty() ? 0 : static_cast<int64_t>(lines.size()) - 1;  // Minus the header.
  } else {
    Violations violations;
    for (size_t i = 0; i < lines.size() && violations.size() < kMaxViolations; ++i) {
      absl::StatusOr<Value> row = ParseJson(lines[i]);
      const std::string where = absl::StrCat("file line ", i + 1);
      if (!row.ok()) {
        violations.push_back({where, "invalid_json", std::string(row.status().message())});
      } else if (row->kind_case() != Value::kStructValue) {
        violations.push_back({where, "invalid_body", "each NDJSON line must be a JSON object"});
      }
    }
    if (!violations.empty()) return Invalid(violations);
    rows = static_cast<int64_t>(lines.size());
  }
  if (rows == 0) return BadRequest("no_rows", "the file holds no data rows", "file");
  ApiResponse r =
      CreateJob(request, JobKind::kImport, file->filename.empty() ? "import.csv" : file->filename,
                static_cast<int64_t>(file->data.size()), rows);
  if (r.status == 202) r.status = 200;  // Imports answer 200, not 202.
  return r;
}

ApiResponse UserpilotApi::CreateJob(const RecordedRequest& request, JobKind kind,
                                    std::string filename, int64_t file_size, int64_t total_rows,
                                    std::string* created_id) const {
  absl::StatusOr<JobSnapshot> job = jobs_->Create(kind, std::move(filename), file_size, total_rows);
  if (!job.ok()) {
    return Error(409, "conflict", "job_in_progress", job.status().message(),
                 kind == JobKind::kImport ? "Only one import job can run at a time"
                                          : "Only one bulk identify job (users or companies) "
                                            "can run at a time");
  }
  if (created_id != nullptr) *created_id = job->job_id;
  ApiResponse r;
  r.status = 202;
  r.body = JobJson(request, *job, /*with_completed_rows=*/false,
                   /*counts_as_strings=*/kind == JobKind::kImport);
  return r;
}

ApiResponse UserpilotApi::ListJobs(const RecordedRequest& request) const {
  JsonWriter w;
  w.BeginArray();
  for (const JobSnapshot& job : jobs_->List()) {
    w.Raw(JobJson(request, job, /*with_completed_rows=*/false, /*counts_as_strings=*/false));
  }
  w.EndArray();
  ApiResponse r;
  r.status = 200;
  r.body = w.Release();
  return r;
}

ApiResponse UserpilotApi::GetJob(const RecordedRequest& request, const std::string& job_id) const {
  absl::StatusOr<JobSnapshot> job = jobs_->Get(job_id);
  if (!job.ok()) {
    return Error(404, "not_found", "job_not_found", absl::StrCat("Job not found: ", job_id),
                 job_id);
  }
  ApiResponse r;
  r.status = 200;
  r.body = JobJson(request, *job, /*with_completed_rows=*/true, /*counts_as_strings=*/false);
  return r;
}

std::string UserpilotApi::JobJson(const RecordedRequest& request, const JobSnapshot& job,
                                  bool with_completed_rows, bool counts_as_strings) const {
  // `links`: the job's own URL, on the host the client addressed.
  const absl::string_view host = request.Header("host");
  const std::string base = host.empty() ? "" : absl::StrCat("http://", host);
  JsonWriter w;
  w.BeginObject()
      .Field("job_id", job.job_id)
      .Field("status", job.status)
      .Field("type", job.type)
      .Field("filename", job.filename);
  if (counts_as_strings) {
    // POST /v1/imports documents these two as strings.
    w.Field("file_size", absl::StrCat(job.file_size))
        .Field("total_rows", absl::StrCat(job.total_rows));
  } else {
    w.Field("file_size", job.file_size).Field("total_rows", job.total_rows);
  }
  if (with_completed_rows) w.Field("completed_rows", job.completed_rows);
  w.Field("start_time", FormatJobTime(job.start_time)).Key("end_time");
  if (job.end_time) {
    w.String(FormatJobTime(*job.end_time));
  } else {
    w.Null();
  }
  w.Field("elapsed_time", absl::ToInt64Seconds(job.elapsed))
      .Field("links", absl::StrCat(base, "/v1/background_jobs/", PercentEncodeSegment(job.job_id)))
      .EndObject();
  return w.Release();
}

}  // namespace userpilot::gateway::testing
