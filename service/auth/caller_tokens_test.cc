#include "service/auth/caller_tokens.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// SHA-256 of "secret-billing" and "secret-gdpr", as `printf %s TOKEN | sha256sum` prints them.
std::string Hex(absl::string_view token) {
  const TokenDigest digest = Sha256(token);
  std::string hex;
  for (unsigned char byte : digest) absl::StrAppend(&hex, absl::Hex(byte, absl::kZeroPad2));
  return hex;
}

TEST(Sha256Test, KnownAnswer) {
  // FIPS 180-2 test vector.
  EXPECT_EQ(Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CallerTokensTest, ParsesNamesDigestsCommentsAndBlankLines) {
  const std::string file = absl::StrCat(
      "# tokens of the calling services\n"
      "\n",
      "billing ", Hex("secret-billing"), "\n", "  # indented comment\n", "gdpr-service\t",
      absl::AsciiStrToUpper(Hex("secret-gdpr")), "  \r\n", "billing    ",
      Hex("secret-billing-next"), "\n");
  absl::StatusOr<CallerTokens> tokens = CallerTokens::Parse(file, "tokens.txt");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ(tokens->entries().size(), 3u);
  EXPECT_EQ(tokens->entries()[0].caller, "billing");
  EXPECT_EQ(tokens->entries()[0].line, 3);
  EXPECT_EQ(tokens->entries()[1].caller, "gdpr-service");
  EXPECT_EQ(tokens->entries()[1].line, 5);
  EXPECT_THAT(tokens->Callers(), ElementsAre("billing", "gdpr-service"));

  ASSERT_NE(tokens->Match("secret-billing"), nullptr);
  EXPECT_EQ(*tokens->Match("secret-billing"), "billing");
  // Both of a caller's tokens work (rotation).
  ASSERT_NE(tokens->Match("secret-billing-next"), nullptr);
  EXPECT_EQ(*tokens->Match("secret-billing-next"), "billing");
  ASSERT_NE(tokens->Match("secret-gdpr"), nullptr);
  EXPECT_EQ(*tokens->Match("secret-gdpr"), "gdpr-service");
}

TEST(CallerTokensTest, WrongTokensMatchNothing) {
  absl::StatusOr<CallerTokens> tokens =
      CallerTokens::Parse(absl::StrCat("billing ", Hex("secret-billing"), "\n"), "t");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  for (const char* wrong :
       {"", "secret-billin", "secret-billing ", "SECRET-BILLING", "secret-billing\n"}) {
    EXPECT_EQ(tokens->Match(wrong), nullptr) << wrong;
  }
  // The digest itself is not a token.
  EXPECT_EQ(tokens->Match(Hex("secret-billing")), nullptr);
}

TEST(CallerTokensTest, SkipsAUtf8ByteOrderMark) {
  absl::StatusOr<CallerTokens> tokens =
      CallerTokens::Parse(absl::StrCat("\xEF\xBB\xBF", "billing ", Hex("t"), "\n"), "t");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->entries()[0].caller, "billing");
}

struct BadFile {
  const char* name;
  std::string contents;
  std::string message;  // Expected in the error.
};

void PrintTo(const BadFile& c, std::ostream* os) { *os << c.name; }

class CallerTokensErrorTest : public ::testing::TestWithParam<BadFile> {};

TEST_P(CallerTokensErrorTest, NamesTheLineAndNeverQuotesTheSecretField) {
  const BadFile& bad = GetParam();
  absl::StatusOr<CallerTokens> tokens = CallerTokens::Parse(bad.contents, "/etc/gw/tokens");
  ASSERT_FALSE(tokens.ok());
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tokens.status().message(), HasSubstr(bad.message));
  EXPECT_THAT(tokens.status().message(), HasSubstr("/etc/gw/tokens"));
  // What a careless operator might paste where the digest goes.
  EXPECT_THAT(tokens.status().message(), Not(HasSubstr("hunter2-raw-token")));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, CallerTokensErrorTest,
    ::testing::Values(
        BadFile{"OneField", "# c\nbilling\n", "line 2: expected two fields"},
        BadFile{"ThreeFields", absl::StrCat("billing ", Hex("a"), " extra\n"),
                "line 1: expected two fields, NAME SHA256HEX (found 3)"},
        BadFile{"RawTokenInsteadOfDigest", "billing hunter2-raw-token\n",
                "line 1: the digest for caller 'billing' must be 64 hex digits"},
        BadFile{"ShortDigest", absl::StrCat("billing ", Hex("a").substr(0, 63), "\n"),
                "found 63 characters"},
        BadFile{"NonHexDigest", absl::StrCat("billing ", std::string(63, 'a'), "g\n"),
                "must be 64 hex digits"},
        BadFile{"BadName", absl::StrCat("billing/eu ", Hex("a"), "\n"),
                "line 1: the caller name (first field, 10 bytes) must be 1 to 64 characters"},
        BadFile{"WildcardName", absl::StrCat("* ", Hex("a"), "\n"), "the caller name"},
        BadFile{"SameDigestTwice", absl::StrCat("billing ", Hex("a"), "\n\ngdpr ", Hex("a"), "\n"),
                "line 3: caller 'gdpr' has the same token digest as line 1"},
        BadFile{"Empty", "", "holds no token"},
        BadFile{"OnlyComments", "# nothing yet\n\n", "holds no token"}),
    [](const ::testing::TestParamInfo<BadFile>& info) { return info.param.name; });

TEST(CallerTokensTest, BoundsTheNumberOfEntries) {
  std::string file;
  for (size_t i = 0; i <= CallerTokens::kMaxEntries; ++i) {
    absl::StrAppend(&file, "caller", i, " ", Hex(absl::StrCat("token", i)), "\n");
  }
  absl::StatusOr<CallerTokens> tokens = CallerTokens::Parse(file, "t");
  ASSERT_FALSE(tokens.ok());
  EXPECT_THAT(tokens.status().message(), HasSubstr("more than 1000 tokens"));
}

}  // namespace
}  // namespace userpilot::gateway
