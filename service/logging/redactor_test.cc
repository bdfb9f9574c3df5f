#include "service/logging/redactor.h"

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
