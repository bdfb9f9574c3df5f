// What a failed attempt means for the retry layer: retry it or not, how long Userpilot asked us
// to wait, what it says about Userpilot's health, and how the final error reports why retrying
// stopped.
//
// Retry decision (by the status that upstream/error_mapping.h and the layers below produce, and
// the RPC's idempotency: the `idempotency_level` gateway.proto declares, upstream_rpcs.h
// IdempotencyOf):
//
//   status (ErrorInfo reason)                     may repeat         default level
//                                                 (IDEMPOTENT,       (every request that
//                                                 NO_SIDE_EFFECTS)   reaches Userpilot may
//                                                                    have an effect)
//   RESOURCE_EXHAUSTED (UPSTREAM_RATE_LIMITED)    retry              retry  (429: refused, not
//     = HTTP 429                                                              recorded)
//   UNAVAILABLE, transport failure whose          retry              retry  (never reached
//     request_may_have_been_sent = "false"                                    Userpilot)
//   UNAVAILABLE, transport failure that may       retry              STOP   (may have been
//     have been sent                                                          recorded)
//   UNAVAILABLE (UPSTREAM_UNAVAILABLE) = 5xx,     retry              STOP   (may have been
//     408, 425                                                                recorded)
//   UNAVAILABLE, any other reason or none         retry              STOP
//   UNAVAILABLE (CIRCUIT_OPEN)                    STOP               STOP   (gateway's own
//                                                                             fail-fast)
//   RESOURCE_EXHAUSTED (BUDGET_EXHAUSTED), or     STOP               STOP   (gateway's own
//     any other reason                                                        budget refusal)
//   DEADLINE_EXCEEDED                             STOP               STOP   (the caller's time
//                                                                             is up)
//   INVALID_ARGUMENT, NOT_FOUND,                  STOP               STOP   (same request,
//     FAILED_PRECONDITION, INTERNAL (incl.                                    same answer)
//     UPSTREAM_CREDENTIALS_REJECTED), and every
//     other code
//
// Default-level calls and libcurl's own re-send. libcurl 7.88 re-sends a request once, by itself,
// when it went out on a REUSED keep-alive connection that closed before any byte of a response
// arrived (Curl_retry_request in lib/transfer.c: the idle-connection race, where the server closes
// an idle connection just as the client reuses it). The re-send goes on a fresh connection, so it
// happens at most once per attempt, and libcurl 7.88 has no option to turn it off. In that race
// the server almost always closed the connection without reading the request, but not
// certainly, so an event can, rarely, be recorded twice even though this layer never
// repeats a possibly-sent default-level call. HttpClient reports such a transfer as possibly sent
// (libcurl's REQUEST_SIZE counts the bytes of both writes), so this layer never adds another.
// The only way to exclude it would be a fresh connection per such call (CURLOPT_FRESH_CONNECT,
// a TCP and TLS handshake per event), which the HTTP layer does not do.
//
// Thread-safety: pure functions over values.
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_DECISION_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_DECISION_H_

#include <cstddef>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/common/call_result.h"
#include "service/upstream/upstream_rpcs.h"

namespace userpilot::gateway {

// Why a failed attempt may be retried; a metric label.
enum class RetryCause {
  kUpstreamRateLimited,  // 429
  kUpstreamUnavailable,  // 5xx, 408, 425: Userpilot answered
  kTransportFailure,     // no answer: connection failure (or another UNAVAILABLE)
};
inline constexpr size_t kRetryCauseCount = 3;
// "upstream_rate_limited", "upstream_unavailable", "transport_failure".
absl::string_view RetryCauseName(RetryCause cause);

struct FailureClassification {
  enum Kind {
    kRetryable,
    kNonRetryable,            // Retrying cannot help (or the gateway itself refused).
    kMayHaveReachedUpstream,  // Retryable for a call that may repeat, but this one may not.
  };
  Kind kind = kNonRetryable;
  RetryCause cause = RetryCause::kTransportFailure;  // Meaningful for kRetryable.
};

// The decision table above, for the failed attempt `status` (not OK), read from its code and
// facts.
FailureClassification ClassifyFailure(const CallStatus& status, Idempotency idempotency);

// The delay `status` asks for (its facts' retry_delay), if any (never negative).
std::optional<absl::Duration> RequestedRetryDelay(const CallStatus& status);

// What a call's outcome says about Userpilot's health, for the circuit breaker.
enum class UpstreamHealth {
  kHealthy,    // OK, or Userpilot answered (4xx including 429, an unreadable 2xx).
  kUnhealthy,  // Reason UPSTREAM_UNAVAILABLE: 5xx, 408, 425, transport failure, or no answer
               // within the per-attempt timeout (a hanging Userpilot is a failing one).
  kUnknown,    // Nothing learned about Userpilot: the caller's own deadline passed or it
               // cancelled, the gateway's own refusals (BUDGET_EXHAUSTED, CIRCUIT_OPEN, a
               // limiter's UNAVAILABLE), or an error without facts.
};
UpstreamHealth ClassifyHealth(const CallStatus& status);

// Why retrying stopped is StopReason (common/call_facts.h), a fact of the final error.
// Human words for messages, e.g. "retry budget exhausted".
absl::string_view StopReasonText(StopReason reason);

// `last` (not OK) with the same code and facts, its message extended with
// " (<method> gave up after <n> attempt(s): <StopReasonText>)", and the retry facts (attempts,
// why it stopped) set. Callers see those in the ErrorInfo metadata (`attempts`,
// `retry_stopped_because`) when the error has a reason; the retry layer does not invent one.
CallStatus AnnotateFinalError(CallStatus last, absl::string_view method, int attempts,
                              StopReason reason);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_DECISION_H_
