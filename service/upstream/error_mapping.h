// Turns what became of one HTTP exchange with Userpilot into a CallStatus: the code and message
// callers see, and the facts behind them (common/call_facts.h) that the layers above read.
//
// Codes follow google.rpc semantics, chosen by what the *gateway's caller* should do next, not
// by the HTTP-to-gRPC client table:
//
//   HTTP status / transport         code                 ErrorInfo reason
//   transport: deadline passed      DEADLINE_EXCEEDED    UPSTREAM_UNAVAILABLE
//   transport: HTTP queue full      RESOURCE_EXHAUSTED   UPSTREAM_UNAVAILABLE (nothing was sent)
//   transport: cannot build request INTERNAL             GATEWAY_INTERNAL_ERROR (bad URL, libcurl)
//   transport: a reply not HTTP     UNAVAILABLE          UPSTREAM_UNAVAILABLE (sent; a broken
//     (garbage status line)                                 answer, not a refused connection)
//   transport: any other failure    UNAVAILABLE          UPSTREAM_UNAVAILABLE
//   2xx (any: company identify      OK
//        answers 200 or 202)
//   400, 413, 414, 422, 431         INVALID_ARGUMENT     UPSTREAM_REJECTED_REQUEST
//   401, 403                        INTERNAL             UPSTREAM_CREDENTIALS_REJECTED
//   404, 410                        NOT_FOUND            UPSTREAM_NOT_FOUND
//   408, 425                        UNAVAILABLE          UPSTREAM_UNAVAILABLE (delay as 5xx)
//   409                             FAILED_PRECONDITION  JOB_IN_PROGRESS
//   429                             RESOURCE_EXHAUSTED   UPSTREAM_RATE_LIMITED, and a retry
//                                                        delay (with its source)
//   other 4xx (405, 415, ...)       INTERNAL             UPSTREAM_REJECTED_REQUEST
//   5xx                             UNAVAILABLE          UPSTREAM_UNAVAILABLE (and a retry
//                                                        delay when Retry-After is present)
//   1xx, 3xx, above 599             INTERNAL             UPSTREAM_BAD_RESPONSE
//   2xx whose required body is      INTERNAL             UPSTREAM_BAD_RESPONSE
//       unreadable (UpstreamBadResponseError)
//
// Why 401/403 is INTERNAL: the rejected key is the gateway's, so UNAUTHENTICATED and
// PERMISSION_DENIED would wrongly tell the caller to fix *their* credentials, and
// FAILED_PRECONDITION means a system state the caller can fix. UNAVAILABLE promises that a retry
// with backoff will succeed, which it will not until an operator fixes the configuration (and
// retrying clients would keep hammering Userpilot with a bad key). INTERNAL - an invariant of
// the serving system is broken, not retryable by default - is what the caller should see; the
// ErrorInfo reason tells operators and dashboards exactly which invariant.
//
// Why an unreadable 2xx body is INTERNAL, not UNAVAILABLE: Userpilot accepted the request, so
// its effect (say, a bulk job) has probably happened; UNAVAILABLE would invite a retry that
// duplicates it or hits JOB_IN_PROGRESS.
//
// Facts of every outcome (CallFacts::upstream): the endpoint, the HTTP status (when a response
// arrived), Userpilot's `x-request-id` (when present); for errors its `error_code` and text
// (when quoted), the ErrorInfo reason above, the RetryInfo delay and where it came from; for
// transport failures their kind and whether the request may have reached Userpilot. The edge
// (server/error_details.h) turns these into the ErrorInfo metadata callers see. Messages quote
// Userpilot's error text (parsed from its JSON error body, truncated; never a raw non-JSON body
// such as a proxy's HTML page) for 4xx and 5xx answers except 401/403, which quote nothing from
// Userpilot (neither in the message nor in the facts) so that no echo of the key can leak.
// Every text taken from Userpilot (error entries, request id) is scrubbed of every form of the
// API key (logging/redactor.h: raw, JSON-escaped, percent-encoded, base64, base64url) before it
// is cut to size; HttpUserpilotStub scrubs the whole status again with RedactSecret, and
// successful answers with RedactStrings. Nothing of a body that is not JSON (a proxy's HTML
// page), nor of a JSON body that cannot be read, is ever quoted.
//
// Thread-safety: free functions over values; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_ERROR_MAPPING_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_ERROR_MAPPING_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "service/common/call_result.h"
#include "service/http/http_client.h"
#include "service/logging/redactor.h"

namespace userpilot::gateway {

// The retry delay of a 429 that carries neither `Retry-After` nor `X-RateLimit-Reset`
// (Userpilot documents neither; its source is then RetryDelaySource::kDefault). One second is
// the shortest budget window that matters here (delete allows one call per 2 s, identify/track
// 10 a second on average): short enough not to stall callers, long enough that an immediate
// retry is not invited. Retry policies still back off exponentially on top of it.
inline constexpr absl::Duration kDefaultRateLimitedRetryDelay = absl::Seconds(1);

// Maps `result` of a call to `endpoint` (static storage, e.g. "POST /v1/identify": a Route's
// endpoint) to a CallStatus as in the table above; OK (with the facts of the answer) for a 2xx.
// `now` resolves HTTP-date `Retry-After` values. `redactor` (null: none) scrubs the API key
// from Userpilot's text before it is quoted or cut.
CallStatus MapHttpResult(const HttpResult& result, absl::string_view endpoint,
                         absl::Time now = absl::Now(), const Redactor* redactor = nullptr);

// The status for a 2xx answer whose body the endpoint needs but could not be read: INTERNAL,
// UPSTREAM_BAD_RESPONSE; `problem` says what was wrong (never quoting the body).
CallStatus UpstreamBadResponseError(const HttpResult& result, absl::string_view endpoint,
                                    absl::string_view problem, const Redactor* redactor = nullptr);

// Parses an HTTP `Retry-After` value (RFC 9110 10.2.3): delay-seconds (digits only) or an
// HTTP-date in any of the three forms recipients must accept (IMF-fixdate, RFC 850, asctime).
// A date in the past gives zero. nullopt for anything else (empty, negative, fractional, junk).
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

// Returns `status` with every form of the key (`redactor`) in its message and in the text facts
// (Userpilot's request id, error code and text) replaced by "[redacted]". A no-op for an OK
// status.
CallStatus RedactSecret(CallStatus status, const Redactor& redactor);

// Replaces every form of the key in every string field of `message`, nested messages and
// repeated fields included: for successful answers, whose every text came from Userpilot.
void RedactStrings(google::protobuf::Message& message, const Redactor& redactor);

// Userpilot's `x-request-id` from `response`, scrubbed by `redactor` (when not null), reduced
// to printable ASCII and at most 128 bytes so that it is safe in logs and in proto string
// fields. "" when absent.
std::string UpstreamRequestId(const HttpResponse& response, const Redactor* redactor = nullptr);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_ERROR_MAPPING_H_
