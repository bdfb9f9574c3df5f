// The gateway's configuration: parsed once at start-up into an immutable object.
//
// Flow (see flags.h for the command-line side):
//
//   ConfigInput  --LoadConfig-->  GatewayConfig
//   (raw values, named like       (validated, normalized, the API key loaded; every component
//    the flags; flags.cc fills     gets the parts it needs by constructor; nothing deep in the
//    one from flags + env)         code reads flags or the environment)
//
// LoadConfig checks every setting and reports ALL problems at once, each naming its flag, so a
// bad deployment stops at start-up with one clear message. Tests build a ConfigInput directly
// (no flags involved) and pass a fake environment.
//
// Thread-safety: GatewayConfig is a value, immutable after LoadConfig returns it; share it as
// `const GatewayConfig&` freely. LoadConfig reads files and (by default) the process
// environment; call it once, from main, before starting threads.
#ifndef USERPILOT_GATEWAY_SERVICE_CONFIG_CONFIG_H_
#define USERPILOT_GATEWAY_SERVICE_CONFIG_CONFIG_H_

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/config/delivery_config.h"
#include "service/config/jobs_config.h"
#include "service/config/secret.h"
#include "service/config/security_config.h"
#include "service/config/traffic_config.h"
#include "service/validation/validation_limits.h"

namespace userpilot::gateway {

// Userpilot's API hosts (`--region=us|eu`).
inline constexpr absl::string_view kUsUpstreamUrl = "https://analytex.userpilot.io";
inline constexpr absl::string_view kEuUpstreamUrl = "https://analytex-eu.userpilot.io";

// The environment variable holding the API key when --api_key_file is not given.
inline constexpr absl::string_view kApiKeyEnvVar = "USERPILOT_API_KEY";

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// "debug", "info", "warning" or "error".
absl::string_view LogLevelName(LogLevel level);

// --max_inflight_upstream's range, and the least value MaxInflightUpstreamFor() gives.
inline constexpr int kMaxInflightUpstream = 100000;
inline constexpr int kMinDerivedInflightUpstream = 64;

// The default of --max_inflight_upstream: enough slots that the budgets, not the HTTP client,
// limit what is sent, even when every request takes as long as an attempt may. By Little's law
// the requests in flight are the rate they are sent at times how long each stays in flight;
// the budgets bound the rate of every attempt (retries included), and --upstream_timeout
// bounds how long one attempt holds a slot. So
//   ceil(sum over the four budgets of limit / window, per second, x upstream_timeout)
//   + kJobLaneSlots (the bulk and import lanes send one request at a time each),
// at least kMinDerivedInflightUpstream (room for uploads, which may take --upload_timeout, and
// for budgets set very low) and at most kMaxInflightUpstream. With the default budgets (600 +
// 600 per minute, 1 per 2 s, 120 per minute: 22.5/s) and 10 s: 225 + 2 = 227.
inline constexpr int kJobLaneSlots = 2;
int MaxInflightUpstreamFor(const RateLimitOptions& budgets, absl::Duration upstream_timeout);

// The raw settings, one field per flag with the flag's name and default, not yet checked.
// flags.cc fills one from the command line and environment; tests fill one directly.
struct ConfigInput {
  std::string listen = "0.0.0.0:50051";
  std::string metrics_listen = "0.0.0.0:9464";
  std::string upstream_url = std::string(kUsUpstreamUrl);
  std::string region;            // "", "us" or "eu". Empty: use upstream_url.
  std::string api_key_file;      // Empty: read the key from USERPILOT_API_KEY.
  std::string upstream_ca_file;  // Empty: the system's CA bundle.
  absl::Duration upstream_timeout = absl::Seconds(10);
  absl::Duration default_deadline = absl::Seconds(30);
  absl::Duration max_deadline = absl::Minutes(5);
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration shutdown_grace = absl::Seconds(25);
  absl::Duration max_connection_age = absl::Minutes(5);
  absl::Duration max_connection_age_grace = absl::Minutes(5);
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  absl::Duration min_client_ping_interval = absl::Seconds(30);
  int max_inflight_upstream = 0;  // 0: MaxInflightUpstreamFor(the budgets, upstream_timeout).
  int grpc_memory_quota_mb = 128;
  absl::Duration key_check_interval = absl::Minutes(5);
  bool reflection = true;
  std::string log_level = "info";
  bool access_log = true;
  // Request validation bounds; each field is the flag of the same name (--max_id_bytes, ...).
  ValidationLimits limits;
  // Budgets, Redis sharing and retries (traffic_config.h).
  TrafficInput traffic;
  // Job watching and imports (jobs_config.h).
  JobsInput jobs;
  // TLS, caller authentication, connection caps, the health listener (security_config.h).
  SecurityInput security;
  // Durable delivery: Enqueue's queue and the dispatcher (delivery_config.h).
  DeliveryInput delivery;

