#include "service/auth/caller_name.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace userpilot::gateway {

bool IsValidCallerName(absl::string_view name) {
  return !name.empty() && name.size() <= kMaxCallerNameBytes &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
         });
}

}  // namespace userpilot::gateway
