#include "service/upstream/key_checker.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <utility>

namespace userpilot::gateway {

absl::string_view KeyVerdictName(KeyVerdict verdict) {
  switch (verdict) {
    case KeyVerdict::kAccepted:
      return "accepted";
    case KeyVerdict::kRejected:
      return "rejected";
    case KeyVerdict::kInconclusive:
      break;
  }
  return "inconclusive";
}

KeyVerdict KeyVerdictOf(const CallStatus& answer) {
  if (answer.ok()) return KeyVerdict::kAccepted;
  if (answer.facts().reason == ErrorReason::kUpstreamCredentialsRejected) {
    return KeyVerdict::kRejected;
  }
  return KeyVerdict::kInconclusive;
}

struct KeyChecker::Core : std::enable_shared_from_this<KeyChecker::Core> {
  Core(KeyProbe probe_in, Scheduler& scheduler_in, KeyCheckOptions options_in,
       KeyCheckObserver observer_in)
      : scheduler(scheduler_in),
        options(options_in),
        observer(std::move(observer_in)),
        probe(std::make_shared<KeyProbe>(std::move(probe_in))) {}

  // Sends one check unless stopped.
  void Check() {
    std::shared_ptr<KeyProbe> send;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopped) return;
      timer.reset();
      send = probe;
    }
    CallOptions call;
    call.deadline = scheduler.Now() + options.timeout;
    call.caller = "key-check";
    (*send)(call, [self = shared_from_this()](CallStatus answer) { self->Conclude(answer); });
  }

  // Tells the observer and sets the next check.
  void Conclude(const CallStatus& answer) {
    std::lock_guard<std::mutex> lock(mu);
    if (stopped) return;
    const KeyVerdict verdict = KeyVerdictOf(answer);
    if (observer.on_check != nullptr) observer.on_check(verdict, answer);
    if (verdict != KeyVerdict::kInconclusive) {
      const bool now_accepted = verdict == KeyVerdict::kAccepted;
      if (accepted != now_accepted) {
        accepted = now_accepted;
        if (observer.on_change != nullptr) observer.on_change(now_accepted, answer);
      }
    }
    timer = scheduler.RunAfter(options.interval, [self = shared_from_this()] { self->Check(); });
  }

  Scheduler& scheduler;
  const KeyCheckOptions options;
  KeyCheckObserver observer;

  // Held while the observer runs, so Stop() returns only after any call of it has ended.
  mutable std::mutex mu;
  // Released by Stop(): a check in flight holds this core, which must not keep what the probe
  // holds (and so the check itself) alive once the gateway lets go of it.
  std::shared_ptr<KeyProbe> probe;
  bool stopped = false;
  bool started = false;
  std::optional<Scheduler::TimerId> timer;
  std::optional<bool> accepted;
};

KeyChecker::KeyChecker(KeyProbe probe, Scheduler& scheduler, KeyCheckOptions options,
                       KeyCheckObserver observer) {
  if (probe == nullptr || options.interval <= absl::ZeroDuration() ||
      options.timeout <= absl::ZeroDuration()) {
    std::fprintf(stderr, "KeyChecker: null probe or non-positive interval/timeout\n");
    std::abort();
  }
  core_ = std::make_shared<Core>(std::move(probe), scheduler, options, std::move(observer));
}

KeyChecker::~KeyChecker() { Stop(); }

void KeyChecker::Start() {
  std::lock_guard<std::mutex> lock(core_->mu);
  if (core_->started || core_->stopped) return;
  core_->started = true;
  core_->timer = core_->scheduler.RunAfter(absl::ZeroDuration(), [core = core_] { core->Check(); });
}

void KeyChecker::Stop() {
  std::lock_guard<std::mutex> lock(core_->mu);
  if (core_->stopped) return;
  core_->stopped = true;
  core_->probe.reset();
  if (core_->timer.has_value()) core_->scheduler.Cancel(*core_->timer);
  core_->timer.reset();
}

std::optional<bool> KeyChecker::accepted() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->accepted;
}

}  // namespace userpilot::gateway
