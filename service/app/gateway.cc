#include "service/app/gateway.h"

#include <unistd.h>

#include <algorithm>
#include <future>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/auth/authenticator.h"
#include "service/auth/caller_token_store.h"
#include "service/auth/capped_listener.h"
#include "service/auth/tls_credentials.h"
#include "service/delivery/delivery_frontend.h"
#include "service/delivery/dispatcher.h"
#include "service/delivery/log_delivery_store.h"
#include "service/delivery/redis_delivery_store.h"
#include "service/http/curl_http_client.h"
#include "service/jobs/import/importer.h"
#include "service/jobs/watch/job_watch_registry.h"
#include "service/logging/access_log.h"
#include "service/logging/logger.h"
#include "service/metrics/component_exports.h"
#include "service/metrics/metered_http_client.h"
#include "service/metrics/metrics_server.h"
#include "service/metrics/process_metrics.h"
#include "service/retry/retrying_stub.h"
#include "service/server/gateway_server.h"
#include "service/server/gateway_service.h"
#include "service/upstream/key_checker.h"

namespace userpilot::gateway {
namespace {

// How long before the drain deadline the gateway stops waiting politely and answers what is
// still pending, so every answer is written before the deadline.
constexpr absl::Duration kDrainCutOffMargin = absl::Milliseconds(500);
// ImportData's per-message bound: gateway.proto promises every chunk up to 4 MiB fits.
constexpr int64_t kMaxImportMessageBytes = 4 << 20;

// Callers named in the rate-limit configuration keep their name in budget metrics; the rest
// are "other", so callers cannot create series.
BudgetMetricsOptions BudgetMetricsFor(const GatewayConfig& config) {
  BudgetMetricsOptions options;
  for (const auto& [caller, policy] : config.traffic.rate_limits.limiter.callers) {
    options.callers.insert(caller);
  }
  return options;
}

// Checks the API key (GET /v1/validate, sent by `probe`) now and every
// config.key_check_interval: a rejection turns health NOT_SERVING (and an acceptance back),
// counted, and logged once per change, never with the key.
std::unique_ptr<KeyChecker> StartKeyCheck(const GatewayConfig& config, Logger* logger,
                                          KeyProbe probe, Scheduler& scheduler,
                                          GatewayServer& server, KeyCheckMetrics& metrics) {
  metrics.Enable();
  KeyCheckObserver observer;
  observer.on_check = [&metrics](KeyVerdict verdict, const CallStatus&) {
    metrics.RecordCheck(KeyVerdictName(verdict));
  };
  observer.on_change = [&server, logger](bool accepted, const CallStatus& answer) {
    server.SetServing(accepted);
    if (logger == nullptr) return;
    if (accepted) {
      logger->Info("Userpilot accepts the API key: health SERVING",
                   {{"upstream_request_id", answer.facts().upstream.request_id}});
    } else {
      logger->Warning(
          "Userpilot rejects the API key: health NOT_SERVING until a key check succeeds",
          {{"upstream_status", answer.facts().upstream.http_status},
           {"upstream_request_id", answer.facts().upstream.request_id},
           {"error", answer.message()}});
    }
  };
  KeyCheckOptions options;
  options.interval = config.key_check_interval;
  options.timeout = config.default_deadline;
  auto checker =
      std::make_unique<KeyChecker>(std::move(probe), scheduler, options, std::move(observer));
  checker->Start();
  return checker;
}

// Refused calls and connections, counted (gateway_metrics.h SecurityMetrics).
class MetricsAuthObserver final : public AuthObserver {
 public:
  explicit MetricsAuthObserver(SecurityMetrics& metrics) : metrics_(metrics) {}
  void OnRefused(AuthRefusal reason, absl::string_view caller, absl::string_view) override {
    metrics_.RecordAuthRefused(AuthRefusalName(reason), caller);
  }

 private:
  SecurityMetrics& metrics_;
};

class MetricsConnectionObserver final : public ConnectionObserver {
 public:
  explicit MetricsConnectionObserver(SecurityMetrics& metrics) : metrics_(metrics) {}
  void OnConnectionRefused(absl::string_view reason, size_t, absl::string_view) override {
    metrics_.RecordConnectionRefused(reason);
  }

