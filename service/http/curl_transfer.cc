#include "service/http/curl_transfer.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "service/http/curl_errors.h"

namespace userpilot::gateway::http_internal {
namespace {

// RFC 9110 tchar.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) continue;
    if (absl::string_view("!#$%&'*+-.^_`|~").find(c) == absl::string_view::npos) return false;
  }
  return true;
}

bool HasLineBreakOrNul(absl::string_view s) {
  return s.find_first_of(absl::string_view("\r\n\0", 3)) != absl::string_view::npos;
}

bool HasHeader(const HttpHeaders& headers, absl::string_view name) {
  for (const auto& header : headers) {
    if (absl::EqualsIgnoreCase(header.first, name)) return true;
  }
  return false;
}

// Counts `n` more response bytes against the cap; false (and marks the transfer) when over.
bool Admit(Transfer& t, size_t n) {
  t.received_bytes += n;
  if (t.received_bytes <= t.max_response_bytes) return true;
  t.response_too_large = true;
  return false;
}

size_t OnHeaderLine(char* data, size_t size, size_t count, void* user) {
  Transfer& t = *static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (!Admit(t, n)) return 0;  // libcurl fails the transfer with CURLE_WRITE_ERROR.
  HttpResponse& response = t.result.response;
  const absl::string_view line = absl::StripTrailingAsciiWhitespace(absl::string_view(data, n));
  if (absl::StartsWith(line, "HTTP/")) {
    // A status line starts a new response (after a 1xx interim one, only the final counts).
    response.headers.clear();
    return n;
  }
  if (line.empty()) return n;
  if (line.front() == ' ' || line.front() == '\t') {  // Obsolete line folding.
    if (!response.headers.empty()) {
      std::string& value = response.headers.back().second;
      absl::StrAppend(&value, value.empty() ? "" : " ", absl::StripLeadingAsciiWhitespace(line));
    }
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return n;  // Not a header; libcurl judges validity.
  std::string name = absl::AsciiStrToLower(line.substr(0, colon));
  const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  uint64_t length = 0;
  if (name == "content-length" && absl::SimpleAtoi(value, &length)) {
    response.body.reserve(static_cast<size_t>(std::min<uint64_t>(length, t.max_response_bytes)));
  }
  response.headers.emplace_back(std::move(name), std::string(value));
  return n;
}

size_t OnBodyData(char* data, size_t size, size_t count, void* user) {
  Transfer& t = *static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (!Admit(t, n)) return 0;
  t.result.response.body.append(data, n);
  return n;
}

// CURLOPT_READFUNCTION for a request.body_source: the next piece of the body.
size_t OnReadBody(char* buffer, size_t size, size_t count, void* user) {
  Transfer& t = *static_cast<Transfer*>(user);
  const HttpBodySource& source = *t.request.body_source;
  if (t.body_offset >= source.size()) return 0;
  absl::StatusOr<size_t> n = source.ReadAt(t.body_offset, buffer, size * count);
  if (n.ok() && *n == 0) n = absl::DataLossError("the request body ended before its size");
  if (!n.ok()) {
    t.body_read_error = n.status();
    return CURL_READFUNC_ABORT;
  }
  t.body_offset += static_cast<int64_t>(*n);
  return *n;
}

// CURLOPT_SEEKFUNCTION: libcurl rewinds the body to send it again (on a fresh connection after
// a reused one died, or for authentication). Positional reads make any offset cheap.
int OnSeekBody(void* user, curl_off_t offset, int origin) {
  Transfer& t = *static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || offset > t.request.body_source->size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t.body_offset = offset;
  return CURL_SEEKFUNC_OK;
}

int64_t CeilMillis(absl::Duration d) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();  // About 24 days.
  return std::clamp<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1))), 1,
                             kMax);
}

struct SentFacts {
  bool nothing_written = false;
  bool connected = false;
};

SentFacts ReadSentFacts(CURL* easy, const Transfer& t) {
  long request_size = 0;  // NOLINT(runtime/int): curl's type.
  curl_off_t uploaded = 0;
  curl_off_t pretransfer_us = 0;
  SentFacts facts;
  // Any getinfo failure leaves the conservative answer: possibly sent, connected.
  if (curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size) != CURLE_OK ||
      curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded) != CURLE_OK ||
      curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us) != CURLE_OK) {
    facts.connected = true;
    return facts;
  }
  // REQUEST_SIZE counts request bytes libcurl wrote, over all its attempts (it re-sends on a
  // fresh connection when a reused one turns out dead); SIZE_UPLOAD counts body bytes written
  // after the first write. PRETRANSFER is reached once a connection (and its TLS) is ready,
  // new or reused, unlike CONNECT_TIME, which stays 0 on reuse.
  facts.nothing_written = request_size == 0 && uploaded == 0;
  facts.connected = pretransfer_us > 0;
  return facts;
}

}  // namespace

