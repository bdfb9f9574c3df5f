// JsonRowReader: reads one NDJSON line - which must be exactly one JSON object - into what the
// import row rules (import_row_rules.h) look at, without building a document tree: the kind
// and text of each top-level member, and the kind and text of each member of the top-level
// `metadata` object.
//
// The parsing is RapidJSON's SAX reader (Debian's rapidjson-dev, header-only), iterative (no
// recursion, whatever the nesting), with UTF-8 validation (RFC 3629: no overlong forms, no
// encoded surrogates) and numbers kept as their literal text. What is added here, and why:
//  - a raw NUL byte anywhere in the line is refused first: RapidJSON's memory stream takes NUL
//    for the end of its input;
//  - a `\uDC00`-`\uDFFF` escape without a high surrogate before it is refused: RapidJSON 1.1
//    checks only the high half of a pair and would unescape a lone low half into invalid
//    UTF-8;
//  - nesting deeper than 64 is refused, so that no line costs more than its length.
// Errors say what is wrong and at which byte of the line (1-based), never quoting the input.
//
// Memory: the reader keeps RapidJSON's string buffer and the row's vectors between lines (they
// grow to the longest line's needs, at most the line length limit); nothing else is allocated
// per line but the texts it reports.
//
// Thread-safety: not thread-safe; one reader per file, used by one thread at a time.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_JSON_ROW_READER_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_JSON_ROW_READER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace userpilot::gateway {

enum class JsonKind { kNull, kBool, kNumber, kString, kObject, kArray };

// "null", "a boolean", "a number", "a string", "an object", "an array".
absl::string_view JsonKindName(JsonKind kind);

struct JsonMember {
  std::string key;  // Unescaped.
  JsonKind kind = JsonKind::kNull;
  // Strings: the unescaped value. Numbers: the literal as written (`-1.5e3`). Otherwise empty.
  std::string text;
};

struct JsonRow {
  // Top-level members in order; a repeated key appears once per occurrence.
  std::vector<JsonMember> members;
  // Members of the first top-level `metadata` member, when it is an object.
  std::vector<JsonMember> metadata;

  // The first member named `key`, or nullptr.
  const JsonMember* Find(absl::string_view key) const;
};

class JsonRowReader {
 public:
  JsonRowReader();
  ~JsonRowReader();
  JsonRowReader(const JsonRowReader&) = delete;
  JsonRowReader& operator=(const JsonRowReader&) = delete;

  // Reads `line` (surrounding whitespace allowed) into `*row`. False when it is not exactly one
  // JSON object; then `*error` says what is wrong and where ("... at byte N").
  bool Read(absl::string_view line, JsonRow* row, std::string* error);

 private:
  struct Parser;
  std::unique_ptr<Parser> parser_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_JSON_ROW_READER_H_
