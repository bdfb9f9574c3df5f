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

// Keys live this long past the moment they stop mattering.
constexpr int64_t kTtlMarginMs = 1000;

// Both scripts: microsecond integers on the Redis clock. Numbers written to keys go through
// string.format('%.0f'), because Redis turns a Lua number argument into a string with 14
// significant digits, which would round 16-digit microsecond timestamps. Lua numbers are
// doubles: exact for integers below 2^53 us (~285 years since 1970).
// redis.replicate_commands() lets Redis 3.2-4.x write after TIME (effects replication); it is
// the default, and a no-op, from Redis 5 on.
// The take script is ExactWindow::Take (exact_window.cc) for up to `want` permits: keep the two
// in step.
constexpr absl::string_view kTakeScript = R"lua(
-- KEYS[1] log, KEYS[2] pace, KEYS[3] pause.
-- ARGV[1] limit, ARGV[2] window (us), ARGV[3] interval (us), ARGV[4] slack (us),
-- ARGV[5] paced (0|1), ARGV[6] want, ARGV[7] TTL margin (ms).
-- Returns {granted, wait (us) until one more could go, server time (us), paused 0|1}.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = tonumber(redis.call('GET', KEYS[3]) or 0) or 0
if pause > now then return {0, pause - now, now, 1} end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local slack = tonumber(ARGV[4])
local paced = ARGV[5] == '1'
local want = tonumber(ARGV[6])
local margin = tonumber(ARGV[7])
-- Decide at the time the grant is recorded: recorded times never go backwards.
local at = math.max(now, tonumber(redis.call('LINDEX', KEYS[1], -1) or 0) or 0)
-- The window: forget sends that left it, and any beyond `limit` (a limit lowered since).
while true do
  local oldest = redis.call('LINDEX', KEYS[1], 0)
  if not oldest or tonumber(oldest) > at - window then break end
  redis.call('LPOP', KEYS[1])
end
local count = redis.call('LLEN', KEYS[1])
if count > limit then
  redis.call('LTRIM', KEYS[1], count - limit, -1)
  count = limit
end
local pace = redis.call('HMGET', KEYS[2], 'next', 'credit', 'ask')
local next_slot = tonumber(pace[1] or '') or 0
local credit = tonumber(pace[2] or '') or 0
local ask = tonumber(pace[3] or '')
if not paced then
  -- Credit: whole intervals in which nobody asked, at most limit - 1.
  if ask == nil or at - ask >= interval * (limit - 1) then
    credit = limit - 1
  else
    credit = math.max(0, math.floor((at - ask) / interval))
  end
end
ask = math.max(ask or 0, at)
local granted = 0
local blocked = 0
while true do
  blocked = 0
  if count >= limit then blocked = tonumber(redis.call('LINDEX', KEYS[1], 0)) + window end
  local from_credit = false
  if paced and at < next_slot - slack then
    if credit > 0 then from_credit = true else blocked = math.max(blocked, next_slot - slack) end
  end
  if blocked > at or granted >= want then break end
  redis.call('RPUSH', KEYS[1], string.format('%.0f', at))
  count = count + 1
  granted = granted + 1
  if paced then
    if from_credit then credit = credit - 1 else next_slot = math.max(next_slot, at) + interval end
  end
end
if granted > 0 then redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + margin) end
redis.call('HSET', KEYS[2], 'next', string.format('%.0f', next_slot), 'credit',
           string.format('%.0f', credit), 'ask', string.format('%.0f', ask))
redis.call('PEXPIRE', KEYS[2], math.ceil(math.max(window, next_slot - now) / 1000) + margin)
local wait = 0
if blocked > now then wait = blocked - now end
return {granted, wait, now, 0}
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

// The window in whole microseconds, rounded up.
int64_t WindowMicros(const RateSpec& spec) {
  return absl::ToInt64Microseconds(absl::Ceil(spec.window, absl::Microseconds(1)));
}

// ceil(window / limit) in whole microseconds (0 when the spec is unusable).
int64_t IntervalMicros(const RateSpec& spec) {
  if (spec.limit <= 0 || spec.window <= absl::ZeroDuration() ||
      spec.window == absl::InfiniteDuration()) {
    return 0;
  }
  return (WindowMicros(spec) + spec.limit - 1) / spec.limit;
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
      log_key_(absl::StrCat(options.key_prefix, ":{", spec_.name, "}:log")),
      pace_key_(absl::StrCat(options.key_prefix, ":{", spec_.name, "}:pace")),
      pause_key_(absl::StrCat(options.key_prefix, ":{", spec_.name, "}:pause")),
      take_script_(client_->RegisterScript(std::string(kTakeScript))),
      pause_script_(client_->RegisterScript(std::string(kPauseScript))),
      shared_(std::make_shared<Shared>(std::move(options.clock))) {}

RedisTokenSource::~RedisTokenSource() = default;

void RedisTokenSource::Decide(TakeKind kind, int64_t want, DecisionDone done) {
  client_->Eval(take_script_, {log_key_, pace_key_, pause_key_},
                {std::to_string(spec_.limit), std::to_string(WindowMicros(spec_)),
                 std::to_string(absl::ToInt64Microseconds(interval_)),
                 std::to_string(absl::ToInt64Microseconds(spec_.tolerance)),
                 kind == TakeKind::kPaced ? "1" : "0", std::to_string(std::max<int64_t>(1, want)),
                 std::to_string(kTtlMarginMs)},
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
                  d.granted = reply->elements[0].integer;
                  d.wait = absl::Microseconds(reply->elements[1].integer);
                  d.server_time = absl::FromUnixMicros(reply->elements[2].integer);
                  d.paused = reply->elements[3].integer == 1;
                  std::move(done)(d);
                });
}

void RedisTokenSource::Take(absl::Time now, TakeKind kind, int64_t want, Done done) {
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
  Decide(kind, want,
         [done = std::move(done), now, asked,
          shared = shared_](absl::StatusOr<RedisDecision> d) mutable {
           if (!d.ok()) {
             std::move(done)(std::move(d).status());
             return;
           }
           TakeResult result;
           result.granted = d->granted;
           if (d->wait > absl::ZeroDuration()) {
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
  const absl::Duration length = until - shared_->clock();
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
