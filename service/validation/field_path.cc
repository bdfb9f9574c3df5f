#include "service/validation/field_path.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/common/text_scan.h"

namespace userpilot::gateway {
namespace {

// Keys longer than this are shortened in paths to their first kShownKeyBytes bytes.
constexpr size_t kMaxKeyBytesInPath = 64;
constexpr size_t kShownKeyBytes = 48;

bool IsIdentifier(absl::string_view key) {
  if (key.empty() || absl::ascii_isdigit(static_cast<unsigned char>(key[0]))) return false;
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// Appends `key` between double quotes, escaped as described in the header.
void AppendQuoted(absl::string_view key, std::string& out) {
  out.push_back('"');
  size_t pos = 0;
  while (pos < key.size()) {
    char32_t c;
    const size_t length = DecodeUtf8(key, pos, &c);
    if (length == 0) {
      absl::StrAppendFormat(&out, "\\x%02X", static_cast<unsigned char>(key[pos]));
      ++pos;
      continue;
    }
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (IsControl(c)) {
      absl::StrAppendFormat(&out, "\\u%04X", static_cast<uint32_t>(c));
    } else {
      out.append(key.data() + pos, length);
    }
    pos += length;
  }
  out.push_back('"');
}

void AppendKey(absl::string_view key, bool first, std::string& out) {
  if (key.size() > kMaxKeyBytesInPath) {
    size_t cut = kShownKeyBytes;
    // Back off to a character boundary so the shown part does not end in half a character.
    while (cut > 0 && (static_cast<unsigned char>(key[cut]) & 0xC0) == 0x80) --cut;
    out.push_back('[');
    AppendQuoted(key.substr(0, cut), out);
    out.append("...]");
  } else if (IsIdentifier(key)) {
    if (!first) out.push_back('.');
    out.append(key.data(), key.size());
  } else {
    out.push_back('[');
    AppendQuoted(key, out);
    out.push_back(']');
  }
}

}  // namespace

void FieldPath::AppendTo(std::string& out) const {
  if (kind_ == Kind::kRoot) return;
  parent_->AppendTo(out);
  const bool first = parent_->kind_ == Kind::kRoot;
  switch (kind_) {
    case Kind::kRoot:
      break;
    case Kind::kField:
      if (!first) out.push_back('.');
      out.append(name_.data(), name_.size());
      break;
    case Kind::kIndex:
      absl::StrAppend(&out, "[", index_, "]");
      break;
    case Kind::kKey:
      AppendKey(name_, first, out);
      break;
  }
}

std::string FieldPath::ToString() const {
  std::string out;
  AppendTo(out);
  return out;
}

absl::string_view FieldPath::TopLevelField() const {
  if (kind_ == Kind::kRoot) return {};
  const FieldPath* top = this;
  while (top->parent_->kind_ != Kind::kRoot) top = top->parent_;
  return top->kind_ == Kind::kIndex ? absl::string_view() : top->name_;
}

}  // namespace userpilot::gateway
