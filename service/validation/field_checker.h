// The per-field rules of request validation, one method per kind of field: the single copy of
// the rules that RequestValidator applies to unary requests and the import file checks
// (service/jobs/import) apply to the rows of an ImportData file. request_validator.h lists the
// rules; the limits are ValidationLimits.
//
// A checker records every rule a value breaks in a ViolationCollector, under the FieldPath it
// is given, with a description that never echoes the value (only its size, the offending code
// point or byte offset).
//
// Thread-safety: not thread-safe; one checker serves one validation (one request, one row) on
// one thread.
#ifndef USERPILOT_GATEWAY_SERVICE_VALIDATION_FIELD_CHECKER_H_
#define USERPILOT_GATEWAY_SERVICE_VALIDATION_FIELD_CHECKER_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "service/common/text_scan.h"
#include "service/validation/field_path.h"
#include "service/validation/validation_limits.h"
#include "service/validation/violation_collector.h"

namespace userpilot::gateway {

class FieldChecker {
 public:
  // `limits` and `out` must outlive the checker.
  FieldChecker(const ValidationLimits& limits, ViolationCollector& out)
      : limits_(limits), out_(out) {}

  // A user or company id: required, not only whitespace, at most max_id_bytes, valid UTF-8, no
  // control characters.
  void Id(absl::string_view value, const FieldPath& path);

  // An event name (max_event_name_bytes) or a job id (max_job_id_bytes): the id rules with
  // `max_bytes`.
  void Name(absl::string_view value, const FieldPath& path, int64_t max_bytes);

  // A list of 1..max_count elements; `noun` names one element ("row", "id").
  void Count(size_t count, const FieldPath& path, int64_t max_count, absl::string_view noun);

  // The serialized size of a bulk request (max_bulk_request_bytes).
  void RequestSize(const google::protobuf::Message& request, const FieldPath& path);

  // A whole metadata Struct: every rule below, keys in sorted order. `company` reserves the
  // keys that collide with the company's id upstream (`company_id`, `id`).
  void Metadata(const google::protobuf::Struct& metadata, const FieldPath& path, bool company);

  // The metadata rules one piece at a time, for metadata that is not a Struct (an import row's
  // JSON object). `path` is the metadata field's, `key_path` the key's (path.Key(key)).
  // At most max_metadata_keys keys.
  void MetadataKeyCount(size_t count, const FieldPath& path);
  // Non-empty, at most max_metadata_key_bytes, valid UTF-8, no control characters.
  void MetadataKey(absl::string_view key, const FieldPath& key_path, bool company);
  // A string value: at most max_string_value_bytes, valid UTF-8, no U+0000.
  void StringValue(absl::string_view text, const FieldPath& key_path);
  // A number value: finite.
  void NumberValue(double value, const FieldPath& key_path);
  // A value that is an object (`list` false) or a list (`list` true): refused, values are
  // primitives only.
  void NotPrimitive(const FieldPath& key_path, bool list);

 private:
  void TooLong(absl::string_view text, const FieldPath& path, int64_t max_bytes,
               absl::string_view subject);
  bool InvalidUtf8(const TextScan& scan, const FieldPath& path, absl::string_view subject);
  void Control(const TextScan& scan, const FieldPath& path, absl::string_view subject);

  const ValidationLimits& limits_;
  ViolationCollector& out_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_VALIDATION_FIELD_CHECKER_H_