 private:
  SecurityMetrics& metrics_;
};

// Starts the caller token store (--caller_tokens_file), logging every reload.
absl::StatusOr<std::unique_ptr<CallerTokenStore>> StartTokenStore(const SecurityConfig& security,
                                                                  Logger* logger) {
  CallerTokenStore::Options options;
  options.path = security.caller_tokens_file;
  options.reload_interval = security.credentials_reload_interval;
  if (logger != nullptr) {
    options.on_reload = [logger, path = options.path](const CallerTokenStore::Reload& reload) {
      if (reload.status.ok()) {
        logger->Info("caller tokens loaded", {{"file", path},
                                              {"tokens", static_cast<int64_t>(reload.tokens)},
                                              {"callers", static_cast<int64_t>(reload.callers)}});
      } else {
        logger->Warning("caller tokens file not taken; the previous tokens stay in force",
                        {{"file", path}, {"error", reload.status.message()}});
      }
    };
  }
  auto store = CallerTokenStore::Start(std::move(options));
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("--caller_tokens_file: ", store.status().message()));
  }
  return store;
}

// The durable queue of config.delivery: the embedded log or the Redis Stream. Blocks (replay,
// connecting): start-up only.
absl::StatusOr<std::unique_ptr<DeliveryStore>> OpenDeliveryStore(const DeliveryConfig& config,
                                                                 Scheduler& scheduler) {
  auto clock = [&scheduler] { return scheduler.Now(); };
  if (config.store == DeliveryConfig::Store::kLog) {
    LogDeliveryStoreOptions options;
    options.dir = config.dir;
    options.max_bytes = config.max_bytes;
    // Four segments to the bound (64 KiB to 64 MiB each), so a small bound still rotates.
    options.segment_bytes =
        std::clamp<uint64_t>(config.max_bytes / 4, uint64_t{64} << 10, uint64_t{64} << 20);
    options.clock = clock;
    auto store = LogDeliveryStore::Open(std::move(options));
    if (!store.ok()) {
      return absl::Status(store.status().code(),
                          absl::StrCat("--queue_dir: ", store.status().message()));
    }
    return std::unique_ptr<DeliveryStore>(*std::move(store));
  }
  RedisDeliveryStoreOptions options;
  options.url = config.redis_url;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  // Unique per process: a restarted replica's unfinished leases go to whoever claims them.
  options.consumer = absl::StrCat(host[0] != '\0' ? host : "gateway", "-", ::getpid());
  options.max_bytes = config.max_bytes;
  options.lease_timeout = config.redis_lease_timeout;
  options.clock = clock;
  auto store = RedisDeliveryStore::Open(std::move(options));
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("--queue_redis: ", store.status().message()));
  }
  return std::unique_ptr<DeliveryStore>(*std::move(store));
}

// What opening the queue found: the backlog, and any damage replay dropped (an unfinished last
// write, never acknowledged; or a corrupt region, whose record is lost), as a warning.
void LogQueueOpened(Logger& logger, const DeliveryStore& store) {
  const DeliveryStoreStats stats = store.Stats();
  const std::vector<LogField> fields = {{"backlog_calls", stats.pending},
                                        {"dead_letters", stats.dead},
                                        {"replayed_records", stats.replayed_records},
                                        {"torn_tail_bytes", stats.torn_tail_bytes},
                                        {"corrupt_regions", stats.corrupt_regions},
                                        {"corrupt_bytes", stats.corrupt_bytes}};
  const bool damaged = stats.torn_tail_bytes > 0 || stats.corrupt_regions > 0;
  logger.Log(damaged ? LogSeverity::kWarning : LogSeverity::kInfo,
             damaged ? "delivery queue opened with damage: an unfinished last write "
                       "(torn_tail_bytes, never acknowledged) was cut off; each corrupt region "
                       "skipped may have lost a record"
                     : "delivery queue opened",
             fields);
}

