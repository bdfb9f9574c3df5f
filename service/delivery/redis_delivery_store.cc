#include "service/delivery/redis_delivery_store.h"

#include <future>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

// Shared by every script. ARGV[1] is always the key prefix "{<prefix>}".
constexpr char kLuaCommon[] = R"lua(
local P = ARGV[1]
local S = P .. ':stream'
local function H(id) return P .. ':d:' .. id end
local function keys_of(id)
  local n = tonumber(redis.call('HGET', H(id), 'nk') or '0')
  local ks = {}
  for i = 1, n do ks[i] = redis.call('HGET', H(id), 'k' .. i) end
  return ks
end
-- When `id` is pending, not leased, and heads all of its keys: adds it to the ready set of its
-- kind, or to the waiting set while a retry waits.
local function maybe_ready(id)
  local h = H(id)
  local f = redis.call('HMGET', h, 'state', 'owner', 'kind', 'ord', 'nb')
  if f[1] ~= 'pending' or f[2] then return end
  for _, k in ipairs(keys_of(id)) do
    if redis.call('LINDEX', P .. ':order:' .. k, 0) ~= id then return end
  end
  local nb = tonumber(f[5] or '0')
  if nb > 0 then
    redis.call('ZADD', P .. ':waiting', nb, id)
  else
    redis.call('ZADD', P .. ':ready:' .. f[3], tonumber(f[4]), id)
  end
end
-- Takes `id` out of its keys' lists; the next record of each key may become ready.
local function leave_keys(id)
  for _, k in ipairs(keys_of(id)) do
    local q = P .. ':order:' .. k
    redis.call('LREM', q, 1, id)
    local head = redis.call('LINDEX', q, 0)
    if head then maybe_ready(head) end
  end
end
-- {id, state, kind, attempts, last error, enqueue ms, finish ms, idempotency key, keys...}
local function info(id)
  local f = redis.call('HMGET', H(id), 'state', 'kind', 'att', 'err', 'enq', 'fin', 'ikey')
  if not f[1] then return false end
  local row = {id, f[1], f[2] or '0', f[3] or '0', f[4] or '', f[5] or '0', f[6] or '0', f[7] or ''}
  for _, k in ipairs(keys_of(id)) do row[#row + 1] = k end
  return row
end
local function payload_of(entry)
  local rows = redis.call('XRANGE', S, entry, entry)
  if #rows == 0 then return false end
  local fl = rows[1][2]
  for i = 1, #fl, 2 do
    if fl[i] == 'p' then return fl[i + 1] end
  end
  return false
end
)lua";

// ARGV: P, payload, kind, idempotency key, now ms, max bytes, n keys, keys...
// -> {0, id} stored | {1, id} duplicate of a key | {2, bytes held} full
constexpr char kLuaAppend[] = R"lua(
local payload, kind, ikey, now, maxb = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local nk = tonumber(ARGV[7])
if ikey ~= '' then
  local first = redis.call('GET', P .. ':idem:' .. ikey)
  if first then return {1, first} end