  // Flag name -> environment variable, for the settings that came from the environment
  // (not overridden on the command line). Only used to name the variable in error messages.
  std::map<std::string, std::string> from_environment;
};

// The validated configuration. Build it with LoadConfig; it is not meant to be modified after.
struct GatewayConfig {
  // gRPC listening address, host:port (`--listen`).
  std::string listen;
  // Prometheus /metrics listening address, host:port (`--metrics_listen`).
  std::string metrics_listen;
  // Userpilot's base URL, `https://host[:port]` (or http:// on loopback), no trailing slash.
  // Endpoint paths (`/v1/identify`) are appended to it. `--upstream_url` / `--region`.
  std::string upstream_url;
  // Userpilot's API key, sent as `Authorization: Token <key>`. Never print it.
  Secret api_key;
  // Where the key came from, for logs: `file:/path` or `env:USERPILOT_API_KEY`.
  std::string api_key_source;
  // PEM CA bundle to verify Userpilot's certificate; empty means the system's bundle.
  std::string upstream_ca_file;
  // Cap on one upstream HTTP attempt (`--upstream_timeout`); retries each get a fresh one,
  // all within the caller's deadline.
  absl::Duration upstream_timeout;
  // Deadline applied to a call that arrives without one (`--default_deadline`).
  absl::Duration default_deadline;
  // Longer caller deadlines are cut to this (`--max_deadline`). >= default_deadline.
  absl::Duration max_deadline;
  // Cap on establishing one upstream TCP+TLS connection (`--connect_timeout`).
  // <= upstream_timeout.
  absl::Duration connect_timeout;
  // On SIGTERM: how long in-flight calls may take to finish before they are cancelled
  // (`--shutdown_grace`).
  absl::Duration shutdown_grace;
  // gRPC connections: closed after --max_connection_age (so clients rebalance across replicas),
  // with --max_connection_age_grace for calls in flight; server keepalive pings every
  // --keepalive_time, dropping a peer silent for --keepalive_timeout; clients may ping every
  // --min_client_ping_interval.
  absl::Duration max_connection_age;
  absl::Duration max_connection_age_grace;
  absl::Duration keepalive_time;
  absl::Duration keepalive_timeout;
  absl::Duration min_client_ping_interval;
  // Upstream HTTP requests in flight at once, across all callers (`--max_inflight_upstream`,
  // or MaxInflightUpstreamFor() when it is 0).
  int max_inflight_upstream = 0;
  // The gRPC server's memory bound, MiB (`--grpc_memory_quota_mb`): a grpc::ResourceQuota over
  // its connections' buffers.
  int grpc_memory_quota_mb = 0;
  // How often Userpilot is asked whether it accepts the API key, the first time at start-up
  // (`--key_check_interval`; upstream/key_checker.h). Zero: never.
  absl::Duration key_check_interval;
  // Whether to register the gRPC server reflection service (`--reflection`).
  bool reflection = true;
  LogLevel log_level = LogLevel::kInfo;
  // Whether every finished call is logged (one JSON line at info; `--access_log`).
  bool access_log = true;
  // What requests may hold (`--max_id_bytes` and the other flags named after its fields).
  ValidationLimits limits;
  // Budgets, Redis sharing and retries.
  TrafficConfig traffic;
  // Job watching and imports.
  JobsConfig jobs;
  // TLS, caller authentication, connection caps, the health listener.
  SecurityConfig security;
  // Durable delivery (Enqueue); delivery.enabled() false: the delivery RPCs answer
  // FAILED_PRECONDITION.
  DeliveryConfig delivery;

  // Every setting on one line, `name=value` with flag names, the API key as `[redacted]`.
  // For the start-up log line.
  std::string DebugString() const;
};

// Reads one environment variable: nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view name)>;

// EnvLookup over the process environment (getenv).
EnvLookup ProcessEnvironment();

// Checks `input`, loads the API key (from input.api_key_file, else `env(USERPILOT_API_KEY)`),
// and returns the configuration. On failure: INVALID_ARGUMENT whose message lists every
// problem found, one per line, each naming its flag (or environment variable). Messages never
// contain the API key or the key file's contents.
absl::StatusOr<GatewayConfig> LoadConfig(const ConfigInput& input,
                                         const EnvLookup& env = ProcessEnvironment());

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_CONFIG_CONFIG_H_