// The dispatcher's options: its bound, the calls' deadline, and its pace on each rated budget
// (leaving --queue_sync_share of it, of this replica's part of a shared budget, to synchronous
// callers).
DispatcherOptions DispatcherOptionsFrom(const GatewayConfig& config, DeliveryMetrics& metrics,
                                        Logger* logger) {
  DispatcherOptions options;
  options.max_in_flight = config.delivery.max_in_flight;
  options.attempt_deadline = config.default_deadline;
  const int replicas = config.traffic.redis.has_value() ? config.traffic.redis->replicas : 1;
  const RateLimitOptions& rates = config.traffic.rate_limits;
  const std::pair<BudgetId, const BudgetOptions*> budgets[] = {
      {BudgetId::kIdentify, &rates.identify},
      {BudgetId::kTrack, &rates.track},
      {BudgetId::kDelete, &rates.deletes},
      {BudgetId::kJobRead, &rates.job_reads}};
  for (const auto& [id, budget] : budgets) {
    options.pace[static_cast<size_t>(id)] =
        PaceFor(budget->rate.limit, budget->rate.window + rates.spacing_margin,
                config.delivery.sync_share, replicas);
  }
  options.observer.on_attempt = [&metrics](DeliveryAttemptOutcome outcome, bool in_doubt) {
    metrics.RecordAttempt(DeliveryAttemptOutcomeName(outcome), in_doubt);
  };
  // Coalescing, in jobs no larger than the validator lets a bulk request be. With --queue_redis
  // the dispatcher renews the rows' leases while a job runs (the store's lease timeout).
  options.coalesce.threshold = config.delivery.coalesce_threshold;
  options.coalesce.max_rows = std::min<size_t>(config.delivery.coalesce_max_rows,
                                               static_cast<size_t>(config.limits.max_bulk_rows));
  options.coalesce.max_request_bytes = static_cast<size_t>(config.limits.max_bulk_request_bytes);
  options.coalesce.job_timeout = config.delivery.coalesce_job_timeout;
  // The bulk check: as often as a job lane polls, bounded like a coalesced job's wait.
  options.bulk_gate.poll_interval = rates.job_lanes.poll_interval;
  options.bulk_gate.timeout = config.delivery.coalesce_job_timeout;
  options.observer.on_bulk_check = [&metrics, logger](BulkCheckResult result, size_t waiting,
                                                      const std::string& detail) {
    metrics.RecordBulkCheck(BulkCheckResultName(result));
    if (logger != nullptr && result == BulkCheckResult::kFailed) {
      logger->Warning(
          "the bulk check (ListJobs) failed; the calls a bulk job may still apply "
          "keep waiting and it is tried again after a backoff",
          {{"waiting_calls", static_cast<int64_t>(waiting)}, {"why", detail}});
    }
  };
  options.observer.on_gate_released = [&metrics, logger](BulkGateRelease why, size_t records,
                                                         const std::string& detail) {
    metrics.RecordGateReleased(BulkGateReleaseName(why), records);
    if (logger != nullptr && why == BulkGateRelease::kDeadline) {
      logger->Warning(
          "calls a bulk job may still apply waited the longest allowed for no bulk "
          "job to run; sent all the same, a later bulk row may overwrite them",
          {{"calls", static_cast<int64_t>(records)}, {"why", detail}});
    }
  };
  options.observer.on_leases_lost = [&metrics](size_t records) {
    metrics.RecordLeasesLost(records);
  };
  options.observer.on_coalesced_job = [&metrics, logger](CoalescedJobOutcome job,
                                                         CoalescedRowOutcome row, size_t rows,
                                                         const std::string& why) {
    metrics.RecordCoalescedJob(CoalescedJobOutcomeName(job), CoalescedRowOutcomeName(row), rows);
    if (logger != nullptr && job != CoalescedJobOutcome::kCompleted) {
      logger->Warning(
          "a coalesced bulk identify job did not complete; its rows go as single "
          "calls (once no bulk job runs, when the job may still run)",
          {{"outcome", std::string(CoalescedJobOutcomeName(job))},
           {"rows", static_cast<int64_t>(rows)},
           {"why", why}});
    }
  };
  return options;
}

}  // namespace

