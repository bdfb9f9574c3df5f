#include "service/redis/redis_url.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

constexpr absl::string_view kScheme = "redis://";

absl::Status Bad(absl::string_view url, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("redis URL '", url, "': ", why, " (expected redis://host:port[/db])"));
}

// A decimal number in [lo, hi], digits only (no sign, no spaces).
bool ParseBounded(absl::string_view text, int lo, int hi, int* out) {
  if (text.empty() || text.size() > 6) return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  int value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < lo || value > hi) return false;
  *out = value;
  return true;
}

bool ValidHostChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

}  // namespace

std::string RedisEndpoint::ToUrl() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return absl::StrCat("redis://", ipv6 ? "[" : "", host, ipv6 ? "]" : "", ":", port, "/", db);
}

absl::StatusOr<RedisEndpoint> ParseRedisUrl(absl::string_view url) {
  if (!absl::StartsWithIgnoreCase(url, kScheme)) {
    // Quote only the scheme part: an unknown form might carry a password.
    const size_t colon = url.find("://");
    if (colon != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis URL: scheme '", url.substr(0, colon),
                       "' is not supported (expected redis://host:port[/db])"));
    }
    return absl::InvalidArgumentError(
        "redis URL: missing 'redis://' (expected redis://host:port[/db])");
  }
  absl::string_view rest = url.substr(kScheme.size());
  const size_t path_start = rest.find('/');
  absl::string_view authority = rest.substr(0, path_start);
  if (authority.find('@') != absl::string_view::npos) {
    // Never echo the URL: the part before '@' is a password.
    return absl::InvalidArgumentError(
        "redis URL: credentials (user:password@) are not supported (expected "
        "redis://host:port[/db])");
  }
  if (rest.find_first_of("?#") != absl::string_view::npos) {
    return Bad(url, "query strings and fragments are not supported");
  }

  RedisEndpoint endpoint;
  absl::string_view port_text;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return Bad(url, "unterminated '[' in the host");
    endpoint.host = std::string(authority.substr(1, close - 1));
    for (char c : endpoint.host) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return Bad(url, "bad IPv6 literal");
      }
    }
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Bad(url, "unexpected text after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return Bad(url, "empty port");
    }
  } else {
    const size_t colon = authority.find(':');
    endpoint.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return Bad(url, "empty port");
    }
    for (char c : endpoint.host) {
      if (!ValidHostChar(c)) return Bad(url, "bad character in the host");
    }
  }
  if (endpoint.host.empty()) return Bad(url, "empty host");
  if (!port_text.empty() && !ParseBounded(port_text, 1, 65535, &endpoint.port)) {
    return Bad(url, "the port must be a number from 1 to 65535");
  }
  if (path_start != absl::string_view::npos) {
    absl::string_view db_text = rest.substr(path_start + 1);
    if (!db_text.empty() && !ParseBounded(db_text, 0, 65535, &endpoint.db)) {
      return Bad(url, "the database must be a number from 0 to 65535 after '/'");
    }
  }
  return endpoint;
}

}  // namespace userpilot::gateway
