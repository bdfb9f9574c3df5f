#include "service/jobs/import/json_row_reader.h"

#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

bool Valid(absl::string_view line) {
  JsonRowReader reader;
  JsonRow row;
  std::string error;
  return reader.Read(line, &row, &error);
}

TEST(JsonRowReaderTest, AcceptsEveryJsonValueInsideAnObject) {
  for (const char* line : {
           R"({})",
           R"(  { "a" : 1 }  )",
           R"({"s":"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","n":-0.5e+10,"z":0,"t":true,"f":false,)"
           R"("u":null,"o":{"p":[1,[2,{}],"3"]},"a":[],"big":18446744073709551615,"e":1e-400})",
           "{\"utf8\":\"h\xC3\xA9llo \xF0\x9F\x98\x80\"}",
           "{\"k\":1}\r",
       }) {
    EXPECT_TRUE(Valid(line)) << line;
  }
}

TEST(JsonRowReaderTest, RefusesWhatIsNotOneObjectSayingWhereAndWhy) {
  const std::pair<std::string, const char*> cases[] = {
      {"[1]", "not a JSON object at byte"},
      {"\"s\"", "not a JSON object"},
      {"{\"a\":1}{}", "root must not be followed by other values at byte 8"},
      {"{\"a\":1,}", "Missing a name for object member"},
      {"{\"a\" 1}", "Missing a colon"},
      {"{\"a\":1 \"b\":2}", "Missing a comma or '}'"},
      {"{\"a\":[1 2]}", "Missing a comma or ']'"},
      {"{\"a\":tru}", "Invalid value"},
      {"{\"a\":01}", "Missing a comma or '}'"},
      {"{\"a\":1.}", "Miss fraction part in number"},
      {"{\"a\":1e}", "Miss exponent in number"},
      {"{\"a\":-}", "Invalid value"},
      {"{\"a\":+1}", "Invalid value"},
      {"{\"a\":1e400}", "Number too big"},
      {"{\"a\":\"x}", "Missing a closing quotation mark"},
      {"{\"a\":\"\x01\"}", "control character in a string at byte 7"},
      {"{\"a\":\"\\x\"}", "Invalid escape character"},
      {"{\"a\":\"\\u12\"}", "Incorrect hex digit"},
      {"{\"a\":\"\\ud83d\"}", "surrogate"},
      {"{\"a\":\"\\ude00\"}", "unpaired surrogate"},
      {"{\"\\ude00\":1}", "unpaired surrogate"},
      {"{\"a\":\"\xff\"}", "invalid UTF-8 at byte 7"},
      {"{\"a\":\"\xC0\x80\"}", "invalid UTF-8 at byte 7"},      // Overlong.
      {"{\"a\":\"\xED\xA0\x80\"}", "invalid UTF-8 at byte 7"},  // Encoded surrogate.
      {"{\"a\":", "Invalid value"},
      {std::string("{\"a\":1}\0{", 9), "a NUL byte (U+0000) at byte 8"},
      {std::string("{\"a\":\"\0\"}", 9), "a NUL byte"},
  };
  for (const auto& [line, why] : cases) {
    JsonRowReader reader;
    JsonRow row;
    std::string error;
    EXPECT_FALSE(reader.Read(line, &row, &error)) << line;
    EXPECT_THAT(error, HasSubstr(why)) << line;
    EXPECT_THAT(error, HasSubstr(" at byte ")) << line;
  }
}

TEST(JsonRowReaderTest, BoundsNestingWhateverTheDepth) {
  EXPECT_TRUE(Valid("{\"a\":" + std::string(62, '[') + std::string(62, ']') + "}"));
  JsonRowReader reader;
  JsonRow row;
  std::string error;
  const std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_FALSE(reader.Read(deep, &row, &error));
  EXPECT_THAT(error, HasSubstr("nesting deeper than 64 levels"));
}

TEST(JsonRowReaderTest, ReportsTopLevelMembersAndTheMetadataObject) {
  JsonRowReader reader;
  JsonRow row;
  std::string error;
  ASSERT_TRUE(reader.Read(
      R"({"user_id":"u\u0031","n":2,"metadata":{"plan":"pro","nested":{"x":[1]},"list":[],"ok":null,"t":true,"v":1.5},"x":{"metadata":{"deep":{}}}})",
      &row, &error))
      << error;
  ASSERT_NE(row.Find("user_id"), nullptr);
  EXPECT_EQ(row.Find("user_id")->kind, JsonKind::kString);
  EXPECT_EQ(row.Find("user_id")->text, "u1");
  EXPECT_EQ(row.Find("n")->kind, JsonKind::kNumber);
  EXPECT_EQ(row.Find("metadata")->kind, JsonKind::kObject);
  EXPECT_EQ(row.Find("x")->kind, JsonKind::kObject);
  EXPECT_EQ(row.Find("missing"), nullptr);
  ASSERT_EQ(row.metadata.size(), 6u) << "only the top-level metadata's members";
  EXPECT_EQ(row.metadata[0].key, "plan");
  EXPECT_EQ(row.metadata[0].kind, JsonKind::kString);
  EXPECT_EQ(row.metadata[0].text, "pro");
  EXPECT_EQ(row.metadata[1].kind, JsonKind::kObject);
  EXPECT_EQ(row.metadata[2].kind, JsonKind::kArray);
  EXPECT_EQ(row.metadata[3].kind, JsonKind::kNull);
  EXPECT_EQ(row.metadata[4].kind, JsonKind::kBool);
  EXPECT_EQ(row.metadata[5].kind, JsonKind::kNumber);

  // The reader is reused from line to line; nothing of the last row is left over.
  ASSERT_TRUE(reader.Read(R"({"user_id":"a","user_id":7,"metadata":{"a":1},"metadata":{"b":2}})",
                          &row, &error));
  ASSERT_EQ(row.members.size(), 4u) << "a repeated key appears once per occurrence";
  EXPECT_EQ(row.members[1].kind, JsonKind::kNumber);
  ASSERT_EQ(row.metadata.size(), 1u) << "the first metadata object's members";
  EXPECT_EQ(row.metadata[0].key, "a");
  // Escapes are unescaped, including NUL and newlines (the row rules judge them).
  ASSERT_TRUE(reader.Read(R"({"user_id":"a\u0000b\nc"})", &row, &error));
  EXPECT_EQ(row.Find("user_id")->text, std::string("a\0b\nc", 5));
}

}  // namespace
}  // namespace userpilot::gateway