UpstreamStackOptions UpstreamStackOptionsFrom(const GatewayConfig& config) {
  UpstreamStackOptions options;
  options.upstream.base_url = config.upstream_url;
  options.upstream.api_key = config.api_key.Reveal();
  options.upstream.request_timeout = config.upstream_timeout;
  options.upstream.upload_timeout = config.jobs.upload_timeout;
  options.retry = config.traffic.retry;
  options.job_lanes = config.traffic.rate_limits.job_lanes;
  return options;
}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Start(const GatewayConfig& config,
                                                        GatewayEnvironment environment) {
  std::unique_ptr<Gateway> gateway(new Gateway());
  Gateway& g = *gateway;

  const SecurityConfig& security = config.security;
  // Caller names that metrics may show: the allow-list's and the token file's at start.
  std::set<std::string> known_callers;
  for (const std::string& name : security.allow.Callers()) known_callers.insert(name);
  if (!security.caller_tokens_file.empty()) {
    auto store = StartTokenStore(security, environment.logger);
    if (!store.ok()) return store.status();
    g.caller_tokens_ = *std::move(store);
    for (const std::string& name : g.caller_tokens_->Snapshot()->Callers()) {
      known_callers.insert(name);
    }
  }

  g.metrics_registry_ = std::make_shared<MetricsRegistry>();
  prometheus::Registry& registry = g.metrics_registry_->registry();
  g.metrics_ = std::make_unique<GatewayMetrics>(registry, BudgetMetricsFor(config),
                                                std::move(known_callers));
  g.metrics_->grpc_server.AddService(UserpilotGatewayDescriptor());
  g.metrics_registry_->AddCollectable(std::make_shared<ProcessCollector>());
  RegisterBuildInfo(registry, environment.version, environment.revision);

  g.scheduler_ = std::make_unique<ThreadScheduler>();
  Scheduler& scheduler = *g.scheduler_;

  CurlHttpClientOptions http_options;
  http_options.max_in_flight = static_cast<size_t>(config.max_inflight_upstream);
  http_options.connect_timeout = config.connect_timeout;
  http_options.ca_file = config.upstream_ca_file;
  auto http = CurlHttpClient::Create(std::move(http_options));
  if (!http.ok()) return http.status();
  g.http_ = *std::move(http);
  g.metered_http_ = std::make_unique<MeteredHttpClient>(*g.http_, g.metrics_->upstream);
  g.metric_hooks_.push_back(ExportHttpClientLoad(
      *g.metrics_registry_, g.metrics_->upstream, [http = g.http_.get()] { return http->Stats(); },
      static_cast<size_t>(config.max_inflight_upstream)));

  TokenSourceFactory sources = LocalTokenSources();
  if (config.traffic.redis.has_value()) {
    auto redis =
        MakeRedisBudgetSources(*config.traffic.redis, [&scheduler] { return scheduler.Now(); });
    if (!redis.ok()) return redis.status();
    g.redis_ = *std::move(redis);
    sources = g.redis_->factory;
  }
  // The budgets report every admission (with its wait) and refusal to the budget metrics, and
  // log their warnings (a capped upstream pause).
  auto budgets = MakeBudgets(config.traffic.rate_limits, scheduler, std::move(sources),
                             &g.metrics_->budgets, environment.logger);
  if (!budgets.ok()) return budgets.status();
  g.budgets_ = *std::move(budgets);
  // The job lanes report every send's wait to their metrics.
  UpstreamStackOptions stack_options = UpstreamStackOptionsFrom(config);
  if (stack_options.job_lanes.has_value()) {
    stack_options.job_lanes->observer = &g.metrics_->job_lanes;
  }
  g.stack_ = MakeUpstreamStack(std::move(stack_options), *g.metered_http_, scheduler, &g.budgets_,
                               &g.metrics_->upstream);
  g.metric_hooks_.push_back(ExportBudgets(*g.metrics_registry_, g.metrics_->budgets, g.budgets_));
  if (g.stack_.job_lanes != nullptr) {
    g.metric_hooks_.push_back(
        ExportJobLanes(*g.metrics_registry_, g.metrics_->job_lanes, *g.stack_.job_lanes));
  }
  g.metric_hooks_.push_back(
      ExportRetries(*g.metrics_registry_, g.metrics_->retries, *g.stack_.retrying));

  // Job watches poll through the whole stack (budget job_read, retries); imports upload
  // through it too, so the retry layer alone decides when an upload may be sent again.
  g.job_watches_ = std::make_unique<JobWatchRegistry>(*g.stack_.stub, scheduler, config.jobs.watch);
  g.importer_ =
      std::make_unique<Importer>(*g.stack_.stub, *g.job_watches_, scheduler, config.jobs.import);
  g.metric_hooks_.push_back(
      ExportJobs(*g.metrics_registry_, g.metrics_->jobs, *g.job_watches_, g.importer_.get()));

  if (environment.logger != nullptr) {
    g.metric_hooks_.push_back(g.metrics_registry_->AddCollectHook(
        [logger = environment.logger, metrics = &g.metrics_->log] {
          metrics->Update(logger->dropped_lines(), logger->queue_lines());
        }));
  }

  g.validator_ = std::make_unique<RequestValidator>(config.limits);
  if (config.delivery.enabled()) {
    auto store = OpenDeliveryStore(config.delivery, scheduler);
    if (!store.ok()) return store.status();
    g.delivery_store_ = *std::move(store);
    if (environment.logger != nullptr) LogQueueOpened(*environment.logger, *g.delivery_store_);
    g.dispatcher_ = std::make_unique<Dispatcher>(
        *g.delivery_store_, *g.stack_.stub, scheduler,
        DispatcherOptionsFrom(config, g.metrics_->delivery, environment.logger),
        g.job_watches_.get());
    DeliveryFrontendHooks hooks;
    hooks.on_enqueued = [dispatcher = g.dispatcher_.get()] { dispatcher->Wake(); };
    hooks.on_append = [metrics = &g.metrics_->delivery](absl::Duration latency) {
      metrics->RecordAppend(latency);
    };
    g.delivery_ = std::make_unique<DeliveryFrontend>(*g.delivery_store_, *g.validator_, hooks);
    g.metric_hooks_.push_back(ExportDelivery(*g.metrics_registry_, g.metrics_->delivery,
                                             *g.delivery_store_, *g.dispatcher_,
                                             config.delivery.max_in_flight));
    g.dispatcher_->Start();
  }
  if (config.access_log && environment.logger != nullptr) {
    g.access_log_ = std::make_unique<AccessLog>(*environment.logger);
  }
  g.auth_observer_ = std::make_unique<MetricsAuthObserver>(g.metrics_->security);
  g.connection_observer_ = std::make_unique<MetricsConnectionObserver>(g.metrics_->security);
  AuthenticatorOptions auth;
  auth.tokens = g.caller_tokens_.get();
  auth.client_certificates = security.tls.client_certificates();
  auth.allow = security.allow;
  auth.observer = g.auth_observer_.get();
  g.authenticator_ = std::make_unique<Authenticator>(std::move(auth));
  if (Logger* logger = environment.logger) {
    if (g.authenticator_->enabled()) {
      logger->Info("callers must authenticate", {{"auth", g.authenticator_->DebugString()}});
    } else {
      logger->Warning(
          "authentication is off (development mode): every caller is trusted and named by its "
          "x-caller metadata; set --caller_tokens_file or --tls_client_ca_file");
    }
    if (!security.tls.enabled()) {
      logger->Warning("the gRPC port is plaintext; set --tls_cert_file and --tls_key_file");
    }
  }

  GatewayServiceOptions service_options;
  service_options.default_deadline = config.default_deadline;
  service_options.max_deadline = config.max_deadline;
  service_options.access_log = g.access_log_.get();
  service_options.delivery = g.delivery_.get();
  service_options.undecodable = [metrics = &g.metrics_->grpc_server](absl::string_view method) {
    metrics->RecordUndecodable(method);
  };
  service_options.authenticator = g.authenticator_.get();
  g.service_ =
      std::make_unique<GatewayService>(*g.validator_, *g.stack_.stub, service_options,
                                       JobServices{g.job_watches_.get(), g.importer_.get()});

  // /metrics first: a gateway that cannot be observed should not start taking traffic.
  if (environment.serve_metrics) {
    MetricsServerOptions metrics_options;
    metrics_options.listen = config.metrics_listen;
    auto metrics_server = MetricsServer::Start(g.metrics_registry_, metrics_options);
    if (!metrics_server.ok()) return metrics_server.status();
    g.metrics_server_ = *std::move(metrics_server);
  }

  GatewayServerOptions server_options;
  server_options.listen = config.listen;
  // Reflection asks for no credentials: off when callers must authenticate, unless asked for.
  server_options.reflection =
      config.reflection && (!g.authenticator_->enabled() || security.reflection_with_auth);
  if (security.tls.enabled()) {
    server_options.credentials =
        MakeTlsServerCredentials(security.tls, security.credentials_reload_interval);
  }
  server_options.max_connections = security.max_connections;
  server_options.connection_observer = g.connection_observer_.get();
  server_options.max_concurrent_streams = security.max_concurrent_streams;
  server_options.health_listen = security.health_listen;
  server_options.max_connection_age = config.max_connection_age;
  server_options.max_connection_age_grace = config.max_connection_age_grace;
  server_options.keepalive_time = config.keepalive_time;
  server_options.keepalive_timeout = config.keepalive_timeout;
  server_options.min_client_ping_interval = config.min_client_ping_interval;
  server_options.metrics = &g.metrics_->grpc_server;
  // The largest message any RPC may legitimately carry (a full bulk request, an ImportData
  // chunk) must fit, with 1 MiB over so that the per-method bounds (the service checks each
  // request's size against ValidationLimits::MaxRequestBytes) answer a field-level error
  // instead of gRPC's bare RESOURCE_EXHAUSTED.
  server_options.max_receive_message_bytes =
      static_cast<int>(g.validator_->limits().MaxMessageBytes(kMaxImportMessageBytes) + (1 << 20));
  server_options.memory_quota_bytes = int64_t{config.grpc_memory_quota_mb} << 20;
  auto server = GatewayServer::Start(*g.service_, server_options);
  if (!server.ok()) return server.status();
  g.server_ = *std::move(server);
  if (security.max_connections > 0) {
    g.metric_hooks_.push_back(g.metrics_registry_->AddCollectHook(
        [&metrics = g.metrics_->security, server = g.server_.get()] {
          metrics.SetConnectionsOpen(server->open_connections());
        }));
  }
  if (config.key_check_interval > absl::ZeroDuration()) {
    g.key_checker_ =
        StartKeyCheck(config, environment.logger,
                      MakeKeyCheckProbe(UpstreamStackOptionsFrom(config).upstream, *g.metered_http_,
                                        scheduler, &g.metrics_->upstream),
                      scheduler, *g.server_, g.metrics_->key_check);
  }
  return gateway;
}

