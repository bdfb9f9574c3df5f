// Fuzz target: job ids in URLs. A job id comes from callers (GetJob, WatchJob) and from
// Userpilot's answers, and goes into the path of GET /v1/background_jobs/{job_id}, percent-
// encoded as exactly one segment by EncodePathSegment (upstream/http_userpilot_stub.h); the
// Userpilot emulator decodes it with PercentDecode (tests/emulator/http_util.h), as an HTTP
// server does.
//
// Input: any bytes, taken both as a job id and as an encoded path segment.
//
// Properties, besides the sanitizers':
//  - the encoding holds only RFC 3986 unreserved characters other than `.`, and `%` followed by
//    two upper-case hex digits: no `/`, `?`, `#` or dot segment can change the path;
//  - decoding the encoding gives the job id back, byte for byte;
//  - any text the decoder accepts is encoded and decoded back to the same bytes, and the
//    decoder refuses a `%` not followed by two hex digits.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "service/upstream/http_userpilot_stub.h"
#include "tests/emulator/http_util.h"

namespace userpilot::gateway {
namespace {

bool IsUpperHex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

void CheckEncoding(absl::string_view id) {
  const std::string encoded = EncodePathSegment(id);
  FUZZ_CHECK(encoded.size() <= 3 * id.size(), "encoding too long");
  for (size_t i = 0; i < encoded.size(); ++i) {
    const char c = encoded[i];
    if (c == '%') {
      FUZZ_CHECK(i + 2 < encoded.size() && IsUpperHex(encoded[i + 1]) && IsUpperHex(encoded[i + 2]),
                 "a % without two upper-case hex digits: " + encoded);
      i += 2;
      continue;
    }
    FUZZ_CHECK(
        absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '~',
        "a reserved character left in: " + encoded);
  }
  absl::StatusOr<std::string> decoded = testing::PercentDecode(encoded);
  FUZZ_CHECK(decoded.ok(), "the encoding does not decode: " + decoded.status().ToString());
  FUZZ_CHECK(*decoded == id, "decoding the encoding does not give the id back");
}

void CheckDecoding(absl::string_view text) {
  absl::StatusOr<std::string> decoded = testing::PercentDecode(text);
  bool well_formed = true;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') continue;
    if (i + 2 >= text.size() || !absl::ascii_isxdigit(static_cast<unsigned char>(text[i + 1])) ||
        !absl::ascii_isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      well_formed = false;
      break;
    }
    i += 2;
  }
  FUZZ_CHECK(decoded.ok() == well_formed,
             "the decoder's verdict on a malformed escape: " + decoded.status().ToString());
  if (decoded.ok()) CheckEncoding(*decoded);
}

}  // namespace
}  // namespace userpilot::gateway

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  userpilot::gateway::CheckEncoding(input);
  userpilot::gateway::CheckDecoding(input);
  return 0;
}
