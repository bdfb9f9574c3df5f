// A small non-blocking Redis client for the rate limiter: hiredis's async API driven by one
// event thread of its own, with per-command deadlines, a bound on commands in flight, and
// reconnection with backoff. Nothing else in the gateway includes hiredis.
//
// One RedisClient carries every budget's commands over one connection (replies arrive in
// order; Redis runs them one at a time anyway). Command()/Eval() never block: they enqueue,
// wake the event thread and return. The event thread polls the socket and a wakeup eventfd.
//
// Failure model, all reported as UNAVAILABLE so callers can fall back:
//  - not connected (yet, or after a drop): a command fails at once, it is not queued;
//  - a command not answered by its deadline (default 50 ms) completes with UNAVAILABLE; its
//    reply, if it ever comes, is discarded. It keeps its in-flight slot until the reply (or the
//    connection) goes, so a hung server cannot make memory grow;
//  - more than `max_in_flight` commands outstanding: the excess fails at once;
//  - a connection whose oldest command has waited `stall_timeout` is dropped (a hung or
//    partitioned server); connection loss fails every outstanding command;
//  - reconnects are attempted with truncated exponential backoff and jitter; a connection is
//    usable only after it answered its handshake (SELECT db when db != 0, then PING), because a
//    frozen server's kernel still accepts TCP connections.
// Connecting resolves the host name on the event thread (hiredis 0.14 calls getaddrinfo);
// prefer an IP address or a name in /etc/hosts, since a slow DNS lookup delays deadlines.
//
// Scripts: RegisterScript() once, then Eval(): EVALSHA when the script's SHA1 is known
// (learned from SCRIPT LOAD, sent the first time the script is used), EVAL otherwise, and on a
// NOSCRIPT error (a restarted or flushed server) the same command is resent as EVAL within its
// deadline.
//
// Thread-safety: every public method may be called from any thread. Reply callbacks run on the
// event thread, one at a time, never inside Command()/Eval() (exception: after Shutdown() they
// run inline with CANCELLED); they must be short and must not block, call Shutdown() or
// destroy the client.
#ifndef USERPILOT_GATEWAY_SERVICE_REDIS_REDIS_CLIENT_H_
#define USERPILOT_GATEWAY_SERVICE_REDIS_REDIS_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/redis/redis_url.h"

namespace userpilot::gateway {

struct RedisClientOptions {
  RedisEndpoint endpoint;
  // Default time a command may take from Command()/Eval() to its reply. Positive.
  absl::Duration command_timeout = absl::Milliseconds(50);
  // Commands accepted and not yet answered (including ones past their deadline whose reply is
  // still owed), at most. The excess fails at once with UNAVAILABLE. >= 1.
  size_t max_in_flight = 1024;
  // TCP connect plus handshake, at most; then the attempt is abandoned and retried. Positive.
  absl::Duration connect_timeout = absl::Milliseconds(500);
  // A connection whose oldest unanswered command has waited this long is dropped and
  // reconnected. Must be >= command_timeout.
  absl::Duration stall_timeout = absl::Seconds(1);
  // Reconnect backoff: the n-th consecutive failure waits min(max, initial * 2^n) scaled by a
  // random factor in [0.5, 1]. 0 < initial <= max.
  absl::Duration reconnect_initial_backoff = absl::Milliseconds(100);
  absl::Duration reconnect_max_backoff = absl::Seconds(5);
};

// A reply, copied out of hiredis so that its types stay in the .cc file.
struct RedisReply {
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError.
  int64_t integer = 0;
  std::vector<RedisReply> elements;  // kArray.
};

// A snapshot for metrics and tests. Counters count since Create().
struct RedisClientStats {
  bool connected = false;  // Handshake answered and the connection not dropped since.
  bool healthy = false;    // connected, and no deadline missed since the last reply.
  size_t in_flight = 0;
  uint64_t connects = 0;          // Successful handshakes.
  uint64_t connect_failures = 0;  // Failed attempts (refused, timed out, handshake error).
  uint64_t disconnects = 0;       // Ready connections lost or dropped.
  uint64_t commands = 0;          // Commands written to Redis.
  uint64_t timeouts = 0;          // Commands completed UNAVAILABLE at their deadline.
  uint64_t rejected_not_connected = 0;
  uint64_t rejected_in_flight = 0;  // Refused because max_in_flight were outstanding.
  uint64_t noscript_retries = 0;    // EVALSHA answered NOSCRIPT and resent as EVAL.
  std::string last_error;           // Latest connection-level error, for logs (no secrets).
};

class RedisClient {
 public:
  using ReplyCallback = absl::AnyInvocable<void(absl::StatusOr<RedisReply>) &&>;
  using ScriptId = int;

  // Validates `options` (INVALID_ARGUMENT naming the field) and starts the event thread, which
  // starts connecting. Does not wait for the connection: see WaitUntilConnected().
  static absl::StatusOr<std::unique_ptr<RedisClient>> Create(RedisClientOptions options);

  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;
  // Shutdown(). Must not run on the event thread (aborts there).
  ~RedisClient();

  // Sends `argv` (a Redis command: {"GET", "key"}). `done` gets the reply (a Redis error reply
  // is an OK status holding a kError reply) or UNAVAILABLE (not connected, deadline, too many
  // in flight, connection lost) or CANCELLED (shut down).
  void Command(std::vector<std::string> argv, ReplyCallback done);
  void Command(std::vector<std::string> argv, absl::Time deadline, ReplyCallback done);

  // Registers a Lua script body; the same body always gets the same id. Cheap, thread-safe.
  ScriptId RegisterScript(std::string body);
  // EVALSHA/EVAL of a registered script with `keys` and `args`; replies as Command().
  void Eval(ScriptId script, std::vector<std::string> keys, std::vector<std::string> args,
            ReplyCallback done);

  // Runs `fn` on the event thread soon (inline after Shutdown()). For completing callers'
  // callbacks off their own thread.
  void Post(absl::AnyInvocable<void() &&> fn);

  // Connected and no command has missed its deadline since the last reply: worth asking.
  // A lock-free read; may be stale by the time it is used.
  bool healthy() const;

  // Blocks until connected or `timeout` passes; true when connected. For start-up and tests
  // only: never call it on a gRPC, curl or event thread.
  bool WaitUntilConnected(absl::Duration timeout);

  RedisClientStats Stats() const;
  const RedisClientOptions& options() const;

  // Closes the connection, completes every outstanding and queued command with CANCELLED, and
  // joins the event thread. Idempotent; not from the event thread.
  void Shutdown();

 private:
  class Impl;
  explicit RedisClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_REDIS_REDIS_CLIENT_H_
