#include "service/config/endpoints.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

struct HostPort {
  std::string host;  // Without brackets.
  bool bracketed = false;
  bool has_port = false;
  int port = 0;
};

bool IsIpv4(const std::string& host) {
  in_addr addr;
  return inet_pton(AF_INET, host.c_str(), &addr) == 1;
}

bool IsIpv6(const std::string& host) {
  in6_addr addr;
  return inet_pton(AF_INET6, host.c_str(), &addr) == 1;
}

bool IsHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return host.front() != '.' && host.front() != '-';
}

// Splits `host[:port]`. The port, when present, must be decimal and at most 65535.
absl::StatusOr<HostPort> SplitHostPort(absl::string_view text) {
  HostPort out;
  absl::string_view rest;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' has '[' without ']'"));
    }
    out.host = std::string(text.substr(1, close - 1));
    out.bracketed = true;
    if (!IsIpv6(out.host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", out.host, "' in brackets is not an IPv6 address"));
    }
    rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return absl::InvalidArgumentError(absl::StrCat("unexpected '", rest, "' after ']'"));
    }
  } else {
    size_t colon = text.find(':');
    if (colon != absl::string_view::npos && text.find(':', colon + 1) != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': write an IPv6 address in brackets, e.g. [::]:50051"));
    }
    out.host = std::string(text.substr(0, colon));
    rest = colon == absl::string_view::npos ? absl::string_view() : text.substr(colon);
    if (out.host.empty())
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' has no host"));
    bool numeric = out.host.find_first_not_of("0123456789.") == std::string::npos;
    if (numeric ? !IsIpv4(out.host) : !IsHostName(out.host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", out.host, "' is not a valid host name or IPv4 address"));
    }
  }
  if (!rest.empty()) {
    absl::string_view digits = rest.substr(1);
    uint32_t port = 0;
    if (digits.empty() || digits.size() > 5 ||
        digits.find_first_not_of("0123456789") != absl::string_view::npos ||
        !absl::SimpleAtoi(digits, &port) || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("port '", digits, "' is not a number from 0 to 65535"));
    }
    out.has_port = true;
    out.port = static_cast<int>(port);
  }
  return out;
}

}  // namespace

absl::Status ValidateListenAddress(absl::string_view address) {
  absl::StatusOr<HostPort> hp = SplitHostPort(address);
  if (!hp.ok()) return hp.status();
  if (!hp->has_port) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' has no port; write host:port, e.g. 0.0.0.0:50051"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NormalizeUpstreamUrl(absl::string_view url) {
  size_t sep = url.find("://");
  std::string scheme =
      sep == absl::string_view::npos ? "" : absl::AsciiStrToLower(url.substr(0, sep));
  if (scheme != "https" && scheme != "http") {
    return absl::InvalidArgumentError(
        absl::StrCat("'", url, "' must start with https:// (http:// only for a loopback host)"));
  }
  absl::string_view after = url.substr(sep + 3);
  size_t end = after.find_first_of("/?#");
  absl::string_view authority = after.substr(0, end);
  absl::string_view tail = end == absl::string_view::npos ? "" : after.substr(end);
  if (!tail.empty() && tail != "/") {
    return absl::InvalidArgumentError(
        absl::StrCat("'", url, "' must be a base URL with no path, query or fragment (such as ",
                     "https://analytex.userpilot.io); the gateway adds the /v1/... paths itself"));
  }
  if (authority.find('@') != absl::string_view::npos) {
    // Do not echo the URL: the part before '@' may be a password.
    return absl::InvalidArgumentError("the URL must not contain credentials (user@host)");
  }
  absl::StatusOr<HostPort> hp = SplitHostPort(authority);
  if (!hp.ok()) return hp.status();
  if (hp->has_port && hp->port == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", url, "' has port 0"));
  }
  if (scheme == "http" && !IsLoopbackHost(hp->host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", url, "': http:// is allowed only for loopback hosts (127.0.0.0/8, localhost, ",
        "[::1]); use https:// so the API key never travels in clear"));
  }
  return absl::StrCat(scheme, "://", absl::AsciiStrToLower(authority));
}

bool IsLoopbackHost(absl::string_view host) {
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  std::string h(host);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  return inet_pton(AF_INET6, h.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace userpilot::gateway