end
local used = tonumber(redis.call('GET', P .. ':bytes') or '0')
if used + #payload > maxb then return {2, tostring(used)} end
local n = redis.call('INCR', P .. ':seq')
local id = 'r' .. n
local entry = redis.call('XADD', S, '*', 'd', id, 'p', payload)
local fields = {'state', 'pending', 'kind', kind, 'ikey', ikey, 'enq', now, 'att', 0,
                'entry', entry, 'ord', n, 'size', #payload, 'nk', nk}
for i = 1, nk do
  fields[#fields + 1] = 'k' .. i
  fields[#fields + 1] = ARGV[7 + i]
end
redis.call('HSET', H(id), unpack(fields))
for i = 1, nk do redis.call('RPUSH', P .. ':order:' .. ARGV[7 + i], id) end
if ikey ~= '' then redis.call('SET', P .. ':idem:' .. ikey, id) end
redis.call('INCRBY', P .. ':bytes', #payload)
redis.call('ZADD', P .. ':pending', now, id)
redis.call('SADD', P .. ':kinds', kind)
maybe_ready(id)
return {0, id}
)lua";

// ARGV: P, group, consumer, max, lease ms, now ms, n kinds, kinds...
// -> { {info row, payload, in doubt 0|1}, ... }
constexpr char kLuaLease[] = R"lua(
local group, me, max, lease_ms, now = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]),
                                      tonumber(ARGV[6])
local nkinds = tonumber(ARGV[7])
local kinds = {}
for i = 1, nkinds do kinds[ARGV[7 + i]] = true end
pcall(redis.call, 'XGROUP', 'CREATE', S, group, '0', 'MKSTREAM')
-- New entries join the group (this consumer holds them until someone leases them).
redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', 10000, 'STREAMS', S, '>')
-- Leases past their time (the replica died or stalled) go back to ready; their attempt
-- stays open, so the next lease is in doubt.
local expired = redis.call('ZRANGEBYSCORE', P .. ':leased', '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', P .. ':leased', id)
  redis.call('HDEL', H(id), 'owner')
  maybe_ready(id)
end
-- Entries of consumers idle that long (dead replicas) move to this one.
redis.call('XAUTOCLAIM', S, group, me, lease_ms, '0-0', 'COUNT', 1000, 'JUSTID')
-- Retry waits that are over.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. ':waiting', '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', P .. ':waiting', id)
  redis.call('HSET', H(id), 'nb', 0)
  maybe_ready(id)
end
-- The first `max` ready records of each kind asked for, merged by order.
if nkinds == 0 then
  for _, k in ipairs(redis.call('SMEMBERS', P .. ':kinds')) do kinds[k] = true end
end
local candidates = {}
for kind, _ in pairs(kinds) do
  local r = redis.call('ZRANGE', P .. ':ready:' .. kind, 0, max - 1, 'WITHSCORES')
  for i = 1, #r, 2 do candidates[#candidates + 1] = {tonumber(r[i + 1]), r[i], kind} end
end
table.sort(candidates, function(a, b) return a[1] < b[1] end)
local out = {}
for i = 1, math.min(max, #candidates) do
  local id, kind = candidates[i][2], candidates[i][3]
  local h = H(id)
  redis.call('ZREM', P .. ':ready:' .. kind, id)
  local f = redis.call('HMGET', h, 'entry', 'open', 'doubt')
  local payload = payload_of(f[1])
  if not payload then
    -- Cannot happen unless the stream was edited by hand: a dead letter that says so.
    redis.call('HSET', h, 'state', 'dead', 'fin', now, 'err', 'stream entry lost', 'payload', '')
    redis.call('ZREM', P .. ':pending', id)
    redis.call('ZADD', P .. ':dead', redis.call('INCR', P .. ':deadseq'), id)
    leave_keys(id)
  else
    local doubt = (f[2] == '1' or f[3] == '1') and 1 or 0
    redis.call('HSET', h, 'owner', me, 'open', 1, 'doubt', doubt)
    redis.call('HINCRBY', h, 'att', 1)
    redis.call('ZADD', P .. ':leased', now + lease_ms, id)
    redis.call('XCLAIM', S, group, me, 0, f[1], 'JUSTID')
    out[#out + 1] = {info(id), payload, doubt}
  end
end
return out
)lua";

// ARGV: P, group, consumer, id, outcome (delivered|retry|dead), error, now ms, not-before ms,
// retention ms -> {0} | {1} not found | {2, state} not leased by this consumer
constexpr char kLuaComplete[] = R"lua(
local group, me, id, outcome, err, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local nb, retention = ARGV[8], ARGV[9]
local h = H(id)
local f = redis.call('HMGET', h, 'state', 'owner', 'entry', 'size', 'ikey')
if not f[1] then return {1} end
if f[1] ~= 'pending' or f[2] ~= me then
  return {2, f[1] .. (f[2] and (', leased by ' .. f[2]) or ', not leased')}
end
redis.call('ZREM', P .. ':leased', id)
redis.call('HDEL', h, 'owner')
redis.call('HSET', h, 'open', 0)
if outcome == 'retry' then
  redis.call('HSET', h, 'err', err, 'nb', nb)
  maybe_ready(id)
  return {0}
end
redis.call('ZREM', P .. ':pending', id)
if outcome == 'delivered' then
  redis.call('HSET', h, 'state', 'delivered', 'fin', now)
  redis.call('DECRBY', P .. ':bytes', f[4])
  redis.call('PEXPIRE', h, retention)
  if f[5] and f[5] ~= '' then redis.call('PEXPIRE', P .. ':idem:' .. f[5], retention) end
else
  redis.call('HSET', h, 'state', 'dead', 'fin', now, 'err', err, 'payload', payload_of(f[3]) or '')
  redis.call('ZADD', P .. ':dead', redis.call('INCR', P .. ':deadseq'), id)
end
redis.call('XACK', S, group, f[3])
redis.call('XDEL', S, f[3])
leave_keys(id)
return {0}
)lua";

