// Redactor: removes the Userpilot API key from any text before it is written to a log.
//
// Every log line passes through one (Logger does it for each message and field, and again for
// the finished line), so the key cannot leak through an error message that quotes a header, a
// URL, or Userpilot's answer. Besides the key itself it scrubs the forms a message may carry it
// in: JSON-escaped (with or without `\/`), percent-encoded (upper- or lower-case hex), base64
// and base64url (padded or not, and the key's part of a longer encoded text such as
// "Token <key>"). Each occurrence becomes "[redacted]" (Secret's printed form). The upstream
// layer scrubs Userpilot's answers with the same forms (upstream/error_mapping.h).
//
// Thread-safety: immutable after construction; Redact() may run on any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_LOGGING_REDACTOR_H_
#define USERPILOT_GATEWAY_SERVICE_LOGGING_REDACTOR_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace userpilot::gateway {

class Redactor {
 public:
  static constexpr absl::string_view kRedacted = "[redacted]";

  // `secret` empty: Redact() changes nothing.
  explicit Redactor(absl::string_view secret);

  // `text` with every form of the secret replaced by "[redacted]".
  std::string Redact(absl::string_view text) const;
  // True when `text` holds any form of the secret.
  bool Contains(absl::string_view text) const;

 private:
  std::vector<std::string> needles_;  // Longest first, so no form is left half-replaced.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_LOGGING_REDACTOR_H_
