#include "service/ratelimit/redis_token_source.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

// Keys live this long past the moment they stop mattering (tat or pause-until reached).
constexpr int64_t kTtlMarginMs = 1000;
// A pause longer than this is stored as this long (a Retry-After of days is a bug upstream).
constexpr absl::Duration kMaxPause = absl::Hours(24);

// Both scripts: microsecond integers on the Redis clock. Numbers written to keys go through
// string.format('%.0f'), because Redis turns a Lua number argument into a string with 14
// significant digits, which would round 16-digit microsecond timestamps. Lua numbers are
// doubles: exact for integers below 2^53 us (~285 years since 1970).
// redis.replicate_commands() lets Redis 3.2-4.x write after TIME (effects replication); it is
// the default, and a no-op, from Redis 5 on.
constexpr absl::string_view kTakeScript = R"lua(
-- KEYS[1] tat, KEYS[2] pause; ARGV[1] interval (us), ARGV[2] TTL margin (ms),
-- ARGV[3] tolerance (us).
-- Returns {granted 0|1, wait us, server time us, paused 0|1}.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = tonumber(redis.call('GET', KEYS[2]) or 0) or 0
if pause > now then return {0, pause - now, now, 1} end
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
local tolerance = tonumber(ARGV[3] or 0) or 0
if tat - tolerance > now then return {0, tat - tolerance - now, now, 0} end
local interval = tonumber(ARGV[1])
local next_tat = math.max(tat, now) + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
           'PX', math.ceil((next_tat - now) / 1000) + tonumber(ARGV[2]))
return {1, 0, now, 0}
)lua";

constexpr absl::string_view kPauseScript = R"lua(
-- KEYS[1] pause; ARGV[1] pause length from now (us), ARGV[2] TTL margin (ms).
-- Keeps the later of the stored and the new pause. Returns {pause-until us, server time us}.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wanted = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if current >= wanted then return {current, now} end
redis.call('SET', KEYS[1], string.format('%.0f', wanted),
           'PX', math.ceil((wanted - now) / 1000) + tonumber(ARGV[2]))
return {wanted, now}
)lua";

bool IsKeySafe(absl::string_view s) {
  for (char c : s) {
    if (c == '{' || c == '}' || absl::ascii_isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// ceil(window / limit) in whole microseconds (0 when the spec is unusable).
int64_t IntervalMicros(const RateSpec& spec) {
  if (spec.limit <= 0 || spec.window <= absl::ZeroDuration() ||
      spec.window == absl::InfiniteDuration()) {
    return 0;
  }
  const int64_t window_us =
      absl::ToInt64Microseconds(absl::Ceil(spec.window, absl::Microseconds(1)));
  return (window_us + spec.limit - 1) / spec.limit;
}

const RateSpec& Checked(const RateSpec& spec, const RedisTokenSourceOptions& options) {
  if (absl::Status s = RedisTokenSource::Validate(spec, options); !s.ok()) {
    std::fprintf(stderr, "RedisTokenSource: %s\n", s.ToString().c_str());
    std::abort();
  }
  return spec;
}

bool IsIntegerArray(const RedisReply& r, size_t n) {
  if (r.type != RedisReply::Type::kArray || r.elements.size() != n) return false;
  for (const RedisReply& e : r.elements) {
    if (e.type != RedisReply::Type::kInteger) return false;
  }
  return true;
}

absl::Status ReplyError(const RedisReply& r, absl::string_view what) {
  if (r.type == RedisReply::Type::kError) {
    // LOADING, BUSY, OOM, READONLY, ...: Redis cannot decide now.
    return absl::UnavailableError(absl::StrCat("redis ", what, ": ", r.str));
  }
  return absl::InternalError(absl::StrCat("redis ", what, ": unexpected reply"));
}

}  // namespace

struct RedisTokenSource::Shared {
  explicit Shared(RedisClockFn c) : clock(std::move(c)) {}
  const RedisClockFn clock;
  std::mutex mu;
  absl::Time pause_until = absl::InfinitePast();  // Caller's clock. Guarded by mu.
  bool pause_stored = true;    // pause_until is known to be in Redis. Guarded by mu.
  bool pause_sending = false;  // A pause command is outstanding. Guarded by mu.
};

absl::string_view RedisTokenSource::TakeScript() { return kTakeScript; }
absl::string_view RedisTokenSource::PauseScript() { return kPauseScript; }

absl::Status RedisTokenSource::Validate(const RateSpec& spec,
                                        const RedisTokenSourceOptions& options) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("redis budget '", spec.name, "': ", what));
  };
  if (spec.limit <= 0) return bad("limit must be positive");
  if (spec.window <= absl::ZeroDuration() || spec.window == absl::InfiniteDuration()) {
    return bad("window must be positive and finite");
  }
  if (spec.window < absl::Microseconds(1) * spec.limit) {
    return bad("window / limit must be at least 1 us");
  }
  if (spec.name.empty() || !IsKeySafe(spec.name)) {
    return bad("the name must be non-empty without '{', '}' or whitespace");
  }
  if (options.key_prefix.empty() || !IsKeySafe(options.key_prefix)) {
    return bad("key_prefix must be non-empty without '{', '}' or whitespace");
  }
  if (!options.clock) return bad("clock is not set");
  return absl::OkStatus();
}