// ARGV: P, group, consumer, lease ms, now ms, ids... -> {0 renewed | 1 unknown | 2 not leased
// by this consumer, ...}. A renewed lease expires lease ms from now, and its stream entry's idle
// time starts again (XCLAIM with no minimum idle time, to this consumer), so neither the lease
// expiry in Lease() nor XAUTOCLAIM hands it to another replica. The record stays at the head of
// its keys' order lists and out of the ready sets, as any leased record.
constexpr char kLuaRenew[] = R"lua(
local group, me, lease_ms, now = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local res = {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HMGET', H(id), 'state', 'owner', 'entry')
  if not f[1] then
    res[#res + 1] = 1
  elseif f[1] ~= 'pending' or f[2] ~= me then
    res[#res + 1] = 2
  else
    redis.call('ZADD', P .. ':leased', now + lease_ms, id)
    redis.call('XCLAIM', S, group, me, 0, f[3], 'JUSTID')
    res[#res + 1] = 0
  end
end
return res
)lua";

// ARGV: P, id -> info row or nil
constexpr char kLuaGet[] = R"lua(
return info(ARGV[2])
)lua";

// ARGV: P, after (dead-letter order number), max -> { {order number, info row}, ... }
constexpr char kLuaListDead[] = R"lua(
local rows = redis.call('ZRANGEBYSCORE', P .. ':dead', '(' .. ARGV[2], '+inf', 'WITHSCORES',
                        'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #rows, 2 do
  local row = info(rows[i])
  if row then out[#out + 1] = {rows[i + 1], row} end
end
return out
)lua";

// ARGV: P, ids... -> {0 | 1 not found | 2 not dead, ...}
constexpr char kLuaRedrive[] = R"lua(
local res = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local h = H(id)
  local f = redis.call('HMGET', h, 'state', 'payload', 'enq')
  if not f[1] then
    res[#res + 1] = 1
  elseif f[1] ~= 'dead' then
    res[#res + 1] = 2
  else
    local n = redis.call('INCR', P .. ':seq')
    local entry = redis.call('XADD', S, '*', 'd', id, 'p', f[2])
    redis.call('HSET', h, 'state', 'pending', 'entry', entry, 'ord', n, 'nb', 0)
    redis.call('HDEL', h, 'payload', 'fin')
    redis.call('ZREM', P .. ':dead', id)
    redis.call('ZADD', P .. ':pending', f[3], id)
    for _, k in ipairs(keys_of(id)) do redis.call('RPUSH', P .. ':order:' .. k, id) end
    maybe_ready(id)
    res[#res + 1] = 0
  end
end
return res
)lua";

// ARGV: P -> {pending, leased, dead, bytes, oldest pending enqueue ms or -1}
constexpr char kLuaStats[] = R"lua(
local oldest = redis.call('ZRANGE', P .. ':pending', 0, 0, 'WITHSCORES')
local ready = {}
for _, k in ipairs(redis.call('SMEMBERS', P .. ':kinds')) do
  ready[#ready + 1] = k
  ready[#ready + 1] = redis.call('ZCARD', P .. ':ready:' .. k)
end
return {redis.call('ZCARD', P .. ':pending'), redis.call('ZCARD', P .. ':leased'),
        redis.call('ZCARD', P .. ':dead'), tonumber(redis.call('GET', P .. ':bytes') or '0'),
        oldest[2] and tonumber(oldest[2]) or -1, ready}
)lua";

int64_t Millis(absl::Time t) { return absl::ToUnixMillis(t); }

int64_t IntOf(const RedisReply& r) {
  if (r.type == RedisReply::Type::kInteger) return r.integer;
  int64_t v = 0;
  if (r.type == RedisReply::Type::kString && absl::SimpleAtoi(r.str, &v)) return v;
  return 0;
}

// An info row from kLuaCommon's info().
std::optional<DeliveryInfo> ParseInfo(const RedisReply& r) {
  if (r.type != RedisReply::Type::kArray || r.elements.size() < 8) return std::nullopt;
  const std::vector<RedisReply>& e = r.elements;
  DeliveryInfo info;
  info.delivery_id = e[0].str;
  if (e[1].str == "delivered") {
    info.state = DeliveryState::kDelivered;
  } else if (e[1].str == "dead") {
    info.state = DeliveryState::kDead;
  }
  info.kind = static_cast<uint32_t>(IntOf(e[2]));
  info.attempts = static_cast<uint32_t>(IntOf(e[3]));
  info.last_error = e[4].str;
  info.enqueue_time = absl::FromUnixMillis(IntOf(e[5]));
  if (info.state != DeliveryState::kPending) info.finish_time = absl::FromUnixMillis(IntOf(e[6]));
  info.idempotency_key = e[7].str;
  for (size_t i = 8; i < e.size(); ++i) info.ordering_keys.push_back(e[i].str);
  return info;
}

}  // namespace

RedisDeliveryStore::RedisDeliveryStore(RedisDeliveryStoreOptions options)
    : options_(std::move(options)), prefix_(absl::StrCat("{", options_.prefix, "}")) {
  stats_snapshot_.max_bytes = options_.max_bytes;
}

RedisDeliveryStore::~RedisDeliveryStore() { Close(); }

absl::StatusOr<std::unique_ptr<RedisDeliveryStore>> RedisDeliveryStore::Open(
    RedisDeliveryStoreOptions options) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("RedisDeliveryStoreOptions: ", what));
  };
  absl::StatusOr<RedisEndpoint> endpoint = ParseRedisUrl(options.url);
  if (!endpoint.ok()) return bad(absl::StrCat("url (queue_redis): ", endpoint.status().message()));
  if (options.consumer.empty()) return bad("consumer is empty");
  if (options.prefix.empty() || absl::StrContains(options.prefix, "}")) {
    return bad("prefix must be non-empty and hold no '}'");
  }
  if (options.group.empty()) return bad("group is empty");
  if (options.max_bytes < 1) return bad("max_bytes must be positive");
  for (absl::Duration d : {options.retention, options.lease_timeout, options.command_timeout,
                           options.connect_timeout}) {
    if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
      return bad(
          "retention, lease_timeout, command_timeout and connect_timeout must be "
          "positive and finite");
    }
  }
  if (!options.clock) return bad("clock is empty");

  std::unique_ptr<RedisDeliveryStore> store(new RedisDeliveryStore(std::move(options)));
  store->url_ = endpoint->ToUrl();
  RedisClientOptions client_options;
  client_options.endpoint = *endpoint;
  client_options.command_timeout = store->options_.command_timeout;
  client_options.stall_timeout = store->options_.command_timeout + absl::Seconds(1);
  client_options.connect_timeout = store->options_.connect_timeout;
  absl::StatusOr<std::unique_ptr<RedisClient>> client = RedisClient::Create(client_options);
  if (!client.ok()) return client.status();
  store->client_ = std::move(*client);
  if (!store->client_->WaitUntilConnected(store->options_.connect_timeout)) {
    return absl::UnavailableError(
        absl::StrCat("delivery queue Redis ", store->url_, " did not answer within ",
                     absl::FormatDuration(store->options_.connect_timeout), ": ",
                     store->client_->Stats().last_error));
  }
  std::promise<absl::StatusOr<RedisReply>> info;
  store->client_->Command({"INFO", "persistence"},
                          [&info](absl::StatusOr<RedisReply> r) { info.set_value(std::move(r)); });
  absl::StatusOr<RedisReply> persistence = info.get_future().get();
  if (!persistence.ok()) return store->Unavailable(persistence.status(), "INFO persistence");
  if (store->options_.require_append_only &&
      !absl::StrContains(persistence->str, "aof_enabled:1")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "delivery queue Redis ", store->url_,
        " runs without append-only persistence: acknowledged calls could be lost in a Redis "
        "crash. Start it with --appendonly yes --appendfsync always."));
  }
  auto script = [&](const char* body) {
    return store->client_->RegisterScript(absl::StrCat(kLuaCommon, body));
  };
  store->append_ = script(kLuaAppend);
  store->lease_ = script(kLuaLease);
  store->complete_ = script(kLuaComplete);
  store->get_ = script(kLuaGet);
  store->list_dead_ = script(kLuaListDead);
  store->redrive_ = script(kLuaRedrive);
  store->renew_ = script(kLuaRenew);
  store->stats_ = script(kLuaStats);
  return store;
}

