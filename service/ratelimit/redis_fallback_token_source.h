// FallbackTokenSource: what a budget does when its shared Redis state cannot be reached.
//
// It wraps a RedisTokenSource and, in `local` mode, an in-process source holding this
// replica's share of the budget, 1/N of it for N replicas (LocalShare()):
//   - Redis healthy (connected, answering within the command deadline): Redis decides;
//   - Redis not healthy: the local source decides at once, without a round trip;
//   - a Redis Take() that fails anyway (deadline, in-flight bound, error reply): the local
//     source decides that call.
// It goes back to Redis by itself as soon as the client reconnects (or a late reply shows the
// server answering again). In `refuse` mode the Redis error reaches the caller (UNAVAILABLE),
// so FairLimiter refuses the call.
//
// The local share is floor(limit / N) requests per window (at least 1): with all N replicas cut
// off from Redis, each holds at most its share in any window, so together they stay within the
// limit (a burst of each replica's share fits too). With fewer permits than replicas (delete:
// 1 per 2 s), each replica gets 1 per ceil(N / limit) windows: the long-run rate stays within
// the limit, but one window can then hold up to N. Not covered: the switch itself (grants made
// through Redis in the last window are unknown to the local source, and vice versa, so the
// window around a switch can hold up to about twice the limit), and a split where some replicas
// still reach Redis while others do not. `refuse` avoids both at the cost of availability.
//
// PauseUntil() pauses both sources, so a 429 pauses this replica whichever one decides.
// spec() is the configured (full) spec in both modes.
//
// While Redis is not healthy in `local` mode, TryTakeNow() and Plan() answer from the local
// share (so FairLimiter admits without a hop and estimates exactly, as for one replica);
// otherwise they defer to Take(), which asks Redis.
//
// Thread-safety: thread-safe. `done` runs on the Redis event thread, or inline for a local
// decision made without asking Redis (as LocalTokenSource does). Outstanding Take()s complete
// even if the source is destroyed first.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_FALLBACK_TOKEN_SOURCE_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_FALLBACK_TOKEN_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/ratelimit/redis_token_source.h"
#include "service/ratelimit/token_source.h"

namespace userpilot::gateway {

// `--ratelimit_redis_fallback`.
enum class RedisFallbackMode {
  kLocal,   // Decide with this replica's 1/N share of the budget.
  kRefuse,  // Take() fails with UNAVAILABLE.
};

// "local" or "refuse"; INVALID_ARGUMENT otherwise.
absl::StatusOr<RedisFallbackMode> ParseRedisFallbackMode(absl::string_view text);
absl::string_view RedisFallbackModeName(RedisFallbackMode mode);

// Counters, shared by every budget a factory makes (so one set of metrics covers them all) or
// private to one source. Monotonic; read with Snapshot().
struct RedisFallbackCounters {
  std::atomic<uint64_t> redis_decisions{0};  // Take()s Redis answered.
  std::atomic<uint64_t> local_decisions{0};  // Take()s the local share answered (fallbacks).
  std::atomic<uint64_t> redis_errors{0};     // Redis Take()s that failed (any mode).
  std::atomic<uint64_t> refused{0};          // Errors passed to the caller (refuse mode).

  struct Snapshot {
    uint64_t redis_decisions = 0;
    uint64_t local_decisions = 0;
    uint64_t redis_errors = 0;
    uint64_t refused = 0;
  };
  Snapshot Read() const;
};

class FallbackTokenSource final : public TokenSource {
 public:
  // This replica's share of `spec` among `replicas` (>= 1): floor(limit / N) per window, or
  // 1 per ceil(N / limit) windows when limit < N (see the file comment).
  static RateSpec LocalShare(const RateSpec& spec, int replicas);

  // `local` must be non-null in kLocal mode (built from LocalShare(redis->spec(), N)); it is
  // ignored in kRefuse mode. `counters` may be null (then private ones are used). `clock` is
  // the callers' clock, as for RedisTokenSource.
  FallbackTokenSource(std::unique_ptr<RedisTokenSource> redis, std::unique_ptr<TokenSource> local,
                      RedisFallbackMode mode, RedisClockFn clock,
                      std::shared_ptr<RedisFallbackCounters> counters = nullptr);

  void Take(absl::Time now, TakeKind kind, int64_t want, Done done) override;
  std::optional<TakeResult> TryTakeNow(absl::Time now, TakeKind kind) override;
  bool Plan(absl::Time now, int64_t count, absl::Time start, absl::Duration min_spacing,
            std::vector<absl::Time>* times) const override;
  void PauseUntil(absl::Time until) override;
  RateSpec spec() const override { return redis_->spec(); }
  std::optional<int64_t> Available(absl::Time now) const override;

  RedisFallbackMode mode() const { return mode_; }
  const RedisFallbackCounters& counters() const { return *counters_; }
  RedisTokenSource& redis() { return *redis_; }

 private:
  // Redis is down and the local share decides (local mode).
  bool LocalDecides() const;

  const std::unique_ptr<RedisTokenSource> redis_;
  const std::shared_ptr<TokenSource> local_;  // Shared with pending Redis callbacks.
  const RedisFallbackMode mode_;
  const RedisClockFn clock_;
  const std::shared_ptr<RedisFallbackCounters> counters_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_FALLBACK_TOKEN_SOURCE_H_
