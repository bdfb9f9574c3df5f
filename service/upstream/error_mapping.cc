#include "service/upstream/error_mapping.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "service/upstream/json_mapping.h"

namespace userpilot::gateway {
namespace {

// Upstream text quoted in a message is cut to this many bytes, and at most this many entries.
constexpr size_t kMaxQuotedBytes = 300;
constexpr size_t kMaxQuotedErrors = 3;
constexpr size_t kMaxRequestIdBytes = 128;
// X-RateLimit-Reset values at least this large are Unix times (2001-09-09 onwards), smaller
// ones are seconds from now: the two conventions in use.
constexpr int64_t kEpochResetThreshold = 1000000000;

// `text` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string Truncate(absl::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return absl::StrCat(text.substr(0, end), "...");
}

bool AllDigits(absl::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Userpilot's own words from an error body, e.g. "Bad Request: user_id is missing (details)".
std::string QuotedText(const std::vector<UpstreamError>& errors) {
  std::vector<std::string> parts;
  for (const UpstreamError& e : errors) {
    if (parts.size() == kMaxQuotedErrors) break;
    std::string part = !e.message.empty() ? e.message : !e.error.empty() ? e.error : e.error_code;
    if (!e.details.empty() && e.details != part) {
      part = part.empty() ? e.details : absl::StrCat(part, " (", e.details, ")");
    }
    if (!part.empty()) parts.push_back(std::move(part));
  }
  return Truncate(absl::StrJoin(parts, "; "), kMaxQuotedBytes);
}

// How one class of HTTP status is reported.
struct Mapping {
  absl::StatusCode code;
  ErrorReason reason;
  absl::string_view summary;  // What happened, in the caller's terms.
  bool quote_upstream;        // Whether Userpilot's error text goes into the message.
};

Mapping Classify(long http_status) {  // NOLINT(runtime/int): curl's type.
  using C = absl::StatusCode;
  using R = ErrorReason;
  switch (http_status) {
    case 400:
    case 413:
    case 414:
    case 422:
    case 431:
      return {C::kInvalidArgument, R::kUpstreamRejectedRequest, "Userpilot rejected the request",
              true};
    case 401:
    case 403:
      return {C::kInternal, R::kUpstreamCredentialsRejected,
              "Userpilot rejected the gateway's own API key; an operator must fix the gateway's "
              "Userpilot credentials (the caller did nothing wrong)",
              false};
    case 404:
    case 410:
      return {C::kNotFound, R::kUpstreamNotFound, "Userpilot found no such resource", true};
    case 408:
    case 425:
      return {C::kUnavailable, R::kUpstreamUnavailable,
              "Userpilot did not take the request in time", true};
    case 409:
      return {C::kFailedPrecondition, R::kJobInProgress,
              "Userpilot is already running a job of this kind; wait for it to finish", true};
    case 429:
      return {C::kResourceExhausted, R::kUpstreamRateLimited, "Userpilot's rate limit was reached",
              true};
    default:
      break;
  }
  if (http_status >= 500 && http_status <= 599) {
    return {C::kUnavailable, R::kUpstreamUnavailable, "Userpilot is unavailable", true};
  }
  if (http_status >= 400 && http_status <= 499) {
    return {C::kInternal, R::kUpstreamRejectedRequest,
            "Userpilot does not accept the request the gateway built", true};
  }
  return {C::kInternal, R::kUpstreamBadResponse, "Userpilot answered with an unexpected status",
          false};
}

// The facts of an answered request: endpoint, HTTP status and request id.
CallFacts AnswerFacts(const HttpResult& result, absl::string_view endpoint,
                      const Redactor* redactor) {
  CallFacts facts;
  facts.upstream.endpoint = endpoint;
  facts.upstream.http_status = static_cast<int>(result.response.status_code);
  facts.upstream.reach = Reach::kAnswered;
  facts.upstream.request_id = UpstreamRequestId(result.response, redactor);
  return facts;
}

// `text` without any form of the key (when there is a redactor).
std::string Scrubbed(std::string text, const Redactor* redactor) {
  if (redactor == nullptr || !redactor->Contains(text)) return text;
  return redactor->Redact(text);
}

// The delay a 429 (or a 5xx) asks for: Retry-After, else X-RateLimit-Reset.
std::optional<RetryDelay> RequestedDelay(const HttpResponse& response, absl::Time now) {
  if (auto delay = ParseRetryAfter(response.Header("retry-after"), now)) {
    return RetryDelay{*delay, RetryDelaySource::kRetryAfter};
  }
  const absl::string_view reset = absl::StripAsciiWhitespace(response.Header("x-ratelimit-reset"));
  int64_t value = 0;
  if (!AllDigits(reset) || !absl::SimpleAtoi(reset, &value)) return std::nullopt;
  const absl::Duration delay =
      value < kEpochResetThreshold
          ? absl::Seconds(value)
          : std::max(absl::FromUnixSeconds(value) - now, absl::ZeroDuration());
  return RetryDelay{delay, RetryDelaySource::kRateLimitReset};
}

CallStatus TransportError(const HttpResult& result, absl::string_view endpoint) {
  CallFacts facts;
  facts.reason = ErrorReason::kUpstreamUnavailable;
  facts.upstream.endpoint = endpoint;
  facts.upstream.reach = result.request_may_have_been_sent ? Reach::kUnknown : Reach::kNever;
  facts.upstream.transport = TransportFailure::kConnection;
  const absl::Status& transport = result.transport_status;
  // What the caller should do next depends on why nothing came back:
  //  - the deadline passed: DEADLINE_EXCEEDED;
  //  - the gateway's own HTTP queue is full: RESOURCE_EXHAUSTED (back off; nothing was sent);
  //  - the gateway cannot build the request (bad URL, libcurl misuse): INTERNAL, an operator
  //    problem that no retry fixes;
  //  - a reply that is not HTTP: UNAVAILABLE, a broken answer (from Userpilot or a proxy in
  //    between) that a retry may well not meet again;
  //  - anything else (connection, TLS, protocol, shutdown, the per-attempt cap): UNAVAILABLE,
  //    try again (on another replica when this one is shutting down).
  absl::StatusCode code = absl::StatusCode::kUnavailable;
  absl::string_view what = "could not reach Userpilot for ";
  if (result.reply_not_http) {
    what = "Userpilot's reply was not HTTP for ";
    facts.upstream.transport = TransportFailure::kNotHttp;
  }
  switch (transport.code()) {
    case absl::StatusCode::kDeadlineExceeded:
      code = absl::StatusCode::kDeadlineExceeded;
      what = "no answer from Userpilot in time for ";
      facts.upstream.transport = TransportFailure::kDeadline;
      break;
    case absl::StatusCode::kResourceExhausted:
      code = absl::StatusCode::kResourceExhausted;
      what = "the gateway's upstream queue is full for ";
      facts.upstream.transport = TransportFailure::kQueueFull;
      break;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kInvalidArgument:
      code = absl::StatusCode::kInternal;
      what = "the gateway could not send the request for ";
      facts.reason = ErrorReason::kGatewayInternal;
      facts.upstream.transport = TransportFailure::kCannotSend;
      break;
    default:
      break;
  }
  return CallStatus(absl::Status(code, absl::StrCat(what, endpoint, ": ", transport.message())),
                    std::move(facts));
}

}  // namespace

CallStatus MapHttpResult(const HttpResult& result, absl::string_view endpoint, absl::Time now,
                         const Redactor* redactor) {
  if (!result.transport_status.ok()) return TransportError(result, endpoint);
  CallFacts facts = AnswerFacts(result, endpoint, redactor);
  const long http_status = result.response.status_code;  // NOLINT(runtime/int)
  if (http_status >= 200 && http_status <= 299)
    return CallStatus(absl::OkStatus(), std::move(facts));

  const Mapping mapping = Classify(http_status);
  facts.reason = mapping.reason;
  std::string message =
      absl::StrCat(mapping.summary, " (HTTP ", http_status, " on ", endpoint, ")");
  if (mapping.quote_upstream) {
    std::vector<UpstreamError> errors = ParseErrorBody(result.response.body);
    // Scrubbed before anything is cut to size, so that no cut leaves part of a form behind.
    for (UpstreamError& e : errors) {
      for (std::string* text : {&e.error, &e.error_code, &e.message, &e.details}) {
        *text = Scrubbed(std::move(*text), redactor);
      }
    }
    for (const UpstreamError& e : errors) {
      if (e.error_code.empty()) continue;
      facts.upstream.error_code = Truncate(e.error_code, kMaxQuotedBytes);
      break;
    }
    facts.upstream.message = QuotedText(errors);
    if (!facts.upstream.message.empty()) absl::StrAppend(&message, ": ", facts.upstream.message);
  }

  if (http_status == 429) {
    facts.retry_delay =
        RequestedDelay(result.response, now)
            .value_or(RetryDelay{kDefaultRateLimitedRetryDelay, RetryDelaySource::kDefault});
  } else if (mapping.code == absl::StatusCode::kUnavailable) {
    facts.retry_delay = RequestedDelay(result.response, now);
  }
  if (facts.retry_delay) {
    absl::StrAppend(&message, "; retry in ", absl::FormatDuration(facts.retry_delay->delay));
  }
  return CallStatus(absl::Status(mapping.code, message), std::move(facts));
}

CallStatus UpstreamBadResponseError(const HttpResult& result, absl::string_view endpoint,
                                    absl::string_view problem, const Redactor* redactor) {
  CallFacts facts = AnswerFacts(result, endpoint, redactor);
  facts.reason = ErrorReason::kUpstreamBadResponse;
  // A read changes nothing upstream; anything else has probably taken effect.
  const bool read = absl::StartsWith(endpoint, "GET ");
  return CallStatus(
      absl::InternalError(absl::StrCat(
          read ? "Userpilot answered (HTTP " : "Userpilot accepted the request (HTTP ",
          result.response.status_code, " on ", endpoint, ") but its answer could not be read: ",
          problem, read ? "" : ". The request has probably taken effect; do not simply retry it")),
      std::move(facts));
}

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (AllDigits(value)) {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(value, &seconds)) return std::nullopt;  // Overflow.
    return absl::Seconds(seconds);
  }
  // IMF-fixdate, obsolete RFC 850, asctime (RFC 9110 5.6.7).
  static constexpr const char* kFormats[] = {"%a, %d %b %Y %H:%M:%S GMT",
                                             "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
  for (const char* format : kFormats) {
    absl::Time when;
    std::string error;
    if (absl::ParseTime(format, value, absl::UTCTimeZone(), &when, &error)) {
      return std::max(when - now, absl::ZeroDuration());
    }
  }
  return std::nullopt;
}

