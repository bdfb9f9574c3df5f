// What a caller's name may be: the rule shared by every source of names (bearer-token files,
// client certificates, the allow-list, and `x-caller` in the unauthenticated development mode).
//
// Caller names reach logs and metric labels, so they are never taken verbatim from a request:
// 1 to 64 bytes of [A-Za-z0-9._-]. That admits Kubernetes service names and DNS names
// (`billing.prod.svc.cluster.local`) and excludes wildcards, spaces and anything that would need
// escaping.
//
// Thread-safety: pure functions.
#ifndef USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_NAME_H_
#define USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_NAME_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace userpilot::gateway {

// Longest caller name, in bytes.
inline constexpr size_t kMaxCallerNameBytes = 64;

// What IsValidCallerName accepts, for error messages.
inline constexpr absl::string_view kCallerNameRule = "1 to 64 characters of A-Z a-z 0-9 . _ -";

// True when `name` is 1..kMaxCallerNameBytes bytes of [A-Za-z0-9._-].
bool IsValidCallerName(absl::string_view name);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_NAME_H_
