#include "service/config/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/config/endpoints.h"

namespace userpilot::gateway {
namespace {

// A key file larger than this is almost certainly the wrong file.
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

// Every problem found, each line naming its flag or variable.
class Problems {
 public:
  explicit Problems(const std::map<std::string, std::string>& from_environment)
      : from_environment_(from_environment) {}

  void Flag(absl::string_view flag, absl::string_view message) {
    auto it = from_environment_.find(std::string(flag));
    std::string source =
        it == from_environment_.end() ? "" : absl::StrCat(" (set by ", it->second, ")");
    lines_.push_back(absl::StrCat("--", flag, source, ": ", message));
  }
  void Other(std::string line) { lines_.push_back(std::move(line)); }
  bool empty() const { return lines_.empty(); }
  absl::Status ToStatus() const {
    return absl::InvalidArgumentError(absl::StrCat("invalid configuration (", lines_.size(),
                                                   lines_.size() == 1 ? " problem" : " problems",
                                                   "):\n  ", absl::StrJoin(lines_, "\n  ")));
  }

 private:
  const std::map<std::string, std::string>& from_environment_;
  std::vector<std::string> lines_;
};

std::string Errno(int err) { return std::strerror(err); }

// Reads a whole small file. Errors name the path and the reason, never the contents.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "': ", Errno(errno)));
  std::string data;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    data.append(buf, n);
    if (data.size() > kMaxKeyFileBytes) {
      std::fclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' is larger than ", kMaxKeyFileBytes / 1024, " KiB"));
    }
  }
  int err = errno;
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return absl::NotFoundError(absl::StrCat("cannot read '", path, "': ", Errno(err)));
  return data;
}

// Checks that `path` is a readable, non-empty file.
absl::Status CheckReadable(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "': ", Errno(errno)));
  int c = std::fgetc(f);
  int err = errno;
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return absl::NotFoundError(absl::StrCat("cannot read '", path, "': ", Errno(err)));
  if (c == EOF) return absl::InvalidArgumentError(absl::StrCat("'", path, "' is empty"));
  return absl::OkStatus();
}

// Checks a trimmed key; the message describes the problem without quoting the key.
std::optional<std::string> KeyProblem(absl::string_view key) {
  if (key.empty()) return "is empty";
  for (char c : key) {
    if (c <= ' ' || c >= 0x7f) {
      return "contains whitespace or control characters inside the key (it goes into an HTTP "
             "header); it must hold only the key";
    }
  }
  return std::nullopt;
}

void LoadApiKey(const ConfigInput& in, const EnvLookup& env, GatewayConfig& out,
                Problems& problems) {
  if (!in.api_key_file.empty()) {
    absl::StatusOr<std::string> data = ReadSmallFile(in.api_key_file);
    if (!data.ok()) {
      problems.Flag("api_key_file", data.status().message());
      return;
    }
    absl::string_view key = absl::StripAsciiWhitespace(*data);
    if (auto problem = KeyProblem(key)) {
      problems.Flag("api_key_file", absl::StrCat("the key in '", in.api_key_file, "' ", *problem));
      return;
    }
    out.api_key = Secret(std::string(key));
    out.api_key_source = absl::StrCat("file:", in.api_key_file);
    return;
  }
  std::optional<std::string> value = env(kApiKeyEnvVar);
  if (!value.has_value() || value->empty()) {
    problems.Other(absl::StrCat(
        "no Userpilot API key: set the environment variable ", kApiKeyEnvVar,
        " to the key, or pass --api_key_file=PATH naming a file that holds only the key (for "
        "example a mounted Kubernetes secret; env USERPILOT_GATEWAY_API_KEY_FILE also works)"));
    return;
  }
  absl::string_view key = absl::StripAsciiWhitespace(*value);
  if (auto problem = KeyProblem(key)) {
    problems.Other(absl::StrCat(kApiKeyEnvVar, ": the key ", *problem));
    return;
  }
  out.api_key = Secret(std::string(key));
  out.api_key_source = absl::StrCat("env:", kApiKeyEnvVar);
}

