#include "service/validation/validation_limits.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace userpilot::gateway {
namespace {

// One limit, its value and the largest value that makes sense for it.
struct Bound {
  const char* name;
  int64_t value;
  int64_t ceiling;
  // Why the ceiling is what it is, quoted in the error.
  const char* why;
};

constexpr const char* kSanity = "a sanity bound; larger values are almost certainly a typo";

}  // namespace

std::vector<ValidationLimits::Problem> ValidationLimits::Problems() const {
  const Bound bounds[] = {
      {"max_id_bytes", max_id_bytes, 4096, kSanity},
      {"max_event_name_bytes", max_event_name_bytes, 4096, kSanity},
      {"max_metadata_keys", max_metadata_keys, 10000, kSanity},
      {"max_metadata_key_bytes", max_metadata_key_bytes, 4096, kSanity},
      {"max_string_value_bytes", max_string_value_bytes, 1024 * 1024, kSanity},
      {"max_bulk_rows", max_bulk_rows, kUserpilotMaxBulkRows,
       "Userpilot's limit for one bulk identify request"},
      {"max_bulk_request_bytes", max_bulk_request_bytes, 50'000'000,
       "Userpilot's 50 MB limit for one bulk payload"},
      {"max_delete_ids", max_delete_ids, 10'000, kSanity},
      {"max_job_id_bytes", max_job_id_bytes, 4096, kSanity},
      {"max_violations", max_violations, 1000, kSanity},
  };
  std::vector<Problem> problems;
  for (const Bound& b : bounds) {
    if (b.value < 1 || b.value > b.ceiling) {
      problems.push_back({b.name, absl::StrCat("must be between 1 and ", b.ceiling, " (", b.why,
                                               "), got ", b.value)});
    }
  }
  return problems;
}

int64_t ValidationLimits::MaxRequestBytes(RequestShape shape) const {
  constexpr int64_t kFraming = 32;  // tags and lengths of one field, generously
  const int64_t metadata =
      max_metadata_keys * (max_metadata_key_bytes + max_string_value_bytes + 4 * kFraming);
  switch (shape) {
    case RequestShape::kEntity:
      // A user (or event) with its metadata and a company with its own: two ids, an event
      // name, two metadata objects.
      return 2 * (max_id_bytes + kFraming) + max_event_name_bytes + 2 * metadata + 8 * kFraming;
    case RequestShape::kBulk:
      return max_bulk_request_bytes;
    case RequestShape::kDelete:
      return max_delete_ids * (max_id_bytes + kFraming) + kFraming;
    case RequestShape::kJob:
      return max_job_id_bytes + kFraming;
  }
  return max_bulk_request_bytes;
}

int64_t ValidationLimits::MaxMessageBytes(int64_t max_import_chunk_bytes) const {
  int64_t most = max_import_chunk_bytes;
  for (RequestShape shape :
       {RequestShape::kEntity, RequestShape::kBulk, RequestShape::kDelete, RequestShape::kJob}) {
    most = std::max(most, MaxRequestBytes(shape));
  }
  return most;
}

absl::Status ValidationLimits::Validate() const {
  std::vector<std::string> lines;
  for (const Problem& problem : Problems()) {
    lines.push_back(absl::StrCat(problem.field, " ", problem.message));
  }
  if (lines.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("invalid validation limits: ", absl::StrJoin(lines, "; ")));
}

}  // namespace userpilot::gateway
