// CallFacts: the facts behind how a call ended, as typed fields - the gateway's one error
// vocabulary (style.md 14: typed outcomes inside, wire formats at the edge).
//
// Each layer writes the facts it knows and reads the ones it needs directly:
//
//   written by                    facts                          read by
//   HttpUserpilotStub             upstream (HTTP status,         retry decision, circuit
//   (upstream/error_mapping.h)    transport failure, whether     breaker health, rate-limit
//                                 the request reached Userpilot, feedback, metrics, access log
//                                 request id, Userpilot's error
//                                 code and text, endpoint),
//                                 reason, retry_delay
//   FairLimiter (budget refusal)  reason BUDGET_EXHAUSTED,       retry decision (never retried)
//                                 budget, retry_delay
//   RateLimitedStub               budget_wait                    access log
//   CircuitBreaker                reason CIRCUIT_OPEN,           retry decision
//                                 circuit_upstream, retry_delay
//   RetryingStub                  retry (attempts, why it        access log
//                                 stopped), sums http_attempts
//                                 and budget_wait over attempts
//   validation                    violations                     -
//   jobs, JobLaneStub             reason JOB_IN_PROGRESS,        -
//   (ratelimit/job_lane.h)        job_id, retry_delay
//   Authenticator (auth/)         reason CALLER_UNAUTHENTICATED  -
//                                 or CALLER_NOT_ALLOWED,
//                                 access_refusal
//
// and the edge (server/error_details.h, called by server/grpc_status.h) turns them, once, into
// the google.rpc details callers receive: ErrorInfo (reason, metadata), RetryInfo,
// QuotaFailure, BadRequest. No layer encodes facts into a payload for another layer to parse.
//
// The status code and message travel beside the facts, in an absl::Status (CallStatus,
// Result<T>: call_result.h); the message is written by the layer that knows what happened.
//
// Thread-safety: values.
#ifndef USERPILOT_GATEWAY_SERVICE_COMMON_CALL_FACTS_H_
#define USERPILOT_GATEWAY_SERVICE_COMMON_CALL_FACTS_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace userpilot::gateway {

// Why a call failed, in the words callers see as the google.rpc.ErrorInfo reason (part of the
// public contract; see ErrorReasonName).
enum class ErrorReason {
  kNone,                         // No ErrorInfo: success, or an error with code and message only.
  kUpstreamRejectedRequest,      // UPSTREAM_REJECTED_REQUEST: 400/413/414/422/431, other 4xx.
  kUpstreamCredentialsRejected,  // UPSTREAM_CREDENTIALS_REJECTED: 401/403, the gateway's key.
  kUpstreamNotFound,             // UPSTREAM_NOT_FOUND: 404/410.
  kUpstreamUnavailable,          // UPSTREAM_UNAVAILABLE: 5xx, 408/425, transport failure.
  kUpstreamRateLimited,          // UPSTREAM_RATE_LIMITED: 429.
  kUpstreamBadResponse,          // UPSTREAM_BAD_RESPONSE: 1xx/3xx/>599, unreadable 2xx body.
  kJobInProgress,                // JOB_IN_PROGRESS: 409, or a job wait outlasting the deadline.
  kBudgetExhausted,              // BUDGET_EXHAUSTED: the gateway's own budget refused the call.
  kCircuitOpen,                  // CIRCUIT_OPEN: the gateway's circuit breaker is open.
  kGatewayInternal,              // GATEWAY_INTERNAL_ERROR: the request could not even be built.
  kCallerUnauthenticated,        // CALLER_UNAUTHENTICATED: no or wrong credentials.
  kCallerNotAllowed,             // CALLER_NOT_ALLOWED: the RPC is outside the caller's allow-list.
};
inline constexpr size_t kErrorReasonCount = 13;
// "UPSTREAM_RATE_LIMITED" and so on; "" for kNone.
absl::string_view ErrorReasonName(ErrorReason reason);

// Why no HTTP answer came.
enum class TransportFailure {
  kNone,            // An HTTP answer arrived (or no request was attempted).
  kDeadline,        // The caller's deadline passed.
  kAttemptTimeout,  // The per-attempt cap passed, with the caller's deadline still ahead.
  kQueueFull,       // The gateway's HTTP queue was full: nothing was sent.
  kCannotSend,      // The request could not be built or handed to libcurl: nothing was sent.
  kConnection,      // Connection, TLS or protocol failure, or the client shutting down.
  kNotHttp,         // A reply arrived but was not HTTP (a garbage or missing status line, an
                    // undecodable content encoding): the upstream's fault, and the request
                    // was sent.
};

