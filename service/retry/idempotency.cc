#include "service/retry/idempotency.h"

namespace userpilot::gateway {

absl::string_view UpstreamMethodName(UpstreamMethod method) {
  switch (method) {
    case UpstreamMethod::kIdentifyUser:
      return "IdentifyUser";
    case UpstreamMethod::kIdentifyCompany:
      return "IdentifyCompany";
    case UpstreamMethod::kBulkIdentifyUsers:
      return "BulkIdentifyUsers";
    case UpstreamMethod::kBulkIdentifyCompanies:
      return "BulkIdentifyCompanies";
    case UpstreamMethod::kTrackEvent:
      return "TrackEvent";
    case UpstreamMethod::kListJobs:
      return "ListJobs";
    case UpstreamMethod::kGetJob:
      return "GetJob";
    case UpstreamMethod::kDeleteUsers:
      return "DeleteUsers";
    case UpstreamMethod::kDeleteCompanies:
      return "DeleteCompanies";
    case UpstreamMethod::kImportFile:
      return "ImportFile";
  }
  return "Unknown";
}

Idempotency DefaultIdempotency(UpstreamMethod method) {
  switch (method) {
    case UpstreamMethod::kTrackEvent:
    case UpstreamMethod::kImportFile:
      return Idempotency::kNonIdempotent;
    default:
      return Idempotency::kIdempotent;
  }
}

}  // namespace userpilot::gateway
