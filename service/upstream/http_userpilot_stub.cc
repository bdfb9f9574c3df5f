#include "service/upstream/http_userpilot_stub.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "service/upstream/error_mapping.h"
#include "service/upstream/json_mapping.h"

namespace userpilot::gateway {

struct HttpUserpilotStub::Settings {
  std::string base_url;   // Without trailing slashes.
  Redactor redactor{""};  // Every form of the API key.
  absl::Duration request_timeout;
  absl::Duration upload_timeout;
  HttpHeaders headers;  // Sent on every call, in this order.
  Clock clock;
};

namespace {

// What the caller of `endpoint` gets from `result`: the mapped error, or the parsed answer,
// with the facts of the exchange either way.
// Every text from Userpilot is scrubbed of the API key, in errors and answers alike.
template <typename Response>
Result<Response> Conclude(const HttpResult& result, absl::string_view endpoint, absl::Time now,
                          const Redactor& redactor) {
  CallStatus status = MapHttpResult(result, endpoint, now, &redactor);
  if (!status.ok()) return RedactSecret(std::move(status), redactor);
  Response response;
  const absl::Status parsed =
      ParseResponse(result.response.body, status.facts().upstream.request_id, &response);
  if (!parsed.ok()) {
    return RedactSecret(UpstreamBadResponseError(result, endpoint, parsed.message(), &redactor),
                        redactor);
  }
  RedactStrings(response, redactor);
  return Result<Response>(std::move(response), std::move(status).facts());
}

// `path` with its `{parameter}`, if any, replaced by `value` encoded as one segment.
std::string FillPath(absl::string_view path, absl::string_view value) {
  const size_t open = path.find('{');
  if (open == absl::string_view::npos) return std::string(path);
  const size_t close = path.find('}', open);
  return absl::StrCat(path.substr(0, open), EncodePathSegment(value),
                      close == absl::string_view::npos ? "" : path.substr(close + 1));
}

}  // namespace

std::string EncodePathSegment(absl::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  encoded.reserve(segment.size() * 3);
  for (const char c : segment) {
    const auto byte = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(byte) || c == '-' || c == '_' || c == '~') {
      encoded += c;
    } else {
      encoded += '%';
      encoded += kHex[byte >> 4];
      encoded += kHex[byte & 0xF];
    }
  }
  return encoded;
}

HttpUserpilotStub::HttpUserpilotStub(HttpClient& http, UpstreamOptions options, Clock clock)
    : http_(http) {
  auto settings = std::make_shared<Settings>();
  absl::string_view base_url = options.base_url;
  while (absl::ConsumeSuffix(&base_url, "/")) {
  }
  settings->base_url = std::string(base_url);
  settings->headers = {{"Authorization", absl::StrCat("Token ", options.api_key)},
                       {"X-API-Version", std::string(kUserpilotApiVersion)},
                       {"Accept", "application/json"}};
  settings->redactor = Redactor(options.api_key);
  settings->request_timeout = options.request_timeout;
  settings->upload_timeout = options.upload_timeout;
  settings->clock = std::move(clock);
  settings_ = std::move(settings);
}

template <typename Rpc>
void HttpUserpilotStub::Call(const CallOptions& options, const typename Rpc::Request& request,
                             StubCallback<typename Rpc::Response> done) {
  absl::StatusOr<HttpForm> form = HttpFormOf(request);
  if (!form.ok()) {
    // A programming error above this layer (validation guarantees what a form needs).
    // Answered through the HTTP client like every other outcome, so never inside this call:
    // an empty request is refused by the client without being sent.
    http_.Send(HttpRequest(), [done = std::move(done), status = form.status()](HttpResult) mutable {
      std::move(done)(std::move(status));
    });
    return;
  }
  Send(options, Routing<Rpc>::For(request), *std::move(form), std::move(done));
}

template <typename Response>
void HttpUserpilotStub::Send(const CallOptions& options, const Route& route, HttpForm form,
                             StubCallback<Response> done) {
  std::string path = FillPath(route.path, form.path_parameter);
  Exchange<Result<Response>>(options, route.method, std::move(path), route.endpoint,
                             std::move(form), Conclude<Response>, std::move(done));
}

void HttpUserpilotStub::CheckKey(const CallOptions& options,
                                 absl::AnyInvocable<void(CallStatus) &&> done) {
  Exchange<CallStatus>(
      options, KeyCheckEndpoint::kMethod, std::string(KeyCheckEndpoint::kPath),
      KeyCheckEndpoint::kEndpoint, HttpForm(),
      [](const HttpResult& result, absl::string_view endpoint, absl::Time now,
         const Redactor& redactor) {
        return RedactSecret(MapHttpResult(result, endpoint, now, &redactor), redactor);
      },
      std::move(done));
}

template <typename Answer, typename ConcludeFn>
void HttpUserpilotStub::Exchange(const CallOptions& options, absl::string_view method,
                                 std::string path, absl::string_view endpoint, HttpForm form,
                                 ConcludeFn conclude, absl::AnyInvocable<void(Answer) &&> done) {
  const bool uploading = form.upload.source != nullptr;
  const absl::Duration attempt_timeout =
      uploading ? settings_->upload_timeout : settings_->request_timeout;
  const absl::Time attempt_deadline = settings_->clock() + attempt_timeout;
  // True when the per-attempt cap, not the caller's deadline, bounds this request.
  const bool capped = attempt_deadline < options.deadline;

  HttpRequest request;
  request.method = std::string(method);
  request.url = absl::StrCat(settings_->base_url, path);
  // Room for the fixed headers and the ones added below (traceparent, tracestate,
  // Content-Type), so the list is allocated once.
  request.headers.reserve(settings_->headers.size() + 3);
  request.headers.insert(request.headers.end(), settings_->headers.begin(),
                         settings_->headers.end());
  if (!options.trace.empty()) {
    // Each attempt is a span of its own, a child of the gateway's span for the call.
    request.headers.emplace_back(
        "traceparent", FormatTraceparent(options.trace.trace_id, NewSpanId(), options.trace.flags));
    if (!options.trace.tracestate.empty()) {
      request.headers.emplace_back("tracestate", options.trace.tracestate);
    }
  }
  if (uploading) {
    request.headers.emplace_back("Content-Type", std::move(form.upload.content_type));
    request.body_source = std::move(form.upload.source);
  } else if (!form.json.empty()) {
    request.headers.emplace_back("Content-Type", "application/json");
  }
  request.body = std::move(form.json);
  request.deadline = capped ? attempt_deadline : options.deadline;
  request.short_callback = options.short_callback;

  http_.Send(std::move(request), [settings = settings_, endpoint, capped, attempt_timeout,
                                  conclude = std::move(conclude),
                                  done = std::move(done)](HttpResult result) mutable {
    const bool attempt_timed_out = capped && absl::IsDeadlineExceeded(result.transport_status);
    if (attempt_timed_out) {
      // The caller's deadline has not passed: report a slow upstream, worth a retry.
      result.transport_status = absl::UnavailableError(absl::StrCat(
          "no answer within the per-attempt timeout of ", absl::FormatDuration(attempt_timeout),
          " (", result.transport_status.message(), ")"));
    }
    Answer answer = conclude(result, endpoint, settings->clock(), settings->redactor);
    if (attempt_timed_out) {
      answer.facts().upstream.transport = TransportFailure::kAttemptTimeout;
    }
    answer.facts().http_attempts = 1;
    std::move(done)(std::move(answer));
  });
}

// Every method of the interface, each calling its row's Call (declared extern in the header).
template class RpcDispatcher<HttpUserpilotStub>;

}  // namespace userpilot::gateway
