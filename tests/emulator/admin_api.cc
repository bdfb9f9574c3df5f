#include "tests/emulator/admin_api.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "tests/emulator/http_util.h"
#include "tests/emulator/json.h"

namespace userpilot::gateway::testing {

using google::protobuf::Value;

namespace {

ApiResponse Json(int status, std::string body) {
  ApiResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

ApiResponse AdminError(int status, absl::string_view message) {
  const absl::string_view error = status == 404   ? "not_found"
                                  : status == 405 ? "method_not_allowed"
                                                  : "bad_request";
  return Json(status, ErrorBody(error, error, message, ""));
}

ApiResponse FromStatus(const absl::Status& status) {
  if (status.ok()) return Json(200, "{}");
  return AdminError(status.code() == absl::StatusCode::kNotFound ? 404 : 400, status.message());
}

// The request body as a JSON object ("" counts as {}).
absl::StatusOr<Value> BodyObject(const RecordedRequest& request) {
  if (request.body.empty()) {
    Value empty;
    empty.mutable_struct_value();
    return empty;
  }
  absl::StatusOr<Value> v = ParseJson(request.body);
  if (!v.ok()) return v.status();
  if (v->kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("the body must be a JSON object");
  }
  return v;
}

// The value of query parameter `name`, or "".
std::string QueryParam(absl::string_view query, absl::string_view name) {
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (kv.first == name) {
      absl::StatusOr<std::string> decoded = PercentDecode(kv.second);
      return decoded.ok() ? *decoded : std::string(kv.second);
    }
  }
  return "";
}

std::string StructToJson(const google::protobuf::Struct& metadata) {
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(metadata, &out).ok()) return "{}";
  return out;
}

std::string ProfileToJson(const Profile& p) {
  JsonWriter w;
  w.BeginObject().Field("id", p.id).Key("metadata").Raw(StructToJson(p.metadata));
  w.Key("history").BeginArray();
  for (const Profile::Application& a : p.history) {
    w.BeginObject()
        .Field("applied_at", FormatPreciseTime(a.at))
        .Field("source", a.source)
        .Key("metadata")
        .Raw(StructToJson(a.metadata))
        .EndObject();
  }
  w.EndArray().EndObject();
  return w.Release();
}

std::string JobsToJson(const std::vector<JobSnapshot>& jobs, absl::Duration step) {
  JsonWriter w;
  w.BeginObject().Field("step_ms", absl::ToDoubleMilliseconds(step)).Key("jobs").BeginArray();
  for (const JobSnapshot& j : jobs) {
    w.BeginObject()
        .Field("job_id", j.job_id)
        .Field("status", j.status)
        .Field("type", j.type)
        .Field("filename", j.filename)
        .Field("file_size", j.file_size)
        .Field("total_rows", j.total_rows)
        .Field("completed_rows", j.completed_rows)
        .Field("start_time", FormatPreciseTime(j.start_time))
        .Key("end_time");
    if (j.end_time) {
      w.String(FormatPreciseTime(*j.end_time));
    } else {
      w.Null();
    }
    w.Field("forced", j.forced).EndObject();
  }
  w.EndArray().EndObject();
  return w.Release();
}

absl::Status ReadBool(const Value& json, absl::string_view key, bool* out) {
  const Value* v = FindField(json, key);
  if (v == nullptr) return absl::OkStatus();
  if (v->kind_case() != Value::kBoolValue) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' must be a boolean"));
  }
  *out = v->bool_value();
  return absl::OkStatus();
}

absl::Status ReadCount(const Value& json, absl::string_view key, int* out) {
  const Value* v = FindField(json, key);
  if (v == nullptr) return absl::OkStatus();
  if (v->kind_case() != Value::kNumberValue || v->number_value() < 0 ||
      v->number_value() != std::floor(v->number_value()) || v->number_value() > 1e9) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' must be a non-negative integer"));
  }
  *out = static_cast<int>(v->number_value());
  return absl::OkStatus();
}

absl::Status ReadMillis(const Value& json, absl::string_view key, absl::Duration* out) {
  const Value* v = FindField(json, key);
  if (v == nullptr) return absl::OkStatus();
  if (v->kind_case() != Value::kNumberValue || !(v->number_value() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' must be a positive number"));
  }
  *out = absl::Milliseconds(v->number_value());
  return absl::OkStatus();
}

}  // namespace

std::string LimitsToJson(const RateLimits& l) {
  JsonWriter w;
  w.BeginObject()
      .Field("enabled", l.enabled)
      .Field("identify_limit", l.identify_limit)
      .Field("track_limit", l.track_limit)
      .Field("window_ms", absl::ToDoubleMilliseconds(l.window))
      .Field("delete_interval_ms", absl::ToDoubleMilliseconds(l.delete_interval))
      .Field("retry_after", l.retry_after)
      .EndObject();
  return w.Release();
}

