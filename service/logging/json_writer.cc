#include "service/logging/json_writer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "service/common/text_scan.h"

namespace userpilot::gateway {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8.

void AppendUnicodeEscape(std::string& out, char32_t code) {
  out += "\\u";
  out += kHex[(code >> 12) & 0xF];
  out += kHex[(code >> 8) & 0xF];
  out += kHex[(code >> 4) & 0xF];
  out += kHex[code & 0xF];
}

}  // namespace

void AppendJsonString(std::string& out, absl::string_view value) {
  out.reserve(out.size() + value.size() + 2);
  out += '"';
  size_t i = 0;
  while (i < value.size()) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            AppendUnicodeEscape(out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    char32_t code = 0;
    const size_t length = DecodeUtf8(value, i, &code);
    if (length == 0) {
      out += kReplacement;
      ++i;
    } else if (code == 0x2028 || code == 0x2029) {
      AppendUnicodeEscape(out, code);
      i += length;
    } else {
      out.append(value.data() + i, length);
      i += length;
    }
  }
  out += '"';
}

std::string JsonString(absl::string_view value) {
  std::string out;
  AppendJsonString(out, value);
  return out;
}

void JsonObject::Key(absl::string_view key) {
  if (!members_.empty()) members_ += ',';
  AppendJsonString(members_, key);
  members_ += ':';
}

JsonObject& JsonObject::Add(absl::string_view key, absl::string_view value) {
  Key(key);
  AppendJsonString(members_, value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, int64_t value) {
  Key(key);
  absl::StrAppend(&members_, value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, uint64_t value) {
  Key(key);
  absl::StrAppend(&members_, value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, double value) {
  Key(key);
  if (!std::isfinite(value)) {
    members_ += "null";
    return *this;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  // Prefer the shortest form that reads back the same (12.5, not 12.500000000000000).
  for (int precision = 1; precision <= 17; ++precision) {
    char shorter[32];
    std::snprintf(shorter, sizeof(shorter), "%.*g", precision, value);
    if (std::strtod(shorter, nullptr) == value) {
      members_ += shorter;
      return *this;
    }
  }
  members_ += buffer;
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, bool value) {
  Key(key);
  members_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::AddNull(absl::string_view key) {
  Key(key);
  members_ += "null";
  return *this;
}

}  // namespace userpilot::gateway
