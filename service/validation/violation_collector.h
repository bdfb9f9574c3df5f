// Gathers the violations of one request (or one import row) and turns them into one
// INVALID_ARGUMENT status, listing at most a configured number of them.
//
// When more violations arrive than may be listed, the extra ones are only counted, and the status
// ends with one summary violation: its field is the top-level field of the first violation left
// out (`users` for a bulk request), its description says how many were left out.
//
// Thread-safety: not thread-safe; one collector serves one validation call on one thread.
#ifndef USERPILOT_GATEWAY_SERVICE_VALIDATION_VIOLATION_COLLECTOR_H_
#define USERPILOT_GATEWAY_SERVICE_VALIDATION_VIOLATION_COLLECTOR_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "service/common/call_result.h"
#include "service/validation/field_path.h"

namespace userpilot::gateway {

class ViolationCollector {
 public:
  // Lists at most `max_listed` (at least 1) violations.
  explicit ViolationCollector(size_t max_listed);

  // Records that the field at `path` breaks a rule, described by `description`.
  void Add(const FieldPath& path, std::string description);

  // True when Add() will only count, not list: callers may skip building descriptions.
  bool full() const { return listed_.size() >= max_listed_; }

  // OK when nothing was added; otherwise InvalidArgumentError() of the listed violations plus
  // the summary, if any were left out.
  CallStatus ToStatus() const;

 private:
  size_t max_listed_;
  std::vector<FieldViolation> listed_;
  size_t omitted_ = 0;
  std::string first_omitted_field_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_VALIDATION_VIOLATION_COLLECTOR_H_
