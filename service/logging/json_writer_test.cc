#include "service/logging/json_writer.h"

#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

TEST(JsonStringTest, EscapesTableDriven) {
  struct Case {
    std::string in;
    std::string want;
  };
  const Case cases[] = {
      {"", R"("")"},
      {"plain ascii", R"("plain ascii")"},
      {R"(say "hi")", R"("say \"hi\"")"},
      {R"(C:\path)", R"("C:\\path")"},
      {"line\nbreak\r\ttab", R"("line\nbreak\r\ttab")"},
      {"\b\f", R"("\b\f")"},
      {std::string("nul\0byte", 8), R"("nul\u0000byte")"},
      {"\x01\x1f\x7f", R"("\u0001\u001f\u007f")"},
      {"/", R"("/")"},
      // Valid UTF-8 passes through: 2, 3 and 4-byte sequences.
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
       "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
      // Line and paragraph separators are escaped (JavaScript-safe lines).
      {"a\xE2\x80\xA8"
       "b\xE2\x80\xA9",
       R"("a\u2028b\u2029")"},
      // Invalid UTF-8 becomes U+FFFD, one per bad byte.
      {"bad \xFF byte", "\"bad \xEF\xBF\xBD byte\""},
      {"\x80", "\"\xEF\xBF\xBD\""},                                  // stray continuation byte
      {"\xC3", "\"\xEF\xBF\xBD\""},                                  // truncated at the end
      {"\xC3(", "\"\xEF\xBF\xBD(\""},                                // bad continuation
      {"\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},                  // overlong '/'
      {"\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},  // UTF-16 surrogate
      {"\xF4\x90\x80\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},  // > U+10FFFF
  };
  for (const Case& c : cases) {
    EXPECT_EQ(JsonString(c.in), c.want) << c.in;
  }
}

TEST(JsonObjectTest, MembersInOrderWithTypes) {
  JsonObject object;
  object.Add("s", "x\"y")
      .Add("i", int64_t{-42})
      .Add("u", uint64_t{18446744073709551615u})
      .Add("n", 7)
      .Add("d", 12.5)
      .Add("tiny", 0.001)
      .Add("t", true)
      .Add("f", false)
      .AddNull("z")
      .Add("nan", std::numeric_limits<double>::quiet_NaN())
      .Add("inf", std::numeric_limits<double>::infinity());
  EXPECT_EQ(object.ToString(),
            R"({"s":"x\"y","i":-42,"u":18446744073709551615,"n":7,"d":12.5,"tiny":0.001,)"
            R"("t":true,"f":false,"z":null,"nan":null,"inf":null})");
}

TEST(JsonObjectTest, KeysAreEscapedToo) {
  JsonObject object;
  object.Add("a\"b", "v");
  EXPECT_EQ(object.members(), R"("a\"b":"v")");
}

}  // namespace
}  // namespace userpilot::gateway
