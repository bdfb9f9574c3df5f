#include "service/logging/redactor.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "service/logging/json_writer.h"

namespace userpilot::gateway {
namespace {

// RFC 3986 percent-encoding of everything outside the unreserved set, in upper- and lower-case
// hex (both are legal and both appear in the wild).
std::string PercentEncode(absl::string_view value, bool upper) {
  const char* hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (char ch : value) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xF];
    }
  }
  return out;
}

}  // namespace

Redactor::Redactor(absl::string_view secret) {
  if (secret.empty()) return;
  std::string escaped = JsonString(secret);  // Quoted: drop the quotes.
  escaped = escaped.substr(1, escaped.size() - 2);
  for (std::string form :
       {std::string(secret), escaped, PercentEncode(secret, true), PercentEncode(secret, false)}) {
    if (std::find(needles_.begin(), needles_.end(), form) == needles_.end()) {
      needles_.push_back(std::move(form));
    }
  }
  std::sort(needles_.begin(), needles_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string Redactor::Redact(absl::string_view text) const {
  std::string out(text);
  for (const std::string& needle : needles_) {
    if (absl::StrContains(out, needle)) {
      out = absl::StrReplaceAll(out, {{needle, kRedacted}});
    }
  }
  return out;
}

bool Redactor::Contains(absl::string_view text) const {
  return std::any_of(needles_.begin(), needles_.end(),
                     [text](const std::string& needle) { return absl::StrContains(text, needle); });
}

}  // namespace userpilot::gateway
