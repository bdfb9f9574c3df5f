// The retry layer's options (RetryingStub, its retry budget and circuit breaker), in a header of
// their own so that configuration and the stack's composition need not include the component.
// Each Validate() is defined beside what it configures.
//
// Thread-safety: values (a JitterSource, shared, is thread-safe).
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_OPTIONS_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_OPTIONS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/upstream/upstream_rpcs.h"

namespace userpilot::gateway {

class JitterSource;  // backoff_policy.h

// Which calls may be repeated: a plain function, so a test (or a future Userpilot idempotency
// key) can substitute its own. The gateway's is IdempotencyOf (upstream_rpcs.h), which reads
// gateway.proto's `idempotency_level`. Must be thread-safe.
using IdempotencyPolicy = Idempotency (*)(RpcId rpc);

struct RetryBudgetOptions {
  // Retries allowed per call started in the window. 0 disables retries beyond the reserve.
  double retry_ratio = 0.2;
  // Retries allowed per second regardless of traffic (the reserve), >= 0.
  double min_retries_per_second = 1;
  // How far back "recent" reaches, >= 1 s.
  absl::Duration window = absl::Seconds(10);

  // INVALID_ARGUMENT naming the first bad field, else OK.
  absl::Status Validate() const;
};

struct CircuitBreakerOptions {
  // False: every call is allowed and nothing is counted.
  bool enabled = true;
  // Opens when failed calls / judged calls over `window` reach this ratio, in (0, 1] ...
  double failure_ratio = 0.8;
  // ... once at least this many calls were judged in the window, >= 1.
  int64_t min_calls_in_window = 50;
  absl::Duration window = absl::Seconds(10);  // [1 s, 1 h]
  // How long each opening lasts; fixed (it never grows), in (0, 1 h].
  absl::Duration open_duration = absl::Seconds(5);
  // Half-open: this share of calls goes to Userpilot as probes, in (0, 1]; the others are
  // refused ...
  double half_open_share = 0.1;
  // ... until this many probes were judged (>= 1): the breaker closes when their failure ratio
  // stays below `failure_ratio`, and opens again as soon as it cannot.
  int half_open_probes = 10;

  // INVALID_ARGUMENT naming the first bad field, else OK.
  absl::Status Validate() const;
};

// Everything configurable about retries; defaults are the gateway's defaults.
struct RetryOptions {
  // Attempts per call, the first included (1 = never retry). 1..100.
  int max_attempts = 4;
  // No retry once this long has passed since the call started; infinite = only the caller's
  // deadline and max_attempts bound a call.
  absl::Duration max_retry_duration = absl::InfiniteDuration();

  // Full-jitter truncated exponential backoff: retry n waits U[0, min(max, initial * mult^n)).
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  double backoff_multiplier = 2.0;

  // Retries at most 20% of recent calls plus 1 a second (over 10 s).
  RetryBudgetOptions budget;

  // Opens when >= 80% of >= 50 calls judged in 10 s failed; open 5 s; then 10% of calls probe
  // until 10 were judged.
  CircuitBreakerOptions circuit_breaker;

  // The upstream host, for breaker messages and metadata ("api.userpilot.io").
  std::string upstream_host = "userpilot";

  // Which calls may be repeated: by default gateway.proto's `idempotency_level` of each RPC.
  IdempotencyPolicy idempotency = &IdempotencyOf;

  // Randomness for jitter; null = MakeRandomJitterSource().
  std::shared_ptr<JitterSource> jitter;

  // INVALID_ARGUMENT naming the first bad field, else OK. For start-up configuration checks.
  absl::Status Validate() const;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_OPTIONS_H_