CallStatus RedactSecret(CallStatus status, const Redactor& redactor) {
  if (status.ok()) return status;
  if (redactor.Contains(status.message())) status.set_message(redactor.Redact(status.message()));
  UpstreamFacts& upstream = status.facts().upstream;
  for (std::string* text : {&upstream.request_id, &upstream.error_code, &upstream.message}) {
    *text = Scrubbed(std::move(*text), &redactor);
  }
  return status;
}

void RedactStrings(google::protobuf::Message& message, const Redactor& redactor) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
          std::string text = reflection.GetRepeatedString(message, field, i);
          if (redactor.Contains(text)) {
            reflection.SetRepeatedString(&message, field, i, redactor.Redact(text));
          }
        }
      } else {
        std::string text = reflection.GetString(message, field);
        if (redactor.Contains(text)) reflection.SetString(&message, field, redactor.Redact(text));
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
          RedactStrings(*reflection.MutableRepeatedMessage(&message, field, i), redactor);
        }
      } else {
        RedactStrings(*reflection.MutableMessage(&message, field), redactor);
      }
    }
  }
}

std::string UpstreamRequestId(const HttpResponse& response, const Redactor* redactor) {
  std::string id;
  const std::string scrubbed =
      Scrubbed(std::string(absl::StripAsciiWhitespace(response.Header("x-request-id"))), redactor);
  for (char c : scrubbed) {
    if (id.size() == kMaxRequestIdBytes) break;
    if (absl::ascii_isprint(static_cast<unsigned char>(c))) id += c;
  }
  return id;
}

}  // namespace userpilot::gateway
