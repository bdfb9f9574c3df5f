// Small HTTP helpers for the Userpilot emulator: percent-encoding of path segments, reason
// phrases and time formats.
//
// Thread-safety: stateless free functions, safe from any thread.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_HTTP_UTIL_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_HTTP_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace userpilot::gateway::testing {

// Decodes %XX escapes ('+' stays '+': this is for paths). INVALID_ARGUMENT on a malformed
// escape.
absl::StatusOr<std::string> PercentDecode(absl::string_view text);

// Encodes `segment` for use as one path segment: everything but RFC 3986 unreserved
// characters becomes %XX (so ':' and '/' are encoded).
std::string PercentEncodeSegment(absl::string_view segment);

// Splits a raw path such as "/v1/background_jobs/a%3Ab" into its raw segments
// {"v1", "background_jobs", "a%3Ab"}; the leading '/' yields no segment, a trailing '/' yields
// an empty last segment.
std::vector<absl::string_view> SplitPathSegments(absl::string_view raw_path);

// "OK", "Accepted", ... ("Unknown" for codes it does not know).
absl::string_view ReasonPhrase(int status);

// 2025-05-19T07:29:12Z (UTC, whole seconds): how the emulator writes job times.
std::string FormatJobTime(absl::Time t);
// 2025-05-19T07:29:12.123456Z: how the admin API writes receive times.
std::string FormatPreciseTime(absl::Time t);
// Mon, 19 May 2025 07:29:12 GMT: the Date header.
std::string FormatHttpDate(absl::Time t);

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_HTTP_UTIL_H_
