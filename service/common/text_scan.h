// One pass over a string that finds what the request rules care about (UTF-8 validity, control
// characters, NUL, whitespace-only text), and the RFC 3629 UTF-8 decoder under it. Used by
// request validation and by the import file checks (service/jobs).
//
// Thread-safety: pure functions; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_COMMON_TEXT_SCAN_H_
#define USERPILOT_GATEWAY_SERVICE_COMMON_TEXT_SCAN_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace userpilot::gateway {

// Decodes the UTF-8 sequence that starts at `text[pos]` (pos < text.size()) as RFC 3629 defines
// it (no overlong forms, no surrogates, nothing above U+10FFFF). Returns its length in bytes and
// stores the code point in `*code_point`, or returns 0 when the bytes there are not valid UTF-8.
size_t DecodeUtf8(absl::string_view text, size_t pos, char32_t* code_point);

// True for the control characters the rules refuse in ids, names and keys: C0 (U+0000-U+001F),
// DEL (U+007F) and C1 (U+0080-U+009F).
bool IsControl(char32_t c);

// True for the characters with Unicode's White_Space property.
bool IsWhitespace(char32_t c);

// True for the characters that render as nothing: Unicode's Default_Ignorable_Code_Point
// (U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER, U+FEFF BOM, U+180E MONGOLIAN VOWEL SEPARATOR,
// soft hyphen, variation selectors, bidi controls, tags, Hangul fillers, ...) and the other
// format (Cf) characters (Arabic number signs, interlinear annotation, ...). Unicode 15 ranges;
// hand-written because no Debian package the gateway links (Abseil, protobuf) exposes these
// properties and ICU would be a large dependency for one table.
bool IsInvisible(char32_t c);

// What one pass over a string found. When the text is not valid UTF-8 the scan stops at the first
// bad byte, so the other fields describe only the text before it.
struct TextScan {
  // Byte offset of the first byte that does not start a valid UTF-8 sequence.
  std::optional<size_t> invalid_utf8_at;
  // The first control character (see IsControl) and its byte offset.
  std::optional<char32_t> control;
  size_t control_at = 0;
  // True when the text holds at least one U+0000.
  bool has_nul = false;
  // True when every character is whitespace (also true for empty text).
  bool only_whitespace = true;
  // True when every character is whitespace or invisible (IsInvisible): blank to a reader
  // (also true for empty text).
  bool blank = true;
  // The first invisible character, if any.
  std::optional<char32_t> invisible;
};

TextScan ScanText(absl::string_view text);

// "U+0009": how descriptions name a code point.
std::string CodePointName(char32_t c);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_COMMON_TEXT_SCAN_H_
