#include "service/http/curl_errors.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace userpilot::gateway::http_internal {
namespace {

// Failures that happen before the request can leave: name resolution, TCP connect, TLS
// handshake and certificate checks.
bool FailsBeforeSending(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

// What went wrong, in words, for the failures that are the network's (or the server's) fault.
absl::string_view UnavailableSummary(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return "could not resolve the host";
    case CURLE_COULDNT_RESOLVE_PROXY:
      return "could not resolve the proxy";
    case CURLE_COULDNT_CONNECT:
      return "could not connect";
    case CURLE_GOT_NOTHING:
      return "the server closed the connection without answering";
    case CURLE_PARTIAL_FILE:
      return "the server closed the connection in the middle of the response";
    case CURLE_SEND_ERROR:
      return "sending the request failed";
    case CURLE_RECV_ERROR:
      return "receiving the response failed";
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:  // Only once connected: see ReplyIsNotHttp().
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
      return "the server's reply is not valid HTTP";
    case CURLE_BAD_CONTENT_ENCODING:
      return "could not decode the response";
    case CURLE_PROXY:
      return "the proxy failed";
    default:
      return FailsBeforeSending(code) ? "the TLS handshake failed" : "the transfer failed";
  }
}

// Codes that mean the gateway itself misused libcurl or ran out of memory: not the network's
// fault, and not worth retrying.
bool IsInternal(CURLcode code, bool response_too_large) {
  switch (code) {
    case CURLE_FAILED_INIT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_READ_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_RECURSIVE_API_CALL:
      return true;
    case CURLE_WRITE_ERROR:  // Only our callbacks fail writes, and they do so for the size cap.
      return !response_too_large;
    default:
      return false;
  }
}

// A reply arrived that is not a valid HTTP response. libcurl 7.88 reports a status line it
// cannot parse ("HTTP/1.1 2OO OK", "Unsupported HTTP version in response") or one missing
// altogether ("Received HTTP/0.9 when not allowed") as CURLE_UNSUPPORTED_PROTOCOL, the code it
// also gives for a URL scheme it will not use; the scheme is refused before any connection is
// made, so a connection (or a written request) tells the two apart.
bool ReplyIsNotHttp(const CurlFailure& f) {
  switch (f.code) {
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
      return true;
    case CURLE_UNSUPPORTED_PROTOCOL:
      return f.connected || !f.nothing_written;
    default:
      return false;
  }
}

}  // namespace

TransportFailure MapCurlFailure(const CurlFailure& f) {
  const std::string where = absl::StrCat(f.method, " ", f.origin, ": ");
  const std::string why =
      absl::StrCat(" (curl error ", static_cast<int>(f.code), ": ",
                   f.detail.empty() ? curl_easy_strerror(f.code) : f.detail, ")");
  TransportFailure out;
  if (f.response_too_large || f.code == CURLE_FILESIZE_EXCEEDED) {
    out.status = absl::UnavailableError(absl::StrCat(
        where, "the response is larger than the limit of ", f.max_response_bytes, " bytes"));
    return out;
  }
  if (ReplyIsNotHttp(f)) {
    // The server's fault, and maybe a passing one (a proxy in trouble): UNAVAILABLE, like a
    // dropped connection. The request was sent.
    out.status = absl::UnavailableError(absl::StrCat(where, UnavailableSummary(f.code), why));
    out.reply_not_http = true;
    return out;
  }
  if (f.code == CURLE_URL_MALFORMAT || f.code == CURLE_UNSUPPORTED_PROTOCOL) {
    out.status = absl::InvalidArgumentError(absl::StrCat(where, "unusable URL", why));
    out.request_may_have_been_sent = !f.nothing_written;
    return out;
  }
  if (f.code == CURLE_OPERATION_TIMEDOUT) {
    // libcurl reports both its connect timeout and its total timeout (the caller's deadline)
    // this way. Only the latter is DEADLINE_EXCEEDED: a connect timeout that fires with time
    // to spare means the server is unreachable, which a retry may fix.
    out.request_may_have_been_sent = !(f.nothing_written && !f.connected);
    if (!f.connected && f.connect_timeout_binding && !f.deadline_passed) {
      out.status = absl::UnavailableError(absl::StrCat(where, "connecting timed out", why));
    } else {
      out.status = absl::DeadlineExceededError(absl::StrCat(where, "deadline exceeded", why));
    }
    return out;
  }
  if (IsInternal(f.code, f.response_too_large)) {
    out.status = absl::InternalError(absl::StrCat(where, "HTTP client failure", why));
    return out;
  }
  out.request_may_have_been_sent = !(f.nothing_written && FailsBeforeSending(f.code));
  out.status = absl::UnavailableError(absl::StrCat(where, UnavailableSummary(f.code), why));
  return out;
}

std::string OriginOf(absl::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos || scheme_end == 0) return "<invalid url>";
  absl::string_view scheme = url.substr(0, scheme_end);
  absl::string_view authority = url.substr(scheme_end + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at != absl::string_view::npos) authority = authority.substr(at + 1);
  return absl::StrCat(absl::AsciiStrToLower(scheme), "://", authority);
}

std::string RedactHeaderValues(absl::string_view message, const HttpHeaders& headers) {
  constexpr size_t kMinSecretLength = 8;
  std::vector<std::string> secrets;
  for (const auto& header : headers) {
    const absl::string_view value = header.second;
    if (value.size() >= kMinSecretLength) secrets.emplace_back(value);
    for (absl::string_view token : absl::StrSplit(value, ' ', absl::SkipWhitespace())) {
      if (token.size() >= kMinSecretLength) secrets.emplace_back(token);
    }
  }
  // Longest first, so a whole value is replaced before its tokens.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  std::string out(message);
  for (const std::string& secret : secrets) {
    absl::StrReplaceAll({{secret, "[redacted]"}}, &out);
  }
  return out;
}

}  // namespace userpilot::gateway::http_internal