absl::Status MergeLimitsFromJson(const Value& json, RateLimits* limits) {
  if (json.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("limits must be a JSON object");
  }
  RateLimits out = *limits;
  if (auto s = ReadBool(json, "enabled", &out.enabled); !s.ok()) return s;
  if (auto s = ReadBool(json, "retry_after", &out.retry_after); !s.ok()) return s;
  if (auto s = ReadCount(json, "identify_limit", &out.identify_limit); !s.ok()) return s;
  if (auto s = ReadCount(json, "track_limit", &out.track_limit); !s.ok()) return s;
  if (auto s = ReadMillis(json, "window_ms", &out.window); !s.ok()) return s;
  if (auto s = ReadMillis(json, "delete_interval_ms", &out.delete_interval); !s.ok()) return s;
  *limits = out;
  return absl::OkStatus();
}

std::string StatsToJson(const EmulatorStats& s) {
  JsonWriter w;
  w.BeginObject().Field("requests", s.requests).Key("by_endpoint").BeginObject();
  for (const auto& [endpoint, count] : s.by_endpoint) w.Field(endpoint, count);
  w.EndObject().Key("by_status").BeginObject();
  for (const auto& [status, count] : s.by_status) w.Field(absl::StrCat(status), count);
  w.EndObject()
      .Field("rate_limited", s.rate_limited)
      .Field("injected_errors", s.injected_errors)
      .Field("dropped", s.dropped)
      .Field("hung", s.hung)
      .EndObject();
  return w.Release();
}

std::string RecordedRequestToJson(const RecordedRequest& r) {
  JsonWriter w;
  w.BeginObject()
      .Field("seq", static_cast<int64_t>(r.seq))
      .Field("method", r.method)
      .Field("raw_path", r.raw_path)
      .Field("path", r.path)
      .Field("query", r.query)
      .Key("headers")
      .BeginObject();
  // Repeated headers are joined with ", " (RFC 9110 5.3); names are already lower-case.
  std::vector<std::pair<std::string, std::string>> merged;
  for (const auto& [name, value] : r.headers) {
    auto it = std::find_if(merged.begin(), merged.end(),
                           [&](const auto& kv) { return kv.first == name; });
    if (it == merged.end()) {
      merged.emplace_back(name, value);
    } else {
      absl::StrAppend(&it->second, ", ", value);
    }
  }
  for (const auto& [name, value] : merged) w.Field(name, value);
  w.EndObject();
  if (IsValidUtf8(r.body)) {
    w.Field("body", r.body);
  } else {
    w.Field("body_base64", absl::Base64Escape(r.body));
  }
  w.Field("received_at", FormatPreciseTime(r.received_at))
      .Field("response_status", r.response_status)
      .Field("outcome", OutcomeName(r.outcome))
      .EndObject();
  return w.Release();
}

