// Fault injection for the Userpilot emulator: added latency, random 5xx answers, dropped
// connections and hangs, plus an exact script ("the next N requests matching this path prefix
// answer 503 with Retry-After 2 / are dropped / hang") for deterministic tests.
//
// Faults apply to Userpilot paths (/v1/...) only, never to the /_emulator/ admin API.
// The script is consulted first: the first rule whose prefix matches the request's decoded
// path is used and its count decremented (a rule is removed when spent). Otherwise one random
// draw picks hang (hang_ratio), drop (drop_ratio) or an error (error_ratio), in that order.
//
// Thread-safety: FaultInjector is thread-safe; faults can change while requests flow. When no
// fault is configured, Decide() takes no lock.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_FAULTS_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_FAULTS_H_

#include <google/protobuf/struct.pb.h>

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace userpilot::gateway::testing {

enum class FaultAction {
  kNone,    // Answer normally.
  kStatus,  // Answer with a given status and the error body, without touching any state.
  kDrop,    // Close the connection without answering.
  kHang,    // Never answer: hold the request until max_hang passes or the emulator stops, then
            // close the connection.
};

// "kNone", "status", "drop", "hang" (the JSON names).
absl::string_view FaultActionName(FaultAction action);

// One rule of the deterministic script.
struct ScriptedFault {
  FaultAction action = FaultAction::kStatus;
  int status = 503;                        // kStatus: the status to answer (200..599).
  std::optional<int> retry_after_seconds;  // kStatus: adds `Retry-After: <seconds>`.
  std::string path_prefix;                 // Only requests whose decoded path starts with it.
  int count = 1;                           // How many matching requests the rule applies to.
};

// Every fault setting. Plain data; copy freely.
struct Faults {
  absl::Duration latency = absl::ZeroDuration();  // Added before every /v1/ answer.
  double error_ratio = 0;                         // Share of requests answered error_status.
  int error_status = 503;
  double drop_ratio = 0;  // Share of requests whose connection is closed unanswered.
  double hang_ratio = 0;  // Share of requests never answered.
  absl::Duration max_hang = absl::Seconds(30);  // A hang ends (connection closed) after this.
  std::vector<ScriptedFault> script;            // Consulted before the ratios.
};

// What to do with one request.
struct FaultDecision {
  FaultAction action = FaultAction::kNone;
  int status = 0;
  std::optional<int> retry_after_seconds;
  absl::Duration latency = absl::ZeroDuration();
  absl::Duration max_hang = absl::ZeroDuration();
};

// INVALID_ARGUMENT naming the first bad setting (ratio outside [0, 1], status outside
// 200..599, negative duration, count < 1, action kNone in the script).
absl::Status ValidateFaults(const Faults& faults);

// JSON forms, as the admin API reads and writes them (durations in milliseconds):
// {"latency_ms":0,"error_ratio":0,"error_status":503,"drop_ratio":0,"hang_ratio":0,
//  "max_hang_ms":30000,"script":[{"action":"status","status":503,"retry_after":2,
//  "path_prefix":"/v1/track","count":1}]}
std::string FaultsToJson(const Faults& faults);
// Applies the fields present in `json` (an object) over `faults`; "script" replaces the script.
absl::Status MergeFaultsFromJson(const google::protobuf::Value& json, Faults* faults);
absl::StatusOr<ScriptedFault> ScriptedFaultFromJson(const google::protobuf::Value& json);

class FaultInjector {
 public:
  explicit FaultInjector(Faults faults) { Set(std::move(faults)); }

  // Decides the fate of a request to `path` (decoded). Consumes one use of a matching scripted
  // rule. Thread-safe.
  FaultDecision Decide(absl::string_view path) ABSL_LOCKS_EXCLUDED(mu_);

  // Replaces every setting. Callers validate first (ValidateFaults). Thread-safe.
  void Set(Faults faults) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends one rule to the script. Thread-safe.
  void AddScripted(ScriptedFault fault) ABSL_LOCKS_EXCLUDED(mu_);
  // The current settings, including what is left of the script. Thread-safe.
  Faults Get() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void UpdateActiveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  Faults faults_ ABSL_GUARDED_BY(mu_);
  // False when faults_ would decide kNone with no latency: the common, lock-free case.
  std::atomic<bool> active_{false};
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_FAULTS_H_
