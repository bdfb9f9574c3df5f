#include "service/config/flags.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>

#include "absl/algorithm/container.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "service/upstream/upstream_rpcs.h"

// Defaults come from ConfigInput, so flags and tests share one definition of each default.
using userpilot::gateway::ConfigInput;
using userpilot::gateway::ValidationLimits;

ABSL_FLAG(std::string, listen, ConfigInput().listen,
          "gRPC listening address, host:port (IPv6 as [::]:50051; port 0 picks a free one).");
ABSL_FLAG(std::string, metrics_listen, ConfigInput().metrics_listen,
          "Prometheus /metrics listening address, host:port.");
ABSL_FLAG(std::string, upstream_url, ConfigInput().upstream_url,
          "Userpilot API base URL, https://host[:port] with no path. http:// is accepted only "
          "for loopback hosts (the local emulator).");
ABSL_FLAG(std::string, region, ConfigInput().region,
          "Userpilot region, us or eu: shortcut for https://analytex.userpilot.io or "
          "https://analytex-eu.userpilot.io. Conflicts with a different --upstream_url.");
ABSL_FLAG(std::string, api_key_file, ConfigInput().api_key_file,
          "File holding only the Userpilot API key (surrounding whitespace is trimmed). When "
          "empty, the key comes from the environment variable USERPILOT_API_KEY.");
ABSL_FLAG(std::string, upstream_ca_file, ConfigInput().upstream_ca_file,
          "PEM CA bundle used to verify Userpilot's TLS certificate; empty uses the system's.");
ABSL_FLAG(absl::Duration, upstream_timeout, ConfigInput().upstream_timeout,
          "Cap on one upstream HTTP attempt; each retry gets a fresh one, all within the "
          "caller's deadline.");
ABSL_FLAG(absl::Duration, default_deadline, ConfigInput().default_deadline,
          "Deadline applied to a call that arrives without a gRPC deadline.");
ABSL_FLAG(absl::Duration, max_deadline, ConfigInput().max_deadline,
          "Longer caller deadlines are cut to this; must be >= --default_deadline.");
ABSL_FLAG(absl::Duration, connect_timeout, ConfigInput().connect_timeout,
          "Cap on establishing one upstream connection (TCP and TLS); <= --upstream_timeout.");
ABSL_FLAG(absl::Duration, shutdown_grace, ConfigInput().shutdown_grace,
          "On SIGTERM/SIGINT, how long in-flight calls may run before they are cancelled.");
ABSL_FLAG(absl::Duration, max_connection_age, ConfigInput().max_connection_age,
          "gRPC connections are closed (GOAWAY) after this age, so clients behind a Kubernetes "
          "Service spread over new replicas.");
ABSL_FLAG(absl::Duration, max_connection_age_grace, ConfigInput().max_connection_age_grace,
          "How long calls in flight on an aged connection may still run.");
ABSL_FLAG(absl::Duration, keepalive_time, ConfigInput().keepalive_time,
          "The server pings an idle gRPC connection this often.");
ABSL_FLAG(absl::Duration, keepalive_timeout, ConfigInput().keepalive_timeout,
          "A connection whose ping goes unanswered this long is closed; < --keepalive_time.");
ABSL_FLAG(absl::Duration, min_client_ping_interval, ConfigInput().min_client_ping_interval,
          "Clients may send keepalive pings this often without being refused.");
ABSL_FLAG(int, grpc_memory_quota_mb, ConfigInput().grpc_memory_quota_mb,
          "Memory the gRPC server's connections may hold for requests being received, in MiB "
          "(a gRPC resource quota over the memory gRPC accounts to it).");
ABSL_FLAG(int, max_inflight_upstream, ConfigInput().max_inflight_upstream,
          "Upstream HTTP requests in flight at once, across all callers; more wait in a queue. "
          "0 sizes it from the budgets: ceil(sum of the budgets' requests per second x "
          "--upstream_timeout), at least 64 (227 with the default budgets and timeout), so the "
          "budgets and not this bound limit what is sent even when every request takes as long "
          "as an attempt may.");
