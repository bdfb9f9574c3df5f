// Tests of the hostile answer shapes: key forms, nests and the echo inserted into JSON members.
#include "tests/emulator/answer_shapes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "tests/emulator/json.h"

namespace userpilot::gateway::testing {
namespace {

using ::google::protobuf::Value;
using ::testing::HasSubstr;

// A key with every character class the forms treat differently.
constexpr char kKey[] = "k\"ey\\/7f+Q=z";

TEST(KeyFormsTest, EachFormEncodesTheKeyItsOwnWay) {
  EXPECT_EQ(EncodeKey(kKey, KeyForm::kRaw), kKey);
  EXPECT_EQ(EncodeKey(kKey, KeyForm::kJson), "k\\\"ey\\\\/7f+Q=z");
  EXPECT_EQ(EncodeKey(kKey, KeyForm::kPercent), "k%22ey%5C%2F7f%2BQ%3Dz");
  EXPECT_EQ(EncodeKey(kKey, KeyForm::kBase64), absl::Base64Escape(kKey));
  EXPECT_EQ(EncodeKey(kKey, KeyForm::kBase64Url), absl::WebSafeBase64Escape(kKey));
  EXPECT_EQ(EncodeKey("\x01", KeyForm::kJson), "\\u0001");
  // Base64 of 12 bytes has no padding; base64url never has; one more byte shows both.
  EXPECT_EQ(EncodeKey("ab", KeyForm::kBase64), "YWI=");
  EXPECT_EQ(EncodeKey("ab", KeyForm::kBase64Url), "YWI");
  EXPECT_EQ(EncodeKey("\xfb\xff", KeyForm::kBase64), "+/8=");
  EXPECT_EQ(EncodeKey("\xfb\xff", KeyForm::kBase64Url), "-_8");
}

TEST(KeyFormsTest, NamesRoundTripAndUnknownNamesAreRefused) {
  for (KeyForm form : AllKeyForms()) {
    absl::StatusOr<KeyForm> back = KeyFormFromName(KeyFormName(form));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, form);
  }
  EXPECT_EQ(AllKeyForms().size(), 5u);
  EXPECT_EQ(KeyFormFromName("hex").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KeyFormsTest, EchoHoldsExactlyTheFormsAskedFor) {
  const std::string echo = KeyEcho(kKey, {KeyForm::kBase64});
  EXPECT_THAT(echo, HasSubstr(absl::Base64Escape(kKey)));
  EXPECT_FALSE(absl::StrContains(echo, kKey));
  EXPECT_FALSE(absl::StrContains(echo, EncodeKey(kKey, KeyForm::kPercent)));
  EXPECT_EQ(echo, absl::Base64Escape(kKey));
  const std::string all = KeyEcho(kKey, AllKeyForms());
  for (KeyForm form : AllKeyForms()) EXPECT_THAT(all, HasSubstr(EncodeKey(kKey, form)));
  EXPECT_EQ(KeyEcho(kKey, {KeyForm::kRaw, KeyForm::kBase64}),
            absl::StrCat(kKey, " ", absl::Base64Escape(kKey)));
  EXPECT_EQ(KeyEcho(kKey, {}), "");
}

TEST(NestedArraysTest, DepthAndSize) {
  EXPECT_EQ(NestedArrays(0, 100), "");
  EXPECT_EQ(NestedArrays(3, 0), "[[[]]]");
  EXPECT_EQ(NestedArrays(3, 6), "[[[]]]");
  const std::string wide = NestedArrays(3, 40);
  EXPECT_GE(wide.size(), 40u);
  EXPECT_LT(wide.size(), 40u + 8);
  EXPECT_TRUE(absl::StartsWith(wide, "[[[[]]],[[[]]],"));
  EXPECT_EQ(std::count(wide.begin(), wide.end(), '['), std::count(wide.begin(), wide.end(), ']'));
  const std::string deep = NestedArrays(12000, 0);
  EXPECT_EQ(deep.size(), 24000u);
  EXPECT_EQ(deep.find(']'), 12000u);
}

TEST(NestedArraysTest, ShallowBodiesAreTheShapesTheyClaim) {
  // Depth 3 stays within any parser's limit: parse the bodies to see their shape.
  absl::StatusOr<Value> job = ParseJson(DeepJobBody("bulk:jobs:x", NestedArrays(3, 0)));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(FindField(*job, "job_id")->string_value(), "bulk:jobs:x");
  EXPECT_EQ(FindField(*job, "nested")->list_value().values(0).list_value().values_size(), 1);
  absl::StatusOr<Value> error = ParseJson(DeepErrorBody(NestedArrays(2, 0)));
  ASSERT_TRUE(error.ok()) << error.status();
  const Value& first = FindField(*error, "errors")->list_value().values(0);
  EXPECT_EQ(FindField(first, "error_code")->string_value(), "invalid_body");
  EXPECT_EQ(FindField(first, "details")->kind_case(), Value::kListValue);
  EXPECT_TRUE(ParseJson(DeepJobBody("j", "")).ok());
}

TEST(InsertIntoStringMembersTest, PrefixesEveryNamedStringMemberEscaped) {
  const std::string job =
      R"({"job_id":"j","filename":"users.json","file_size":3,"links":"http://h/j",)"
      R"("note":"\"filename\":\"x","details":null})";
  const std::string out = InsertIntoStringMembers(job, "a\"b");
  EXPECT_EQ(out,
            R"({"job_id":"j","filename":"a\"b users.json","file_size":3,"links":"a\"b http://h/j",)"
            R"("note":"\"filename\":\"x","details":null})");
  absl::StatusOr<Value> parsed = ParseJson(out);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(FindField(*parsed, "filename")->string_value(), "a\"b users.json");

  const std::string errors =
      R"({"errors":[{"error":"e","message":"m1","details":"d"},{"message":"m2"}]})";
  EXPECT_EQ(InsertIntoStringMembers(errors, "K"),
            R"({"errors":[{"error":"e","message":"K m1","details":"K d"},{"message":"K m2"}]})");
  EXPECT_EQ(InsertIntoStringMembers("{}", "K"), "{}");
  EXPECT_EQ(InsertIntoStringMembers("", "K"), "");
}

}  // namespace
}  // namespace userpilot::gateway::testing
