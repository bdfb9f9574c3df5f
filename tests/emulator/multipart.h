// A multipart/form-data parser (RFC 7578) for the emulator's file uploads: POST /v1/imports and
// the NDJSON form of the two bulk identify endpoints.
//
// Thread-safety: stateless free functions, safe from any thread. The parts returned point into
// the body passed in, which must outlive them.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_MULTIPART_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_MULTIPART_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace userpilot::gateway::testing {

struct MultipartPart {
  std::string name;          // The `name` parameter of Content-Disposition.
  std::string filename;      // The `filename` parameter, "" when absent.
  std::string content_type;  // The part's Content-Type, "" when absent.
  absl::string_view data;    // The part's content, byte-exact.
};

// True when `content_type` (a Content-Type header value) is multipart/form-data.
bool IsMultipartFormData(absl::string_view content_type);

// Splits `body` into its parts using the boundary named in `content_type`. INVALID_ARGUMENT
// when the boundary is missing or the body is not well-formed multipart.
absl::StatusOr<std::vector<MultipartPart>> ParseMultipart(absl::string_view content_type,
                                                          absl::string_view body);

// The part named `name`, or nullptr.
const MultipartPart* FindPart(const std::vector<MultipartPart>& parts, absl::string_view name);

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_MULTIPART_H_