void RedisDeliveryStore::Close() {
  if (closed_.exchange(true)) return;
  if (client_) client_->Shutdown();
}

absl::Status RedisDeliveryStore::Unavailable(const absl::Status& cause,
                                             absl::string_view what) const {
  if (absl::IsCancelled(cause)) return absl::CancelledError("delivery store closed");
  return absl::UnavailableError(
      absl::StrCat("delivery queue Redis ", url_, " (", what, "): ", cause.message()));
}

void RedisDeliveryStore::Eval(RedisClient::ScriptId script, std::vector<std::string> args,
                              RedisClient::ReplyCallback done) {
  if (closed_.load()) {
    std::move(done)(absl::CancelledError("delivery store closed"));
    return;
  }
  args.insert(args.begin(), prefix_);
  client_->Eval(script, {prefix_ + ":stream"}, std::move(args), std::move(done));
}

namespace {
// A Redis error reply as a status: out of memory is "full", anything else a server fault.
absl::Status ErrorReply(const RedisReply& r, absl::string_view url) {
  if (absl::StartsWith(r.str, "OOM")) {
    return absl::ResourceExhaustedError(
        absl::StrCat("delivery queue Redis ", url, " is out of memory: ", r.str));
  }
  return absl::UnavailableError(absl::StrCat("delivery queue Redis ", url, ": ", r.str));
}
}  // namespace

