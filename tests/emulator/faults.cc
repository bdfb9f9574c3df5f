#include "tests/emulator/faults.h"

#include <cmath>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/emulator/json.h"

namespace userpilot::gateway::testing {

using google::protobuf::Value;

absl::string_view FaultActionName(FaultAction action) {
  switch (action) {
    case FaultAction::kStatus:
      return "status";
    case FaultAction::kDrop:
      return "drop";
    case FaultAction::kHang:
      return "hang";
    case FaultAction::kNone:
    default:
      return "none";
  }
}

namespace {

bool ValidRatio(double r) { return r >= 0 && r <= 1; }
bool ValidStatus(int s) { return s >= 200 && s <= 599; }

// The per-thread generator for ratio draws: no lock, no shared state.
double Draw() {
  thread_local absl::InsecureBitGen gen;
  return absl::Uniform(gen, 0.0, 1.0);
}

absl::Status ReadNumber(const Value& json, absl::string_view key, double* out) {
  const Value* v = FindField(json, key);
  if (v == nullptr) return absl::OkStatus();
  if (v->kind_case() != Value::kNumberValue) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' must be a number"));
  }
  *out = v->number_value();
  return absl::OkStatus();
}

absl::Status ReadInt(const Value& json, absl::string_view key, int* out) {
  double d = *out;
  if (auto s = ReadNumber(json, key, &d); !s.ok()) return s;
  if (d != std::floor(d) || std::fabs(d) > 1e9) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' must be an integer"));
  }
  *out = static_cast<int>(d);
  return absl::OkStatus();
}

absl::Status ReadMillis(const Value& json, absl::string_view key, absl::Duration* out) {
  double ms = absl::ToDoubleMilliseconds(*out);
  if (auto s = ReadNumber(json, key, &ms); !s.ok()) return s;
  *out = absl::Milliseconds(ms);
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateFaults(const Faults& f) {
  if (f.latency < absl::ZeroDuration()) return absl::InvalidArgumentError("latency is negative");
  if (!ValidRatio(f.error_ratio)) return absl::InvalidArgumentError("error_ratio not in [0, 1]");
  if (!ValidRatio(f.drop_ratio)) return absl::InvalidArgumentError("drop_ratio not in [0, 1]");
  if (!ValidRatio(f.hang_ratio)) return absl::InvalidArgumentError("hang_ratio not in [0, 1]");
  if (!ValidStatus(f.error_status)) {
    return absl::InvalidArgumentError("error_status not in 200..599");
  }
  if (f.max_hang <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_hang must be positive");
  }
  for (size_t i = 0; i < f.script.size(); ++i) {
    const ScriptedFault& r = f.script[i];
    const std::string where = absl::StrCat("script[", i, "]");
    if (r.action == FaultAction::kNone) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".action must be status, drop or hang"));
    }
    if (r.action == FaultAction::kStatus && !ValidStatus(r.status)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".status not in 200..599"));
    }
    if (r.retry_after_seconds && *r.retry_after_seconds < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".retry_after is negative"));
    }
    if (r.count < 1) return absl::InvalidArgumentError(absl::StrCat(where, ".count must be >= 1"));
  }
  return absl::OkStatus();
}

std::string FaultsToJson(const Faults& f) {
  JsonWriter w;
  w.BeginObject()
      .Field("latency_ms", absl::ToDoubleMilliseconds(f.latency))
      .Field("error_ratio", f.error_ratio)
      .Field("error_status", f.error_status)
      .Field("drop_ratio", f.drop_ratio)
      .Field("hang_ratio", f.hang_ratio)
      .Field("max_hang_ms", absl::ToDoubleMilliseconds(f.max_hang))
      .Key("script")
      .BeginArray();
  for (const ScriptedFault& r : f.script) {
    w.BeginObject().Field("action", FaultActionName(r.action));
    if (r.action == FaultAction::kStatus) {
      w.Field("status", r.status);
      if (r.retry_after_seconds) w.Field("retry_after", *r.retry_after_seconds);
    }
    w.Field("path_prefix", r.path_prefix).Field("count", r.count).EndObject();
  }
  w.EndArray().EndObject();
  return w.Release();
}