void CheckUpstream(const ConfigInput& in, GatewayConfig& out, Problems& problems) {
  absl::StatusOr<std::string> url = NormalizeUpstreamUrl(in.upstream_url);
  if (!url.ok()) problems.Flag("upstream_url", url.status().message());
  if (in.region.empty()) {
    if (url.ok()) out.upstream_url = *url;
    return;
  }
  std::string region_url;
  if (in.region == "us") {
    region_url = std::string(kUsUpstreamUrl);
  } else if (in.region == "eu") {
    region_url = std::string(kEuUpstreamUrl);
  } else {
    problems.Flag("region", absl::StrCat("'", in.region, "' is not a region: use us or eu"));
    return;
  }
  if (url.ok() && *url != kUsUpstreamUrl && *url != region_url) {
    problems.Flag("region",
                  absl::StrCat("--region=", in.region, " means ", region_url,
                               " but --upstream_url is ", *url, ": give only one of them"));
    return;
  }
  out.upstream_url = region_url;
}

void CheckDuration(absl::string_view flag, absl::Duration value, absl::Duration& out,
                   Problems& problems) {
  if (value <= absl::ZeroDuration() || value == absl::InfiniteDuration()) {
    problems.Flag(flag, absl::StrCat("must be a positive, finite duration such as 10s or 500ms, "
                                     "not ",
                                     absl::FormatDuration(value)));
  }
  out = value;
}

void CheckRange(absl::string_view flag, int value, int max, int& out, Problems& problems) {
  if (value < 1 || value > max) {
    problems.Flag(flag, absl::StrCat("must be from 1 to ", max, ", not ", value));
  }
  out = value;
}

// The validation limits are range-checked by ValidationLimits itself; each field is a flag.
void CheckLimits(const ValidationLimits& limits, Problems& problems) {
  for (const ValidationLimits::Problem& problem : limits.Problems()) {
    problems.Flag(problem.field, problem.message);
  }
}

std::optional<LogLevel> ParseLogLevel(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    if (lower == LogLevelName(level)) return level;
  }
  return std::nullopt;
}

}  // namespace

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

