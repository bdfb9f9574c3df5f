#include "service/logging/access_log.h"

#include <memory>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"

namespace userpilot::gateway {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

class AccessLogTest : public ::testing::Test {
 protected:
  AccessLogTest()
      : logger_(LoggerOptions{LogSeverity::kInfo, "key-5f2a"},
                std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)),
        log_(logger_) {}

  std::ostringstream out_;
  Logger logger_;
  AccessLog log_;
};

TEST_F(AccessLogTest, SuccessfulCallHasEveryFieldInOrder) {
  CallFacts facts;
  facts.http_attempts = 1;
  facts.budget_wait = absl::Microseconds(12500);
  facts.upstream.http_status = 200;
  facts.upstream.request_id = "QHQTu0Re000000000001";
  TraceContext trace;
  trace.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  trace.span_id = "b7ad6b7169203331";
  trace.parent_span_id = "00f067aa0ba902b7";
  log_.Record("IdentifyUser", "billing", trace, grpc::Status::OK, facts, absl::Microseconds(84520));
  EXPECT_THAT(out_.str(),
              EndsWith(R"("level":"info","msg":"call","method":"IdentifyUser","caller":"billing",)"
                       R"("trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",)"
                       R"("span_id":"b7ad6b7169203331","parent_span_id":"00f067aa0ba902b7",)"
                       R"("grpc_code":"OK","upstream_status":200,"attempts":1,)"
                       R"("queue_wait_ms":12.5,"latency_ms":84.52,)"
                       R"("upstream_request_id":"QHQTu0Re000000000001"})"
                       "\n"));
}

TEST_F(AccessLogTest, FailedCallAddsWhyRetryingStoppedAndTheRedactedError) {
  CallFacts facts;
  facts.http_attempts = 3;
  facts.upstream.http_status = 503;
  facts.retry.stopped = StopReason::kRetryPolicyExhausted;
  log_.Record("TrackEvent", "unknown", TraceContext(),
              grpc::Status(grpc::StatusCode::UNAVAILABLE, "Userpilot is unavailable (key-5f2a)"),
              facts, absl::Milliseconds(900));
  const std::string line = out_.str();
  EXPECT_THAT(line, HasSubstr(R"("grpc_code":"UNAVAILABLE","upstream_status":503,"attempts":3,)"));
  EXPECT_THAT(line, HasSubstr(R"j("retry_stopped_because":"retry_policy_exhausted",)j"
                              R"j("error":"Userpilot is unavailable ([redacted])"})j"));
  EXPECT_THAT(line, Not(HasSubstr("key-5f2a")));
}

TEST_F(AccessLogTest, ValidationRefusalHasNoUpstreamPart) {
  TraceContext started;  // The gateway started the trace: no parent span.
  started.trace_id = "0af7651916cd43dd8448eb211c80319c";
  started.span_id = "00f067aa0ba902b7";
  log_.Record("GetJob", "invalid", started,
              grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "job_id: bad"), CallFacts(),
              absl::Microseconds(40));
  EXPECT_THAT(out_.str(),
              HasSubstr(R"("caller":"invalid","trace_id":"0af7651916cd43dd8448eb211c80319c",)"
                        R"("span_id":"00f067aa0ba902b7","grpc_code")"));
  EXPECT_THAT(out_.str(), HasSubstr(R"("grpc_code":"INVALID_ARGUMENT","upstream_status":0,)"
                                    R"("attempts":0,"queue_wait_ms":0,"latency_ms":0.04,)"
                                    R"("upstream_request_id":"","error":"job_id: bad"})"));
}

TEST_F(AccessLogTest, DurationsAreRoundedToTheMicrosecond) {
  CallFacts facts;
  facts.budget_wait = absl::Nanoseconds(1234567891);  // 1234.567891 ms
  log_.Record("IdentifyUser", "billing", TraceContext(), grpc::Status::OK, facts,
              absl::Nanoseconds(1499));
  EXPECT_THAT(out_.str(), HasSubstr(R"("queue_wait_ms":1234.568,"latency_ms":0.001,)"));
}

TEST_F(AccessLogTest, LongErrorsAreCutAtACharacterBoundary) {
  std::string message = "x";
  while (message.size() < 700) message += "\xC3\xA9";  // é
  log_.Record("IdentifyUser", "c", TraceContext(),
              grpc::Status(grpc::StatusCode::INTERNAL, message), CallFacts(), absl::ZeroDuration());
  const std::string line = out_.str();
  const size_t start = line.find(R"("error":")") + 9;
  const size_t end = line.rfind('"');
  const std::string error = line.substr(start, end - start);
  EXPECT_LE(error.size(), AccessLog::kMaxErrorBytes);
  EXPECT_GE(error.size(), AccessLog::kMaxErrorBytes - 1);
  EXPECT_THAT(error, Not(HasSubstr("\xEF\xBF\xBD")));  // No broken character at the cut.
}

TEST_F(AccessLogTest, NothingBelowTheLevel) {
  std::ostringstream quiet;
  Logger logger(LoggerOptions{LogSeverity::kWarning, ""},
                std::make_shared<spdlog::sinks::ostream_sink_mt>(quiet));
  AccessLog log(logger);
  log.Record("IdentifyUser", "c", TraceContext(), grpc::Status::OK, CallFacts(), absl::Seconds(1));
  EXPECT_EQ(quiet.str(), "");
}

}  // namespace
}  // namespace userpilot::gateway
