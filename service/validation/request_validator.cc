#include "service/validation/request_validator.h"

#include <cstdio>
#include <cstdlib>

#include "service/validation/field_checker.h"
#include "service/validation/field_path.h"
#include "service/validation/violation_collector.h"

namespace userpilot::gateway {
RequestValidator::RequestValidator() : RequestValidator(ValidationLimits()) {}

RequestValidator::RequestValidator(const ValidationLimits& limits) : limits_(limits) {
  if (absl::Status status = limits_.Validate(); !status.ok()) {
    std::fprintf(stderr, "RequestValidator: %s\n", status.ToString().c_str());
    std::abort();
  }
}

CallStatus RequestValidator::Validate(const v1::IdentifyUserRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  FieldChecker check(limits_, out);
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
  FieldChecker check(limits_, out);
  const FieldPath root;
  check.Id(request.company_id(), root.Field("company_id"));
  check.Metadata(request.metadata(), root.Field("metadata"), /*company=*/false);
  return out.ToStatus();
}

CallStatus RequestValidator::Validate(const v1::BulkIdentifyUsersRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  FieldChecker check(limits_, out);
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
  FieldChecker check(limits_, out);
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
  FieldChecker check(limits_, out);
  const FieldPath root;
  check.Id(request.user_id(), root.Field("user_id"));
  check.Name(request.event_name(), root.Field("event_name"), limits_.max_event_name_bytes);
  check.Metadata(request.metadata(), root.Field("metadata"), /*company=*/false);
  return out.ToStatus();
}

CallStatus RequestValidator::Validate(const v1::ListJobsRequest&) const { return absl::OkStatus(); }

CallStatus RequestValidator::Validate(const v1::GetJobRequest& request) const {
  ViolationCollector out(static_cast<size_t>(limits_.max_violations));
  FieldChecker check(limits_, out);
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
  FieldChecker check(limits_, out);
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
  FieldChecker check(limits_, out);
  const FieldPath root;
  const FieldPath company_ids = root.Field("company_ids");
  check.Count(request.company_ids_size(), company_ids, limits_.max_delete_ids, "id");
  for (int i = 0; i < request.company_ids_size(); ++i) {
    check.Id(request.company_ids(i), company_ids.Index(i));
  }
  return out.ToStatus();
}

}  // namespace userpilot::gateway
