#include "service/logging/access_log.h"

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

double Milliseconds(absl::Duration d) { return absl::ToDoubleMicroseconds(d) / 1000.0; }

}  // namespace

void AccessLog::Record(const CallTrace& trace, absl::string_view caller, const grpc::Status& status,
                       absl::Duration latency) {
  if (!logger_.Enabled(LogSeverity::kInfo)) return;
  std::vector<LogField> fields = {{"method", trace.method},
                                  {"caller", caller},
                                  {"grpc_code", CodeName(status.error_code())},
                                  {"upstream_status", trace.last_http_status},
                                  {"attempts", trace.attempts},
                                  {"queue_wait_ms", Milliseconds(trace.queue_wait)},
                                  {"latency_ms", Milliseconds(latency)},
                                  {"upstream_request_id", trace.upstream_request_id}};
  if (!trace.retry_stopped_because.empty()) {
    fields.emplace_back("retry_stopped_because", trace.retry_stopped_because);
  }
  if (!status.ok()) {
    fields.emplace_back("error", Truncate(status.error_message(), kMaxErrorBytes));
  }
  logger_.Log(LogSeverity::kInfo, "call", fields);
}

}  // namespace userpilot::gateway
