// The emulator's admin HTTP API under /_emulator/: a thin JSON layer over Emulator's public
// C++ API, so scripts and out-of-process tests can inspect and steer a running emulator.
// No authentication, never rate limited, never subject to fault injection. README.md lists
// every endpoint.
//
// Thread-safety: thread-safe (it only calls Emulator's thread-safe methods).
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_ADMIN_API_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_ADMIN_API_H_

#include <google/protobuf/struct.pb.h>

#include <string>

#include "absl/status/status.h"
#include "tests/emulator/emulator.h"
#include "tests/emulator/rate_limiter.h"
#include "tests/emulator/request_log.h"
#include "tests/emulator/userpilot_api.h"

namespace userpilot::gateway::testing {

// JSON forms used by the admin API (durations in milliseconds).
// {"enabled":true,"identify_limit":600,"track_limit":600,"window_ms":60000,
//  "delete_interval_ms":2000,"retry_after":false}
std::string LimitsToJson(const RateLimits& limits);
// Applies the fields present in `json` over `limits`. INVALID_ARGUMENT for bad values.
absl::Status MergeLimitsFromJson(const google::protobuf::Value& json, RateLimits* limits);
std::string StatsToJson(const EmulatorStats& stats);
// One recorded request; the body as "body" when it is UTF-8, else as "body_base64".
std::string RecordedRequestToJson(const RecordedRequest& request);

class AdminApi {
 public:
  explicit AdminApi(Emulator* emulator) : emulator_(emulator) {}

  // Answers a request whose path starts with /_emulator/.
  ApiResponse Handle(const RecordedRequest& request) const;

 private:
  Emulator* const emulator_;
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_ADMIN_API_H_
