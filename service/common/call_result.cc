#include "service/common/call_result.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace userpilot::gateway {

CallStatus InvalidArgumentError(std::vector<FieldViolation> violations) {
  std::vector<std::string> parts;
  parts.reserve(violations.size());
  for (const FieldViolation& v : violations)
    parts.push_back(absl::StrCat(v.field, ": ", v.description));
  CallFacts facts;
  facts.violations = std::move(violations);
  return CallStatus(
      absl::InvalidArgumentError(absl::StrCat("invalid request: ", absl::StrJoin(parts, "; "))),
      std::move(facts));
}

}  // namespace userpilot::gateway
