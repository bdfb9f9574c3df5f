#include "service/logging/access_log.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace userpilot::gateway {
namespace {

// At most `max` bytes of `text`, not ending inside a UTF-8 sequence.
absl::string_view Truncate(absl::string_view text, size_t max) {
  if (text.size() <= max) return text;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

std::string CodeName(grpc::StatusCode code) {
  const int value = static_cast<int>(code);
  if (value < 0 || value > 16) return "UNKNOWN";
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(value));
}

// Milliseconds rounded to the microsecond (12.346, not 12.345678912): finer digits are noise.
double Milliseconds(absl::Duration d) { return std::round(absl::ToDoubleMicroseconds(d)) / 1000.0; }

}  // namespace

void AccessLog::Record(absl::string_view method, absl::string_view caller,
                       const TraceContext& trace, const grpc::Status& status,
                       const CallFacts& facts, absl::Duration latency) {
  if (!logger_.Enabled(LogSeverity::kInfo)) return;
  std::vector<LogField> fields = {{"method", method},
                                  {"caller", caller},
                                  {"trace_id", trace.trace_id},
                                  {"span_id", trace.span_id}};
  if (!trace.parent_span_id.empty()) fields.emplace_back("parent_span_id", trace.parent_span_id);
  fields.insert(fields.end(), {{"grpc_code", CodeName(status.error_code())},
                               {"upstream_status", facts.upstream.http_status},
                               {"attempts", facts.http_attempts},
                               {"queue_wait_ms", Milliseconds(facts.budget_wait)},
                               {"latency_ms", Milliseconds(latency)},
                               {"upstream_request_id", facts.upstream.request_id}});
  if (facts.retry.stopped.has_value()) {
    fields.emplace_back("retry_stopped_because", StopReasonName(*facts.retry.stopped));
  }
  if (!status.ok()) {
    fields.emplace_back("error", Truncate(status.error_message(), kMaxErrorBytes));
  }
  logger_.Log(LogSeverity::kInfo, "call", fields);
}

}  // namespace userpilot::gateway
