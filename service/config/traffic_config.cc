#include "service/config/traffic_config.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace userpilot::gateway {
namespace {

// --job_lane_poll_interval: from a tenth of a second (a fast emulator) to the longest default
// deadline worth waiting (--max_deadline's default, 5 min).
constexpr absl::Duration kMinJobLanePollInterval = absl::Milliseconds(100);
constexpr absl::Duration kMaxJobLanePollInterval = absl::Minutes(5);
// --job_lane_max_waiting: each waiting bulk call holds its request (up to
// --max_bulk_request_bytes, 16 MiB by default), so a few, not thousands.
constexpr int64_t kMaxJobLaneWaiting = 100;

// "a=1,b=2" -> {(a,1), (b,2)}; an empty text is an empty list.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParsePairs(
    absl::string_view text) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    absl::string_view key = absl::StripAsciiWhitespace(kv.first);
    absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    if (key.empty() || value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", item, "' is not name=value (expected e.g. billing=2,batch=0.5)"));
    }
    pairs.emplace_back(std::string(key), std::string(value));
  }
  return pairs;
}

BudgetOptions* BudgetNamed(RateLimitOptions& options, absl::string_view name) {
  for (BudgetOptions* budget :
       {&options.identify, &options.track, &options.deletes, &options.job_reads}) {
    if (budget->rate.name == name) return budget;
  }
  return nullptr;
}

// Two lanes polling every `interval` send 2 x window / interval job reads a window; at most
// half of the budget's count: interval x count >= 4 x window.
bool JobLanePollsFit(absl::Duration interval, const RateSpec& job_reads) {
  return interval * job_reads.limit >= 4 * job_reads.window;
}

}  // namespace

absl::StatusOr<RateSpec> ParseRate(absl::string_view name, absl::string_view text) {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(text, absl::MaxSplits('/', 1));
  RateSpec spec;
  spec.name = std::string(name);
  if (!absl::SimpleAtoi(parts.first, &spec.limit) || spec.limit <= 0 ||
      !absl::ParseDuration(parts.second, &spec.window) || spec.window <= absl::ZeroDuration() ||
      spec.window == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not COUNT/WINDOW with COUNT > 0 (e.g. 600/1m or 1/2s)"));
  }
  return spec;
}

std::string FormatRate(const RateSpec& spec) {
  return absl::StrCat(spec.limit, "/", absl::FormatDuration(spec.window));
}

