#include "service/common/text_scan.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

// The length DecodeUtf8 finds at the start of `bytes`, or 0.
size_t Decode(const std::string& bytes, char32_t* c) { return DecodeUtf8(bytes, 0, c); }

TEST(TextScanTest, DecodesEveryLength) {
  char32_t c = 0;
  EXPECT_EQ(Decode("A", &c), 1u);
  EXPECT_EQ(c, U'A');
  EXPECT_EQ(Decode("\xc2\x80", &c), 2u);
  EXPECT_EQ(c, 0x80u);
  EXPECT_EQ(Decode("\xdf\xbf", &c), 2u);
  EXPECT_EQ(c, 0x7FFu);
  EXPECT_EQ(Decode("\xe0\xa0\x80", &c), 3u);
  EXPECT_EQ(c, 0x800u);
  EXPECT_EQ(Decode("\xed\x9f\xbf", &c), 3u);  // U+D7FF, just below the surrogates.
  EXPECT_EQ(c, 0xD7FFu);
  EXPECT_EQ(Decode("\xef\xbf\xbf", &c), 3u);
  EXPECT_EQ(c, 0xFFFFu);
  EXPECT_EQ(Decode("\xf0\x90\x80\x80", &c), 4u);
  EXPECT_EQ(c, 0x10000u);
  EXPECT_EQ(Decode("\xf4\x8f\xbf\xbf", &c), 4u);
  EXPECT_EQ(c, 0x10FFFFu);
}

TEST(TextScanTest, RefusesWhatRfc3629Refuses) {
  char32_t c = 0;
  for (const std::string bad : {
           "\x80",              // Lone continuation byte.
           "\xbf",              // Lone continuation byte.
           "\xc0\x80",          // Overlong NUL.
           "\xc1\xbf",          // Overlong.
           "\xe0\x9f\xbf",      // Overlong 3-byte form.
           "\xed\xa0\x80",      // Surrogate U+D800.
           "\xed\xbf\xbf",      // Surrogate U+DFFF.
           "\xf0\x8f\xbf\xbf",  // Overlong 4-byte form.
           "\xf4\x90\x80\x80",  // Above U+10FFFF.
           "\xf5\x80\x80\x80",  // Lead byte out of range.
           "\xff",              // Never valid.
           "\xc3",              // Truncated.
           "\xe2\x82",          // Truncated.
           "\xf0\x9f\x98",      // Truncated.
           "\xc3\x28",          // Bad continuation.
       }) {
    EXPECT_EQ(Decode(bad, &c), 0u) << "bytes of length " << bad.size();
  }
}

TEST(TextScanTest, ScanFindsTheFirstBadByte) {
  const TextScan scan = ScanText("ok\xe2\x82x\x01");
  ASSERT_TRUE(scan.invalid_utf8_at.has_value());
  EXPECT_EQ(*scan.invalid_utf8_at, 2u);
  EXPECT_FALSE(scan.control.has_value());  // The scan stopped before it.
}

TEST(TextScanTest, ScanFindsTheFirstControlCharacter) {
  TextScan scan = ScanText("h\xc3\xa9\tx\x7f");
  EXPECT_FALSE(scan.invalid_utf8_at.has_value());
  ASSERT_TRUE(scan.control.has_value());
  EXPECT_EQ(*scan.control, U'\t');
  EXPECT_EQ(scan.control_at, 3u);
  EXPECT_FALSE(scan.has_nul);

  scan = ScanText(std::string("a\0b", 3));
  ASSERT_TRUE(scan.control.has_value());
  EXPECT_EQ(*scan.control, 0u);
  EXPECT_TRUE(scan.has_nul);

  EXPECT_FALSE(ScanText("plain text, \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80").control);
}

TEST(TextScanTest, ControlCharacters) {
  for (char32_t c : {0x00u, 0x1Fu, 0x7Fu, 0x80u, 0x9Fu}) EXPECT_TRUE(IsControl(c)) << c;
  for (char32_t c : {0x20u, 0x7Eu, 0xA0u, 0x2028u}) EXPECT_FALSE(IsControl(c)) << c;
}

TEST(TextScanTest, OnlyWhitespace) {
  EXPECT_TRUE(ScanText("").only_whitespace);
  EXPECT_TRUE(ScanText(" \t\r\n\v\f").only_whitespace);
  EXPECT_TRUE(ScanText("\xc2\xa0\xe3\x80\x80\xe2\x80\x8a\xe2\x80\xaf").only_whitespace);
  EXPECT_FALSE(ScanText(" a ").only_whitespace);
  // Zero-width space is not White_Space in Unicode.
  EXPECT_FALSE(ScanText("\xe2\x80\x8b").only_whitespace);
}

