// KeyChecker: asks Userpilot, at start-up and then periodically, whether it accepts the
// gateway's API key, so a wrong, revoked or wrong-region key shows as health NOT_SERVING, a
// metric and one log line, instead of only as every call failing with INTERNAL.
//
// The check is `GET /v1/validate` (KeyCheckEndpoint in upstream_rpcs.h), what Segment's
// Userpilot destination tests a key with, sent by a KeyProbe: in the gateway, one attempt
// through HttpUserpilotStub::CheckKey over the HTTP client every call uses (same headers,
// deadline, error mapping and redaction), counted in the upstream metrics under its endpoint
// (app/upstream_stack.h MakeKeyCheckProbe). It spends no budget, as Userpilot documents no
// limit for it, and passes no retry layer or circuit breaker: an answer that is not a verdict
// simply waits for the next check.
//
// Verdicts: a 2xx answer means the key is accepted; a 401/403 (ErrorReason
// kUpstreamCredentialsRejected) means it is rejected; anything else (5xx, 429, 404, a transport
// failure or timeout) is inconclusive and changes nothing, so an outage of Userpilot never
// turns the gateway's health off.
//
// Nothing waits: the first check is handed to the scheduler at Start(), the next one is set
// `interval` after the previous one ends (checks never overlap), and answers arrive on the
// HTTP client's callback thread.
//
// Thread-safety: Start() once, Stop() from any thread (idempotent; the destructor calls it).
// The observer runs on the scheduler's or the HTTP client's thread, one call at a time, never
// after Stop() has returned; it must be short and must not call back into the checker.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_KEY_CHECKER_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_KEY_CHECKER_H_

#include <memory>
#include <optional>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/common/call_result.h"
#include "service/common/scheduler.h"
#include "service/upstream/userpilot_stub.h"

namespace userpilot::gateway {

// What one check concluded.
enum class KeyVerdict {
  kAccepted,      // Userpilot answered 2xx.
  kRejected,      // Userpilot answered 401 or 403.
  kInconclusive,  // Anything else: no verdict on the key.
};
// "accepted", "rejected", "inconclusive" (a metric label value).
absl::string_view KeyVerdictName(KeyVerdict verdict);
// The verdict a check's answer gives.
KeyVerdict KeyVerdictOf(const CallStatus& answer);

struct KeyCheckOptions {
  // Between the end of one check and the start of the next. Must be positive.
  absl::Duration interval = absl::Minutes(5);
  // The deadline of one check.
  absl::Duration timeout = absl::Seconds(30);
};

// Told what the checks find.
struct KeyCheckObserver {
  // Every check's verdict and the answer it came from (metrics). May be null.
  absl::AnyInvocable<void(KeyVerdict, const CallStatus&)> on_check;
  // The key's standing changed: the first conclusive verdict, then each flip between accepted
  // (true) and rejected (false), with the answer that decided it. May be null.
  absl::AnyInvocable<void(bool accepted, const CallStatus&)> on_change;
};

// Sends one key check with `options` (deadline, caller) and calls `done` with its answer
// exactly once, never inside the call itself (from any thread). Called again only after the
// previous check's `done` ran.
using KeyProbe = absl::AnyInvocable<void(const CallOptions& options,
                                         absl::AnyInvocable<void(CallStatus) &&> done)>;

class KeyChecker {
 public:
  // `probe` is what checks call (in the gateway: MakeKeyCheckProbe); `scheduler` must outlive
  // the checker (it is only used before Stop() returns).
  KeyChecker(KeyProbe probe, Scheduler& scheduler, KeyCheckOptions options,
             KeyCheckObserver observer);
  ~KeyChecker();

  KeyChecker(const KeyChecker&) = delete;
  KeyChecker& operator=(const KeyChecker&) = delete;

  // Starts the first check at once (on the scheduler's thread) and the periodic ones after it.
  void Start();
  // No check starts after this returns, and the observer is not called again; a check in
  // flight finishes unobserved. The checker lets go of the probe (and what it holds) here.
  void Stop();

  // The standing of the key: nullopt until a check was conclusive.
  std::optional<bool> accepted() const;

 private:
  struct Core;
  std::shared_ptr<Core> core_;  // Shared with the timer and the check in flight.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_KEY_CHECKER_H_