TrafficConfig LoadTrafficConfig(const TrafficInput& in, const FlagProblem& problem) {
  TrafficConfig out;
  RateLimitOptions& rl = out.rate_limits;
  const std::pair<const char*, std::pair<const std::string*, BudgetOptions*>> rates[] = {
      {"identify_rate", {&in.identify_rate, &rl.identify}},
      {"track_rate", {&in.track_rate, &rl.track}},
      {"delete_rate", {&in.delete_rate, &rl.deletes}},
      {"job_read_rate", {&in.job_read_rate, &rl.job_reads}},
  };
  for (const auto& [flag, target] : rates) {
    auto spec = ParseRate(target.second->rate.name, *target.first);
    if (spec.ok()) {
      target.second->rate = *std::move(spec);
    } else {
      problem(flag, std::string(spec.status().message()));
    }
  }

  if (in.admission_headroom < absl::ZeroDuration() || in.admission_headroom > absl::Seconds(10)) {
    problem("admission_headroom", "must be from 0s to 10s");
  } else {
    rl.limiter.admission_headroom = in.admission_headroom;
    // The same time for the upstream request to be answered, whether the call waited for a
    // budget or for a job lane.
    rl.job_lanes.headroom = in.admission_headroom;
  }
  if (in.job_lane_poll_interval < kMinJobLanePollInterval ||
      in.job_lane_poll_interval > kMaxJobLanePollInterval) {
    problem("job_lane_poll_interval",
            absl::StrCat("must be from ", absl::FormatDuration(kMinJobLanePollInterval), " to ",
                         absl::FormatDuration(kMaxJobLanePollInterval)));
  } else {
    rl.job_lanes.poll_interval = in.job_lane_poll_interval;
  }
  if (in.job_lane_max_waiting < 1 || in.job_lane_max_waiting > kMaxJobLaneWaiting) {
    problem("job_lane_max_waiting",
            absl::StrCat("must be from 1 to ", kMaxJobLaneWaiting,
                         " (each waiting call holds its request, up to --max_bulk_request_bytes)"));
  } else {
    rl.job_lanes.max_waiting = static_cast<size_t>(in.job_lane_max_waiting);
  }
  if (in.max_upstream_pause < absl::Seconds(1) || in.max_upstream_pause > absl::Hours(1)) {
    problem("max_upstream_pause", "must be from 1s to 1h");
  } else {
    rl.limiter.max_upstream_pause = in.max_upstream_pause;
  }
  if (in.ratelimit_spacing_margin < absl::ZeroDuration() ||
      in.ratelimit_spacing_margin > absl::Seconds(10)) {
    problem("ratelimit_spacing_margin", "must be from 0s to 10s");
  } else {
    rl.spacing_margin = in.ratelimit_spacing_margin;
  }
  if (auto pairs = ParsePairs(in.budget_queues); !pairs.ok()) {
    problem("budget_queues", std::string(pairs.status().message()));
  } else {
    for (const auto& [name, value] : *pairs) {
      BudgetOptions* budget = BudgetNamed(rl, name);
      size_t size = 0;
      if (budget == nullptr) {
        problem("budget_queues",
                absl::StrCat("no budget named '", name,
                             "' (identify, track, delete, job_read, bulk, imports)"));
      } else if (!absl::SimpleAtoi(value, &size) || size == 0) {
        problem("budget_queues", absl::StrCat(name, "=", value, ": not a whole number >= 1"));
      } else {
        budget->max_queue = size;
      }
    }
  }

  if (auto pairs = ParsePairs(in.caller_weights); !pairs.ok()) {
    problem("caller_weights", std::string(pairs.status().message()));
  } else {
    for (const auto& [caller, value] : *pairs) {
      double weight = 0;
      if (!absl::SimpleAtod(value, &weight) || !(weight > 0) || !std::isfinite(weight)) {
        problem("caller_weights", absl::StrCat(caller, "=", value, ": not a number > 0"));
      } else {
        rl.limiter.callers[caller].weight = weight;
      }
    }
  }
  if (auto pairs = ParsePairs(in.caller_max_queued); !pairs.ok()) {
    problem("caller_max_queued", std::string(pairs.status().message()));
  } else {
    for (const auto& [caller, value] : *pairs) {
      size_t cap = 0;
      if (!absl::SimpleAtoi(value, &cap)) {
        problem("caller_max_queued", absl::StrCat(caller, "=", value, ": not a whole number"));
      } else {
        rl.limiter.callers[caller].max_queued = cap;
      }
    }
  }
  if (in.default_caller_max_queued < 0) {
    problem("default_caller_max_queued", "must be >= 0 (0: no cap of its own)");
  } else {
    rl.limiter.default_caller.max_queued = static_cast<size_t>(in.default_caller_max_queued);
  }
  // Both lanes polling at once spend at most half of the job_read budget, so polls leave room
  // for GetJob, ListJobs and job watching.
  if (!JobLanePollsFit(rl.job_lanes.poll_interval, rl.job_reads.rate)) {
    problem(
        "job_lane_poll_interval",
        absl::StrCat("(", absl::FormatDuration(rl.job_lanes.poll_interval),
                     ") two job lanes polling at this interval would take more than half of "
                     "--job_read_rate (",
                     FormatRate(rl.job_reads.rate), "): poll less often or raise --job_read_rate"));
  }
  // Cross-field checks of the components themselves (their messages name the setting).
  if (absl::Status s = rl.Validate(); !s.ok()) problem("", std::string(s.message()));

  if (!in.ratelimit_redis.empty()) {
    RedisRateLimitOptions redis;
    redis.url = in.ratelimit_redis;
    if (auto url = ParseRedisUrl(in.ratelimit_redis); !url.ok()) {
      problem("ratelimit_redis", std::string(url.status().message()));
    }
    if (auto mode = ParseRedisFallbackMode(in.ratelimit_redis_fallback); mode.ok()) {
      redis.fallback = *mode;
    } else {
      problem("ratelimit_redis_fallback", std::string(mode.status().message()));
    }
    if (in.ratelimit_replicas < 1) {
      problem("ratelimit_replicas", "must be >= 1 (the number of replicas sharing the key)");
    }
    redis.replicas = std::max(1, in.ratelimit_replicas);
    out.redis = std::move(redis);
  }

  RetryOptions& retry = out.retry;
  retry.max_attempts = in.retry_max_attempts;
  retry.initial_backoff = in.retry_initial_backoff;
  retry.max_backoff = in.retry_max_backoff;
  retry.budget.retry_ratio = in.retry_budget_ratio;
  retry.circuit_breaker.enabled = in.circuit_breaker;
  retry.circuit_breaker.failure_ratio = in.circuit_failure_ratio;
  retry.circuit_breaker.min_calls_in_window = in.circuit_min_calls;
  retry.circuit_breaker.window = in.circuit_window;
  retry.circuit_breaker.open_duration = in.circuit_open_duration;
  retry.circuit_breaker.half_open_share = in.circuit_half_open_share;
  retry.circuit_breaker.half_open_probes = in.circuit_half_open_probes;
  if (absl::Status s = retry.Validate(); !s.ok()) problem("", std::string(s.message()));
  return out;
}

