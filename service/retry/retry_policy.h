// Retry policies: how many attempts, or how much time, one call may spend on retryable
// failures.
//
// One of three separate policies (google-cloud-cpp style): this one only counts; whether a
// failure is retryable at all is retry_decision.h's (with the idempotency policy), and how long
// to wait is the backoff policy's. The caller's deadline bounds every call regardless (the
// RetryingStub never schedules an attempt at or after it).
//
// A policy has per-call state: the RetryingStub keeps one prototype and Clone()s a fresh policy
// for every call.
//
// Thread-safety: Clone() is const and safe to call concurrently on a shared prototype; a cloned
// policy belongs to one call and is used from one thread at a time.
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_POLICY_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_POLICY_H_

#include <memory>
#include <vector>

#include "absl/time/time.h"

namespace userpilot::gateway {

class RetryPolicy {
 public:
  virtual ~RetryPolicy() = default;

  // A policy with the same limits and no history.
  virtual std::unique_ptr<RetryPolicy> Clone() const = 0;

  // The call starts at `now`, before its first attempt.
  virtual void OnCallStart(absl::Time now) = 0;

  // A retryable attempt failed at `now`. True when the policy allows another attempt.
  virtual bool OnFailure(absl::Time now) = 0;
};

// At most `max_attempts` attempts per call, the first included (1 = never retry).
class LimitedAttemptsRetryPolicy final : public RetryPolicy {
 public:
  // `max_attempts` >= 1.
  explicit LimitedAttemptsRetryPolicy(int max_attempts);

  std::unique_ptr<RetryPolicy> Clone() const override;
  void OnCallStart(absl::Time now) override { attempts_ = 1; }
  bool OnFailure(absl::Time now) override;

  int max_attempts() const { return max_attempts_; }

 private:
  int max_attempts_;
  int attempts_ = 1;  // The attempt that is running or has just failed.
};

// No retry after `max_duration` has passed since the call started.
class LimitedTimeRetryPolicy final : public RetryPolicy {
 public:
  // `max_duration` > 0.
  explicit LimitedTimeRetryPolicy(absl::Duration max_duration);

  std::unique_ptr<RetryPolicy> Clone() const override;
  void OnCallStart(absl::Time now) override { start_ = now; }
  bool OnFailure(absl::Time now) override { return now - start_ < max_duration_; }

 private:
  absl::Duration max_duration_;
  absl::Time start_ = absl::InfinitePast();
};

// Retries while every one of `policies` allows it (each sees every failure).
class AllOfRetryPolicy final : public RetryPolicy {
 public:
  explicit AllOfRetryPolicy(std::vector<std::unique_ptr<RetryPolicy>> policies);

  std::unique_ptr<RetryPolicy> Clone() const override;
  void OnCallStart(absl::Time now) override;
  bool OnFailure(absl::Time now) override;

 private:
  std::vector<std::unique_ptr<RetryPolicy>> policies_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_POLICY_H_
