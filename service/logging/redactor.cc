#include "service/logging/redactor.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
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

// Base64 fragments shorter than this are not scrubbed: too likely to match unrelated text.
constexpr size_t kMinBase64Fragment = 8;

// The secret's base64 forms (standard and URL-safe alphabets), padded or not, and the parts of
// them that stay the same wherever the secret sits in a longer encoded text ("Token <key>",
// "user:<key>"): for each of the three alignments, the 4-character groups whose 3 bytes are all
// the secret's.
std::vector<std::string> Base64Forms(absl::string_view secret) {
  std::vector<std::string> forms;
  for (bool url : {false, true}) {
    for (size_t shift = 0; shift < 3; ++shift) {
      const std::string data = std::string(shift, '\0') + std::string(secret);
      std::string encoded = url ? absl::WebSafeBase64Escape(data) : absl::Base64Escape(data);
      if (shift == 0) {
        // The whole form, padded and not (the longer is replaced first, leaving no '=').
        const std::string unpadded(absl::StripSuffix(absl::StripSuffix(encoded, "="), "="));
        forms.push_back(unpadded);
        forms.push_back(unpadded + std::string((4 - unpadded.size() % 4) % 4, '='));
      }
      const size_t full_groups = data.size() / 3;
      const size_t first = shift == 0 ? 0 : 1;  // The first group holds bytes before the secret.
      if (full_groups <= first) continue;
      forms.push_back(encoded.substr(4 * first, 4 * (full_groups - first)));
    }
  }
  forms.erase(std::remove_if(forms.begin(), forms.end(),
                             [](const std::string& f) { return f.size() < kMinBase64Fragment; }),
              forms.end());
  return forms;
}

}  // namespace

Redactor::Redactor(absl::string_view secret) {
  if (secret.empty()) return;
  std::string escaped = JsonString(secret);  // Quoted: drop the quotes.
  escaped = escaped.substr(1, escaped.size() - 2);
  std::vector<std::string> forms = {std::string(secret), escaped,
                                    absl::StrReplaceAll(escaped, {{"/", "\\/"}}),
                                    PercentEncode(secret, true), PercentEncode(secret, false)};
  for (std::string& form : Base64Forms(secret)) forms.push_back(std::move(form));
  for (std::string& form : forms) {
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