Gateway::~Gateway() { Shutdown(absl::Now()); }

int Gateway::port() const { return server_->port(); }

int Gateway::health_port() const { return server_->health_port(); }

int Gateway::metrics_port() const {
  return metrics_server_ == nullptr ? 0 : metrics_server_->port();
}

void Gateway::Shutdown(absl::Time deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  // No key check may turn health back to SERVING during the drain.
  if (key_checker_ != nullptr) key_checker_->Stop();
  // The dispatcher stops taking records from the queue; what it has sent finishes below.
  if (dispatcher_ != nullptr) dispatcher_->Stop();
  // Watches end first, with UNAVAILABLE, so watchers reconnect to another replica at once
  // instead of holding the drain open until the deadline.
  if (job_watches_ != nullptr) job_watches_->Shutdown();
  // The server stops taking calls at once and waits for those in flight. Shortly before the
  // deadline, whatever still waits (for a budget, a retry's backoff, or Userpilot) is answered
  // UNAVAILABLE so the callers can go to another replica and the drain ends in time.
  std::promise<void> drained;
  std::future<void> drained_future = drained.get_future();
  std::thread drain([&] {
    if (server_ != nullptr) server_->Shutdown(deadline);
    drained.set_value();
  });
  const absl::Time cut_off = deadline - kDrainCutOffMargin;
  if (drained_future.wait_until(absl::ToChronoTime(cut_off)) != std::future_status::ready) {
    if (importer_ != nullptr) importer_->Shutdown();
    budgets_.Shutdown();
    if (http_ != nullptr) http_->Shutdown();
  }
  drain.join();
  if (importer_ != nullptr) importer_->Shutdown();
  budgets_.Shutdown();
  // The hooks read the stub's and the job components' statistics: gone before they are.
  metric_hooks_.clear();
  importer_.reset();
  job_watches_.reset();
  stack_ = UpstreamStack();  // Answers calls waiting for a retry; the scheduler outlives it.
  if (http_ != nullptr) http_->Shutdown();
  // Every delivery sent has its answer now; its outcome becomes durable, then the queue closes
  // (what was not delivered is delivered after the restart).
  if (dispatcher_ != nullptr) dispatcher_->Join();
  if (delivery_store_ != nullptr) delivery_store_->Close();
}

}  // namespace userpilot::gateway