absl::StatusOr<ScriptedFault> ScriptedFaultFromJson(const Value& json) {
  if (json.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("a scripted fault must be a JSON object");
  }
  ScriptedFault r;
  if (const Value* action = FindField(json, "action")) {
    const std::string& name = action->string_value();
    if (name == "status") {
      r.action = FaultAction::kStatus;
    } else if (name == "drop") {
      r.action = FaultAction::kDrop;
    } else if (name == "hang") {
      r.action = FaultAction::kHang;
    } else {
      return absl::InvalidArgumentError("'action' must be \"status\", \"drop\" or \"hang\"");
    }
  }
  if (auto s = ReadInt(json, "status", &r.status); !s.ok()) return s;
  if (auto s = ReadInt(json, "count", &r.count); !s.ok()) return s;
  if (const Value* ra = FindField(json, "retry_after");
      ra != nullptr && ra->kind_case() != Value::kNullValue) {
    int seconds = 0;
    if (auto s = ReadInt(json, "retry_after", &seconds); !s.ok()) return s;
    r.retry_after_seconds = seconds;
  }
  if (const Value* prefix = FindField(json, "path_prefix")) {
    if (prefix->kind_case() != Value::kStringValue) {
      return absl::InvalidArgumentError("'path_prefix' must be a string");
    }
    r.path_prefix = prefix->string_value();
  }
  return r;
}

absl::Status MergeFaultsFromJson(const Value& json, Faults* f) {
  if (json.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("faults must be a JSON object");
  }
  Faults out = *f;
  if (auto s = ReadMillis(json, "latency_ms", &out.latency); !s.ok()) return s;
  if (auto s = ReadNumber(json, "error_ratio", &out.error_ratio); !s.ok()) return s;
  if (auto s = ReadInt(json, "error_status", &out.error_status); !s.ok()) return s;
  if (auto s = ReadNumber(json, "drop_ratio", &out.drop_ratio); !s.ok()) return s;
  if (auto s = ReadNumber(json, "hang_ratio", &out.hang_ratio); !s.ok()) return s;
  if (auto s = ReadMillis(json, "max_hang_ms", &out.max_hang); !s.ok()) return s;
  if (const Value* script = FindField(json, "script")) {
    if (script->kind_case() != Value::kListValue) {
      return absl::InvalidArgumentError("'script' must be an array");
    }
    out.script.clear();
    for (const Value& item : script->list_value().values()) {
      absl::StatusOr<ScriptedFault> rule = ScriptedFaultFromJson(item);
      if (!rule.ok()) return rule.status();
      out.script.push_back(*std::move(rule));
    }
  }
  if (auto s = ValidateFaults(out); !s.ok()) return s;
  *f = std::move(out);
  return absl::OkStatus();
}

FaultDecision FaultInjector::Decide(absl::string_view path) {
  FaultDecision d;
  if (!active_.load(std::memory_order_acquire)) return d;
  absl::MutexLock lock(&mu_);
  d.latency = faults_.latency;
  d.max_hang = faults_.max_hang;
  for (auto it = faults_.script.begin(); it != faults_.script.end(); ++it) {
    if (!absl::StartsWith(path, it->path_prefix)) continue;
    d.action = it->action;
    d.status = it->status;
    d.retry_after_seconds = it->retry_after_seconds;
    if (--it->count <= 0) {
      faults_.script.erase(it);
      UpdateActiveLocked();
    }
    return d;
  }
  const double total = faults_.hang_ratio + faults_.drop_ratio + faults_.error_ratio;
  if (total <= 0) return d;
  const double u = Draw();
  if (u < faults_.hang_ratio) {
    d.action = FaultAction::kHang;
  } else if (u < faults_.hang_ratio + faults_.drop_ratio) {
    d.action = FaultAction::kDrop;
  } else if (u < total) {
    d.action = FaultAction::kStatus;
    d.status = faults_.error_status;
  }
  return d;
}

void FaultInjector::Set(Faults faults) {
  absl::MutexLock lock(&mu_);
  faults_ = std::move(faults);
  UpdateActiveLocked();
}

void FaultInjector::AddScripted(ScriptedFault fault) {
  absl::MutexLock lock(&mu_);
  faults_.script.push_back(std::move(fault));
  UpdateActiveLocked();
}

Faults FaultInjector::Get() const {
  absl::MutexLock lock(&mu_);
  return faults_;
}

void FaultInjector::UpdateActiveLocked() {
  const bool active = faults_.latency > absl::ZeroDuration() || faults_.error_ratio > 0 ||
                      faults_.drop_ratio > 0 || faults_.hang_ratio > 0 || !faults_.script.empty();
  active_.store(active, std::memory_order_release);
}

}  // namespace userpilot::gateway::testing
