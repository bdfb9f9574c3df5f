// Fault injection for the Userpilot emulator: added latency, random 5xx answers, dropped
// connections and hangs, plus an exact script ("the next N requests matching this path prefix
// answer 503 with Retry-After 2 / are dropped / hang", or "every request for the next second
// answers 429") for deterministic tests. A scripted
// answer can also be hostile in shape: any headers (Retry-After as an HTTP-date,
// X-RateLimit-Reset), a garbage status line, a body of any text (non-JSON 2xx, "{}"), JSON
// nested arbitrarily deep, the API key echoed in every form (answer_shapes.h), a delay of its
// own; and a "pass" rule lets the emulated API answer but echoes the key in that answer.
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
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/emulator/answer_shapes.h"

namespace userpilot::gateway::testing {

enum class FaultAction {
  kNone,    // Answer normally.
  kStatus,  // Answer with a given status and the error body, without touching any state.
  kDrop,    // Close the connection without answering.
  kHang,    // Never answer: hold the request until max_hang passes or the emulator stops, then
            // close the connection.
  kPass,    // Scripted only: the emulated API answers (state changes as usual); the rule only
            // shapes that answer (echo_key, headers, latency).
};

// "none", "status", "drop", "hang", "pass" (the JSON names).
absl::string_view FaultActionName(FaultAction action);

using Headers = std::vector<std::pair<std::string, std::string>>;

// One rule of the deterministic script.
struct ScriptedFault {
  FaultAction action = FaultAction::kStatus;
  int status = 503;                        // kStatus: the status to answer (200..599).
  std::optional<int> retry_after_seconds;  // kStatus: adds `Retry-After: <seconds>`.
  std::string path_prefix;                 // Only requests whose decoded path starts with it.
  int count = 1;                           // How many matching requests the rule applies to.
  // > 0: instead of `count` requests, every matching request for this long after the first one
  // (a burst in time, e.g. "429 for the next second"), by the real clock.
  absl::Duration active_for = absl::ZeroDuration();
  // When the first request matched an `active_for` rule (state, set by FaultInjector).
  std::optional<absl::Time> active_since;

  // The shape of the answer (kStatus; kPass takes headers, echo_key and latency only).
  // Extra headers, verbatim: `Retry-After` as an HTTP-date, `X-RateLimit-Reset`, ...
  Headers headers;
  // The body instead of Userpilot's error body, e.g. "{}" or "<html>...". Every "{{echo}}" in
  // it becomes KeyEcho() of `echo_key`, unescaped.
  std::optional<std::string> body;
  // The Content-Type of `body`; "" keeps `application/json; charset=utf-8`.
  std::string content_type;
  // Written instead of `HTTP/1.1 <status> <reason>` (a garbage status line); no CR or LF.
  std::string status_line;
  // > 0: the body holds arrays nested this deep: DeepJobBody for a 2xx status, DeepErrorBody
  // otherwise (answer_shapes.h); repeated until it holds at least `nest_bytes` bytes.
  int nest_depth = 0;
  int64_t nest_bytes = 0;
  // The forms in which the answer echoes the API key: kStatus puts KeyEcho() into the error
  // body's message and details (or "{{echo}}" of `body`); kPass into the string members
  // filename, links, message and details of the emulated API's answer.
  std::vector<KeyForm> echo_key;
  // Added before this answer, on top of Faults::latency.
  absl::Duration latency = absl::ZeroDuration();
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
  absl::Duration latency = absl::ZeroDuration();  // Faults::latency plus the rule's own.
  absl::Duration max_hang = absl::ZeroDuration();
  // The matching rule's answer shape (ScriptedFault's fields of the same names).
  Headers headers;
  std::optional<std::string> body;
  std::string content_type;
  std::string status_line;
  int nest_depth = 0;
  int64_t nest_bytes = 0;
  std::vector<KeyForm> echo_key;
};

// INVALID_ARGUMENT naming the first bad setting (ratio outside [0, 1], status outside
// 200..599, negative duration, count < 1, action kNone in the script, a header or status line
// holding CR or LF, a negative or oversized nest, a body together with nest_depth).
absl::Status ValidateFaults(const Faults& faults);

// JSON forms, as the admin API reads and writes them (durations in milliseconds):
// {"latency_ms":0,"error_ratio":0,"error_status":503,"drop_ratio":0,"hang_ratio":0,
//  "max_hang_ms":30000,"script":[{"action":"status","status":503,"retry_after":2,
//  "path_prefix":"/v1/track","count":1}]}
// A rule may also hold "active_ms" (a burst in time instead of a count), "headers" (an object
// of strings), "body", "content_type",
// "status_line", "nest_depth", "nest_bytes", "echo_key" (an array of form names, or "all") and
// "latency_ms"; "retry_after" may be a string (sent verbatim, e.g. an HTTP-date). Only the
// fields that are set are written back.
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
