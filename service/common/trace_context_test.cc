#include "service/common/trace_context.h"

#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::IsEmpty;

constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kParentId[] = "00f067aa0ba902b7";
constexpr char kValid[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

bool IsLowerHexOfLength(const std::string& text, size_t length) {
  return text.size() == length && text.find_first_not_of("0123456789abcdef") == std::string::npos &&
         text.find_first_not_of('0') != std::string::npos;
}

TEST(ParseTraceparentTest, ReadsTheSpecificationsExample) {
  const auto parsed = ParseTraceparent(kValid);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->trace_id, kTraceId);
  EXPECT_EQ(parsed->parent_id, kParentId);
  EXPECT_EQ(parsed->flags, 0x01);
}

TEST(ParseTraceparentTest, KeepsEveryFlagBit) {
  const auto parsed = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->flags, 0xfe);
}

TEST(ParseTraceparentTest, AcceptsAHigherVersionWithMoreFields) {
  const auto longer =
      ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever");
  ASSERT_TRUE(longer.has_value());
  EXPECT_EQ(longer->trace_id, kTraceId);
  EXPECT_EQ(longer->flags, 0x01);
  EXPECT_TRUE(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
}

struct InvalidCase {
  const char* name;
  std::string value;
};

class InvalidTraceparentTest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidTraceparentTest, IsRejected) {
  EXPECT_FALSE(ParseTraceparent(GetParam().value).has_value()) << GetParam().value;
}

INSTANTIATE_TEST_SUITE_P(
    W3cRules, InvalidTraceparentTest,
    ::testing::Values(
        InvalidCase{"Empty", ""},
        InvalidCase{"VersionFf", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        InvalidCase{"ZeroTraceId", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
        InvalidCase{"ZeroParentId", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
        InvalidCase{"UpperCaseTraceId", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"},
        InvalidCase{"UpperCaseParentId", "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"},
        InvalidCase{"UpperCaseFlags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A"},
        InvalidCase{"UpperCaseVersion", "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        InvalidCase{"NonHexTraceId", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"},
        InvalidCase{"Version00Longer",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"},
        InvalidCase{"Version00TrailingSpace",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "},
        InvalidCase{"HigherVersionNoDash",
                    "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"},
        InvalidCase{"Short", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"},
        InvalidCase{"ShortTraceId", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-011"},
        InvalidCase{"WrongSeparator", "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}),
    [](const ::testing::TestParamInfo<InvalidCase>& info) { return info.param.name; });

TEST(FormatTraceparentTest, WritesVersion00WithTwoFlagDigits) {
  EXPECT_EQ(FormatTraceparent(kTraceId, kParentId, 0x01), kValid);
  EXPECT_EQ(FormatTraceparent(kTraceId, "b7ad6b7169203331", 0xab),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-ab");
  EXPECT_EQ(FormatTraceparent(kTraceId, "b7ad6b7169203331", 0x00),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-00");
}

TEST(FormatTraceparentTest, RoundTripsThroughTheParser) {
  const std::string formatted = FormatTraceparent(NewTraceId(), NewSpanId(), 0x03);
  const auto parsed = ParseTraceparent(formatted);
  ASSERT_TRUE(parsed.has_value()) << formatted;
  EXPECT_EQ(FormatTraceparent(parsed->trace_id, parsed->parent_id, parsed->flags), formatted);
}

TEST(NewIdsTest, AreLowerHexNonZeroAndDistinct) {
  std::set<std::string> spans;
  for (int i = 0; i < 100; ++i) {
    const std::string trace = NewTraceId();
    const std::string span = NewSpanId();
    EXPECT_TRUE(IsLowerHexOfLength(trace, 32)) << trace;
    EXPECT_TRUE(IsLowerHexOfLength(span, 16)) << span;
    spans.insert(span);
  }
  EXPECT_EQ(spans.size(), 100u);
}

TEST(AcceptableTracestateTest, BoundsLengthAndBytes) {
  EXPECT_TRUE(AcceptableTracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
  EXPECT_TRUE(AcceptableTracestate(std::string(kMaxTracestateBytes, 'a')));
  EXPECT_FALSE(AcceptableTracestate(std::string(kMaxTracestateBytes + 1, 'a')));
  EXPECT_FALSE(AcceptableTracestate("a=b\r\nx-injected: 1"));
  EXPECT_FALSE(AcceptableTracestate("a=\xc3\xa9"));
}

TEST(TraceContextForCallTest, ContinuesTheCallersTraceWithANewSpan) {
  const std::vector<absl::string_view> parents = {kValid};
  const std::vector<absl::string_view> states = {"congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"};
  const TraceContext context = TraceContextForCall(parents, states);
  EXPECT_EQ(context.trace_id, kTraceId);
  EXPECT_EQ(context.parent_span_id, kParentId);
  EXPECT_TRUE(IsLowerHexOfLength(context.span_id, 16));
  EXPECT_NE(context.span_id, kParentId);
  EXPECT_EQ(context.flags, 0x01);
  EXPECT_EQ(context.tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
}

TEST(TraceContextForCallTest, StartsATraceWithoutAValidTraceparent) {
  const std::vector<absl::string_view> states = {"congo=t61rcWkgMzE"};
  for (const std::vector<absl::string_view>& parents :
       {std::vector<absl::string_view>{},
        std::vector<absl::string_view>{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        std::vector<absl::string_view>{kValid, kValid}}) {
    const TraceContext context = TraceContextForCall(parents, states);
    EXPECT_TRUE(IsLowerHexOfLength(context.trace_id, 32)) << context.trace_id;
    EXPECT_NE(context.trace_id, kTraceId);
    EXPECT_TRUE(IsLowerHexOfLength(context.span_id, 16));
    EXPECT_THAT(context.parent_span_id, IsEmpty());
    EXPECT_EQ(context.flags, 0);
    // The tracestate of an invalid traceparent is discarded with it.
    EXPECT_THAT(context.tracestate, IsEmpty());
  }
}

TEST(TraceContextForCallTest, DropsAnUnacceptableTracestateButKeepsTheTrace) {
  const std::vector<absl::string_view> parents = {kValid};
  const std::string long_state(kMaxTracestateBytes + 1, 'a');
  const std::vector<absl::string_view> states = {long_state};
  const TraceContext context = TraceContextForCall(parents, states);
  EXPECT_EQ(context.trace_id, kTraceId);
  EXPECT_THAT(context.tracestate, IsEmpty());
}

}  // namespace
}  // namespace userpilot::gateway
