// JSON text for log lines: correct string escaping and a one-line object builder.
//
// Escaping follows RFC 8259 and always yields valid UTF-8: `"` and `\` are escaped, control
// characters become \n, \t, \r, \b, \f or \u00XX (DEL too), U+2028/U+2029 become \u2028/\u2029
// (so a line is also a valid JavaScript string), and each byte that is not part of a
// well-formed UTF-8 sequence (a stray continuation byte, a truncated or overlong sequence, a
// surrogate, anything above U+10FFFF: DecodeUtf8 of service/common/text_scan.h decides) becomes
// U+FFFD. Log lines never break, whatever a caller or Userpilot sends.
//
// Thread-safety: free functions over values; a JsonObject is used by one thread at a time.
#ifndef USERPILOT_GATEWAY_SERVICE_LOGGING_JSON_WRITER_H_
#define USERPILOT_GATEWAY_SERVICE_LOGGING_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace userpilot::gateway {

// Appends `value` to `out` as a quoted JSON string.
void AppendJsonString(std::string& out, absl::string_view value);

// `value` as a quoted JSON string.
std::string JsonString(absl::string_view value);

// Builds the members of one JSON object, in the order added, without the braces (so a prefix
// such as time and level can be put in front): "\"a\":1,\"b\":\"x\"".
class JsonObject {
 public:
  JsonObject& Add(absl::string_view key, absl::string_view value);
  JsonObject& Add(absl::string_view key, const char* value) {
    return Add(key, absl::string_view(value));
  }
  JsonObject& Add(absl::string_view key, int64_t value);
  JsonObject& Add(absl::string_view key, uint64_t value);
  JsonObject& Add(absl::string_view key, int value) { return Add(key, int64_t{value}); }
  // Finite values as numbers (shortest round-trip form); NaN and infinities as null.
  JsonObject& Add(absl::string_view key, double value);
  JsonObject& Add(absl::string_view key, bool value);
  JsonObject& AddNull(absl::string_view key);

  // The members so far.
  const std::string& members() const { return members_; }
  // Moves the members out, leaving the object empty.
  std::string TakeMembers() { return std::move(members_); }
  // "{" + members() + "}".
  std::string ToString() const { return "{" + members_ + "}"; }

 private:
  void Key(absl::string_view key);
  std::string members_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_LOGGING_JSON_WRITER_H_