TEST(TextScanTest, BlankIsWhitespaceAndInvisibleCharactersOnly) {
  EXPECT_TRUE(ScanText("").blank);
  EXPECT_TRUE(ScanText(" \t").blank);
  EXPECT_FALSE(ScanText(" \t").invisible.has_value());
  // U+200B, U+FEFF, U+2060, U+180E, each alone, and mixed with spaces.
  for (const char* text : {"\xe2\x80\x8b", "\xef\xbb\xbf", "\xe2\x81\xa0", "\xe1\xa0\x8e",
                           " \xe2\x80\x8b\xe2\x81\xa0 \xef\xbb\xbf"}) {
    SCOPED_TRACE(text);
    EXPECT_TRUE(ScanText(text).blank);
    EXPECT_FALSE(ScanText(text).only_whitespace);
  }
  EXPECT_EQ(ScanText(" \xef\xbb\xbf\xe2\x80\x8b").invisible, char32_t{0xFEFF});
  EXPECT_FALSE(ScanText("\xe2\x80\x8b"
                        "a")
                   .blank);
  EXPECT_FALSE(ScanText("\xc3\xa9").blank);  // U+00E9
}

TEST(TextScanTest, InvisibleCharacters) {
  for (char32_t c :
       {0x00AD, 0x034F, 0x061C, 0x115F, 0x180E, 0x200B, 0x200D,  0x200F,  0x202E,  0x2060,
        0x2064, 0x3164, 0xFE0F, 0xFEFF, 0xFFA0, 0xFFF9, 0x1D173, 0xE0001, 0xE007F, 0xE01EF}) {
    EXPECT_TRUE(IsInvisible(c)) << CodePointName(c);
  }
  for (char32_t c :
       {0x0020, 0x0041, 0x00A0, 0x00AC, 0x00AE, 0x180A, 0x2010, 0x3000, 0xFFFD, 0x1F600, 0xE1000}) {
    EXPECT_FALSE(IsInvisible(c)) << CodePointName(c);
  }
}

TEST(TextScanTest, CodePointName) {
  EXPECT_EQ(CodePointName(0x9), "U+0009");
  EXPECT_EQ(CodePointName(0x85), "U+0085");
  EXPECT_EQ(CodePointName(0x1F600), "U+1F600");
}

// ScanText skips runs of printable ASCII eight bytes at a time: wherever a special character
// sits in such a run, it finds what a plain character-by-character scan finds.
TEST(TextScanTest, FastPathAgreesWithACharacterByCharacterScan) {
  auto reference = [](absl::string_view text) {
    TextScan scan;
    for (size_t pos = 0; pos < text.size();) {
      char32_t c;
      const size_t length = DecodeUtf8(text, pos, &c);
      if (length == 0) {
        scan.invalid_utf8_at = pos;
        break;
      }
      scan.has_nul |= c == 0;
      if (!scan.control.has_value() && IsControl(c)) {
        scan.control = c;
        scan.control_at = pos;
      }
      scan.only_whitespace &= IsWhitespace(c);
      if (!IsWhitespace(c)) {
        if (!IsInvisible(c)) {
          scan.blank = false;
        } else if (!scan.invisible.has_value()) {
          scan.invisible = c;
        }
      }
      pos += length;
    }
    return scan;
  };
  const std::string specials[] = {
      std::string(1, '\0'), "\t",           " ", "\x7F", "\x80", "\xC3\xA9",
      "\xC2\x85",           "\xE2\x80\xA8", "~", "!",    "\xFF", "\xE2\x80\x8B"};
  for (const std::string& special : specials) {
    for (size_t at = 0; at <= 20; ++at) {
      for (const char filler : {'a', ' '}) {
        std::string text(24, filler);
        text.insert(at, special);
        const TextScan got = ScanText(text);
        const TextScan want = reference(text);
        SCOPED_TRACE(absl::StrCat("special ", CodePointName(static_cast<uint8_t>(special[0])),
                                  " at ", at, " in '", std::string(1, filler), "'"));
        EXPECT_EQ(got.invalid_utf8_at, want.invalid_utf8_at);
        EXPECT_EQ(got.control, want.control);
        EXPECT_EQ(got.control_at, want.control_at);
        EXPECT_EQ(got.has_nul, want.has_nul);
        EXPECT_EQ(got.only_whitespace, want.only_whitespace);
        EXPECT_EQ(got.blank, want.blank);
        EXPECT_EQ(got.invisible, want.invisible);
      }
    }
  }
}

}  // namespace
}  // namespace userpilot::gateway
