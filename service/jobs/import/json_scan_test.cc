#include "service/jobs/import/json_scan.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

bool Valid(absl::string_view line) {
  ScannedObject out;
  std::string error;
  return ScanJsonObject(line, &out, &error);
}

TEST(JsonScanTest, AcceptsEveryJsonValueInsideAnObject) {
  for (const char* line : {
           R"({})",
           R"(  { "a" : 1 }  )",
           R"({"s":"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","n":-0.5e+10,"z":0,"t":true,"f":false,)"
           R"("u":null,"o":{"p":[1,[2,{}],"3"]},"a":[]})",
           "{\"utf8\":\"h\xC3\xA9llo \xF0\x9F\x98\x80\"}",
           "{\"k\":1}\r",
       }) {
    EXPECT_TRUE(Valid(line)) << line;
  }
}

TEST(JsonScanTest, RefusesWhatIsNotOneObject) {
  const std::pair<const char*, const char*> cases[] = {
      {"[1]", "not a JSON object"},
      {"\"s\"", "not a JSON object"},
      {"{\"a\":1}{}", "more than one JSON value"},
      {"{\"a\":1,}", "expected a member name"},
      {"{\"a\" 1}", "expected ':'"},
      {"{\"a\":1 \"b\":2}", "expected ',' or '}'"},
      {"{\"a\":[1 2]}", "expected ',' or ']'"},
      {"{\"a\":tru}", "invalid literal"},
      {"{\"a\":01}", "expected ',' or '}'"},
      {"{\"a\":1.}", "invalid number"},
      {"{\"a\":1e}", "invalid number"},
      {"{\"a\":-}", "expected a value"},
      {"{\"a\":+1}", "expected a value"},
      {"{\"a\":\"x}", "unterminated string"},
      {"{\"a\":\"\x01\"}", "control character"},
      {"{\"a\":\"\\x\"}", "invalid escape"},
      {"{\"a\":\"\\u12\"}", "invalid \\u escape"},
      {"{\"a\":\"\\ud83d\"}", "unpaired surrogate"},
      {"{\"a\":\"\\ude00\"}", "unpaired surrogate"},
      {"{\"a\":\"\xff\"}", "invalid UTF-8"},
      {"{\"a\":\"\xC0\x80\"}", "invalid UTF-8"},      // Overlong.
      {"{\"a\":\"\xED\xA0\x80\"}", "invalid UTF-8"},  // Encoded surrogate.
      {"{\"a\":", "expected a value"},
  };
  for (const auto& [line, why] : cases) {
    ScannedObject out;
    std::string error;
    EXPECT_FALSE(ScanJsonObject(line, &out, &error)) << line;
    EXPECT_THAT(error, HasSubstr(why)) << line;
    EXPECT_THAT(error, HasSubstr(" at byte ")) << line;
  }
  std::string deep(100, '[');
  EXPECT_FALSE(Valid("{\"a\":" + deep + std::string(100, ']') + "}"));
}

TEST(JsonScanTest, ReportsTopLevelKindsTextsAndMetadataKinds) {
  ScannedObject out;
  std::string error;
  ASSERT_TRUE(ScanJsonObject(
      R"({"user_id":"u\u0031","n":2,"metadata":{"plan":"pro","nested":{"x":[1]},"list":[],"ok":null},"x":{"metadata":{"deep":{}}}})",
      &out, &error))
      << error;
  ASSERT_NE(out.Find("user_id"), nullptr);
  EXPECT_EQ(out.Find("user_id")->kind, JsonKind::kString);
  EXPECT_EQ(out.Find("user_id")->text, "u1");
  EXPECT_EQ(out.Find("n")->kind, JsonKind::kNumber);
  EXPECT_EQ(out.Find("metadata")->kind, JsonKind::kObject);
  EXPECT_EQ(out.Find("missing"), nullptr);
  ASSERT_EQ(out.metadata.size(), 4u) << "only the top-level metadata's members";
  EXPECT_EQ(out.metadata[0].key, "plan");
  EXPECT_EQ(out.metadata[0].kind, JsonKind::kString);
  EXPECT_EQ(out.metadata[1].kind, JsonKind::kObject);
  EXPECT_EQ(out.metadata[2].kind, JsonKind::kArray);
  EXPECT_EQ(out.metadata[3].kind, JsonKind::kNull);
  // A repeated key: the last one counts.
  ASSERT_TRUE(ScanJsonObject(R"({"user_id":"a","user_id":7})", &out, &error));
  EXPECT_EQ(out.Find("user_id")->kind, JsonKind::kNumber);
}

}  // namespace
}  // namespace userpilot::gateway