std::string TrafficDebugString(const TrafficConfig& config) {
  const RateLimitOptions& rl = config.rate_limits;
  std::vector<std::string> queues, weights, caps;
  for (const BudgetOptions* b : {&rl.identify, &rl.track, &rl.deletes, &rl.job_reads}) {
    queues.push_back(absl::StrCat(b->rate.name, "=", b->max_queue));
  }
  for (const auto& [caller, policy] : rl.limiter.callers) {
    weights.push_back(absl::StrCat(caller, "=", policy.weight));
    if (policy.max_queued > 0) caps.push_back(absl::StrCat(caller, "=", policy.max_queued));
  }
  std::sort(weights.begin(), weights.end());
  std::sort(caps.begin(), caps.end());
  const RetryOptions& retry = config.retry;
  return absl::StrCat(
      "identify_rate=", FormatRate(rl.identify.rate), " track_rate=", FormatRate(rl.track.rate),
      " delete_rate=", FormatRate(rl.deletes.rate),
      " job_read_rate=", FormatRate(rl.job_reads.rate),
      " ratelimit_spacing_margin=", absl::FormatDuration(rl.spacing_margin),
      " admission_headroom=", absl::FormatDuration(rl.limiter.admission_headroom),
      " max_upstream_pause=", absl::FormatDuration(rl.limiter.max_upstream_pause),
      " job_lane_poll_interval=", absl::FormatDuration(rl.job_lanes.poll_interval),
      " job_lane_max_waiting=", rl.job_lanes.max_waiting,
      " budget_queues=", absl::StrJoin(queues, ","),
      " caller_weights=", absl::StrJoin(weights, ","),
      " caller_max_queued=", absl::StrJoin(caps, ","),
      " default_caller_max_queued=", rl.limiter.default_caller.max_queued,
      " ratelimit_redis=", config.redis ? config.redis->url : "", " ratelimit_redis_fallback=",
      config.redis && config.redis->fallback == RedisFallbackMode::kRefuse ? "refuse" : "local",
      " ratelimit_replicas=", config.redis ? config.redis->replicas : 1,
      " retry_max_attempts=", retry.max_attempts,
      " retry_initial_backoff=", absl::FormatDuration(retry.initial_backoff),
      " retry_max_backoff=", absl::FormatDuration(retry.max_backoff),
      " retry_budget_ratio=", retry.budget.retry_ratio,
      " circuit_breaker=", retry.circuit_breaker.enabled ? "true" : "false",
      " circuit_failure_ratio=", retry.circuit_breaker.failure_ratio,
      " circuit_min_calls=", retry.circuit_breaker.min_calls_in_window,
      " circuit_window=", absl::FormatDuration(retry.circuit_breaker.window),
      " circuit_open_duration=", absl::FormatDuration(retry.circuit_breaker.open_duration),
      " circuit_half_open_share=", retry.circuit_breaker.half_open_share,
      " circuit_half_open_probes=", retry.circuit_breaker.half_open_probes);
}

}  // namespace userpilot::gateway
