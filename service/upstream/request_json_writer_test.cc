#include "service/upstream/request_json_writer.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"
#include "service/upstream/json_mapping.h"

namespace userpilot::gateway {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// Text that exercises every escaping rule: JSON's own, protobuf's extras (HTML and JavaScript
// hazards), code points outside the BMP, and byte sequences that are not UTF-8 (validation
// refuses those before a request is mapped, but both paths must still agree).
std::vector<std::string> EdgeStrings() {
  return {
      "",
      "plain",
      "quote \" backslash \\ slash /",
      "\b\f\n\r\t",
      std::string("nul \0 inside", 12),
      "\x01\x02\x0b\x0e\x1a\x1f",
      "del \x7f",
      "<script>alert('&')</script>",
      "caf\xc3\xa9 Zo\xc3\xab \xe2\x82\xac \xe4\xb8\xad\xe6\x96\x87",
      "C1 \xc2\x80 \xc2\x85 \xc2\x9f then NBSP \xc2\xa0",
      "line sep \xe2\x80\xa8 para sep \xe2\x80\xa9",
      // U+00AD, U+0600, U+0603, U+06DD, U+070F, U+17B4, U+17B5.
      "\xc2\xad \xd8\x80 \xd8\x83 \xdb\x9d \xdc\x8f \xe1\x9e\xb4 \xe1\x9e\xb5",
      // U+200B, U+200F, U+202E, U+2060, U+2064, U+206A, U+206F, U+FEFF, U+FFF9, U+FFFB, U+FFFC.
      "\xe2\x80\x8b\xe2\x80\x8f\xe2\x80\xae\xe2\x81\xa0\xe2\x81\xa4\xe2\x81\xaa\xe2\x81\xaf"
      "\xef\xbb\xbf\xef\xbf\xb9\xef\xbf\xbb\xef\xbf\xbc",
      // U+1F600 (a surrogate pair in UTF-16), U+10FFFF.
      "emoji \xf0\x9f\x98\x80 max \xf4\x8f\xbf\xbf",
      // U+1D173, U+1D17A, U+E0001, U+E0020, U+E007F, U+1D17B: escaped as surrogate pairs.
      "\xf0\x9d\x85\xb3\xf0\x9d\x85\xba\xf3\xa0\x80\x81\xf3\xa0\x80\xa0\xf3\xa0\x81\xbf"
      "\xf0\x9d\x85\xbb",
      // Not UTF-8: a lone continuation byte, bytes never used, a lead byte followed by ASCII,
      // truncated sequences (inside and at the end), an encoded surrogate, beyond U+10FFFF,
      // overlong forms of NUL, 'A' and '<', a five-byte form.
      "a\x80z",
      "\xfe\xff!",
      "\xc3(x",
      "\xe2\x82z",
      "tail \xe2\x82",
      "tail \xf0\x9f\x98",
      "\xed\xa0\x80 surrogate",
      "\xf4\x90\x80\x80 too big",
      "\xc0\x80 \xc1\x81 \xe0\x80\xbc",
      "\xf8\x88\x80\x80\x80 five",
      "\xc2",
  };
}

std::vector<double> EdgeNumbers() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  return {0.0,
          -0.0,
          1,
          -1,
          8.0,
          0.1,
          0.1 + 0.2,
          1.0 / 3,
          3.25,
          9.99,
          100,
          123456.789,
          1706000000123,
          1e15,
          1e16,
          1e17,
          1e21,
          1e-7,
          9007199254740992.0,  // 2^53
          9007199254740993.0,  // 2^53 + 1: the double is 2^53
          9007199254740994.0,  // 2^53 + 2
          123456789012345678.0,
          9223372036854775807.0,  // 2^63 - 1: the double is 2^63
          -9223372036854775808.0,
          18446744073709551615.0,  // 2^64 - 1
          std::numeric_limits<double>::max(),
          std::numeric_limits<double>::lowest(),
          std::numeric_limits<double>::min(),
          std::numeric_limits<double>::denorm_min(),
          nan,
          -nan,
          inf,
          -inf};
}

Value StringValue(const std::string& s) {
  Value v;
  v.set_string_value(s);
  return v;
}

