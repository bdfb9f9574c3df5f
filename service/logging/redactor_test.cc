#include "service/logging/redactor.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

TEST(RedactorTest, ReplacesEveryOccurrence) {
  Redactor redactor("sk-live-123");
  EXPECT_EQ(redactor.Redact("Authorization: Token sk-live-123, again sk-live-123!"),
            "Authorization: Token [redacted], again [redacted]!");
  EXPECT_TRUE(redactor.Contains("xx sk-live-123 yy"));
  EXPECT_FALSE(redactor.Contains("sk-live-12"));
  EXPECT_EQ(redactor.Redact("nothing secret"), "nothing secret");
}

TEST(RedactorTest, ScrubsEscapedAndPercentEncodedForms) {
  Redactor redactor("a\"b/c d");
  EXPECT_EQ(redactor.Redact(R"(json: "a\"b/c d")"), R"(json: "[redacted]")");
  EXPECT_EQ(redactor.Redact("url: ?key=a%22b%2Fc%20d&x=1"), "url: ?key=[redacted]&x=1");
  EXPECT_EQ(redactor.Redact("url: ?key=a%22b%2fc%20d"), "url: ?key=[redacted]");
  EXPECT_EQ(redactor.Redact("raw: a\"b/c d"), "raw: [redacted]");
}

TEST(RedactorTest, ScrubsBase64FormsPaddedOrNotAndInsideLongerEncodings) {
  const std::string key = "hp\"Key\\7f+Q/=z~9";
  Redactor redactor(key);
  for (const std::string& form : {absl::Base64Escape(key), absl::WebSafeBase64Escape(key),
                                  std::string(absl::StripSuffix(absl::Base64Escape(key), "==")),
                                  absl::StrCat(absl::WebSafeBase64Escape(key), "=="),
                                  std::string(R"(hp\"Key\\7f+Q\/=z~9)")}) {
    EXPECT_FALSE(redactor.Contains(redactor.Redact(absl::StrCat("x ", form, " y")))) << form;
    EXPECT_EQ(redactor.Redact(absl::StrCat("x ", form, " y")), "x [redacted] y") << form;
  }
  // The key inside a longer encoded text, at each of the three alignments.
  for (const std::string prefix : {"", "T", "To", "Token "}) {
    for (bool url : {false, true}) {
      const std::string data = absl::StrCat(prefix, key, ":rest");
      const std::string encoded = url ? absl::WebSafeBase64Escape(data) : absl::Base64Escape(data);
      EXPECT_TRUE(absl::StrContains(redactor.Redact(encoded), "[redacted]"))
          << "'" << prefix << "' url " << url;
    }
  }
}

TEST(RedactorTest, AdjacentAndOverlappingText) {
  Redactor redactor("abab");
  EXPECT_EQ(redactor.Redact("abababab"), "[redacted][redacted]");
  EXPECT_EQ(redactor.Redact("ababab"), "[redacted]ab");
}

TEST(RedactorTest, EmptySecretChangesNothing) {
  Redactor redactor("");
  EXPECT_EQ(redactor.Redact("anything at all"), "anything at all");
  EXPECT_FALSE(redactor.Contains("anything"));
}

}  // namespace
}  // namespace userpilot::gateway
