// What a failed attempt means for the retry layer: retry it or not, how long Userpilot asked us
// to wait, what it says about Userpilot's health, and how the final error reports why retrying
// stopped.
//
// Retry decision (by the status that upstream/error_mapping.h and the layers below produce):
//
//   status (ErrorInfo reason)                     idempotent call    TrackEvent, ImportFile
//                                                                    (not idempotent)
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
// TrackEvent and libcurl's own re-send. libcurl 7.88 re-sends a request once, by itself, when it
// went out on a REUSED keep-alive connection that closed before any byte of a response arrived
// (Curl_retry_request in lib/transfer.c: the idle-connection race, where the server closes an
// idle connection just as the client reuses it). The re-send goes on a fresh connection, so it
// happens at most once per attempt, and libcurl 7.88 has no option to turn it off. In that race
// the server almost always closed the connection without reading the request, but not
// certainly, so a TrackEvent can, rarely, be recorded twice even though this layer never
// repeats a possibly-sent TrackEvent. HttpClient reports such a transfer as possibly sent
// (libcurl's REQUEST_SIZE counts the bytes of both writes), so this layer never adds another.
// The only way to exclude it would be a fresh connection per TrackEvent (CURLOPT_FRESH_CONNECT,
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
#include "service/retry/idempotency.h"

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
    kMayHaveReachedUpstream,  // Retryable for an idempotent call, but this one is not.
  };
  Kind kind = kNonRetryable;
  RetryCause cause = RetryCause::kTransportFailure;  // Meaningful for kRetryable.
};

// The decision table above, for the failed attempt `status` (not OK).
FailureClassification ClassifyFailure(const absl::Status& status, Idempotency idempotency);

// The delay `status` asks for in its google.rpc.RetryInfo, if any (never negative).
std::optional<absl::Duration> RequestedRetryDelay(const absl::Status& status);

// What an attempt's outcome says about Userpilot's health, for the circuit breaker.
enum class UpstreamHealth {
  kHealthy,    // OK, or Userpilot answered (4xx including 429, an unreadable 2xx).
  kUnhealthy,  // ErrorInfo reason UPSTREAM_UNAVAILABLE: 5xx, 408, 425, transport failure, or
               // no answer before the deadline (a hanging Userpilot is a failing one).
  kUnknown,    // The request was never judged by Userpilot: the gateway's own refusals
               // (BUDGET_EXHAUSTED, CIRCUIT_OPEN, a limiter's UNAVAILABLE), or a status
               // without the gateway's ErrorInfo.
};
UpstreamHealth ClassifyHealth(const absl::Status& status);

// Why the retry layer stopped trying; the error's `retry_stopped_because` metadata and a
// metric label.
enum class StopReason {
  kRetryPolicyExhausted,  // "retry_policy_exhausted": attempt (or time) limit reached.
  kDeadline,              // "deadline": the next attempt would start at or after the deadline.
  kRetryBudgetExhausted,  // "retry_budget_exhausted": too many retries recently.
  kNotIdempotent,         // "not_idempotent": may have reached Userpilot, not repeatable.
  kNonRetryable,          // "non_retryable": retrying cannot help.
  kCircuitOpen,           // "circuit_open": the breaker refused the (next) attempt.
  kShutdown,              // "shutdown": the retry layer was destroyed while the call waited.
};
inline constexpr size_t kStopReasonCount = 7;
// The metadata value above, e.g. "retry_budget_exhausted".
absl::string_view StopReasonName(StopReason reason);
// Human words for messages, e.g. "retry budget exhausted".
absl::string_view StopReasonText(StopReason reason);

// ErrorInfo metadata keys that the retry layer adds to the final error.
inline constexpr absl::string_view kMetadataAttempts = "attempts";
inline constexpr absl::string_view kMetadataRetryStoppedBecause = "retry_stopped_because";

// `last` (not OK) with the same code and details, its message extended with
// " (<Method> gave up after <n> attempt(s): <StopReasonText>)", and `attempts` and
// `retry_stopped_because` added to its ErrorInfo metadata (the reason and the other entries
// stay). A status without an ErrorInfo gets only the message: the retry layer does not invent
// a reason.
absl::Status AnnotateFinalError(const absl::Status& last, UpstreamMethod method, int attempts,
                                StopReason reason);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_DECISION_H_