void RedisDeliveryStore::Append(NewDelivery delivery, AppendCallback done) {
  if (absl::Status s = ValidateNewDelivery(delivery); !s.ok()) {
    std::move(done)(s);
    return;
  }
  const size_t size = delivery.payload.size();
  std::vector<std::string> args = {
      std::move(delivery.payload),      absl::StrCat(delivery.kind),
      delivery.idempotency_key,         absl::StrCat(Millis(options_.clock())),
      absl::StrCat(options_.max_bytes), absl::StrCat(delivery.ordering_keys.size())};
  for (std::string& k : delivery.ordering_keys) args.push_back(std::move(k));
  Eval(append_, std::move(args),
       [this, size, done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
         if (!r.ok()) {
           std::move(done)(Unavailable(r.status(), "append; not acknowledged"));
           return;
         }
         if (r->type == RedisReply::Type::kError) {
           std::move(done)(ErrorReply(*r, url_));
           return;
         }
         if (r->type != RedisReply::Type::kArray || r->elements.size() != 2) {
           std::move(done)(absl::InternalError("delivery queue Redis: unexpected append reply"));
           return;
         }
         const int64_t code = IntOf(r->elements[0]);
         {
           std::lock_guard<std::mutex> lock(mu_);
           ++(code == 2   ? stats_snapshot_.refused_full
              : code == 1 ? stats_snapshot_.duplicates
                          : stats_snapshot_.appends);
         }
         if (code == 2) {
           std::move(done)(absl::ResourceExhaustedError(absl::StrCat(
               "delivery queue full: Redis ", url_, " holds ", r->elements[1].str,
               " payload bytes of its ", options_.max_bytes, " (queue_max_bytes); this ", size,
               "-byte call was not stored. Retry once the backlog has drained.")));
           return;
         }
         std::move(done)(AppendResult{r->elements[1].str, code == 1});
       });
}

