#include "service/jobs/import/json_scan.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "service/common/text_scan.h"

namespace userpilot::gateway {
namespace {

// Nesting deeper than this is refused (it bounds the recursion).
constexpr int kMaxDepth = 64;

class Scanner {
 public:
  explicit Scanner(absl::string_view in) : in_(in) {}

  bool Fail(std::string why) {
    if (error_.empty()) error_ = absl::StrCat(why, " at byte ", pos_ + 1);
    return false;
  }
  const std::string& error() const { return error_; }

  void SkipSpace() {
    while (pos_ < in_.size()) {
      const char c = in_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
      ++pos_;
    }
  }
  bool AtEnd() const { return pos_ >= in_.size(); }
  char Peek() const { return pos_ < in_.size() ? in_[pos_] : '\0'; }

  // A string at pos_ (which holds '"'); unescaped into `out` when not null.
  bool String(std::string* out) {
    ++pos_;
    while (true) {
      if (AtEnd()) return Fail("unterminated string");
      const auto c = static_cast<unsigned char>(in_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return Fail("control character in a string");
      if (c == '\\') {
        if (!Escape(out)) return false;
        continue;
      }
      if (c < 0x80) {
        if (out != nullptr) out->push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      if (!Utf8(out)) return false;
    }
  }

  // One value at pos_. `kind` receives its kind; `text` (if not null) a string's text.
  bool Value(int depth, JsonKind* kind, std::string* text,
             std::vector<ScannedMember>* members = nullptr) {
    if (depth > kMaxDepth) return Fail("nesting too deep");
    SkipSpace();
    switch (Peek()) {
      case '"':
        *kind = JsonKind::kString;
        return String(text);
      case '{':
        *kind = JsonKind::kObject;
        return Object(depth, members);
      case '[':
        *kind = JsonKind::kArray;
        return Array(depth);
      case 't':
        *kind = JsonKind::kBool;
        return Literal("true");
      case 'f':
        *kind = JsonKind::kBool;
        return Literal("false");
      case 'n':
        *kind = JsonKind::kNull;
        return Literal("null");
      default:
        *kind = JsonKind::kNumber;
        return Number();
    }
  }

  // An object at pos_; its members (keys, kinds, string texts) go to `members` if not null,
  // and those of its member named "metadata", when that is an object, to `metadata` if not
  // null (the last such member wins).
  bool Object(int depth, std::vector<ScannedMember>* members,
              std::vector<ScannedMember>* metadata = nullptr) {
    ++pos_;
    SkipSpace();
    if (Peek() == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      SkipSpace();
      if (Peek() != '"') return Fail("expected a member name");
      ScannedMember member;
      if (!String(members != nullptr ? &member.key : nullptr)) return false;
      SkipSpace();
      if (Peek() != ':') return Fail("expected ':'");
      ++pos_;
      std::vector<ScannedMember>* nested = nullptr;
      if (metadata != nullptr && member.key == "metadata") {
        SkipSpace();
        if (Peek() == '{') {
          metadata->clear();
          nested = metadata;
        }
      }
      if (!Value(depth + 1, &member.kind, members != nullptr ? &member.text : nullptr, nested)) {
        return false;
      }
      if (members != nullptr) members->push_back(std::move(member));
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or '}'");
    }
  }

 private:
  bool Array(int depth) {
    ++pos_;
    SkipSpace();
    if (Peek() == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      JsonKind kind;
      if (!Value(depth + 1, &kind, nullptr)) return false;
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == ']') {
        ++pos_;
        return true;
      }
      return Fail("expected ',' or ']'");
    }
  }

  bool Literal(absl::string_view word) {
    if (in_.substr(pos_, word.size()) != word) return Fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  static bool Digit(char c) { return c >= '0' && c <= '9'; }

  bool Number() {
    const size_t start = pos_;
    if (Peek() == '-') ++pos_;
    if (Peek() == '0') {
      ++pos_;
    } else if (Digit(Peek())) {
      while (Digit(Peek())) ++pos_;
    } else {
      pos_ = start;
      return Fail("expected a value");
    }
    if (Peek() == '.') {
      ++pos_;
      if (!Digit(Peek())) return Fail("invalid number");
      while (Digit(Peek())) ++pos_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!Digit(Peek())) return Fail("invalid number");
      while (Digit(Peek())) ++pos_;
    }
    return true;
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool Hex4(uint32_t* value) {
    if (pos_ + 4 > in_.size()) return Fail("invalid \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = Hex(in_[pos_ + static_cast<size_t>(i)]);
      if (h < 0) return Fail("invalid \\u escape");
      v = (v << 4) | static_cast<uint32_t>(h);
    }
    pos_ += 4;
    *value = v;
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  // An escape at pos_ (which holds '\\').
  bool Escape(std::string* out) {
    ++pos_;
    if (AtEnd()) return Fail("unterminated string");
    const char c = in_[pos_++];
    char plain = 0;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        plain = c;
        break;
      case 'b':
        plain = '\b';
        break;
      case 'f':
        plain = '\f';
        break;
      case 'n':
        plain = '\n';
        break;
      case 'r':
        plain = '\r';
        break;
      case 't':
        plain = '\t';
        break;
      case 'u': {
        uint32_t cp = 0;
        if (!Hex4(&cp)) return false;
        if (cp >= 0xd800 && cp <= 0xdbff) {  // A high surrogate needs its low half.
          uint32_t low = 0;
          if (in_.substr(pos_, 2) != "\\u") return Fail("unpaired surrogate in \\u escape");
          pos_ += 2;
          if (!Hex4(&low)) return false;
          if (low < 0xdc00 || low > 0xdfff) return Fail("unpaired surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          return Fail("unpaired surrogate in \\u escape");
        }
        if (out != nullptr) AppendUtf8(cp, out);
        return true;
      }
      default:
        return Fail("invalid escape");
    }
    if (out != nullptr) out->push_back(plain);
    return true;
  }

  // A multi-byte UTF-8 sequence at pos_.
  bool Utf8(std::string* out) {
    char32_t code_point;
    const size_t length = DecodeUtf8(in_, pos_, &code_point);
    if (length == 0) return Fail("invalid UTF-8");
    if (out != nullptr) out->append(in_.data() + pos_, length);
    pos_ += length;
    return true;
  }

  const absl::string_view in_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

absl::string_view JsonKindName(JsonKind kind) {
  switch (kind) {
    case JsonKind::kNull:
      return "null";
    case JsonKind::kBool:
      return "a boolean";
    case JsonKind::kNumber:
      return "a number";
    case JsonKind::kString:
      return "a string";
    case JsonKind::kObject:
      return "an object";
    case JsonKind::kArray:
      return "an array";
  }
  return "a value";
}

const ScannedMember* ScannedObject::Find(absl::string_view key) const {
  for (auto it = members.rbegin(); it != members.rend(); ++it) {
    if (it->key == key) return &*it;
  }
  return nullptr;
}

bool ScanJsonObject(absl::string_view line, ScannedObject* out, std::string* error) {
  out->members.clear();
  out->metadata.clear();
  Scanner scanner(line);
  scanner.SkipSpace();
  bool ok = scanner.Peek() == '{' ? scanner.Object(/*depth=*/0, &out->members, &out->metadata)
                                  : scanner.Fail("not a JSON object");
  if (ok) {
    scanner.SkipSpace();
    if (!scanner.AtEnd()) ok = scanner.Fail("more than one JSON value on the line");
  }
  if (!ok) *error = scanner.error();
  return ok;
}

}  // namespace userpilot::gateway