ABSL_FLAG(absl::Duration, key_check_interval, ConfigInput().key_check_interval,
          "Ask Userpilot whether it accepts the API key (one request, no budget) at start-up "
          "and this often; a 401/403 turns health NOT_SERVING until a check succeeds. 0 turns "
          "the check off.");
ABSL_FLAG(bool, reflection, ConfigInput().reflection,
          "Register the gRPC server reflection service (for grpcurl and similar tools).");
ABSL_FLAG(std::string, log_level, ConfigInput().log_level,
          "Least severe log level written: debug, info, warning or error.");
ABSL_FLAG(bool, access_log, ConfigInput().access_log,
          "Log every finished call as one JSON line at info (method, caller, code, attempts, "
          "budget wait, latency; never request content).");
// Validation bounds: each flag sets the ValidationLimits field of the same name; see
// service/validation/validation_limits.h for what each one bounds and why.
ABSL_FLAG(int64_t, max_id_bytes, ValidationLimits().max_id_bytes,
          "Longest id accepted (user_id, company_id, and each id of a delete), in UTF-8 bytes.");
ABSL_FLAG(int64_t, max_event_name_bytes, ValidationLimits().max_event_name_bytes,
          "Longest event_name accepted, in UTF-8 bytes.");
ABSL_FLAG(int64_t, max_metadata_keys, ValidationLimits().max_metadata_keys,
          "Most properties accepted in one metadata object.");
ABSL_FLAG(int64_t, max_metadata_key_bytes, ValidationLimits().max_metadata_key_bytes,
          "Longest metadata property name accepted, in UTF-8 bytes.");
ABSL_FLAG(int64_t, max_string_value_bytes, ValidationLimits().max_string_value_bytes,
          "Longest string metadata value accepted, in UTF-8 bytes.");
ABSL_FLAG(int64_t, max_bulk_rows, ValidationLimits().max_bulk_rows,
          "Most rows accepted in one bulk identify request, 1..10000 (Userpilot's own limit).");
ABSL_FLAG(int64_t, max_bulk_request_bytes, ValidationLimits().max_bulk_request_bytes,
          "Largest bulk identify request accepted, in bytes of its protobuf encoding (at most "
          "Userpilot's 50 MB); the gRPC receive limit follows it.");
ABSL_FLAG(int64_t, max_delete_ids, ValidationLimits().max_delete_ids,
          "Most ids accepted in one delete request.");
ABSL_FLAG(int64_t, max_job_id_bytes, ValidationLimits().max_job_id_bytes,
          "Longest job_id accepted, in UTF-8 bytes.");
ABSL_FLAG(int64_t, max_violations, ValidationLimits().max_violations,
          "Most field violations listed in one INVALID_ARGUMENT error (they travel in trailers, "
          "which clients cap at 8 KiB by default).");

// Traffic control: budgets, fairness, Redis sharing, retries (traffic_config.h).
using userpilot::gateway::JobsInput;
using userpilot::gateway::TrafficInput;
ABSL_FLAG(std::string, identify_rate, TrafficInput().identify_rate,
          "Identify budget, COUNT/WINDOW: never more than COUNT upstream requests in any WINDOW. "
          "Userpilot allows 600/1m per API key. (Which calls spend each budget: see above.)");
ABSL_FLAG(std::string, track_rate, TrafficInput().track_rate,
          "Track budget, COUNT/WINDOW (Userpilot: 600/1m per API key).");
ABSL_FLAG(std::string, delete_rate, TrafficInput().delete_rate,
          "Delete budget, COUNT/WINDOW (Userpilot: 1/2s).");
ABSL_FLAG(std::string, job_read_rate, TrafficInput().job_read_rate,
          "Job-read budget (job watching polls spend it too), COUNT/WINDOW (Userpilot documents "
          "no limit).");
ABSL_FLAG(absl::Duration, ratelimit_spacing_margin, TrafficInput().ratelimit_spacing_margin,
          "Slack added to every budget window against network jitter, so Userpilot never sees "
          "more than COUNT in its own WINDOW.");