EnvLookup ProcessEnvironment() {
  return [](absl::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

int MaxInflightUpstreamFor(const RateLimitOptions& budgets, absl::Duration upstream_timeout) {
  double per_second = 0;
  for (const BudgetOptions* budget :
       {&budgets.identify, &budgets.track, &budgets.deletes, &budgets.job_reads}) {
    if (budget->rate.limit > 0 && budget->rate.window > absl::ZeroDuration()) {
      per_second +=
          static_cast<double>(budget->rate.limit) / absl::ToDoubleSeconds(budget->rate.window);
    }
  }
  // Less a hair, so that 22.5/s x 10 s, 225.00000000000003 in floating point, gives 225.
  const double needed =
      std::ceil(per_second * absl::ToDoubleSeconds(upstream_timeout) - 1e-6) + kJobLaneSlots;
  return static_cast<int>(
      std::clamp<double>(needed, kMinDerivedInflightUpstream, kMaxInflightUpstream));
}

absl::StatusOr<GatewayConfig> LoadConfig(const ConfigInput& in, const EnvLookup& env) {
  GatewayConfig out;
  Problems problems(in.from_environment);

  if (absl::Status s = ValidateListenAddress(in.listen); !s.ok())
    problems.Flag("listen", s.message());
  if (absl::Status s = ValidateListenAddress(in.metrics_listen); !s.ok()) {
    problems.Flag("metrics_listen", s.message());
  }
  if (in.listen == in.metrics_listen && !absl::EndsWith(in.listen, ":0")) {
    problems.Flag("metrics_listen",
                  absl::StrCat("is the same address as --listen (", in.listen, ")"));
  }
  out.listen = in.listen;
  out.metrics_listen = in.metrics_listen;

  CheckUpstream(in, out, problems);
  LoadApiKey(in, env, out, problems);

  if (!in.upstream_ca_file.empty()) {
    if (absl::Status s = CheckReadable(in.upstream_ca_file); !s.ok()) {
      problems.Flag("upstream_ca_file", s.message());
    }
  }
  out.upstream_ca_file = in.upstream_ca_file;

  CheckDuration("upstream_timeout", in.upstream_timeout, out.upstream_timeout, problems);
  CheckDuration("default_deadline", in.default_deadline, out.default_deadline, problems);
  CheckDuration("max_deadline", in.max_deadline, out.max_deadline, problems);
  CheckDuration("connect_timeout", in.connect_timeout, out.connect_timeout, problems);
  CheckDuration("shutdown_grace", in.shutdown_grace, out.shutdown_grace, problems);
  CheckDuration("max_connection_age", in.max_connection_age, out.max_connection_age, problems);
  CheckDuration("max_connection_age_grace", in.max_connection_age_grace,
                out.max_connection_age_grace, problems);
  CheckDuration("keepalive_time", in.keepalive_time, out.keepalive_time, problems);
  CheckDuration("keepalive_timeout", in.keepalive_timeout, out.keepalive_timeout, problems);
  CheckDuration("min_client_ping_interval", in.min_client_ping_interval,
                out.min_client_ping_interval, problems);
  auto valid = [](absl::Duration d) {
    return d > absl::ZeroDuration() && d != absl::InfiniteDuration();
  };
  // Cross-checks only between valid values, so one bad value is reported once.
  if (valid(in.connect_timeout) && valid(in.upstream_timeout) &&
      in.connect_timeout > in.upstream_timeout) {
    problems.Flag("connect_timeout", absl::StrCat("(", absl::FormatDuration(in.connect_timeout),
                                                  ") must not exceed --upstream_timeout (",
                                                  absl::FormatDuration(in.upstream_timeout), ")"));
  }
  if (valid(in.keepalive_timeout) && valid(in.keepalive_time) &&
      in.keepalive_timeout >= in.keepalive_time) {
    problems.Flag("keepalive_timeout", absl::StrCat("(", absl::FormatDuration(in.keepalive_timeout),
                                                    ") must be shorter than --keepalive_time (",
                                                    absl::FormatDuration(in.keepalive_time), ")"));
  }
  if (valid(in.default_deadline) && valid(in.max_deadline) &&
      in.default_deadline > in.max_deadline) {
    problems.Flag("default_deadline", absl::StrCat("(", absl::FormatDuration(in.default_deadline),
                                                   ") must not exceed --max_deadline (",
                                                   absl::FormatDuration(in.max_deadline), ")"));
  }

  CheckRange("grpc_memory_quota_mb", in.grpc_memory_quota_mb, 65536, out.grpc_memory_quota_mb,
             problems);
  if (in.key_check_interval < absl::ZeroDuration() ||
      in.key_check_interval == absl::InfiniteDuration()) {
    problems.Flag("key_check_interval",
                  absl::StrCat("must be a finite duration such as 5m, or 0 to turn the check "
                               "off, not ",
                               absl::FormatDuration(in.key_check_interval)));
  }
  out.key_check_interval = in.key_check_interval;
  CheckLimits(in.limits, problems);
  out.limits = in.limits;
  out.traffic = LoadTrafficConfig(in.traffic, [&](absl::string_view flag, std::string message) {
    if (flag.empty()) {
      problems.Other(std::move(message));
    } else {
      problems.Flag(flag, message);
    }
  });
  if (in.max_inflight_upstream == 0) {
    out.max_inflight_upstream =
        MaxInflightUpstreamFor(out.traffic.rate_limits, out.upstream_timeout);
  } else if (in.max_inflight_upstream < 0 || in.max_inflight_upstream > kMaxInflightUpstream) {
    problems.Flag("max_inflight_upstream",
                  absl::StrCat("must be 0 (sized from the budgets) or from 1 to ",
                               kMaxInflightUpstream, ", not ", in.max_inflight_upstream));
  } else {
    out.max_inflight_upstream = in.max_inflight_upstream;
  }
  out.jobs = LoadJobsConfig(
      in.jobs, [&](absl::string_view flag, std::string message) { problems.Flag(flag, message); });
  out.jobs.import.limits.rows = out.limits;  // Import rows follow the unary calls' limits.
  out.security = LoadSecurityConfig(
      in.security, absl::Now(),
      [&](absl::string_view flag, std::string message) { problems.Flag(flag, message); });
  if (!in.security.health_listen.empty() &&
      (in.security.health_listen == in.listen || in.security.health_listen == in.metrics_listen) &&
      !absl::EndsWith(in.security.health_listen, ":0")) {
    problems.Flag("health_listen", absl::StrCat("is the same address as --listen or "
                                                "--metrics_listen (",
                                                in.security.health_listen, ")"));
  }
  out.delivery = LoadDeliveryConfig(in.delivery, [&](absl::string_view flag, std::string message) {
    problems.Flag(flag, message);
  });
  out.reflection = in.reflection;
  out.access_log = in.access_log;

  if (std::optional<LogLevel> level = ParseLogLevel(in.log_level)) {
    out.log_level = *level;
  } else {
    problems.Flag("log_level",
                  absl::StrCat("'", in.log_level, "' is not one of debug, info, warning, error"));
  }

  if (!problems.empty()) return problems.ToStatus();
  return out;
}

std::string GatewayConfig::DebugString() const {
  auto d = [](absl::Duration v) { return absl::FormatDuration(v); };
  return absl::StrCat(
      "listen=", listen, " metrics_listen=", metrics_listen, " upstream_url=", upstream_url,
      " api_key=", api_key.DebugString(), " api_key_source=", api_key_source,
      " upstream_ca_file=", upstream_ca_file.empty() ? "(system)" : upstream_ca_file,
      " upstream_timeout=", d(upstream_timeout), " default_deadline=", d(default_deadline),
      " max_deadline=", d(max_deadline), " connect_timeout=", d(connect_timeout),
      " shutdown_grace=", d(shutdown_grace), " max_connection_age=", d(max_connection_age),
      " max_connection_age_grace=", d(max_connection_age_grace),
      " keepalive_time=", d(keepalive_time), " keepalive_timeout=", d(keepalive_timeout),
      " min_client_ping_interval=", d(min_client_ping_interval),
      " max_inflight_upstream=", max_inflight_upstream,
      " grpc_memory_quota_mb=", grpc_memory_quota_mb, " reflection=", reflection ? "true" : "false",
      " log_level=", LogLevelName(log_level), " access_log=", access_log ? "true" : "false",
      " max_id_bytes=", limits.max_id_bytes, " max_event_name_bytes=", limits.max_event_name_bytes,
      " max_metadata_keys=", limits.max_metadata_keys,
      " max_metadata_key_bytes=", limits.max_metadata_key_bytes,
      " max_string_value_bytes=", limits.max_string_value_bytes,
      " max_bulk_rows=", limits.max_bulk_rows,
      " max_bulk_request_bytes=", limits.max_bulk_request_bytes,
      " max_delete_ids=", limits.max_delete_ids, " max_job_id_bytes=", limits.max_job_id_bytes,
      " max_violations=", limits.max_violations, " ", TrafficDebugString(traffic), " ",
      JobsDebugString(jobs), " ", DeliveryDebugString(delivery),
      " key_check_interval=", d(key_check_interval), " ", SecurityDebugString(security));
}

}  // namespace userpilot::gateway