ApiResponse AdminApi::Handle(const RecordedRequest& request) const {
  const std::vector<absl::string_view> seg = SplitPathSegments(request.raw_path);
  // seg[0] is "_emulator".
  const absl::string_view what = seg.size() >= 2 ? seg[1] : "";
  const absl::string_view m = request.method;
  const auto not_allowed = [&] {
    return AdminError(405, absl::StrCat(m, " is not supported on ", request.raw_path));
  };

  if (seg.size() == 2 && what == "health") {
    return Json(200, R"({"status":"ok"})");
  }

  if (seg.size() == 2 && what == "requests") {
    if (m == "DELETE") {
      emulator_->ClearRequests();
      return Json(200, "{}");
    }
    if (m != "GET") return not_allowed();
    size_t limit = 0;
    const std::string limit_param = QueryParam(request.query, "limit");
    if (!limit_param.empty() && !absl::SimpleAtoi(limit_param, &limit)) {
      return AdminError(400, "'limit' must be a non-negative integer");
    }
    std::vector<RecordedRequest> requests = emulator_->Requests();
    const size_t skip = limit > 0 && limit < requests.size() ? requests.size() - limit : 0;
    JsonWriter w;
    w.BeginArray();
    for (size_t i = skip; i < requests.size(); ++i) w.Raw(RecordedRequestToJson(requests[i]));
    w.EndArray();
    return Json(200, w.Release());
  }

  if (seg.size() == 2 && what == "windows") {
    if (m != "GET") return not_allowed();
    absl::Duration window = emulator_->GetLimits().window;
    const std::string window_param = QueryParam(request.query, "window_ms");
    if (!window_param.empty()) {
      double ms = 0;
      if (!absl::SimpleAtod(window_param, &ms) || !(ms > 0)) {
        return AdminError(400, "'window_ms' must be a positive number");
      }
      window = absl::Milliseconds(ms);
    }
    return Json(200, BudgetWindowsToJson(emulator_->Windows(window)));
  }

  if (seg.size() == 2 && what == "stats") {
    if (m == "DELETE") {
      emulator_->ResetStats();
      return Json(200, "{}");
    }
    if (m != "GET") return not_allowed();
    return Json(200, StatsToJson(emulator_->Stats()));
  }

  if (seg.size() == 2 && what == "faults") {
    if (m == "GET") return Json(200, FaultsToJson(emulator_->GetFaults()));
    if (m == "DELETE") {
      emulator_->ClearFaults();
      return Json(200, FaultsToJson(emulator_->GetFaults()));
    }
    if (m != "PUT") return not_allowed();
    absl::StatusOr<Value> body = BodyObject(request);
    if (!body.ok()) return AdminError(400, body.status().message());
    Faults faults = emulator_->GetFaults();
    if (auto s = MergeFaultsFromJson(*body, &faults); !s.ok()) return FromStatus(s);
    if (auto s = emulator_->SetFaults(std::move(faults)); !s.ok()) return FromStatus(s);
    return Json(200, FaultsToJson(emulator_->GetFaults()));
  }

  if (seg.size() == 3 && what == "faults" && seg[2] == "script") {
    if (m != "POST") return not_allowed();
    absl::StatusOr<Value> body = BodyObject(request);
    if (!body.ok()) return AdminError(400, body.status().message());
    absl::StatusOr<ScriptedFault> rule = ScriptedFaultFromJson(*body);
    if (!rule.ok()) return FromStatus(rule.status());
    if (auto s = emulator_->AddScriptedFault(*std::move(rule)); !s.ok()) return FromStatus(s);
    return Json(200, FaultsToJson(emulator_->GetFaults()));
  }

  if (seg.size() == 2 && what == "limits") {
    if (m == "GET") return Json(200, LimitsToJson(emulator_->GetLimits()));
    if (m != "PUT") return not_allowed();
    absl::StatusOr<Value> body = BodyObject(request);
    if (!body.ok()) return AdminError(400, body.status().message());
    RateLimits limits = emulator_->GetLimits();
    if (auto s = MergeLimitsFromJson(*body, &limits); !s.ok()) return FromStatus(s);
    emulator_->SetLimits(limits);
    return Json(200, LimitsToJson(limits));
  }

  if (seg.size() == 2 && what == "jobs") {
    if (m == "GET") return Json(200, JobsToJson(emulator_->Jobs(), emulator_->GetJobStep()));
    if (m == "DELETE") {
      emulator_->ClearJobs();
      return Json(200, "{}");
    }
    if (m != "PUT") return not_allowed();
    absl::StatusOr<Value> body = BodyObject(request);
    if (!body.ok()) return AdminError(400, body.status().message());
    if (const Value* step = FindField(*body, "step_ms")) {
      if (step->kind_case() != Value::kNumberValue || step->number_value() < 0) {
        return AdminError(400, "'step_ms' must be a non-negative number");
      }
      emulator_->SetJobStep(absl::Milliseconds(step->number_value()));
    }
    return Json(200, JobsToJson(emulator_->Jobs(), emulator_->GetJobStep()));
  }

  if (seg.size() == 4 && what == "jobs" && (seg[3] == "fail" || seg[3] == "status")) {
    if (m != "POST") return not_allowed();
    absl::StatusOr<std::string> job_id = PercentDecode(seg[2]);
    if (!job_id.ok()) return AdminError(400, job_id.status().message());
    if (seg[3] == "fail") return FromStatus(emulator_->FailJob(*job_id));
    absl::StatusOr<Value> body = BodyObject(request);
    if (!body.ok()) return AdminError(400, body.status().message());
    const Value* status = FindField(*body, "status");
    if (status == nullptr || status->kind_case() != Value::kStringValue) {
      return AdminError(400, "'status' (a string) is required");
    }
    return FromStatus(emulator_->ForceJobStatus(*job_id, status->string_value()));
  }

  if (seg.size() == 3 && (what == "users" || what == "companies")) {
    if (m != "GET") return not_allowed();
    absl::StatusOr<std::string> id = PercentDecode(seg[2]);
    if (!id.ok()) return AdminError(400, id.status().message());
    std::optional<Profile> profile =
        emulator_->GetProfile(what == "users" ? EntityKind::kUser : EntityKind::kCompany, *id);
    if (!profile.has_value()) {
      return AdminError(404, absl::StrCat("no ", what == "users" ? "user " : "company ", *id,
                                          " was ever identified"));
    }
    return Json(200, ProfileToJson(*profile));
  }

  if (seg.size() == 2 && what == "reset") {
    if (m != "POST") return not_allowed();
    emulator_->Reset();
    return Json(200, "{}");
  }

  return AdminError(404, absl::StrCat("no admin endpoint ", m, " ", request.raw_path));
}

}  // namespace userpilot::gateway::testing
