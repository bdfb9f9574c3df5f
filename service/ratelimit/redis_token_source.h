// RedisTokenSource: a budget's permits shared by every gateway replica that uses the same
// Userpilot API key, decided atomically inside Redis.
//
// Each Take() runs one Lua script (EVALSHA; EVAL after a NOSCRIPT) on the budget's keys
//   <prefix>:{<budget>}:tat     the GCRA theoretical arrival time, microseconds, Redis clock
//   <prefix>:{<budget>}:pause   the shared pause-until (after a 429), microseconds, Redis clock
// (one hash tag, so both keys sit in one Redis Cluster slot). The script reads the server's
// clock with TIME, never a replica's, so replicas with skewed clocks agree:
//   now = TIME
//   if pause > now:              refuse, wait = pause - now
//   if tat - tolerance > now:    refuse, wait = tat - tolerance - now
//   else:                        grant, tat = max(tat, now) + interval  (SET ... PX until tat
//                                + 1 s: keys expire once they no longer constrain anything)
// with interval = ceil(window / limit) in whole microseconds, no burst, and `spec.tolerance`
// (token_source.h: timer slack, so that a replica waking a little late to its turn does not
// waste that time). Grants are thus at least `interval` apart on the Redis clock on average and
// never more than `tolerance` early, so any window of length `window - tolerance` holds at most
// `limit` of them, across all replicas (gcra.h has the proof); MakeBudgets gives the source a
// window with that slack. What a replica adds afterwards - its
// network path to Userpilot - is outside any token source; keep a margin in the limit if that
// jitter matters.
//
// PauseUntil() stores the pause in Redis (a second script keeps the later of the stored and the
// new pause), so a 429 seen by one replica pauses them all; it also pauses this source locally,
// and a pause that could not be stored (Redis down) is re-sent by the next Take() made while
// it is still in force and Redis is healthy.
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
#include "service/ratelimit/redis_client.h"
#include "service/ratelimit/token_source.h"

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
  bool granted = false;
  bool paused = false;                            // Refused because of the shared pause.
  absl::Duration wait = absl::ZeroDuration();     // When refused: until a Take can succeed.
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

  void Take(absl::Time now, Done done) override;
  void PauseUntil(absl::Time until) override;
  RateSpec spec() const override { return spec_; }

  // Runs the script and reports Redis's view; no local pause check. `done` runs on the event
  // thread.
  void Decide(DecisionDone done);

  // The client is connected and answering in time: worth asking (FallbackTokenSource skips
  // Redis while this is false).
  bool available() const { return client_->healthy(); }

  // The spacing enforced in Redis, ceil(window / limit) in whole microseconds.
  absl::Duration interval() const { return interval_; }
  const std::string& tat_key() const { return tat_key_; }
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
  const std::string tat_key_;
  const std::string pause_key_;
  const RedisClient::ScriptId take_script_;
  const RedisClient::ScriptId pause_script_;
  const std::shared_ptr<Shared> shared_;  // Pause state, shared with pending callbacks.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_TOKEN_SOURCE_H_
