#include "service/validation/request_validator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/common/text_scan.h"
#include "service/validation/field_path.h"
#include "service/validation/violation_collector.h"

namespace userpilot::gateway {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using validation_internal::FieldPath;
using validation_internal::ViolationCollector;

constexpr absl::string_view kPrimitives = "must be a string, number, boolean or null";

// Keys of company.metadata that would collide with the company's id upstream.
constexpr absl::string_view kReservedCompanyKeys[] = {"company_id", "id"};

int64_t Size(size_t n) { return static_cast<int64_t>(n); }

// Applies the rules to the fields of one request and records what it finds in `out`.
class Checker {
 public:
  Checker(const ValidationLimits& limits, ViolationCollector& out) : limits_(limits), out_(out) {}

  // An id: required, not blank, bounded, UTF-8, no control characters.
  void Id(absl::string_view value, const FieldPath& path) {
    Name(value, path, limits_.max_id_bytes);
  }

  // Ids, event names and job ids: required, not blank, at most `max_bytes`, UTF-8, no control
  // characters.
  void Name(absl::string_view value, const FieldPath& path, int64_t max_bytes) {
    if (value.empty()) {
      out_.Add(path, "is required");
      return;
    }
    TooLong(value, path, max_bytes, "");
    const TextScan scan = ScanText(value);
    if (InvalidUtf8(scan, path, "")) return;
    if (scan.only_whitespace) {
      out_.Add(path, "must not be only whitespace");
      return;
    }
    Control(scan, path, "");
  }

  // A list of 1..max_count elements; `noun` names one element ("row", "id").
  void Count(size_t count, const FieldPath& path, int64_t max_count, absl::string_view noun) {
    if (count == 0) {
      out_.Add(path, absl::StrCat("must have at least 1 ", noun));
    } else if (Size(count) > max_count) {
      out_.Add(path,
               absl::StrCat("must have at most ", max_count, " ", noun, "s (got ", count, ")"));
    }
  }

  // The serialized size of a bulk request.
  void RequestSize(const google::protobuf::Message& request, const FieldPath& path) {
    const size_t bytes = request.ByteSizeLong();
    if (Size(bytes) > limits_.max_bulk_request_bytes) {
      out_.Add(path, absl::StrCat("request must be at most ", limits_.max_bulk_request_bytes,
                                  " bytes serialized (got ", bytes, "); send fewer rows"));
    }
  }