void RedisDeliveryStore::Lease(LeaseOptions options, LeaseCallback done) {
  if (options.max_records < 1 || options.max_records > kMaxLeaseRecords) {
    std::move(done)(
        absl::InvalidArgumentError(absl::StrCat("max_records must be 1..", kMaxLeaseRecords)));
    return;
  }
  std::vector<std::string> args = {options_.group,
                                   options_.consumer,
                                   absl::StrCat(options.max_records),
                                   absl::StrCat(absl::ToInt64Milliseconds(options_.lease_timeout)),
                                   absl::StrCat(Millis(options_.clock())),
                                   absl::StrCat(options.kinds.size())};
  for (uint32_t k : options.kinds) args.push_back(absl::StrCat(k));
  Eval(lease_, std::move(args),
       [this, done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
         if (!r.ok()) {
           std::move(done)(Unavailable(r.status(), "lease"));
           return;
         }
         if (r->type == RedisReply::Type::kError) {
           std::move(done)(ErrorReply(*r, url_));
           return;
         }
         std::vector<LeasedDelivery> out;
         for (const RedisReply& row : r->elements) {
           if (row.type != RedisReply::Type::kArray || row.elements.size() != 3) continue;
           std::optional<DeliveryInfo> info = ParseInfo(row.elements[0]);
           if (!info) continue;
           out.push_back(
               LeasedDelivery{std::move(*info), row.elements[1].str, IntOf(row.elements[2]) == 1});
         }
         std::move(done)(std::move(out));
         RefreshStats([](absl::Status) {});
       });
}

void RedisDeliveryStore::Complete(absl::string_view delivery_id, DeliveryOutcome outcome,
                                  StatusCallback done) {
  const char* kind = outcome.kind == DeliveryOutcome::Kind::kDelivered ? "delivered"
                     : outcome.kind == DeliveryOutcome::Kind::kRetry   ? "retry"
                                                                       : "dead";
  const int64_t not_before =
      outcome.not_before == absl::InfinitePast() ? 0 : Millis(outcome.not_before);
  std::string id(delivery_id);
  Eval(complete_,
       {options_.group, options_.consumer, id, kind, outcome.error,
        absl::StrCat(Millis(options_.clock())), absl::StrCat(not_before),
        absl::StrCat(absl::ToInt64Milliseconds(options_.retention))},
       [this, id, done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
         if (!r.ok()) {
           std::move(done)(Unavailable(r.status(), "complete"));
           return;
         }
         if (r->type == RedisReply::Type::kError) {
           std::move(done)(ErrorReply(*r, url_));
           return;
         }
         const int64_t code = r->elements.empty() ? -1 : IntOf(r->elements[0]);
         if (code == 0) {
           std::move(done)(absl::OkStatus());
         } else if (code == 1) {
           std::move(done)(absl::NotFoundError(absl::StrCat("delivery_id ", id, ": unknown")));
         } else {
           std::move(done)(absl::FailedPreconditionError(
               absl::StrCat("delivery_id ", id, ": not leased by ", options_.consumer, " (",
                            r->elements.size() > 1 ? r->elements[1].str : "", ")")));
         }
       });
}

void RedisDeliveryStore::Get(absl::string_view delivery_id, InfoCallback done) {
  std::string id(delivery_id);
  Eval(get_, {id}, [this, id, done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
    if (!r.ok()) {
      std::move(done)(Unavailable(r.status(), "get"));
      return;
    }
    if (r->type == RedisReply::Type::kError) {
      std::move(done)(ErrorReply(*r, url_));
      return;
    }
    std::optional<DeliveryInfo> info = ParseInfo(*r);
    if (!info) {
      std::move(done)(absl::NotFoundError(absl::StrCat(
          "delivery_id ", id, ": unknown, or delivered longer ago than the retention")));
      return;
    }
    std::move(done)(std::move(*info));
  });
}

void RedisDeliveryStore::ListDeadLetters(size_t max, absl::string_view page_token,
                                         DeadLetterCallback done) {
  int64_t after = 0;
  if (max < 1) {
    std::move(done)(absl::InvalidArgumentError("max must be at least 1"));
    return;
  }
  if (!page_token.empty() && !absl::SimpleAtoi(page_token, &after)) {
    std::move(done)(absl::InvalidArgumentError("page_token: not from this dead-letter list"));
    return;
  }
  Eval(list_dead_, {absl::StrCat(after), absl::StrCat(max + 1)},
       [this, max, done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
         if (!r.ok()) {
           std::move(done)(Unavailable(r.status(), "list dead letters"));
           return;
         }
         if (r->type == RedisReply::Type::kError) {
           std::move(done)(ErrorReply(*r, url_));
           return;
         }
         DeadLetterPage page;
         std::string last;
         for (const RedisReply& row : r->elements) {
           if (page.dead.size() == max) {
             page.next_page_token = last;
             break;
           }
           if (row.elements.size() != 2) continue;
           std::optional<DeliveryInfo> info = ParseInfo(row.elements[1]);
           if (!info) continue;
           last = absl::StrCat(IntOf(row.elements[0]));
           page.dead.push_back(std::move(*info));
         }
         std::move(done)(std::move(page));
       });
}