Value NumberValue(double d) {
  Value v;
  v.set_number_value(d);
  return v;
}

// Every kind of metadata value, nested objects and lists included (validation refuses nesting,
// the mapping prints it anyway), plus Values with no kind, which print nothing.
Struct EveryKind() {
  Struct s;
  auto& f = *s.mutable_fields();
  f["null"].set_null_value(google::protobuf::NULL_VALUE);
  f["null_odd_enum"].set_null_value(static_cast<google::protobuf::NullValue>(7));
  f["true"].set_bool_value(true);
  f["false"].set_bool_value(false);
  f["int"].set_number_value(42);
  f["frac"].set_number_value(-2.5);
  f["string"].set_string_value("text");
  f["empty_string"].set_string_value("");
  f["no_kind"];
  f[""].set_string_value("empty key");
  f["empty_struct"].mutable_struct_value();
  f["empty_list"].mutable_list_value();
  ListValue& list = *f["list"].mutable_list_value();
  list.add_values()->set_number_value(1);
  list.add_values();  // No kind: left out of the list.
  list.add_values()->set_null_value(google::protobuf::NULL_VALUE);
  list.add_values()->set_string_value("a\nb");
  list.add_values()->mutable_list_value()->add_values()->set_bool_value(false);
  (*list.add_values()->mutable_struct_value()->mutable_fields())["k"].set_number_value(1e300);
  Struct* nested = f["nested"].mutable_struct_value();
  for (int depth = 0; depth < 12; ++depth) {
    (*nested->mutable_fields())[absl::StrCat("z", depth)].set_number_value(depth);
    (*nested->mutable_fields())["a"];  // No kind: no key either.
    nested = (*nested->mutable_fields())[absl::StrCat("level", depth)].mutable_struct_value();
  }
  return s;
}

void ExpectSameBodies(const v1::IdentifyUserRequest& request) {
  EXPECT_EQ(RequestBody(request), ProtobufRequestBody(request))
      << "identify: " << request.ShortDebugString();
}
void ExpectSameBodies(const v1::IdentifyCompanyRequest& request) {
  EXPECT_EQ(RequestBody(request), ProtobufRequestBody(request))
      << "company identify: " << request.ShortDebugString();
}
void ExpectSameBodies(const v1::TrackEventRequest& request) {
  EXPECT_EQ(RequestBody(request), ProtobufRequestBody(request))
      << "track: " << request.ShortDebugString();
}

// Each request built around one metadata Struct and one piece of text, in all three bodies and
// every position text can take (ids, event name, keys, values, identify's company).
void ExpectSameBodiesFor(const Struct& metadata, const std::string& text) {
  v1::IdentifyUserRequest identify;
  identify.set_user_id(text);
  *identify.mutable_metadata() = metadata;
  ExpectSameBodies(identify);
  identify.mutable_company()->set_company_id(text);
  ExpectSameBodies(identify);
  *identify.mutable_company()->mutable_metadata() = metadata;
  (*identify.mutable_company()->mutable_metadata()->mutable_fields())["company_id"] =
      StringValue("reserved");
  (*identify.mutable_company()->mutable_metadata()->mutable_fields())["id"] =
      StringValue("reserved");
  ExpectSameBodies(identify);
  identify.mutable_company()->clear_company_id();
  ExpectSameBodies(identify);

  v1::IdentifyCompanyRequest company;
  company.set_company_id(text);
  *company.mutable_metadata() = metadata;
  ExpectSameBodies(company);

  v1::TrackEventRequest track;
  track.set_user_id("u1");
  track.set_event_name(text);
  *track.mutable_metadata() = metadata;
  ExpectSameBodies(track);
}

class SameBodiesTest : public ::testing::Test {
 protected:
  // Protobuf logs an error for every string that is not UTF-8 it serializes (the reference
  // path does); the corpus has many on purpose.
  google::protobuf::LogSilencer silence_;
};

TEST_F(SameBodiesTest, EveryEdgeStringInEveryPosition) {
  for (const std::string& text : EdgeStrings()) {
    Struct metadata;
    (*metadata.mutable_fields())[text] = StringValue(text);
    (*metadata.mutable_fields())["v"] = StringValue(text);
    ExpectSameBodiesFor(metadata, text);
  }
}

