// The bounds the gateway puts on requests before anything is sent to Userpilot.
//
// Each field is set from a gateway flag (service/config/flags.cc, copied over in
// service/app/gateway.cc); the comment above each field is written to serve as `--help` text and
// README entry. Lengths are counted in UTF-8 bytes. Defaults are safe for production.
// `Validate()` refuses a configuration that is not sane (a non-positive bound, a bound above
// Userpilot's own limit, or one far beyond any real use, which usually means a typo). Its
// ceilings equal those service/config checks, so a configuration accepted there passes here.
//
// Thread-safety: a plain value; const access from any thread is safe.
#ifndef USERPILOT_GATEWAY_SERVICE_VALIDATION_VALIDATION_LIMITS_H_
#define USERPILOT_GATEWAY_SERVICE_VALIDATION_VALIDATION_LIMITS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace userpilot::gateway {

struct ValidationLimits {
  // Userpilot refuses bulk identify requests of more than 10,000 rows.
  static constexpr int64_t kUserpilotMaxBulkRows = 10'000;

  // Longest user or company id accepted, in UTF-8 bytes (user_id, company_id, company.company_id,
  // the company_id of a bulk row, and each id of a delete request).
  int64_t max_id_bytes = 256;

  // Longest event name accepted by TrackEvent, in UTF-8 bytes.
  int64_t max_event_name_bytes = 256;

  // Most properties accepted in one metadata object (a user's, a company's, an event's, or one
  // bulk row's).
  int64_t max_metadata_keys = 100;

  // Longest metadata property name accepted, in UTF-8 bytes.
  int64_t max_metadata_key_bytes = 128;

  // Longest string property value accepted, in UTF-8 bytes.
  int64_t max_string_value_bytes = 4096;

  // Most rows accepted in one BulkIdentifyUsers or BulkIdentifyCompanies request. At most
  // 10,000, Userpilot's own limit.
  int64_t max_bulk_rows = kUserpilotMaxBulkRows;

  // Largest BulkIdentifyUsers or BulkIdentifyCompanies request accepted, in bytes of its
  // serialized protobuf form (the JSON sent upstream is somewhat larger). The gRPC server's
  // maximum receive message size must be at least this for the check to matter.
  int64_t max_bulk_request_bytes = 16 * 1024 * 1024;

  // Most ids accepted in one DeleteUsers or DeleteCompanies request. Userpilot allows one
  // delete request every 2 seconds, so batches should be large, but it documents no per-request
  // cap: 1,000 ids keep one request body under about 260 KB with the default id length.
  int64_t max_delete_ids = 1000;

  // Longest job id accepted by GetJob, in UTF-8 bytes (Userpilot's job ids are about 70 bytes).
  int64_t max_job_id_bytes = 512;

  // Most field violations listed in one INVALID_ARGUMENT error; the rest are summed up in one
  // final violation. Each violation travels in the response trailers, which gRPC clients limit
  // to 8 KiB by default: raising this much past 20 risks errors that clients cannot read.
  int64_t max_violations = 10;

  // OK when every limit is positive and within its ceiling (Userpilot's own limit where one is
  // documented, a generous sanity bound otherwise). Otherwise INVALID_ARGUMENT naming every
  // field that is out of range, its value and the allowed range.
  absl::Status Validate() const;

  // One problem found by Validate(): the field (also the gateway flag's name) and what is wrong.
  struct Problem {
    const char* field;
    std::string message;  // "must be between 1 and 4096 (...), got 0"
  };
  // Every field out of range; empty when Validate() is OK.
  std::vector<Problem> Problems() const;

  // The shapes of request, by what bounds their size.
  enum class RequestShape {
    kEntity,  // IdentifyUser, IdentifyCompany, TrackEvent: ids, a name, two metadata objects
    kBulk,    // BulkIdentifyUsers, BulkIdentifyCompanies: max_bulk_request_bytes
    kDelete,  // DeleteUsers, DeleteCompanies: max_delete_ids ids
    kJob,     // GetJob, ListJobs: one job id at most
  };
  // The largest serialized request of `shape` that these limits can let through, protobuf's
  // framing included (generously: 32 bytes per field), so that anything larger can be refused
  // from its size alone, before it is parsed (server/gateway_service.cc). One place derives the
  // gRPC receive bounds from the validation rules.
  int64_t MaxRequestBytes(RequestShape shape) const;

  // The largest message any RPC may carry: the largest of MaxRequestBytes and the ImportData
  // chunk bound `max_import_chunk_bytes`. The gRPC server's receive limit.
  int64_t MaxMessageBytes(int64_t max_import_chunk_bytes) const;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_VALIDATION_VALIDATION_LIMITS_H_