std::vector<absl::Status> RedisDeliveryStore::PerIdStatuses(const absl::StatusOr<RedisReply>& r,
                                                            const std::vector<std::string>& ids,
                                                            absl::string_view what,
                                                            absl::string_view refused) const {
  std::vector<absl::Status> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!r.ok()) {
      out[i] = Unavailable(r.status(), what);
    } else if (r->type != RedisReply::Type::kArray || i >= r->elements.size()) {
      out[i] = r->type == RedisReply::Type::kError ? ErrorReply(*r, url_)
                                                   : absl::InternalError("bad reply");
    } else if (const int64_t code = IntOf(r->elements[i]); code == 1) {
      out[i] = absl::NotFoundError(absl::StrCat("delivery_id ", ids[i], ": unknown"));
    } else if (code == 2) {
      out[i] = absl::FailedPreconditionError(absl::StrCat("delivery_id ", ids[i], ": ", refused));
    }
  }
  return out;
}

void RedisDeliveryStore::Redrive(std::vector<std::string> delivery_ids, RedriveCallback done) {
  std::vector<std::string> args = delivery_ids;
  Eval(redrive_, std::move(args),
       [this, ids = std::move(delivery_ids),
        done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
         std::move(done)(PerIdStatuses(r, ids, "redrive", "not dead"));
       });
}

void RedisDeliveryStore::Renew(std::vector<std::string> delivery_ids, RenewCallback done) {
  if (delivery_ids.empty()) {
    std::move(done)({});
    return;
  }
  std::vector<std::string> args = {options_.group, options_.consumer,
                                   absl::StrCat(absl::ToInt64Milliseconds(options_.lease_timeout)),
                                   absl::StrCat(Millis(options_.clock()))};
  args.insert(args.end(), delivery_ids.begin(), delivery_ids.end());
  Eval(renew_, std::move(args),
       [this, ids = std::move(delivery_ids),
        done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
         std::move(done)(PerIdStatuses(
             r, ids, "renew",
             absl::StrCat("not leased by ", options_.consumer,
                          " any more (its lease expired and another replica took it, or it was "
                          "completed)")));
       });
}

void RedisDeliveryStore::RefreshStats(StatusCallback done) {
  Eval(stats_, {}, [this, done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
    if (!r.ok() || r->type != RedisReply::Type::kArray || r->elements.size() != 6) {
      std::move(done)(r.ok() ? absl::InternalError("bad stats reply")
                             : Unavailable(r.status(), "stats"));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      DeliveryStoreStats& s = stats_snapshot_;
      s.pending = static_cast<uint64_t>(IntOf(r->elements[0]));
      s.leased = static_cast<uint64_t>(IntOf(r->elements[1]));
      s.dead = static_cast<uint64_t>(IntOf(r->elements[2]));
      s.bytes = static_cast<uint64_t>(IntOf(r->elements[3]));
      const int64_t oldest = IntOf(r->elements[4]);
      s.oldest_pending_enqueue_time =
          oldest < 0 ? absl::InfiniteFuture() : absl::FromUnixMillis(oldest);
      s.pending_by_kind.clear();
      const std::vector<RedisReply>& ready = r->elements[5].elements;
      for (size_t i = 0; i + 1 < ready.size(); i += 2) {
        const int64_t count = IntOf(ready[i + 1]);
        if (count > 0) {
          s.pending_by_kind[static_cast<uint32_t>(IntOf(ready[i]))] = static_cast<uint64_t>(count);
        }
      }
    }
    std::move(done)(absl::OkStatus());
  });
}

DeliveryStoreStats RedisDeliveryStore::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_snapshot_;
}

}  // namespace userpilot::gateway
