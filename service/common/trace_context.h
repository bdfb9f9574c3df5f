// W3C Trace Context (https://www.w3.org/TR/trace-context/) for one gateway call: what the
// caller's `traceparent` and `tracestate` metadata say, the gateway's own span id for the call,
// and the `traceparent` the gateway sends upstream on each attempt.
//
//   caller --traceparent 00-T-P-F--> gateway (span S, child of P; access log: trace_id T,
//                                    span_id S, parent_span_id P)
//          --traceparent 00-T-A1-F--> Userpilot   (attempt 1: a new span id A1)
//          --traceparent 00-T-A2-F--> Userpilot   (a retry: a new span id A2)
//
// The trace id T and the flags F pass through unchanged, `tracestate` verbatim. A caller that
// sends no valid traceparent gets a trace started by the gateway: a random trace id, no parent,
// flags 00 (not sampled: the gateway records no spans itself, so it does not ask downstream
// tracers to record a trace whose root nobody keeps). Either way the access-log line and every
// upstream request share one trace id.
//
// Parsing follows the specification's rules for receivers: a version of two lower-case hex
// digits other than `ff`; version 00 exactly 55 characters; a higher version at least 55,
// followed by `-` when longer (its extra fields are ignored, and the gateway sends version 00);
// trace id of 32 and parent id of 16 lower-case hex digits, neither all zeros; flags of two.
// Anything else, or more than one traceparent, is ignored as if absent; so is `tracestate` when
// the traceparent is (the specification's rule), and a tracestate longer than 512 bytes or
// holding bytes outside printable ASCII (it is copied into an HTTP header). Several tracestate
// values are joined with "," (RFC 9110 list semantics).
//
// Written by hand: Debian 12 packages no OpenTelemetry C++ SDK, and this is the little of the
// specification the gateway needs (it neither samples nor exports spans).
//
// Thread-safety: values and pure functions; NewTraceId/NewSpanId use a per-thread generator
// and may be called from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_COMMON_TRACE_CONTEXT_H_
#define USERPILOT_GATEWAY_SERVICE_COMMON_TRACE_CONTEXT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace userpilot::gateway {

// The fields of a valid `traceparent`.
struct TraceParent {
  std::string trace_id;   // 32 lower-case hex digits, not all zeros.
  std::string parent_id;  // 16 lower-case hex digits, not all zeros.
  uint8_t flags = 0;      // Bit 0: sampled.
};

// The trace context of one gateway call. Empty (trace_id "") only where no call started it
// (the key check, job polling): such requests go upstream without trace headers.
struct TraceContext {
  std::string trace_id;        // 32 lower-case hex digits.
  std::string span_id;         // The gateway's span for this call: 16 lower-case hex digits.
  std::string parent_span_id;  // The caller's span (its traceparent's parent id); "" when the
                               // gateway started the trace.
  uint8_t flags = 0;
  std::string tracestate;  // Passed on verbatim; "" when absent.

  bool empty() const { return trace_id.empty(); }
};

// `value` parsed by the rules above; nullopt when invalid.
std::optional<TraceParent> ParseTraceparent(absl::string_view value);

// "00-<trace_id>-<span_id>-<flags as two hex digits>".
std::string FormatTraceparent(absl::string_view trace_id, absl::string_view span_id, uint8_t flags);

// True when `value` may be passed on as `tracestate`: at most kMaxTracestateBytes, printable
// ASCII only (spaces and tabs allowed).
bool AcceptableTracestate(absl::string_view value);
inline constexpr size_t kMaxTracestateBytes = 512;

// Random ids in lower-case hex, never all zeros: 32 digits and 16 digits.
std::string NewTraceId();
std::string NewSpanId();

// The context of a call whose metadata held `traceparents` and `tracestates` (every value of
// each key, in order): the caller's trace continued with a new span id, or a new trace.
TraceContext TraceContextForCall(absl::Span<const absl::string_view> traceparents,
                                 absl::Span<const absl::string_view> tracestates);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_COMMON_TRACE_CONTEXT_H_
