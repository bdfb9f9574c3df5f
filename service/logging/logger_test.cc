#include "service/logging/logger.h"

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grpc/support/log.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kKey[] = "up-key-93c1f";

class LoggerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Logger> Make(LogSeverity level) {
    LoggerOptions options;
    options.level = level;
    options.api_key = kKey;
    return std::make_unique<Logger>(options,
                                    std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
  }

  std::vector<std::string> Lines() {
    std::vector<std::string> lines = absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
    return lines;
  }

  std::ostringstream out_;
};

TEST_F(LoggerTest, OneJsonObjectPerLineWithTimeLevelMessageAndFields) {
  auto logger = Make(LogSeverity::kInfo);
  logger->Info("serving", {{"port", 50051},
                           {"upstream", "http://127.0.0.1:8089"},
                           {"reflection", true},
                           {"grace_s", 2.5}});
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0],
              MatchesRegex(R"(\{"time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
                           R"(\.[0-9]{6}Z","level":"info","msg":"serving","port":50051,)"
                           R"("upstream":"http://127\.0\.0\.1:8089","reflection":true,)"
                           R"("grace_s":2\.5\})"));
}

TEST_F(LoggerTest, LevelsFilterAndAreNamed) {
  auto logger = Make(LogSeverity::kWarning);
  EXPECT_FALSE(logger->Enabled(LogSeverity::kInfo));
  EXPECT_TRUE(logger->Enabled(LogSeverity::kError));
  logger->Debug("d");
  logger->Info("i");
  logger->Warning("w");
  logger->Error("e");
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr(R"("level":"warning","msg":"w")"));
  EXPECT_THAT(lines[1], HasSubstr(R"("level":"error","msg":"e")"));

  out_.str("");
  auto debug = Make(LogSeverity::kDebug);
  debug->Debug("d");
  ASSERT_EQ(Lines().size(), 1u);
  EXPECT_THAT(Lines()[0], HasSubstr(R"("level":"debug")"));
}

TEST_F(LoggerTest, KeyIsRedactedFromMessageAndEveryField) {
  auto logger = Make(LogSeverity::kInfo);
  const std::string key = kKey;
  logger->Error("upstream said: bad token " + key, {{"header", "Authorization: Token " + key},
                                                    {"url", "https://x.test/?k=" + key},
                                                    {"quoted", "\"" + key + "\""}});
  const std::string text = out_.str();
  EXPECT_THAT(text, Not(HasSubstr(key)));
  EXPECT_THAT(text, HasSubstr(R"("msg":"upstream said: bad token [redacted]")"));
  EXPECT_THAT(text, HasSubstr(R"("header":"Authorization: Token [redacted]")"));
  EXPECT_THAT(text, HasSubstr(R"("quoted":"\"[redacted]\"")"));
}

TEST_F(LoggerTest, HostileTextCannotBreakTheLine) {
  auto logger = Make(LogSeverity::kInfo);
  logger->Info("a\nb\"}{\x01\xff", {{"v", std::string("x\0y", 3)}});
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(R"("msg":"a\nb\"}{\u0001)"
                                  "\xEF\xBF\xBD\""));
  EXPECT_THAT(lines[0], HasSubstr(R"("v":"x\u0000y")"));
}

TEST_F(LoggerTest, GrpcLogsCanBeCaptured) {
  auto logger = Make(LogSeverity::kInfo);
  CaptureGrpcLogs(logger.get());
  gpr_log(__FILE__, 42, GPR_LOG_SEVERITY_ERROR, "core said %s", kKey);
  CaptureGrpcLogs(nullptr);
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(R"("level":"error","msg":"grpc")"));
  EXPECT_THAT(lines[0], HasSubstr(R"("line":42,"detail":"core said [redacted]")"));
}

TEST(ParseLogSeverityTest, FlagValues) {
  EXPECT_EQ(ParseLogSeverity("debug"), LogSeverity::kDebug);
  EXPECT_EQ(ParseLogSeverity("info"), LogSeverity::kInfo);
  EXPECT_EQ(ParseLogSeverity("warning"), LogSeverity::kWarning);
  EXPECT_EQ(ParseLogSeverity("warn"), LogSeverity::kWarning);
  EXPECT_EQ(ParseLogSeverity("error"), LogSeverity::kError);
  EXPECT_EQ(ParseLogSeverity("INFO"), std::nullopt);
  EXPECT_EQ(ParseLogSeverity(""), std::nullopt);
}

}  // namespace
}  // namespace userpilot::gateway