Transfer::~Transfer() {
  if (header_list != nullptr) curl_slist_free_all(header_list);
}

absl::Status ValidateRequest(const HttpRequest& request) {
  if (!IsToken(request.method)) {
    return absl::InvalidArgumentError("HTTP request method is empty or not an HTTP token");
  }
  if (request.method == "HEAD" && (!request.body.empty() || request.body_source != nullptr)) {
    return absl::InvalidArgumentError("HTTP HEAD request with a body");
  }
  if (!request.body.empty() && request.body_source != nullptr) {
    return absl::InvalidArgumentError("HTTP request with both a body and a body source");
  }
  if (request.url.empty() || std::any_of(request.url.begin(), request.url.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
      })) {
    return absl::InvalidArgumentError(
        "HTTP request URL is empty or holds a space or control "
        "character");
  }
  for (size_t i = 0; i < request.headers.size(); ++i) {
    const auto& [name, value] = request.headers[i];
    if (!IsToken(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("HTTP request header #", i, " has an empty or invalid name"));
    }
    if (HasLineBreakOrNul(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("HTTP request header #", i, " (", name, ") has a value with CR, LF or NUL"));
    }
  }
  return absl::OkStatus();
}

absl::Status ConfigureEasy(CURL* easy, Transfer& t, const CurlHttpClientOptions& options,
                           absl::Time now) {
  const HttpRequest& r = t.request;
  CURLcode rc = CURLE_OK;
  int failed_option = 0;
  auto set = [&](CURLoption option, auto value) {
    if (rc != CURLE_OK) return;
    rc = curl_easy_setopt(easy, option, value);
    if (rc != CURLE_OK) failed_option = option;
  };
  t.max_response_bytes = options.max_response_bytes;
  t.error[0] = '\0';

  set(CURLOPT_PRIVATE, static_cast<void*>(&t));
  set(CURLOPT_ERRORBUFFER, t.error);
  set(CURLOPT_URL, r.url.c_str());
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));  // NOLINT(runtime/int)
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_TCP_NODELAY, 1L);
  set(CURLOPT_TCP_KEEPALIVE, 1L);  // Notice idle connections the peer silently dropped.
  set(CURLOPT_TCP_KEEPIDLE, 60L);
  set(CURLOPT_TCP_KEEPINTVL, 30L);
  set(CURLOPT_MAXAGE_CONN, static_cast<long>(  // NOLINT(runtime/int)
                               absl::ToInt64Seconds(options.max_idle_connection_age)));
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options.ca_file.empty()) set(CURLOPT_CAINFO, options.ca_file.c_str());
  // Trust the CA bundle only (Debian's default bundle holds the same certificates as its
  // default CA directory). With a CA directory set, libcurl 7.88 does not cache the parsed
  // trust store, and re-parsing the bundle costs ~140 ms of the event thread per new TLS
  // connection; without it the store is parsed once and cached in the multi handle (24 h).
  set(CURLOPT_CAPATH, static_cast<const char*>(nullptr));
  // "" disables proxies explicitly, environment variables included.
  set(CURLOPT_PROXY, options.proxy.c_str());
  set(CURLOPT_NOPROXY, "");  // Not set, libcurl would read no_proxy from the environment.
  if (!options.user_agent.empty()) set(CURLOPT_USERAGENT, options.user_agent.c_str());
  set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options.max_response_bytes));
  set(CURLOPT_HEADERFUNCTION, &OnHeaderLine);
  set(CURLOPT_HEADERDATA, static_cast<void*>(&t));
  set(CURLOPT_WRITEFUNCTION, &OnBodyData);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&t));

  const int64_t total_ms = CeilMillis(r.deadline - now);
  const int64_t connect_ms = std::min(CeilMillis(options.connect_timeout), total_ms);
  t.connect_timeout_binding = connect_ms < total_ms;
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(total_ms));           // NOLINT(runtime/int)
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_ms));  // NOLINT(runtime/int)

  if (r.method == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else if (r.body_source != nullptr) {
    // Streamed body: libcurl pulls it through OnReadBody, with a Content-Length announced up
    // front (no chunked encoding), and may rewind it through OnSeekBody to send it again.
    t.body_offset = 0;
    t.body_read_error = absl::OkStatus();
    set(CURLOPT_POST, 1L);
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body_source->size()));
    set(CURLOPT_READFUNCTION, &OnReadBody);
    set(CURLOPT_READDATA, static_cast<void*>(&t));
    set(CURLOPT_SEEKFUNCTION, &OnSeekBody);
    set(CURLOPT_SEEKDATA, static_cast<void*>(&t));
    if (r.method != "POST") set(CURLOPT_CUSTOMREQUEST, r.method.c_str());
  } else if (r.method == "GET" && r.body.empty()) {
    set(CURLOPT_HTTPGET, 1L);
  } else if (r.method == "POST" || !r.body.empty()) {
    // The body is sent from the Transfer's own string, not copied.
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    set(CURLOPT_POSTFIELDS, r.body.data());
    if (r.method != "POST") set(CURLOPT_CUSTOMREQUEST, r.method.c_str());
  } else {
    set(CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }

  // "Name: value" as given; "Name;" is libcurl's spelling of an empty value ("Name:" would
  // remove the header). Then suppress libcurl's defaults the request did not ask for.
  curl_slist* list = nullptr;
  auto append = [&list](const std::string& line) {
    curl_slist* grown = curl_slist_append(list, line.c_str());
    if (grown == nullptr) return false;
    list = grown;
    return true;
  };
  bool appended = true;
  for (const auto& [name, value] : r.headers) {
    appended = appended &&
               append(value.empty() ? absl::StrCat(name, ";") : absl::StrCat(name, ": ", value));
  }
  for (const absl::string_view name : {"Accept", "Expect", "Content-Type"}) {
    if (!HasHeader(r.headers, name)) appended = appended && append(absl::StrCat(name, ":"));
  }
  t.header_list = list;  // Freed with the Transfer, even on failure.
  if (!appended) return absl::ResourceExhaustedError("out of memory building request headers");
  set(CURLOPT_HTTPHEADER, list);

  if (rc != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("curl_easy_setopt(", failed_option, ") failed: ", curl_easy_strerror(rc)));
  }
  return absl::OkStatus();
}

