// Where the shared rate-limit state lives: `--ratelimit_redis=redis://host:port[/db]`.
//
// Accepted forms (nothing else, so a typo fails at start-up instead of silently pointing at
// another server):
//   redis://host                 port 6379, database 0
//   redis://host:port            database 0
//   redis://host:port/db         db: a decimal number 0..65535 (SELECTed on every connection)
//   redis://[::1]:port/db        IPv6 literal in brackets
// Not supported, each rejected with its own message: other schemes (rediss:// TLS, unix://),
// credentials (`redis://:password@host`, `redis://user:pw@host`; put Redis on a private network
// or add AUTH here when needed), query strings and fragments.
//
// Thread-safety: a pure function.
#ifndef USERPILOT_GATEWAY_SERVICE_REDIS_REDIS_URL_H_
#define USERPILOT_GATEWAY_SERVICE_REDIS_REDIS_URL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace userpilot::gateway {

struct RedisEndpoint {
  std::string host;  // Host name or IP literal, without brackets.
  int port = 6379;
  int db = 0;

  // "redis://host:port/db", brackets restored for IPv6. Safe to log: holds no secret.
  std::string ToUrl() const;
};

// Parses `url` as above. INVALID_ARGUMENT naming what is wrong (and quoting the URL, which by
// construction holds no password: a URL with credentials is refused without being echoed).
absl::StatusOr<RedisEndpoint> ParseRedisUrl(absl::string_view url);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_REDIS_REDIS_URL_H_
