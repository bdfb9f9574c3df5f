#include "tests/emulator/answer_shapes.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tests/emulator/json.h"

namespace userpilot::gateway::testing {
namespace {

constexpr int64_t kMaxShapeBytes = int64_t{64} << 20;

std::string JsonEscape(absl::string_view text) {
  std::string out;
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::string PercentEncode(absl::string_view text) {
  std::string out;
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

}  // namespace

absl::string_view KeyFormName(KeyForm form) {
  switch (form) {
    case KeyForm::kJson:
      return "json";
    case KeyForm::kPercent:
      return "percent";
    case KeyForm::kBase64:
      return "base64";
    case KeyForm::kBase64Url:
      return "base64url";
    case KeyForm::kRaw:
    default:
      return "raw";
  }
}

absl::StatusOr<KeyForm> KeyFormFromName(absl::string_view name) {
  for (KeyForm form : AllKeyForms()) {
    if (KeyFormName(form) == name) return form;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown key form '", name, "' (raw, json, percent, base64 or base64url)"));
}

std::vector<KeyForm> AllKeyForms() {
  return {KeyForm::kRaw, KeyForm::kJson, KeyForm::kPercent, KeyForm::kBase64, KeyForm::kBase64Url};
}

std::string EncodeKey(absl::string_view key, KeyForm form) {
  switch (form) {
    case KeyForm::kJson:
      return JsonEscape(key);
    case KeyForm::kPercent:
      return PercentEncode(key);
    case KeyForm::kBase64:
      return absl::Base64Escape(key);
    case KeyForm::kBase64Url:
      return absl::WebSafeBase64Escape(key);
    case KeyForm::kRaw:
    default:
      return std::string(key);
  }
}

std::string KeyEcho(absl::string_view key, const std::vector<KeyForm>& forms) {
  std::string out;
  for (KeyForm form : forms) absl::StrAppend(&out, out.empty() ? "" : " ", EncodeKey(key, form));
  return out;
}

std::string NestedArrays(int depth, int64_t min_bytes) {
  if (depth <= 0) return "";
  const int64_t nest_bytes = 2 * static_cast<int64_t>(depth);
  if (nest_bytes > kMaxShapeBytes) return NestedArrays(static_cast<int>(kMaxShapeBytes / 2), 0);
  std::string nest(static_cast<size_t>(depth), '[');
  nest.append(static_cast<size_t>(depth), ']');
  if (min_bytes <= nest_bytes) return nest;
  min_bytes = std::min(min_bytes, kMaxShapeBytes);
  std::string out = "[";
  out.reserve(static_cast<size_t>(min_bytes) + nest.size() + 2);
  while (static_cast<int64_t>(out.size()) + 1 < min_bytes) {
    if (out.size() > 1) out.push_back(',');
    out.append(nest);
  }
  out.push_back(']');
  return out;
}

std::string DeepJobBody(absl::string_view job_id, absl::string_view nest) {
  std::string out = "{\"job_id\":";
  AppendJsonString(job_id, &out);
  absl::StrAppend(&out, ",\"status\":\"processing\",\"nested\":", nest.empty() ? "[]" : nest, "}");
  return out;
}

std::string DeepErrorBody(absl::string_view nest) {
  return absl::StrCat(
      "{\"errors\":[{\"error\":\"bad_request\",\"error_code\":\"invalid_body\",\"message\":"
      "\"the body is nested too deep\",\"details\":",
      nest.empty() ? "[]" : nest, "}]}");
}

std::string InsertIntoStringMembers(absl::string_view json, absl::string_view text) {
  std::string escaped;
  AppendJsonString(absl::StrCat(text, " "), &escaped);
  const absl::string_view inner = absl::string_view(escaped).substr(1, escaped.size() - 2);
  std::string out;
  out.reserve(json.size() + 4 * inner.size());
  size_t i = 0;
  bool in_string = false;
  while (i < json.size()) {
    const char c = json[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < json.size()) {
        out.push_back(json[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      ++i;
      continue;
    }
    if (c != '"') {
      out.push_back(c);
      ++i;
      continue;
    }
    // A string token outside any string: a member name when followed by ':'.
    bool inserted = false;
    for (absl::string_view name : {"filename", "links", "message", "details"}) {
      const std::string member = absl::StrCat("\"", name, "\":\"");
      if (json.substr(i, member.size()) == member) {
        out.append(member);
        out.append(inner.data(), inner.size());
        i += member.size();
        in_string = true;  // Now inside the value; copy it as is.
        inserted = true;
        break;
      }
    }
    if (!inserted) {
      out.push_back(c);
      in_string = true;
      ++i;
    }
  }
  return out;
}

}  // namespace userpilot::gateway::testing