TEST_F(SameBodiesTest, EveryEdgeNumber) {
  for (const double number : EdgeNumbers()) {
    Struct metadata;
    (*metadata.mutable_fields())["n"] = NumberValue(number);
    (*metadata.mutable_fields())["list"].mutable_list_value()->add_values()->set_number_value(
        number);
    ExpectSameBodiesFor(metadata, "id");
  }
}

TEST_F(SameBodiesTest, EveryValueKindNestedListsAndStructs) {
  ExpectSameBodiesFor(EveryKind(), "id");
}

TEST_F(SameBodiesTest, PresenceAndEmptiness) {
  v1::IdentifyUserRequest identify;
  ExpectSameBodies(identify);   // Nothing set: "{}".
  identify.mutable_metadata();  // Present but empty: omitted.
  ExpectSameBodies(identify);
  identify.mutable_company();  // An empty company is still written.
  ExpectSameBodies(identify);
  (*identify.mutable_metadata()->mutable_fields())["no_kind"];  // Only kindless values.
  ExpectSameBodies(identify);
  (*identify.mutable_company()->mutable_metadata()->mutable_fields())["id"] = StringValue("x");
  ExpectSameBodies(identify);  // Only a reserved key: "company":{}.

  v1::IdentifyCompanyRequest company;
  ExpectSameBodies(company);
  company.mutable_metadata();
  ExpectSameBodies(company);

  v1::TrackEventRequest track;
  ExpectSameBodies(track);
  track.set_event_name("e");
  ExpectSameBodies(track);
  track.mutable_metadata();
  ExpectSameBodies(track);
}

TEST_F(SameBodiesTest, UnknownFieldsAreNotPrinted) {
  v1::TrackEventRequest track;
  track.set_user_id("u1");
  track.set_event_name("e");
  track.GetReflection()->MutableUnknownFields(&track)->AddVarint(99, 5);
  Value& value = (*track.mutable_metadata()->mutable_fields())["k"];
  value.set_number_value(1);
  value.GetReflection()->MutableUnknownFields(&value)->AddLengthDelimited(77, "x");
  ExpectSameBodies(track);

  v1::IdentifyCompanyRequest company;
  company.set_company_id("c1");
  company.GetReflection()->MutableUnknownFields(&company)->AddFixed32(50, 1);
  ExpectSameBodies(company);
}

// Random requests from the pieces above: many keys (sorting), mixed kinds, nesting.
class RandomRequests {
 public:
  explicit RandomRequests(uint32_t seed) : random_(seed) {}

  std::string Text() {
    std::string text;
    const int pieces = Pick(4);
    for (int i = 0; i < pieces; ++i) text += strings_[Pick(strings_.size())];
    if (Pick(4) == 0) text.push_back(static_cast<char>(Pick(256)));  // Any byte at all.
    return text;
  }

  Value RandomValue(int depth) {
    Value v;
    switch (Pick(depth > 0 ? 8 : 6)) {
      case 0:
        v.set_null_value(google::protobuf::NULL_VALUE);
        break;
      case 1:
        v.set_bool_value(Pick(2) == 0);
        break;
      case 2:
        v.set_number_value(numbers_[Pick(numbers_.size())]);
        break;
      case 3:
        v.set_number_value(std::ldexp(std::uniform_real_distribution<double>(-1, 1)(random_),
                                      static_cast<int>(Pick(140)) - 70));
        break;
      case 4:
        v.set_string_value(Text());
        break;
      case 5:
        if (Pick(5) == 0) break;  // No kind.
        v.set_number_value(static_cast<double>(static_cast<int64_t>(random_())));
        break;
      case 6:
        *v.mutable_struct_value() = RandomStruct(depth - 1);
        break;
      default: {
        ListValue& list = *v.mutable_list_value();
        const int n = Pick(5);
        for (int i = 0; i < n; ++i) *list.add_values() = RandomValue(depth - 1);
      }
    }
    return v;
  }