  // A metadata object. `company` reserves the keys that collide with the company's id.
  void Metadata(const Struct& metadata, const FieldPath& path, bool company) {
    const auto& fields = metadata.fields();
    if (Size(fields.size()) > limits_.max_metadata_keys) {
      out_.Add(path, absl::StrCat("must have at most ", limits_.max_metadata_keys, " keys (got ",
                                  fields.size(), ")"));
    }
    // Map order is unspecified: sort so that errors are stable from one call to the next.
    std::vector<const google::protobuf::MapPair<std::string, Value>*> entries;
    entries.reserve(fields.size());
    for (const auto& entry : fields) entries.push_back(&entry);
    std::sort(entries.begin(), entries.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    for (const auto* entry : entries) {
      const FieldPath key_path = path.Key(entry->first);
      Key(entry->first, key_path, company);
      PrimitiveValue(entry->second, key_path);
    }
  }

 private:
  void Key(absl::string_view key, const FieldPath& path, bool company) {
    if (key.empty()) {
      out_.Add(path, "key must not be empty");
      return;
    }
    TooLong(key, path, limits_.max_metadata_key_bytes, "key ");
    const TextScan scan = ScanText(key);
    if (InvalidUtf8(scan, path, "key ")) return;
    Control(scan, path, "key ");
    if (company && std::find(std::begin(kReservedCompanyKeys), std::end(kReservedCompanyKeys),
                             key) != std::end(kReservedCompanyKeys)) {
      out_.Add(path,
               "is a reserved key: upstream, company properties sit beside the company's id; "
               "set company.company_id instead");
    }
  }

  void PrimitiveValue(const Value& value, const FieldPath& path) {
    switch (value.kind_case()) {
      case Value::kNullValue:
      case Value::kBoolValue:
        return;
      case Value::kNumberValue:
        if (!std::isfinite(value.number_value())) {
          const double n = value.number_value();
          out_.Add(path,
                   absl::StrCat("must be a finite number (got ",
                                std::isnan(n) ? "NaN" : (n > 0 ? "Infinity" : "-Infinity"), ")"));
        }
        return;
      case Value::kStringValue: {
        const std::string& text = value.string_value();
        TooLong(text, path, limits_.max_string_value_bytes, "");
        const TextScan scan = ScanText(text);
        if (InvalidUtf8(scan, path, "")) return;
        if (scan.has_nul) out_.Add(path, "must not contain U+0000 (NUL)");
        return;
      }
      case Value::kStructValue:
        out_.Add(path, absl::StrCat(kPrimitives, ", not an object"));
        return;
      case Value::kListValue:
        out_.Add(path, absl::StrCat(kPrimitives, ", not a list"));
        return;
      case Value::KIND_NOT_SET:
        out_.Add(path, absl::StrCat(kPrimitives, "; no value is set"));
        return;
    }
  }

  // `subject` prefixes the description: "" for a field, "key " for a metadata key.
  void TooLong(absl::string_view text, const FieldPath& path, int64_t max_bytes,
               absl::string_view subject) {
    if (Size(text.size()) > max_bytes) {
      out_.Add(path, absl::StrCat(subject, "must be at most ", max_bytes, " bytes (got ",
                                  text.size(), ")"));
    }
  }

  bool InvalidUtf8(const TextScan& scan, const FieldPath& path, absl::string_view subject) {
    if (!scan.invalid_utf8_at.has_value()) return false;
    out_.Add(path, absl::StrCat(subject, "must be valid UTF-8 (bad byte at offset ",
                                *scan.invalid_utf8_at, ")"));
    return true;
  }

  void Control(const TextScan& scan, const FieldPath& path, absl::string_view subject) {
    if (!scan.control.has_value()) return;
    out_.Add(path, absl::StrCat(subject, "must not contain control characters (",
                                CodePointName(*scan.control), " at byte ", scan.control_at, ")"));
  }

  const ValidationLimits& limits_;
  ViolationCollector& out_;
};

}  // namespace

RequestValidator::RequestValidator() : RequestValidator(ValidationLimits()) {}

RequestValidator::RequestValidator(const ValidationLimits& limits) : limits_(limits) {
  if (absl::Status status = limits_.Validate(); !status.ok()) {
    std::fprintf(stderr, "RequestValidator: %s\n", status.ToString().c_str());
    std::abort();
  }
}

CallStatus RequestValidator::Validate(const v1::IdentifyUserRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  Checker check(limits_, out);
  const FieldPath root;
  check.Id(request.user_id(), root.Field("user_id"));
  check.Metadata(request.metadata(), root.Field("metadata"), /*company=*/false);
  if (request.has_company()) {
    const FieldPath company = root.Field("company");
    const FieldPath company_id = company.Field("company_id");
    if (request.company().company_id().empty()) {
      out.Add(company_id, "is required when company is set");
    } else {
      check.Id(request.company().company_id(), company_id);
    }
    check.Metadata(request.company().metadata(), company.Field("metadata"), /*company=*/true);
  }
  return out.ToStatus();
}

CallStatus RequestValidator::Validate(const v1::IdentifyCompanyRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  Checker check(limits_, out);
  const FieldPath root;
  check.Id(request.company_id(), root.Field("company_id"));
  check.Metadata(request.metadata(), root.Field("metadata"), /*company=*/false);
  return out.ToStatus();
}

CallStatus RequestValidator::Validate(const v1::BulkIdentifyUsersRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  Checker check(limits_, out);
  const FieldPath root;
  const FieldPath users = root.Field("users");
  check.RequestSize(request, users);
  check.Count(request.users_size(), users, limits_.max_bulk_rows, "row");
  for (int i = 0; i < request.users_size(); ++i) {
    const v1::BulkUser& user = request.users(i);
    const FieldPath row = users.Index(i);
    check.Id(user.user_id(), row.Field("user_id"));
    if (!user.company_id().empty()) check.Id(user.company_id(), row.Field("company_id"));
    check.Metadata(user.metadata(), row.Field("metadata"), /*company=*/false);
  }
  return out.ToStatus();
}

CallStatus RequestValidator::Validate(const v1::BulkIdentifyCompaniesRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  Checker check(limits_, out);
  const FieldPath root;
  const FieldPath companies = root.Field("companies");
  check.RequestSize(request, companies);
  check.Count(request.companies_size(), companies, limits_.max_bulk_rows, "row");
  for (int i = 0; i < request.companies_size(); ++i) {
    const v1::BulkCompany& company = request.companies(i);
    const FieldPath row = companies.Index(i);
    check.Id(company.company_id(), row.Field("company_id"));
    check.Metadata(company.metadata(), row.Field("metadata"), /*company=*/false);
  }
  return out.ToStatus();
}

CallStatus RequestValidator::Validate(const v1::TrackEventRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  Checker check(limits_, out);
  const FieldPath root;
  check.Id(request.user_id(), root.Field("user_id"));
  check.Name(request.event_name(), root.Field("event_name"), limits_.max_event_name_bytes);
  check.Metadata(request.metadata(), root.Field("metadata"), /*company=*/false);
  return out.ToStatus();
}

CallStatus RequestValidator::Validate(const v1::ListJobsRequest&) const { return absl::OkStatus(); }

CallStatus RequestValidator::Validate(const v1::GetJobRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  Checker check(limits_, out);
  const FieldPath root;
  const FieldPath job_id = root.Field("job_id");
  check.Name(request.job_id(), job_id, limits_.max_job_id_bytes);
  // Percent-encoding keeps `/` and `..` inside one path segment, but a segment that is exactly
  // `.` or `..` may still be resolved away by an HTTP stack; no Userpilot job id looks like that.
  if (request.job_id() == "." || request.job_id() == "..") {
    out.Add(job_id, "must not be \".\" or \"..\"");
  }
  return out.ToStatus();
}

CallStatus RequestValidator::Validate(const v1::DeleteUsersRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  Checker check(limits_, out);
  const FieldPath root;
  const FieldPath user_ids = root.Field("user_ids");
  check.Count(request.user_ids_size(), user_ids, limits_.max_delete_ids, "id");
  for (int i = 0; i < request.user_ids_size(); ++i) {
    check.Id(request.user_ids(i), user_ids.Index(i));
  }
  return out.ToStatus();
}

CallStatus RequestValidator::Validate(const v1::DeleteCompaniesRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  Checker check(limits_, out);
  const FieldPath root;
  const FieldPath company_ids = root.Field("company_ids");
  check.Count(request.company_ids_size(), company_ids, limits_.max_delete_ids, "id");
  for (int i = 0; i < request.company_ids_size(); ++i) {
    check.Id(request.company_ids(i), company_ids.Index(i));
  }
  return out.ToStatus();
}

}  // namespace userpilot::gateway
