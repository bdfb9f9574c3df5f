// JsonRowReader: reads one NDJSON line - which must be exactly one JSON object - into what the
// import row rules (import_row_rules.h) look at, without building a document tree: the kind
// and text of each top-level member, and the kind and text of each member of the top-level
// `metadata` object.
//
// The parsing is RapidJSON's SAX reader (Debian's rapidjson-dev, header-only), in situ on a
// copy of the line (strings are unescaped in that copy, and the row's texts point into it).
// What is added here, and why:
//  - the line is checked first in one pass (ScanText, service/common/text_scan.h) to be valid
//    UTF-8 (RFC 3629) without a NUL byte: that pass is several times faster than RapidJSON's
//    own per-character validation, and RapidJSON's streams take NUL for the end of input;
//  - a `\uDC00`-`\uDFFF` escape without a high surrogate before it is refused: RapidJSON 1.1
//    checks only the high half of a pair and would unescape a lone low half into invalid
//    UTF-8;
//  - nesting deeper than 64 is refused by the handler before RapidJSON descends any further,
//    which also bounds the recursion of its (faster) recursive parser to 64 levels.
// Errors say what is wrong and at which byte of the line (1-based), never quoting the input.
//
// Memory: the reader keeps the line's copy, RapidJSON's stack and the row's vectors between
// lines (they grow to the longest line's needs, at most the line length limit); nothing is
// allocated per line once they have.
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

// Texts point into the JsonRowReader that read the row: valid until its next Read().
struct JsonMember {
  absl::string_view key;  // Unescaped.
  JsonKind kind = JsonKind::kNull;
  absl::string_view text;  // The unescaped value of a string; empty for other kinds.
};

// One line's object, as read by JsonRowReader::Read (valid until the reader's next Read).
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

  // Reads `line` (surrounding whitespace allowed) into `*row`, whose texts point into this
  // reader until the next Read(). False when it is not exactly one JSON object; then `*error`
  // says what is wrong and where ("... at byte N").
  bool Read(absl::string_view line, JsonRow* row, std::string* error);

 private:
  struct Parser;
  std::unique_ptr<Parser> parser_;
  std::string line_;  // The line being read, unescaped in place.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_JSON_ROW_READER_H_