  Struct RandomStruct(int depth) {
    Struct s;
    const int keys = Pick(10);
    for (int i = 0; i < keys; ++i) (*s.mutable_fields())[Text()] = RandomValue(depth);
    return s;
  }

 private:
  int Pick(size_t n) { return static_cast<int>(random_() % n); }

  std::mt19937 random_;
  const std::vector<std::string> strings_ = EdgeStrings();
  const std::vector<double> numbers_ = EdgeNumbers();
};

TEST_F(SameBodiesTest, RandomCorpus) {
  RandomRequests random(20261207);
  for (int i = 0; i < 400; ++i) {
    ExpectSameBodiesFor(random.RandomStruct(3), random.Text());
    if (HasFailure()) return;  // One counterexample is enough to read.
  }
}

// ----- The pieces, with their exact bytes -----

std::string Escaped(absl::string_view text) {
  std::string out;
  AppendProtobufJsonEscaped(text, out);
  return out;
}

TEST(AppendProtobufJsonEscapedTest, ExactEscapes) {
  EXPECT_EQ(Escaped("plain"), "plain");
  EXPECT_EQ(Escaped("\"\\/"), "\\\"\\\\/");
  EXPECT_EQ(Escaped("\b\f\n\r\t\x01\x1f\x7f"), "\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f");
  EXPECT_EQ(Escaped("<a>&'"), "\\u003ca\\u003e&'");
  EXPECT_EQ(Escaped("\xc2\x85"), "\\u0085");
  EXPECT_EQ(Escaped("\xe2\x80\xa8\xe2\x80\xa9"), "\\u2028\\u2029");
  EXPECT_EQ(Escaped("\xef\xbb\xbf"), "\\ufeff");
  EXPECT_EQ(Escaped("\xf3\xa0\x80\x81"), "\\udb40\\udc01");    // U+E0001
  EXPECT_EQ(Escaped("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");  // U+1F600 as sent
  EXPECT_EQ(Escaped("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(Escaped("a\x80z"), "az");          // A lone continuation byte is dropped.
  EXPECT_EQ(Escaped("\xc3(x"), "x");           // With the byte that broke the sequence.
  EXPECT_EQ(Escaped("ok \xe2\x82"), "ok ");    // A truncated tail.
  EXPECT_EQ(Escaped("\xed\xa0\x80!"), "!");    // An encoded surrogate.
  EXPECT_EQ(Escaped("\xc0\x80"), "\\u0000");   // Overlong NUL: escaped as NUL.
  EXPECT_EQ(Escaped("\xc1\x81"), "\xc1\x81");  // Overlong 'A': the bytes as sent.
}

std::string DoubleJson(double d) {
  std::string out;
  AppendProtobufJsonDouble(d, out);
  return out;
}

TEST(AppendProtobufJsonDoubleTest, ExactNumbers) {
  EXPECT_EQ(DoubleJson(8), "8");
  EXPECT_EQ(DoubleJson(-0.0), "-0");
  EXPECT_EQ(DoubleJson(0.1), "0.1");
  EXPECT_EQ(DoubleJson(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(DoubleJson(1706000000123), "1706000000123");
  EXPECT_EQ(DoubleJson(1e21), "1e+21");
  EXPECT_EQ(DoubleJson(9007199254740993.0), "9007199254740992");
  EXPECT_EQ(DoubleJson(9223372036854775807.0), "9.2233720368547758e+18");
  EXPECT_EQ(DoubleJson(std::numeric_limits<double>::quiet_NaN()), "\"NaN\"");
  EXPECT_EQ(DoubleJson(std::numeric_limits<double>::infinity()), "\"Infinity\"");
  EXPECT_EQ(DoubleJson(-std::numeric_limits<double>::infinity()), "\"-Infinity\"");
}

TEST(AppendRequestBodyTest, AppendsToWhatIsThere) {
  v1::TrackEventRequest track;
  track.set_user_id("u1");
  track.set_event_name("e");
  std::string out = "prefix:";
  AppendRequestBody(track, out);
  EXPECT_EQ(out, R"(prefix:{"user_id":"u1","event_name":"e"})");
}

}  // namespace
}  // namespace userpilot::gateway
