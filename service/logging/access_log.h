// AccessLog: one structured line per finished call, at info.
//
//   {"time":"...","level":"info","msg":"call","method":"<RPC>","caller":"billing",
//    "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"b7ad6b7169203331",
//    "parent_span_id":"00f067aa0ba902b7","grpc_code":"UNAVAILABLE","upstream_status":503,"attempts":3,"queue_wait_ms":12.5,
//    "latency_ms":845.2,"upstream_request_id":"QHQTu0Re000000000001",
//    "retry_stopped_because":"retry_policy_exhausted","error":"..."}
//
// Members: method (the RPC), caller (the authenticated caller - a token's name or a client
// certificate's - when authentication is on, "unauthenticated" for a call refused as such; in
// development mode x-caller as GatewayService sanitises it, "unknown" when absent), trace_id and
// span_id (the call's W3C trace id and the gateway's span id for it, common/trace_context.h;
// parent_span_id only when the caller sent a traceparent: its span), grpc_code (the status code's
// name), and from the call's facts (common/call_facts.h): upstream_status (the last HTTP status
// from Userpilot; 0 when none arrived: validation refusal, budget refusal, transport failure),
// attempts (upstream HTTP attempts), queue_wait_ms (time waiting for budgets, summed over
// attempts: CallFacts::budget_wait), upstream_request_id (Userpilot's x-request-id of the last
// answer, "" when none); latency_ms (the whole call, as the server saw it). Durations are in
// milliseconds rounded to the microsecond. Only when set: retry_stopped_because; and error, the
// status message of a failed call (at most 512 bytes), which is what the caller was told. Never
// request content: ids, event names and properties stay out of the log.
//
// Thread-safety: Record() may be called from any thread (it is the Logger's).
#ifndef USERPILOT_GATEWAY_SERVICE_LOGGING_ACCESS_LOG_H_
#define USERPILOT_GATEWAY_SERVICE_LOGGING_ACCESS_LOG_H_

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "service/common/call_facts.h"
#include "service/common/trace_context.h"
#include "service/logging/logger.h"

namespace userpilot::gateway {

class AccessLog {
 public:
  // `logger` must outlive this object.
  explicit AccessLog(Logger& logger) : logger_(logger) {}

  // Logs the call of RPC `method` from `caller` (CallOptions.caller) in `trace`
  // (CallOptions.trace) that ended with `status` and `facts` after `latency`.
  void Record(absl::string_view method, absl::string_view caller, const TraceContext& trace,
              const grpc::Status& status, const CallFacts& facts, absl::Duration latency);

  // The longest `error` member, in bytes (longer messages are cut at a UTF-8 boundary).
  static constexpr size_t kMaxErrorBytes = 512;

 private:
  Logger& logger_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_LOGGING_ACCESS_LOG_H_
