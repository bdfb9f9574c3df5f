#include "tests/emulator/faults.h"

#include <algorithm>
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
    case FaultAction::kPass:
      return "pass";
    case FaultAction::kNone:
    default:
      return "none";
  }
}

namespace {

bool ValidRatio(double r) { return r >= 0 && r <= 1; }
bool ValidStatus(int s) { return s >= 200 && s <= 599; }
bool HasLineBreak(absl::string_view s) { return s.find_first_of("\r\n") != s.npos; }

// The largest body a nest may be asked to fill (answer_shapes.h builds at most this much).
constexpr int64_t kMaxNestBytes = int64_t{64} << 20;

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

absl::Status ReadString(const Value& json, absl::string_view key, std::string* out) {
  const Value* v = FindField(json, key);
  if (v == nullptr) return absl::OkStatus();
  if (v->kind_case() != Value::kStringValue) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' must be a string"));
  }
  *out = v->string_value();
  return absl::OkStatus();
}

// "echo_key": an array of form names, or "all".
absl::Status ReadKeyForms(const Value& json, std::vector<KeyForm>* out) {
  const Value* v = FindField(json, "echo_key");
  if (v == nullptr) return absl::OkStatus();
  if (v->kind_case() == Value::kStringValue && v->string_value() == "all") {
    *out = AllKeyForms();
    return absl::OkStatus();
  }
  if (v->kind_case() != Value::kListValue) {
    return absl::InvalidArgumentError("'echo_key' must be an array of form names, or \"all\"");
  }
  out->clear();
  for (const Value& name : v->list_value().values()) {
    absl::StatusOr<KeyForm> form = KeyFormFromName(name.string_value());
    if (!form.ok()) return form.status();
    out->push_back(*form);
  }
  return absl::OkStatus();
}

