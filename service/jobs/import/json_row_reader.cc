#include "service/jobs/import/json_row_reader.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "rapidjson/error/en.h"
#include "rapidjson/reader.h"
#include "service/common/text_scan.h"

namespace userpilot::gateway {
namespace {

// Nesting deeper than this is refused.
constexpr int kMaxDepth = 64;

// In situ (no copy of each string on RapidJSON's stack), recursive (bounded by the handler's
// depth limit), UTF-8 already checked by ScanText.
constexpr unsigned kParseFlags = rapidjson::kParseInsituFlag;

// True when `text` (valid UTF-8 on input, unescaped by RapidJSON) holds an encoded surrogate,
// which only a lone `\uDC00`-`\uDFFF` escape can have produced (see the header).
bool HasEncodedSurrogate(const char* text, size_t length) {
  const char* const end = text + length;
  const char* at = text;
  while ((at = static_cast<const char*>(std::memchr(at, '\xED', static_cast<size_t>(end - at)))) !=
         nullptr) {
    if (at + 1 < end && (static_cast<unsigned char>(at[1]) & 0xE0) == 0xA0) return true;
    ++at;
  }
  return false;
}

// The SAX handler: records top-level members and the members of the top-level `metadata`
// object, ignores everything nested deeper. Returning false stops the parse (RapidJSON's
// kParseErrorTermination) with `error` set.
class RowHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, RowHandler> {
 public:
  // `escapes`: the line holds a backslash (without one, no string can hold a surrogate).
  void Reset(JsonRow* row, bool escapes) {
    row_ = row;
    escapes_ = escapes;
    row_->members.clear();
    row_->metadata.clear();
    depth_ = 0;
    in_metadata_ = false;
    metadata_seen_ = false;
    error_.clear();
  }
  const std::string& error() const { return error_; }

  bool Null() { return Value(JsonKind::kNull, nullptr, 0); }
  bool Bool(bool) { return Value(JsonKind::kBool, nullptr, 0); }
  bool Int(int) { return Value(JsonKind::kNumber, nullptr, 0); }
  bool Uint(unsigned) { return Value(JsonKind::kNumber, nullptr, 0); }
  bool Int64(int64_t) { return Value(JsonKind::kNumber, nullptr, 0); }
  bool Uint64(uint64_t) { return Value(JsonKind::kNumber, nullptr, 0); }
  bool Double(double) { return Value(JsonKind::kNumber, nullptr, 0); }
  bool String(const char* text, rapidjson::SizeType length, bool) {
    if (escapes_ && HasEncodedSurrogate(text, length)) {
      return Fail("unpaired surrogate in a \\u escape");
    }
    return Value(JsonKind::kString, text, length);
  }
  bool Key(const char* text, rapidjson::SizeType length, bool) {
    if (escapes_ && HasEncodedSurrogate(text, length)) {
      return Fail("unpaired surrogate in a \\u escape");
    }
    std::vector<JsonMember>* into = Current();
    if (into != nullptr) into->push_back({absl::string_view(text, length), JsonKind::kNull, {}});
    return true;
  }
  bool StartObject() { return Open(JsonKind::kObject); }
  bool EndObject(rapidjson::SizeType) { return Close(); }
  bool StartArray() { return Open(JsonKind::kArray); }
  bool EndArray(rapidjson::SizeType) { return Close(); }

 private:
  bool Fail(const char* why) {
    error_ = why;
    return false;
  }

  // The member list that a key or value at the current depth belongs to, or nullptr when it
  // is nested too deep to matter.
  std::vector<JsonMember>* Current() {
    if (depth_ == 1) return &row_->members;
    if (depth_ == 2 && in_metadata_) return &row_->metadata;
    return nullptr;
  }

  bool Value(JsonKind kind, const char* text, size_t length) {
    if (depth_ == 0) return Fail("not a JSON object");
    std::vector<JsonMember>* into = Current();
    if (into != nullptr) {
      JsonMember& member = into->back();
      member.kind = kind;
      if (text != nullptr) member.text = absl::string_view(text, length);
    }
    return true;
  }

  bool Open(JsonKind kind) {
    if (depth_ == 0) {
      if (kind != JsonKind::kObject) return Fail("not a JSON object");
    } else {
      if (!Value(kind, nullptr, 0)) return false;
      if (depth_ == 1 && kind == JsonKind::kObject && !metadata_seen_ &&
          row_->members.back().key == "metadata") {
        in_metadata_ = true;
        metadata_seen_ = true;
      }
    }
    if (++depth_ > kMaxDepth) return Fail("nesting deeper than 64 levels");
    return true;
  }

  bool Close() {
    if (--depth_ == 1) in_metadata_ = false;
    return true;
  }

  JsonRow* row_ = nullptr;
  bool escapes_ = false;
  int depth_ = 0;
  bool in_metadata_ = false;    // Inside the first top-level `metadata` object, at depth 2.
  bool metadata_seen_ = false;  // That object was opened.
  std::string error_;
};

}  // namespace

struct JsonRowReader::Parser {
  rapidjson::Reader reader;
  RowHandler handler;
};

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

const JsonMember* JsonRow::Find(absl::string_view key) const {
  for (const JsonMember& member : members) {
    if (member.key == key) return &member;
  }
  return nullptr;
}

JsonRowReader::JsonRowReader() : parser_(std::make_unique<Parser>()) {}
JsonRowReader::~JsonRowReader() = default;

bool JsonRowReader::Read(absl::string_view line, JsonRow* row, std::string* error) {
  const TextScan scan = ScanText(line);
  if (scan.invalid_utf8_at.has_value()) {
    *error = absl::StrCat("invalid UTF-8 at byte ", *scan.invalid_utf8_at + 1);
    return false;
  }
  if (scan.has_nul) {
    *error = absl::StrCat("a NUL byte (U+0000) at byte ", line.find('\0') + 1);
    return false;
  }
  line_.assign(line.data(), line.size());  // NUL-terminated, as RapidJSON's in situ stream needs.
  parser_->handler.Reset(row, line.find('\\') != absl::string_view::npos);
  rapidjson::InsituStringStream stream(line_.data());
  const rapidjson::ParseResult result =
      parser_->reader.Parse<kParseFlags>(stream, parser_->handler);
  if (!result.IsError()) return true;
  absl::string_view why = rapidjson::GetParseError_En(result.Code());
  absl::ConsumeSuffix(&why, ".");
  if (result.Code() == rapidjson::kParseErrorTermination) {
    why = parser_->handler.error();
  } else if (result.Code() == rapidjson::kParseErrorStringEscapeInvalid &&
             result.Offset() < line.size() &&
             static_cast<unsigned char>(line[result.Offset()]) < 0x20) {
    why = "control character in a string";  // RapidJSON names it an invalid escape.
  }
  *error = absl::StrCat(why, " at byte ", result.Offset() + 1);
  return false;
}

}  // namespace userpilot::gateway