ABSL_FLAG(absl::Duration, admission_headroom, TrafficInput().admission_headroom,
          "A call waiting for a budget or a job lane must be admitted at least this long before "
          "its deadline; one that cannot is refused at once or answered DEADLINE_EXCEEDED, never "
          "sent as its caller gives up.");
ABSL_FLAG(absl::Duration, max_upstream_pause, TrafficInput().max_upstream_pause,
          "The longest pause an upstream hint (429 Retry-After, X-RateLimit-Reset) may impose on "
          "a budget; longer hints are cut to it, logged and counted (1s..1h).");
ABSL_FLAG(absl::Duration, job_lane_poll_interval, TrafficInput().job_lane_poll_interval,
          "How often a bulk or import call waiting for the lane's running job polls it (one job "
          "read each); the two lanes together may take at most half of --job_read_rate "
          "(100ms..5m).");
ABSL_FLAG(int64_t, job_lane_max_waiting, TrafficInput().job_lane_max_waiting,
          "Bulk or import calls that may wait their turn on one job lane (each holds its "
          "request); beyond, calls are refused at once with FAILED_PRECONDITION (1..100).");
ABSL_FLAG(std::string, budget_queues, TrafficInput().budget_queues,
          "Most calls waiting per budget, e.g. identify=2000,track=1500 (defaults: identify=1000, "
          "track=1000, delete=30, job_read=240). A full queue answers "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(std::string, caller_weights, TrafficInput().caller_weights,
          "Fair-share weight per caller (x-caller), e.g. billing=2,batch-import=0.25; others "
          "weigh 1.");
ABSL_FLAG(std::string, caller_max_queued, TrafficInput().caller_max_queued,
          "Most calls one caller may have waiting in a budget, e.g. batch-import=50.");
ABSL_FLAG(int64_t, default_caller_max_queued, TrafficInput().default_caller_max_queued,
          "The same cap for callers not named in --caller_max_queued; 0 = none of its own.");
ABSL_FLAG(std::string, ratelimit_redis, TrafficInput().ratelimit_redis,
          "redis://host:port[/db] shared by every replica using the same Userpilot API key, so "
          "together they stay within one budget. Empty: budgets are this replica's own.");
ABSL_FLAG(std::string, ratelimit_redis_fallback, TrafficInput().ratelimit_redis_fallback,
          "When Redis is unreachable: local (spend 1/--ratelimit_replicas of each budget "
          "locally) or refuse (answer UNAVAILABLE).");
ABSL_FLAG(int, ratelimit_replicas, TrafficInput().ratelimit_replicas,
          "How many replicas share the API key (sizes the local fallback share).");
ABSL_FLAG(int, retry_max_attempts, TrafficInput().retry_max_attempts,
          "Most upstream attempts per call, the first included (1 = no retries).");
ABSL_FLAG(absl::Duration, retry_initial_backoff, TrafficInput().retry_initial_backoff,
          "First retry backoff (full jitter, doubling, capped by --retry_max_backoff).");
ABSL_FLAG(absl::Duration, retry_max_backoff, TrafficInput().retry_max_backoff,
          "Longest retry backoff.");
ABSL_FLAG(double, retry_budget_ratio, TrafficInput().retry_budget_ratio,
          "Retries stop while they exceed this share of recent requests (plus 1/s), so an "
          "outage never becomes a retry storm.");
ABSL_FLAG(bool, circuit_breaker, TrafficInput().circuit_breaker,
          "Fail fast with UNAVAILABLE while Userpilot keeps failing, probing before closing.");
ABSL_FLAG(double, circuit_failure_ratio, TrafficInput().circuit_failure_ratio,
          "Share of calls failing upstream (5xx, transport, per-attempt timeout; each call once, "
          "after its retries) over --circuit_window that opens the circuit, in (0, 1].");
ABSL_FLAG(int64_t, circuit_min_calls, TrafficInput().circuit_min_calls,
          "Calls judged within --circuit_window before the failure ratio may open the circuit.");
ABSL_FLAG(absl::Duration, circuit_window, TrafficInput().circuit_window,
          "The rolling window over which the circuit's failure ratio is measured, 1s..1h.");
ABSL_FLAG(absl::Duration, circuit_open_duration, TrafficInput().circuit_open_duration,
          "How long the circuit stays open before half-open probing (fixed; never grows).");
ABSL_FLAG(double, circuit_half_open_share, TrafficInput().circuit_half_open_share,
          "Share of calls let through as probes while the circuit is half-open, in (0, 1].");
ABSL_FLAG(int, circuit_half_open_probes, TrafficInput().circuit_half_open_probes,
          "Probes judged while half-open before the circuit closes (it reopens as soon as "
          "their failure ratio reaches --circuit_failure_ratio).");
// Job watching and imports (service/config/jobs_config.h).
ABSL_FLAG(absl::Duration, watch_min_poll_interval, JobsInput().watch_min_poll_interval,
          "Fastest poll of a watched job (while it changes); each poll is one job read.");
ABSL_FLAG(absl::Duration, watch_max_poll_interval, JobsInput().watch_max_poll_interval,
          "Slowest poll of a watched job (the interval grows to it while the job is unchanged).");
ABSL_FLAG(int64_t, max_watches, JobsInput().max_watches,
          "Open job watch streams at once; beyond: RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_watched_jobs, JobsInput().max_watched_jobs,
          "Distinct jobs polled at once, however many watch each; beyond: RESOURCE_EXHAUSTED.");
ABSL_FLAG(std::string, import_spool_dir, JobsInput().import_spool_dir,
          "Directory where imports spool files (needs room for --max_concurrent_imports x "
          "--import_max_file_bytes). Empty: $TMPDIR, else /tmp.");
ABSL_FLAG(int64_t, import_max_file_bytes, JobsInput().import_max_file_bytes,
          "Largest import file accepted, in bytes (Userpilot's limit, 50 MiB, is the maximum).");
ABSL_FLAG(int64_t, max_concurrent_imports, JobsInput().max_concurrent_imports,
          "Import calls carried at once; beyond: RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, upload_timeout, JobsInput().upload_timeout,
          "Cap on one upload of an import file to Userpilot.");
ABSL_FLAG(absl::Duration, import_idle_timeout, JobsInput().import_idle_timeout,
          "An ImportData caller that sends nothing for this long while the gateway waits for "
          "its next message is ended with DEADLINE_EXCEEDED, freeing its import slot.");
// Durable delivery: Enqueue and the dispatcher (service/config/delivery_config.h).
using userpilot::gateway::DeliveryInput;
ABSL_FLAG(std::string, queue_dir, DeliveryInput().queue_dir,
          "Folder of the embedded durable queue (an append-only log, one gateway process per "
          "folder, on a persistent volume). Empty, with --queue_redis empty too: async delivery "
          "is off and Enqueue answers FAILED_PRECONDITION.");
ABSL_FLAG(int64_t, queue_max_bytes, DeliveryInput().queue_max_bytes,
          "Size bound of the durable queue, in bytes (at least 1 MiB); a full queue answers "
          "Enqueue RESOURCE_EXHAUSTED, never drops a call.");
ABSL_FLAG(std::string, queue_redis, DeliveryInput().queue_redis,
          "redis://host:port[/db] of a Redis (append-only persistence on) holding the durable "
          "queue as a stream every replica delivers from; instead of --queue_dir.");
ABSL_FLAG(absl::Duration, queue_redis_lease_timeout, DeliveryInput().queue_redis_lease_timeout,
          "With --queue_redis: a queued call a replica leased and did not finish within this "
          "(the replica died or stalled) is delivered by another replica; at least 1s, and "
          "longer than --default_deadline, or a slow delivery may be sent twice.");
ABSL_FLAG(double, queue_sync_share, DeliveryInput().queue_sync_share,
          "Share of each upstream budget the dispatcher of queued calls leaves to synchronous "
          "callers, in [0, 0.95].");
ABSL_FLAG(int64_t, queue_max_in_flight, DeliveryInput().queue_max_in_flight,
          "Queued calls the dispatcher holds at once (leased from the queue, waiting for a "
          "budget or sent), 1 to 10000.");
ABSL_FLAG(int64_t, queue_coalesce_threshold, DeliveryInput().queue_coalesce_threshold,
          "Pending queued identify calls of one kind (users, or companies) at which the "
          "dispatcher sends those of distinct users as one bulk identify job; 0: never.");
ABSL_FLAG(int64_t, queue_coalesce_max_rows, DeliveryInput().queue_coalesce_max_rows,
          "Most rows in one coalesced bulk job, 2 to 10000 (also capped by --max_bulk_rows).");
ABSL_FLAG(absl::Duration, queue_coalesce_job_timeout, DeliveryInput().queue_coalesce_job_timeout,
          "How long a coalesced bulk job's rows wait for the job's end before each is sent as a "
          "single call.");

// Who may connect and call (service/config/security_config.h, docs/security.md).
using userpilot::gateway::SecurityInput;
ABSL_FLAG(std::string, tls_cert_file, SecurityInput().tls_cert_file,
          "PEM certificate chain for TLS on the gRPC listener (with --tls_key_file). Re-read "
          "every --credentials_reload_interval; open connections are kept. Empty: plaintext.");
ABSL_FLAG(std::string, tls_key_file, SecurityInput().tls_key_file,
          "PEM private key of --tls_cert_file's certificate.");
ABSL_FLAG(std::string, tls_client_ca_file, SecurityInput().tls_client_ca_file,
          "PEM CA bundle: clients must present a certificate it issued (mTLS); the caller is the "
          "certificate's first DNS subjectAltName, else its CN. Needs --tls_cert_file.");
ABSL_FLAG(std::string, caller_tokens_file, SecurityInput().caller_tokens_file,
          "Bearer tokens of the calling services, one `NAME SHA256HEX` line each (the SHA-256 of "
          "the token, never the token; # comments). Callers send `authorization: Bearer "
          "<token>`. Re-read every --credentials_reload_interval.");
ABSL_FLAG(std::string, caller_allow, SecurityInput().caller_allow,
          "Which RPCs each authenticated caller may call, e.g. "
          "gdpr-service=DeleteUsers|DeleteCompanies,*=IdentifyUser|TrackEvent (`*`: any "
          "authenticated caller). Empty: every RPC for every authenticated caller.");
ABSL_FLAG(absl::Duration, credentials_reload_interval, SecurityInput().credentials_reload_interval,
          "How often the TLS files and the caller tokens file are re-read.");
ABSL_FLAG(bool, reflection_with_auth, SecurityInput().reflection_with_auth,
          "Serve gRPC reflection (--reflection) even when callers must authenticate; "
          "reflection itself asks for no credentials.");
ABSL_FLAG(int, max_connections, SecurityInput().max_connections,
          "Most gRPC connections open at once; a connection over it is reset and counted. "
          "0: no cap.");
ABSL_FLAG(int, max_concurrent_streams, SecurityInput().max_concurrent_streams,
          "Most calls in flight on one gRPC connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); "
          "clients queue the rest. 0: gRPC's default (no cap).");
ABSL_FLAG(std::string, health_listen, SecurityInput().health_listen,
          "host:port of a plaintext listener serving only grpc.health.v1 (for kubelet gRPC "
          "probes when the gRPC port speaks TLS). Empty: none.");

namespace userpilot::gateway {
namespace {

constexpr absl::string_view kUsage =
    "a gRPC gateway in front of Userpilot's REST API.\n"
    "\n"
    "Usage: userpilot-gateway [flags]\n"
    "\n"
    "Every flag below can also be set by the environment variable\n"
    "USERPILOT_GATEWAY_<FLAG NAME IN CAPITALS> (e.g. USERPILOT_GATEWAY_LISTEN=0.0.0.0:50051);\n"
    "the command line wins over the environment. The Userpilot API key is read from\n"
    "--api_key_file, else from the environment variable USERPILOT_API_KEY; it is never logged.";

// The usage text's list of budgets, each with the RPCs that spend it (gateway.proto names),
// from the table of upstream RPCs.
std::string BudgetUsage() {
  std::string text =
      "Upstream budgets (rates: --identify_rate, --track_rate, --delete_rate,\n"
      "--job_read_rate; bulk and imports are lanes of one job at a time, no rate)\n"
      "and the RPCs that spend them:";
  for (size_t b = 0; b < kBudgetCount; ++b) {
    const auto budget = static_cast<BudgetId>(b);
    std::vector<absl::string_view> rpcs;
    for (const RpcInfo& rpc : AllRpcs()) {
      const bool spends =
          absl::c_any_of(rpc.routes, [&](const Route& r) { return r.budget == budget; });
      if (spends && !absl::c_linear_search(rpcs, rpc.proto_method))
        rpcs.push_back(rpc.proto_method);
    }
    absl::StrAppend(&text, "\n  ", absl::StrFormat("%-9s", BudgetName(budget)), " ",
                    absl::StrJoin(rpcs, ", "));
  }
  return text;
}

// True for the files whose flags --help lists: the gateway's own.
bool IsGatewayFlagFile(absl::string_view filename) {
  return absl::StrContains(filename, "service/");
}

void ConfigureUsage(absl::string_view version) {
  static std::once_flag once;
  std::call_once(once, [version] {
    absl::SetProgramUsageMessage(absl::StrCat(kUsage, "\n\n", BudgetUsage()));
    absl::FlagsUsageConfig usage;
    usage.contains_help_flags = IsGatewayFlagFile;
    usage.contains_helpshort_flags = IsGatewayFlagFile;
    usage.normalize_filename = [](absl::string_view filename) {
      size_t at = filename.rfind("service/");
      return std::string(at == absl::string_view::npos ? filename : filename.substr(at));
    };
    if (!version.empty()) {
      usage.version_string = [v = std::string(version)] {
        return absl::StrCat("userpilot-gateway ", v, "\n");
      };
    }
    absl::SetFlagsUsageConfig(std::move(usage));
  });
}

}  // namespace

const std::vector<absl::string_view>& GatewayFlagNames() {
  // Every flag defined in a gateway source file (IsGatewayFlagFile), from Abseil's registry:
  // defining an ABSL_FLAG is all it takes for a setting to get its environment variable.
  static const auto* const kNames = [] {
    auto* names = new std::vector<absl::string_view>();
    for (const auto& [name, flag] : absl::GetAllFlags()) {
      if (IsGatewayFlagFile(flag->Filename())) names->push_back(flag->Name());
    }
    std::sort(names->begin(), names->end());
    return names;
  }();
  return *kNames;
}

std::string FlagEnvVar(absl::string_view flag_name) {
  return absl::StrCat(kFlagEnvPrefix, absl::AsciiStrToUpper(flag_name));
}

namespace {

struct EnvApplied {
  std::string var;
  std::string value;  // The flag's value right after the environment set it.
};

// Flags set from the environment by ApplyFlagEnvironment, by flag name.
std::map<std::string, EnvApplied>& EnvAppliedFlags() {
  static auto* const applied = new std::map<std::string, EnvApplied>();
  return *applied;
}

}  // namespace

absl::Status ApplyFlagEnvironment(const EnvLookup& env) {
  EnvAppliedFlags().clear();
  std::vector<std::string> problems;
  for (absl::string_view name : GatewayFlagNames()) {
    std::string var = FlagEnvVar(name);
    std::optional<std::string> value = env(var);
    if (!value.has_value() || value->empty()) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {  // Cannot happen: every name is defined above.
      problems.push_back(absl::StrCat(var, ": no flag --", name));
      continue;
    }
    std::string error;
    if (!flag->ParseFrom(*value, &error)) {
      problems.push_back(absl::StrCat(var, "='", *value, "': ", error));
      continue;
    }
    EnvAppliedFlags()[std::string(name)] = EnvApplied{var, flag->CurrentValue()};
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("invalid environment:\n  ", absl::StrJoin(problems, "\n  ")));
}

std::vector<std::string> ParseFlagsWithEnv(int argc, char** argv, absl::string_view version) {
  ConfigureUsage(version);
  if (absl::Status s = ApplyFlagEnvironment(); !s.ok()) {
    std::cerr << "userpilot-gateway: " << s.message() << "\n";
    std::exit(2);
  }
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return std::vector<std::string>(rest.begin() + (rest.empty() ? 0 : 1), rest.end());
}

ConfigInput ConfigInputFromFlags() {
  ConfigInput in;
  in.listen = absl::GetFlag(FLAGS_listen);
  in.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  in.upstream_url = absl::GetFlag(FLAGS_upstream_url);
  in.region = absl::GetFlag(FLAGS_region);
  in.api_key_file = absl::GetFlag(FLAGS_api_key_file);
  in.upstream_ca_file = absl::GetFlag(FLAGS_upstream_ca_file);
  in.upstream_timeout = absl::GetFlag(FLAGS_upstream_timeout);
  in.default_deadline = absl::GetFlag(FLAGS_default_deadline);
  in.max_deadline = absl::GetFlag(FLAGS_max_deadline);
  in.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  in.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  in.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  in.max_connection_age_grace = absl::GetFlag(FLAGS_max_connection_age_grace);
  in.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  in.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  in.min_client_ping_interval = absl::GetFlag(FLAGS_min_client_ping_interval);
  in.max_inflight_upstream = absl::GetFlag(FLAGS_max_inflight_upstream);
  in.grpc_memory_quota_mb = absl::GetFlag(FLAGS_grpc_memory_quota_mb);
  in.key_check_interval = absl::GetFlag(FLAGS_key_check_interval);
  in.reflection = absl::GetFlag(FLAGS_reflection);
  in.log_level = absl::GetFlag(FLAGS_log_level);
  in.access_log = absl::GetFlag(FLAGS_access_log);
  ValidationLimits& l = in.limits;
  l.max_id_bytes = absl::GetFlag(FLAGS_max_id_bytes);
  l.max_event_name_bytes = absl::GetFlag(FLAGS_max_event_name_bytes);
  l.max_metadata_keys = absl::GetFlag(FLAGS_max_metadata_keys);
  l.max_metadata_key_bytes = absl::GetFlag(FLAGS_max_metadata_key_bytes);
  l.max_string_value_bytes = absl::GetFlag(FLAGS_max_string_value_bytes);
  l.max_bulk_rows = absl::GetFlag(FLAGS_max_bulk_rows);
  l.max_bulk_request_bytes = absl::GetFlag(FLAGS_max_bulk_request_bytes);
  l.max_delete_ids = absl::GetFlag(FLAGS_max_delete_ids);
  l.max_job_id_bytes = absl::GetFlag(FLAGS_max_job_id_bytes);
  l.max_violations = absl::GetFlag(FLAGS_max_violations);
  TrafficInput& t = in.traffic;
  t.identify_rate = absl::GetFlag(FLAGS_identify_rate);
  t.track_rate = absl::GetFlag(FLAGS_track_rate);
  t.delete_rate = absl::GetFlag(FLAGS_delete_rate);
  t.job_read_rate = absl::GetFlag(FLAGS_job_read_rate);
  t.ratelimit_spacing_margin = absl::GetFlag(FLAGS_ratelimit_spacing_margin);
  t.admission_headroom = absl::GetFlag(FLAGS_admission_headroom);
  t.max_upstream_pause = absl::GetFlag(FLAGS_max_upstream_pause);
  t.job_lane_poll_interval = absl::GetFlag(FLAGS_job_lane_poll_interval);
  t.job_lane_max_waiting = absl::GetFlag(FLAGS_job_lane_max_waiting);
  t.budget_queues = absl::GetFlag(FLAGS_budget_queues);
  t.caller_weights = absl::GetFlag(FLAGS_caller_weights);
  t.caller_max_queued = absl::GetFlag(FLAGS_caller_max_queued);
  t.default_caller_max_queued = absl::GetFlag(FLAGS_default_caller_max_queued);
  t.ratelimit_redis = absl::GetFlag(FLAGS_ratelimit_redis);
  t.ratelimit_redis_fallback = absl::GetFlag(FLAGS_ratelimit_redis_fallback);
  t.ratelimit_replicas = absl::GetFlag(FLAGS_ratelimit_replicas);
  t.retry_max_attempts = absl::GetFlag(FLAGS_retry_max_attempts);
  t.retry_initial_backoff = absl::GetFlag(FLAGS_retry_initial_backoff);
  t.retry_max_backoff = absl::GetFlag(FLAGS_retry_max_backoff);
  t.retry_budget_ratio = absl::GetFlag(FLAGS_retry_budget_ratio);
  t.circuit_breaker = absl::GetFlag(FLAGS_circuit_breaker);
  t.circuit_failure_ratio = absl::GetFlag(FLAGS_circuit_failure_ratio);
  t.circuit_min_calls = absl::GetFlag(FLAGS_circuit_min_calls);
  t.circuit_window = absl::GetFlag(FLAGS_circuit_window);
  t.circuit_open_duration = absl::GetFlag(FLAGS_circuit_open_duration);
  t.circuit_half_open_share = absl::GetFlag(FLAGS_circuit_half_open_share);
  t.circuit_half_open_probes = absl::GetFlag(FLAGS_circuit_half_open_probes);
  JobsInput& j = in.jobs;
  j.watch_min_poll_interval = absl::GetFlag(FLAGS_watch_min_poll_interval);
  j.watch_max_poll_interval = absl::GetFlag(FLAGS_watch_max_poll_interval);
  j.max_watches = absl::GetFlag(FLAGS_max_watches);
  j.max_watched_jobs = absl::GetFlag(FLAGS_max_watched_jobs);
  j.import_spool_dir = absl::GetFlag(FLAGS_import_spool_dir);
  j.import_max_file_bytes = absl::GetFlag(FLAGS_import_max_file_bytes);
  j.max_concurrent_imports = absl::GetFlag(FLAGS_max_concurrent_imports);
  j.upload_timeout = absl::GetFlag(FLAGS_upload_timeout);
  j.import_idle_timeout = absl::GetFlag(FLAGS_import_idle_timeout);
  SecurityInput& sec = in.security;
  sec.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  sec.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  sec.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  sec.caller_tokens_file = absl::GetFlag(FLAGS_caller_tokens_file);
  sec.caller_allow = absl::GetFlag(FLAGS_caller_allow);
  sec.credentials_reload_interval = absl::GetFlag(FLAGS_credentials_reload_interval);
  sec.reflection_with_auth = absl::GetFlag(FLAGS_reflection_with_auth);
  sec.max_connections = absl::GetFlag(FLAGS_max_connections);
  sec.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  sec.health_listen = absl::GetFlag(FLAGS_health_listen);
  DeliveryInput& q = in.delivery;
  q.queue_dir = absl::GetFlag(FLAGS_queue_dir);
  q.queue_max_bytes = absl::GetFlag(FLAGS_queue_max_bytes);
  q.queue_redis = absl::GetFlag(FLAGS_queue_redis);
  q.queue_redis_lease_timeout = absl::GetFlag(FLAGS_queue_redis_lease_timeout);
  q.queue_sync_share = absl::GetFlag(FLAGS_queue_sync_share);
  q.queue_max_in_flight = absl::GetFlag(FLAGS_queue_max_in_flight);
  q.queue_coalesce_threshold = absl::GetFlag(FLAGS_queue_coalesce_threshold);
  q.queue_coalesce_max_rows = absl::GetFlag(FLAGS_queue_coalesce_max_rows);
  q.queue_coalesce_job_timeout = absl::GetFlag(FLAGS_queue_coalesce_job_timeout);
  for (const auto& [name, applied] : EnvAppliedFlags()) {
    // Still the environment's value, so the command line did not override it.
    if (absl::FindCommandLineFlag(name)->CurrentValue() == applied.value) {
      in.from_environment[name] = applied.var;
    }
  }
  return in;
}

}  // namespace userpilot::gateway
