// Backoff policies: how long to wait before the next attempt of a call.
//
// ExponentialBackoffPolicy is truncated exponential backoff with FULL jitter (the AWS
// architecture blog's "Exponential Backoff And Jitter"): before retry n (n = 0, 1, ...) it
// waits a uniformly random time in [0, min(maximum, initial * multiplier^n)). Full jitter
// spreads the retries of many callers that failed together (one Userpilot outage) over the
// whole interval, instead of re-synchronising them into waves. The RetryingStub waits at least
// the RetryInfo delay an error carries (a 429's Retry-After) on top of this; see
// retrying_stub.h.
//
// The random source is injected (JitterSource) so tests are exact; the scheduler's clock is
// injected in the RetryingStub, so nothing here sleeps or reads the time.
//
// Thread-safety: JitterSource implementations are thread-safe (one is shared by every call).
// Clone() is const and safe concurrently on a shared prototype; a cloned policy belongs to one
// call, used from one thread at a time.
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_BACKOFF_POLICY_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_BACKOFF_POLICY_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace userpilot::gateway {

// Uniform random numbers for jitter.
class JitterSource {
 public:
  virtual ~JitterSource() = default;
  // A number uniformly distributed in [0, 1). Thread-safe.
  virtual double Uniform() = 0;
};

// A JitterSource seeded from std::random_device.
std::shared_ptr<JitterSource> MakeRandomJitterSource();
// A JitterSource that yields the same sequence for the same `seed` (for tests).
std::shared_ptr<JitterSource> MakeSeededJitterSource(uint64_t seed);

class BackoffPolicy {
 public:
  virtual ~BackoffPolicy() = default;

  // A policy with the same parameters and no history.
  virtual std::unique_ptr<BackoffPolicy> Clone() const = 0;

  // An attempt failed and will be retried: how long to wait before the next one.
  virtual absl::Duration OnCompletion() = 0;
};

class ExponentialBackoffPolicy final : public BackoffPolicy {
 public:
  // Requires 0 < initial <= maximum and multiplier >= 1 (see Validate); `jitter` not null.
  ExponentialBackoffPolicy(absl::Duration initial, absl::Duration maximum, double multiplier,
                           std::shared_ptr<JitterSource> jitter);

  // INVALID_ARGUMENT naming the first bad parameter, else OK.
  static absl::Status Validate(absl::Duration initial, absl::Duration maximum, double multiplier);

  std::unique_ptr<BackoffPolicy> Clone() const override;
  absl::Duration OnCompletion() override;

  // The upper bound of the next delay (before jitter); for tests.
  absl::Duration current_ceiling() const { return ceiling_; }

 private:
  absl::Duration initial_;
  absl::Duration maximum_;
  double multiplier_;
  std::shared_ptr<JitterSource> jitter_;
  absl::Duration ceiling_;  // min(maximum, initial * multiplier^n) for the next delay.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_BACKOFF_POLICY_H_