absl::Status ReadHeaders(const Value& json, Headers* out) {
  const Value* v = FindField(json, "headers");
  if (v == nullptr) return absl::OkStatus();
  if (v->kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("'headers' must be an object of strings");
  }
  // Protobuf's Struct is a map: sort the names, so the order is stable.
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [name, value] : v->struct_value().fields()) {
    if (value.kind_case() != Value::kStringValue) {
      return absl::InvalidArgumentError(absl::StrCat("'headers.", name, "' must be a string"));
    }
    headers.emplace_back(name, value.string_value());
  }
  std::sort(headers.begin(), headers.end());
  out->insert(out->end(), headers.begin(), headers.end());
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
    for (const auto& [name, value] : r.headers) {
      if (name.empty() || HasLineBreak(name) || HasLineBreak(value) ||
          name.find(':') != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(where,
                         ".headers: a name must be non-empty without ':', and neither "
                         "name nor value may hold CR or LF"));
      }
    }
    if (HasLineBreak(r.status_line) || HasLineBreak(r.content_type)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".status_line and .content_type must not hold CR or LF"));
    }
    if (r.nest_depth < 0 || r.nest_bytes < 0 || r.nest_bytes > kMaxNestBytes ||
        2 * static_cast<int64_t>(r.nest_depth) > kMaxNestBytes) {
      return absl::InvalidArgumentError(absl::StrCat(where,
                                                     ".nest_depth and .nest_bytes must be in 0..",
                                                     kMaxNestBytes / 2, " and 0..", kMaxNestBytes));
    }
    if (r.nest_depth > 0 && r.body) {
      return absl::InvalidArgumentError(absl::StrCat(where,
                                                     ": body and nest_depth exclude "
                                                     "each other"));
    }
    if (r.latency < absl::ZeroDuration() || r.active_for < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(where,
                                                     ".latency and .active_for must not "
                                                     "be negative"));
    }
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
    w.Field("path_prefix", r.path_prefix).Field("count", r.count);
    if (r.active_for > absl::ZeroDuration()) {
      w.Field("active_ms", absl::ToDoubleMilliseconds(r.active_for));
    }
    if (!r.headers.empty()) {
      w.Key("headers").BeginObject();
      for (const auto& [name, value] : r.headers) w.Field(name, value);
      w.EndObject();
    }
    if (r.body) w.Field("body", *r.body);
    if (!r.content_type.empty()) w.Field("content_type", r.content_type);
    if (!r.status_line.empty()) w.Field("status_line", r.status_line);
    if (r.nest_depth > 0) w.Field("nest_depth", r.nest_depth).Field("nest_bytes", r.nest_bytes);
    if (!r.echo_key.empty()) {
      w.Key("echo_key").BeginArray();
      for (KeyForm form : r.echo_key) w.String(KeyFormName(form));
      w.EndArray();
    }
    if (r.latency > absl::ZeroDuration()) {
      w.Field("latency_ms", absl::ToDoubleMilliseconds(r.latency));
    }
    w.EndObject();
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
    } else if (name == "pass") {
      r.action = FaultAction::kPass;
    } else {
      return absl::InvalidArgumentError(
          "'action' must be \"status\", \"drop\", \"hang\" or \"pass\"");
    }
  }
  if (auto s = ReadInt(json, "status", &r.status); !s.ok()) return s;
  if (auto s = ReadInt(json, "count", &r.count); !s.ok()) return s;
  if (const Value* ra = FindField(json, "retry_after");
      ra != nullptr && ra->kind_case() == Value::kStringValue) {
    r.headers.emplace_back("Retry-After", ra->string_value());  // Verbatim: an HTTP-date, ...
  } else if (ra != nullptr && ra->kind_case() != Value::kNullValue) {
    int seconds = 0;
    if (auto s = ReadInt(json, "retry_after", &seconds); !s.ok()) return s;
    r.retry_after_seconds = seconds;
  }
  if (auto s = ReadHeaders(json, &r.headers); !s.ok()) return s;
  if (FindField(json, "body") != nullptr) {
    std::string body;
    if (auto s = ReadString(json, "body", &body); !s.ok()) return s;
    r.body = std::move(body);
  }
  if (auto s = ReadString(json, "content_type", &r.content_type); !s.ok()) return s;
  if (auto s = ReadString(json, "status_line", &r.status_line); !s.ok()) return s;
  if (auto s = ReadInt(json, "nest_depth", &r.nest_depth); !s.ok()) return s;
  double nest_bytes = 0;
  if (auto s = ReadNumber(json, "nest_bytes", &nest_bytes); !s.ok()) return s;
  if (nest_bytes != std::floor(nest_bytes) || nest_bytes < 0 || nest_bytes > kMaxNestBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("'nest_bytes' must be an integer in 0..", kMaxNestBytes));
  }
  r.nest_bytes = static_cast<int64_t>(nest_bytes);
  if (auto s = ReadKeyForms(json, &r.echo_key); !s.ok()) return s;
  if (auto s = ReadMillis(json, "latency_ms", &r.latency); !s.ok()) return s;
  if (auto s = ReadMillis(json, "active_ms", &r.active_for); !s.ok()) return s;
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
  for (auto it = faults_.script.begin(); it != faults_.script.end();) {
    if (!absl::StartsWith(path, it->path_prefix)) {
      ++it;
      continue;
    }
    if (it->active_for > absl::ZeroDuration()) {
      const absl::Time now = absl::Now();
      if (!it->active_since) it->active_since = now;
      if (now - *it->active_since >= it->active_for) {  // The burst is over.
        it = faults_.script.erase(it);
        UpdateActiveLocked();
        continue;
      }
    }
    d.action = it->action;
    d.status = it->status;
    d.retry_after_seconds = it->retry_after_seconds;
    d.latency += it->latency;
    d.headers = it->headers;
    d.body = it->body;
    d.content_type = it->content_type;
    d.status_line = it->status_line;
    d.nest_depth = it->nest_depth;
    d.nest_bytes = it->nest_bytes;
    d.echo_key = it->echo_key;
    if (it->active_for == absl::ZeroDuration() && --it->count <= 0) {
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
