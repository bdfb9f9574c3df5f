#include "service/validation/violation_collector.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {

ViolationCollector::ViolationCollector(size_t max_listed)
    : max_listed_(std::max<size_t>(max_listed, 1)) {}

void ViolationCollector::Add(const FieldPath& path, std::string description) {
  if (!full()) {
    listed_.push_back({path.ToString(), std::move(description)});
    return;
  }
  if (omitted_++ == 0) first_omitted_field_ = std::string(path.TopLevelField());
}

CallStatus ViolationCollector::ToStatus() const {
  if (listed_.empty()) return absl::OkStatus();
  if (omitted_ == 0) return InvalidArgumentError(listed_);
  std::vector<FieldViolation> violations = listed_;
  violations.push_back(
      {first_omitted_field_,
       absl::StrCat("and ", omitted_, " more violation", omitted_ == 1 ? "" : "s",
                    " not listed (the error lists the first ", listed_.size(), ")")});
  return InvalidArgumentError(violations);
}

}  // namespace userpilot::gateway
