// RedisTokenSource: a budget's permits shared by every gateway replica that uses the same
// Userpilot API key, decided atomically inside Redis by the same rule as one replica's
// (ExactWindow, exact_window.h), so N replicas together behave like one.
//
// Each Take() runs one Lua script (EVALSHA; EVAL after a NOSCRIPT) on the budget's keys
//   <prefix>:{<budget>}:log     a list of the send times of the last window, oldest first
//                               (microseconds, Redis clock; at most `limit` entries)
//   <prefix>:{<budget>}:pace    a hash: next (the pace slot), credit, ask (the last ask)
//   <prefix>:{<budget>}:pause   the shared pause-until (after a 429), microseconds
// (one hash tag, so all keys sit in one Redis Cluster slot). The script reads the server's
// clock with TIME, never a replica's, so replicas with skewed clocks agree:
//   now = TIME; if pause > now: refuse
//   drop the log's entries at or before now - window (LPOP; O(1) amortised)
//   kind immediate: credit = min(limit - 1, whole intervals since `ask`); ask = now
//   up to `want` times: refuse if the log holds `limit` (wait until its oldest + window), or
//     if paced, without credit, before next - slack (wait until then); else RPUSH now, and if
//     paced spend a credit or move next to max(next, now) + interval
// and answers {granted, wait until one more could go, server time, paused}. The list is O(1)
// per grant (LINDEX at both ends, RPUSH, LPOP); keys expire once they no longer constrain
// anything (the log a window after its last send, the pace hash a window after its last ask).
// interval = ceil(window / limit) in whole microseconds, slack = `spec.tolerance`.
//
// One Take() may ask for up to `want` permits: a burst waiting for a round trip is admitted by
// one script run. FairLimiter admits a Redis-shared budget's calls asynchronously (TryTakeNow()
// and Plan() are not available: the shared state is in Redis).
//
// PauseUntil() stores the pause in Redis (a second script keeps the later of the stored and the
// new pause), so a 429 seen by one replica pauses them all; it also pauses this source locally,
// and a pause that could not be stored (Redis down) is re-sent by the next Take() made while
// it is still in force and Redis is healthy. FairLimiter caps pauses (max_upstream_pause)
// before they reach the source.
//
// Errors: when Redis cannot decide (not connected, command deadline, too many commands in
// flight, a Redis error reply such as LOADING or OOM) Take() completes with UNAVAILABLE; the
// caller (FallbackTokenSource, or FairLimiter with the `refuse` policy) chooses what follows.
//
// Clock: `now` passed to Take() and `until` passed to PauseUntil() come from the caller's clock;
// `options.clock` must be that same clock (it measures the time a command took and turns a
// pause-until into a duration, because Redis works on its own clock).
//
// Thread-safety: thread-safe. Take() does not complete inline: `done` runs on the RedisClient's
// event thread (see redis_client.h for what callbacks may do there); only after the client has
// been shut down does it run inline, with CANCELLED. The source may be destroyed while Take()s
// are outstanding: they still complete.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_TOKEN_SOURCE_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_TOKEN_SOURCE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/ratelimit/token_source.h"
#include "service/redis/redis_client.h"

namespace userpilot::gateway {

// The caller's clock (a Scheduler's Now(), or absl::Now).
using RedisClockFn = std::function<absl::Time()>;

struct RedisTokenSourceOptions {
  // First part of every key. Replicas that share a budget must use the same prefix; use
  // different prefixes for different API keys on one Redis. No '{', '}' or whitespace.
  std::string key_prefix = "upgw";
  // See "Clock" above. Default: the real clock.
  RedisClockFn clock = [] { return absl::Now(); };
};

// One decision as Redis made it (for tests and diagnostics; Take() is built on it).
struct RedisDecision {
  int64_t granted = 0;
  bool paused = false;                            // Refused because of the shared pause.
  absl::Duration wait = absl::ZeroDuration();     // Until one more permit could be taken.
  absl::Time server_time = absl::InfinitePast();  // Redis TIME when the script ran.
};

class RedisTokenSource final : public TokenSource {
 public:
  using DecisionDone = absl::AnyInvocable<void(absl::StatusOr<RedisDecision>) &&>;

  // INVALID_ARGUMENT for a bad spec (limit <= 0, window not positive and finite, an interval
  // under 1 us), a budget name or key prefix holding '{', '}' or whitespace, or an empty prefix.
  static absl::Status Validate(const RateSpec& spec, const RedisTokenSourceOptions& options);

  // `client` is shared by every budget of the process. Aborts on what Validate() rejects.
  RedisTokenSource(std::shared_ptr<RedisClient> client, RateSpec spec,
                   RedisTokenSourceOptions options = {});
  ~RedisTokenSource() override;

  void Take(absl::Time now, TakeKind kind, int64_t want, Done done) override;
  void PauseUntil(absl::Time until) override;
  RateSpec spec() const override { return spec_; }

  // Runs the script for up to `want` permits and reports Redis's view; no local pause check.
  // `done` runs on the event thread.
  void Decide(TakeKind kind, int64_t want, DecisionDone done);

  // The client is connected and answering in time: worth asking (FallbackTokenSource skips
  // Redis while this is false).
  bool available() const { return client_->healthy(); }

  // The pace of waiting calls in Redis, ceil(window / limit) in whole microseconds.
  absl::Duration interval() const { return interval_; }
  const std::string& log_key() const { return log_key_; }
  const std::string& pace_key() const { return pace_key_; }
  const std::string& pause_key() const { return pause_key_; }

  // The Lua sources, for review and tests.
  static absl::string_view TakeScript();
  static absl::string_view PauseScript();

 private:
  struct Shared;
  void SendPause(absl::Time until);

  const std::shared_ptr<RedisClient> client_;
  const RateSpec spec_;
  const absl::Duration interval_;
  const std::string log_key_;
  const std::string pace_key_;
  const std::string pause_key_;
  const RedisClient::ScriptId take_script_;
  const RedisClient::ScriptId pause_script_;
  const std::shared_ptr<Shared> shared_;  // Pause state, shared with pending callbacks.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_TOKEN_SOURCE_H_