RedisTokenSource::RedisTokenSource(std::shared_ptr<RedisClient> client, RateSpec spec,
                                   RedisTokenSourceOptions options)
    : client_(std::move(client)),
      spec_(Checked(spec, options)),
      interval_(absl::Microseconds(IntervalMicros(spec_))),
      tat_key_(absl::StrCat(options.key_prefix, ":{", spec_.name, "}:tat")),
      pause_key_(absl::StrCat(options.key_prefix, ":{", spec_.name, "}:pause")),
      take_script_(client_->RegisterScript(std::string(kTakeScript))),
      pause_script_(client_->RegisterScript(std::string(kPauseScript))),
      shared_(std::make_shared<Shared>(std::move(options.clock))) {}

RedisTokenSource::~RedisTokenSource() = default;

void RedisTokenSource::Decide(DecisionDone done) {
  client_->Eval(take_script_, {tat_key_, pause_key_},
                {std::to_string(absl::ToInt64Microseconds(interval_)), std::to_string(kTtlMarginMs),
                 std::to_string(absl::ToInt64Microseconds(spec_.tolerance))},
                [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
                  if (!reply.ok()) {
                    std::move(done)(std::move(reply).status());
                    return;
                  }
                  if (!IsIntegerArray(*reply, 4)) {
                    std::move(done)(ReplyError(*reply, "rate-limit script"));
                    return;
                  }
                  RedisDecision d;
                  d.granted = reply->elements[0].integer == 1;
                  d.wait = absl::Microseconds(reply->elements[1].integer);
                  d.server_time = absl::FromUnixMicros(reply->elements[2].integer);
                  d.paused = reply->elements[3].integer == 1;
                  std::move(done)(d);
                });
}

void RedisTokenSource::Take(absl::Time now, Done done) {
  absl::Time paused_until = absl::InfinitePast();
  bool resend = false;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (now < shared_->pause_until) {
      paused_until = shared_->pause_until;
      if (!shared_->pause_stored && !shared_->pause_sending && client_->healthy()) {
        shared_->pause_sending = true;
        resend = true;
      }
    }
  }
  if (paused_until > now) {
    // Paused here already: no need to ask Redis (its pause, if stored, is the same or later).
    if (resend) SendPause(paused_until);
    client_->Post([done = std::move(done), paused_until]() mutable {
      TakeResult result;
      result.retry_at = paused_until;
      std::move(done)(result);
    });
    return;
  }
  const absl::Time asked = shared_->clock();
  Decide([done = std::move(done), now, asked,
          shared = shared_](absl::StatusOr<RedisDecision> d) mutable {
    if (!d.ok()) {
      std::move(done)(std::move(d).status());
      return;
    }
    TakeResult result;
    result.granted = d->granted;
    if (!d->granted) {
      // Redis measured the wait from when it ran the script; count the reply's trip too.
      const absl::Duration elapsed = std::max(absl::ZeroDuration(), shared->clock() - asked);
      result.retry_at = now + elapsed + d->wait;
    }
    std::move(done)(result);
  });
}

void RedisTokenSource::PauseUntil(absl::Time until) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (until <= shared_->pause_until) return;
    shared_->pause_until = until;
    shared_->pause_stored = false;
    shared_->pause_sending = true;
  }
  SendPause(until);
}

void RedisTokenSource::SendPause(absl::Time until) {
  const absl::Duration length = std::min(until - shared_->clock(), kMaxPause);
  if (length <= absl::ZeroDuration()) {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->pause_sending = false;
    return;
  }
  client_->Eval(
      pause_script_, {pause_key_},
      {std::to_string(absl::ToInt64Microseconds(absl::Ceil(length, absl::Microseconds(1)))),
       std::to_string(kTtlMarginMs)},
      [shared = shared_, until](absl::StatusOr<RedisReply> reply) {
        std::lock_guard<std::mutex> lock(shared->mu);
        shared->pause_sending = false;
        if (reply.ok() && IsIntegerArray(*reply, 2) && shared->pause_until == until) {
          shared->pause_stored = true;
        }
      });
}

}  // namespace userpilot::gateway