void FinishFromCurl(CURL* easy, Transfer& t, CURLcode code) {
  if (code == CURLE_OK) {
    long status_code = 0;  // NOLINT(runtime/int): curl's type.
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status_code);
    t.result.response.status_code = status_code;
    t.result.transport_status = absl::OkStatus();
    t.result.request_may_have_been_sent = true;
    return;
  }
  const SentFacts facts = ReadSentFacts(easy, t);
  const std::string origin = OriginOf(t.request.url);
  CurlFailure failure;
  failure.code = code;
  failure.nothing_written = facts.nothing_written;
  failure.connected = facts.connected;
  failure.connect_timeout_binding = t.connect_timeout_binding;
  failure.deadline_passed = absl::Now() >= t.request.deadline;
  failure.response_too_large = t.response_too_large;
  failure.max_response_bytes = t.max_response_bytes;
  failure.method = t.request.method;
  failure.origin = origin;
  failure.detail = t.error;
  const TransportFailure mapped = MapCurlFailure(failure);
  t.result.transport_status = absl::Status(
      mapped.status.code(), RedactHeaderValues(mapped.status.message(), t.request.headers));
  if (!t.body_read_error.ok()) {
    // Our own body source failed (say, the spooled file could not be read): the gateway's
    // fault, not the network's; say what failed rather than "aborted by callback".
    t.result.transport_status = absl::InternalError(
        absl::StrCat(failure.method, " ", origin,
                     ": reading the request body failed: ", t.body_read_error.message()));
  }
  t.result.request_may_have_been_sent = mapped.request_may_have_been_sent;
  t.result.reply_not_http = mapped.reply_not_http;
  t.result.response = HttpResponse();
}

void FinishAbandoned(CURL* easy, Transfer& t, absl::StatusCode code, absl::string_view why) {
  const SentFacts facts = ReadSentFacts(easy, t);
  t.result.transport_status =
      absl::Status(code, absl::StrCat(t.request.method, " ", OriginOf(t.request.url), ": ", why));
  t.result.request_may_have_been_sent = !(facts.nothing_written && !facts.connected);
  t.result.response = HttpResponse();
}

void FinishUnsent(Transfer& t, absl::Status status) {
  t.result.transport_status = std::move(status);
  t.result.request_may_have_been_sent = false;
  t.result.attempted = false;
  t.result.response = HttpResponse();
}

}  // namespace userpilot::gateway::http_internal
