#include "service/common/text_scan.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_format.h"

namespace userpilot::gateway {
namespace {

// True when each of the 8 bytes at `p` is in 0x21..0x7E (printable ASCII but the space). Word-
// at-a-time tests from "Bit Twiddling Hacks": a byte is below 0x21, or is 0x7F (a zero after
// XOR), or has its high bit set; each test is exact for "any byte in the word".
bool AllPrintableAscii8(const char* p) {
  constexpr uint64_t kOnes = 0x0101010101010101;
  constexpr uint64_t kHighs = 0x8080808080808080;
  uint64_t w;
  std::memcpy(&w, p, sizeof(w));
  const uint64_t below_0x21 = (w - kOnes * 0x21) & ~w & kHighs;
  const uint64_t del = w ^ (kOnes * 0x7F);
  const uint64_t is_del = (del - kOnes) & ~del & kHighs;
  return ((w & kHighs) | below_0x21 | is_del) == 0;
}

}  // namespace

size_t DecodeUtf8(absl::string_view text, size_t pos, char32_t* code_point) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(pos);
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  }
  size_t length;
  char32_t value;
  // The allowed range of the second byte excludes overlong forms, surrogates (ED A0..BF) and
  // code points above U+10FFFF (F4 90..).
  uint8_t second_min = 0x80;
  uint8_t second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    value = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    value = lead & 0x0F;
    if (lead == 0xE0) second_min = 0xA0;
    if (lead == 0xED) second_max = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    value = lead & 0x07;
    if (lead == 0xF0) second_min = 0x90;
    if (lead == 0xF4) second_max = 0x8F;
  } else {
    return 0;  // A continuation byte, C0, C1, or F5..FF.
  }
  if (text.size() - pos < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    const uint8_t b = byte(pos + i);
    const uint8_t min = i == 1 ? second_min : 0x80;
    const uint8_t max = i == 1 ? second_max : 0xBF;
    if (b < min || b > max) return 0;
    value = (value << 6) | (b & 0x3F);
  }
  *code_point = value;
  return length;
}

bool IsControl(char32_t c) { return c <= 0x1F || (c >= 0x7F && c <= 0x9F); }

bool IsWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool IsInvisible(char32_t c) {
  struct Range {
    char32_t first, last;
  };
  // Default_Ignorable_Code_Point (DerivedCoreProperties.txt) and General_Category=Cf
  // (DerivedGeneralCategory.txt), Unicode 15.0, merged and sorted.
  static constexpr Range kRanges[] = {
      {0x00AD, 0x00AD},   {0x034F, 0x034F},   {0x0600, 0x0605},   {0x061C, 0x061C},
      {0x06DD, 0x06DD},   {0x070F, 0x070F},   {0x0890, 0x0891},   {0x08E2, 0x08E2},
      {0x115F, 0x1160},   {0x17B4, 0x17B5},   {0x180B, 0x180F},   {0x200B, 0x200F},
      {0x202A, 0x202E},   {0x2060, 0x206F},   {0x3164, 0x3164},   {0xFE00, 0xFE0F},
      {0xFEFF, 0xFEFF},   {0xFFA0, 0xFFA0},   {0xFFF0, 0xFFFB},   {0x110BD, 0x110BD},
      {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A},
      {0xE0000, 0xE0FFF},
  };
  for (const Range& r : kRanges) {
    if (c < r.first) return false;
    if (c <= r.last) return true;
  }
  return false;
}

TextScan ScanText(absl::string_view text) {
  TextScan scan;
  size_t pos = 0;
  while (pos < text.size()) {
    // Printable ASCII other than the space (most of any text) changes nothing but
    // only_whitespace and blank: skip it without decoding, eight bytes at a time where it can.
    while (text.size() - pos >= 8 && AllPrintableAscii8(text.data() + pos)) {
      scan.only_whitespace = false;
      scan.blank = false;
      pos += 8;
    }
    if (pos == text.size()) break;
    const auto b = static_cast<uint8_t>(text[pos]);
    if (b > 0x20 && b < 0x7F) {
      scan.only_whitespace = false;
      scan.blank = false;
      ++pos;
      continue;
    }
    char32_t c;
    const size_t length = DecodeUtf8(text, pos, &c);
    if (length == 0) {
      scan.invalid_utf8_at = pos;
      break;
    }
    if (c == 0) scan.has_nul = true;
    if (!scan.control.has_value() && IsControl(c)) {
      scan.control = c;
      scan.control_at = pos;
    }
    const bool whitespace = IsWhitespace(c);
    if (scan.only_whitespace && !whitespace) scan.only_whitespace = false;
    if (!whitespace) {
      if (IsInvisible(c)) {
        if (!scan.invisible.has_value()) scan.invisible = c;
      } else {
        scan.blank = false;
      }
    }
    pos += length;
  }
  return scan;
}

std::string CodePointName(char32_t c) {
  return absl::StrFormat("U+%04X", static_cast<uint32_t>(c));
}

}  // namespace userpilot::gateway