// Whether the request reached Userpilot.
enum class Reach {
  kUnknown,   // It may have (a transport failure after bytes may have left).
  kNever,     // It certainly never did: safe to send again whatever the RPC.
  kAnswered,  // Userpilot answered it.
};

// Where a retry delay came from.
enum class RetryDelaySource {
  kRetryAfter,      // Userpilot's `Retry-After` header.
  kRateLimitReset,  // Userpilot's `X-RateLimit-Reset` header.
  kDefault,         // A 429 without either: kDefaultRateLimitedRetryDelay (error_mapping.h).
  kGateway,         // The gateway's own estimate (a budget's wait, the breaker's reopening, a
                    // bound's back-off).
};
// "retry-after", "x-ratelimit-reset", "default" (the ErrorInfo `retry_delay_source` values);
// "" for kGateway, which callers are not told.
absl::string_view RetryDelaySourceName(RetryDelaySource source);

struct RetryDelay {
  absl::Duration delay;  // Never negative.
  RetryDelaySource source = RetryDelaySource::kGateway;
  // True when Userpilot itself named the delay (Retry-After or X-RateLimit-Reset): the budget
  // then pauses exactly that long instead of backing off.
  bool FromUpstream() const {
    return source == RetryDelaySource::kRetryAfter || source == RetryDelaySource::kRateLimitReset;
  }
};

// Why the retry layer stopped trying; the error's `retry_stopped_because` metadata and a metric
// label.
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

// One field violation of a request: `field` is a path such as `users[3].user_id`.
struct FieldViolation {
  std::string field;
  std::string description;
};

// What the last HTTP exchange with Userpilot was, as HttpUserpilotStub saw it.
struct UpstreamFacts {
  // "POST /v1/track" (upstream_rpcs.h Route::endpoint, static storage); empty when no HTTP
  // request was attempted.
  absl::string_view endpoint;
  int http_status = 0;  // 0: no HTTP answer arrived.
  TransportFailure transport = TransportFailure::kNone;
  Reach reach = Reach::kUnknown;
  std::string request_id;  // Userpilot's `x-request-id` (printable, at most 128 bytes).
  std::string error_code;  // Userpilot's `error_code` from its error body, when quoted.
  std::string message;     // Userpilot's error text, when quoted (cut to a few hundred bytes).
};

// What the retry layer did.
struct RetryFacts {
  int attempts = 0;                   // Attempts handed to the layer below (refused ones included).
  std::optional<StopReason> stopped;  // Set when the call failed.
};

// A budget's refusal.
struct BudgetRefusal {
  std::string budget;       // "identify"
  absl::string_view cause;  // fair_limiter.h kCause*: "queue_full", ... (static storage)
  std::string quota;        // QuotaFailure description; empty: no QuotaFailure.
};

// A refusal by the authenticator (auth/authenticator.h) of a caller who may not call an RPC.
struct AccessRefusal {
  std::string caller;  // The authenticated caller.
  std::string rpc;     // "DeleteUsers"
};

struct CallFacts {
  ErrorReason reason = ErrorReason::kNone;
  // How long the caller should wait before trying again (RetryInfo), and why.
  std::optional<RetryDelay> retry_delay;
  // The last HTTP exchange (upstream.endpoint empty: none).
  UpstreamFacts upstream;
  // The gateway's own refusals.
  std::optional<BudgetRefusal> budget_refusal;  // BUDGET_EXHAUSTED
  std::string circuit_upstream;                 // CIRCUIT_OPEN: the host the breaker guards.
  std::string job_id;                           // JOB_IN_PROGRESS: the running job, if known.
  std::optional<AccessRefusal> access_refusal;  // CALLER_NOT_ALLOWED
  std::vector<FieldViolation> violations;       // INVALID_ARGUMENT from validation.
  // The whole call.
  RetryFacts retry;
  int http_attempts = 0;       // HTTP requests made (retries included).
  absl::Duration budget_wait;  // Time spent waiting for budgets (retries included).
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_COMMON_CALL_FACTS_H_
