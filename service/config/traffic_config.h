// Traffic-control configuration: the budgets (rate limits, queues, fairness between callers),
// the optional Redis that shares budgets between replicas, and the retry policy.
//
// The job lanes (one bulk identify job and one import job at a time) are configured here too:
// their poll interval and their bound on waiting calls; their headroom is --admission_headroom.
//
// Flags hold compact text (`--identify_rate=600/1m`, `--caller_weights=billing=2,batch=0.5`);
// LoadTrafficConfig turns them into the components' own option structs, which validate
// themselves (RateLimitOptions::Validate, RetryOptions::Validate), so a limit is checked in one
// place and the message names the flag.
//
// Thread-safety: plain values.
#ifndef USERPILOT_GATEWAY_SERVICE_CONFIG_TRAFFIC_CONFIG_H_
#define USERPILOT_GATEWAY_SERVICE_CONFIG_TRAFFIC_CONFIG_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/ratelimit/rate_limit_options.h"
#include "service/ratelimit/redis_token_source_factory.h"
#include "service/retry/retry_options.h"

namespace userpilot::gateway {

// "600/1m" -> 600 per minute; the count is > 0, the window a positive absl duration.
absl::StatusOr<RateSpec> ParseRate(absl::string_view name, absl::string_view text);
// 600 per minute -> "600/1m".
std::string FormatRate(const RateSpec& spec);

// The raw traffic flags, named like them, with their defaults.
struct TrafficInput {
  std::string identify_rate = FormatRate(RateLimitOptions().identify.rate);
  std::string track_rate = FormatRate(RateLimitOptions().track.rate);
  std::string delete_rate = FormatRate(RateLimitOptions().deletes.rate);
  std::string job_read_rate = FormatRate(RateLimitOptions().job_reads.rate);
  // Slack added to every budget window against network jitter (0.17% of a 600/1m budget).
  absl::Duration ratelimit_spacing_margin = RateLimitOptions().spacing_margin;
  // A call must be admitted this long before its deadline, or is refused / answered
  // DEADLINE_EXCEEDED instead of being sent as its caller gives up.
  absl::Duration admission_headroom = kDefaultAdmissionHeadroom;
  // The longest pause a 429's Retry-After / X-RateLimit-Reset may impose on a budget (and, for
  // the upstream layer, the longest retry delay it passes on); one option, read here only.
  absl::Duration max_upstream_pause = kDefaultMaxUpstreamPause;
  // Job lanes: how often a call waiting for the lane's job polls it (each poll spends the
  // job_read budget), and how many calls may wait their turn on one lane.
  absl::Duration job_lane_poll_interval = JobLaneOptions().poll_interval;
  int64_t job_lane_max_waiting = static_cast<int64_t>(JobLaneOptions().max_waiting);
  // Queue bound per budget, e.g. "identify=2000,track=1500"; budgets not named keep their
  // default.
  std::string budget_queues;
  // Fairness weight per caller (the `x-caller` name), e.g. "billing=2,batch-import=0.25".
  std::string caller_weights;
  // Most calls one caller may have waiting in a budget, e.g. "batch-import=50".
  std::string caller_max_queued;
  // The same for callers not named in --caller_max_queued; 0 = only the budget's own bound.
  int64_t default_caller_max_queued = 0;
  // redis://host:port[/db]; empty = budgets are this replica's own.
  std::string ratelimit_redis;
  std::string ratelimit_redis_fallback = "local";  // local | refuse
  int ratelimit_replicas = 1;
  int retry_max_attempts = RetryOptions().max_attempts;
  absl::Duration retry_initial_backoff = RetryOptions().initial_backoff;
  absl::Duration retry_max_backoff = RetryOptions().max_backoff;
  double retry_budget_ratio = RetryOptions().budget.retry_ratio;
  bool circuit_breaker = RetryOptions().circuit_breaker.enabled;
  double circuit_failure_ratio = RetryOptions().circuit_breaker.failure_ratio;
  int64_t circuit_min_calls = RetryOptions().circuit_breaker.min_calls_in_window;
  absl::Duration circuit_window = RetryOptions().circuit_breaker.window;
  absl::Duration circuit_open_duration = RetryOptions().circuit_breaker.open_duration;
  double circuit_half_open_share = RetryOptions().circuit_breaker.half_open_share;
  int circuit_half_open_probes = RetryOptions().circuit_breaker.half_open_probes;
};

// The validated traffic configuration.
struct TrafficConfig {
  RateLimitOptions rate_limits;
  // Set when --ratelimit_redis is given.
  std::optional<RedisRateLimitOptions> redis;
  RetryOptions retry;
};

// Reports one problem: (flag name, message); an empty flag name for a problem that spans
// several settings (its message names them).
using FlagProblem = std::function<void(absl::string_view flag, std::string message)>;

// Checks `in` and returns the configuration; every problem goes to `problem`.
TrafficConfig LoadTrafficConfig(const TrafficInput& in, const FlagProblem& problem);

// `name=value` pairs of the traffic settings, for the start-up log line.
std::string TrafficDebugString(const TrafficConfig& config);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_CONFIG_TRAFFIC_CONFIG_H_
