// upgw_metrics_catalog: prints, in Prometheus' text format, a registry holding every metric
// family the gateway declares (gateway_metrics.h, process_metrics.h) with sample values in
// every family. Used by `promtool check metrics` (the catalog lints clean) and by the
// Prometheus test (which metric names exist at all).
#include <iostream>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"
#include "service/metrics/gateway_metrics.h"
#include "service/metrics/metered_http_client.h"
#include "service/metrics/metrics_registry.h"
#include "service/metrics/metrics_stub.h"
#include "service/metrics/process_metrics.h"

int main() {
  using namespace userpilot::gateway;  // NOLINT(build/namespaces): a tool's main.
  auto registry = std::make_shared<MetricsRegistry>();
  GatewayMetrics metrics(registry->registry(), BudgetMetricsOptions{{"billing"}});
  RegisterBuildInfo(registry->registry(), "0.0.0", "catalog");
  registry->AddCollectable(std::make_shared<ProcessCollector>());

  GrpcServerMetrics& grpc = metrics.grpc_server;
  grpc.AddService(UserpilotGatewayDescriptor());
  const google::protobuf::ServiceDescriptor& service = UserpilotGatewayDescriptor();
  auto& first = grpc.SeriesFor("/" + service.full_name() + "/" + service.method(0)->name());
  first.started->Increment();
  first.msg_received->Increment();
  first.msg_sent->Increment();
  grpc.RecordHandled(first, 3, 0.0002);

  metrics.upstream.PrecreateEndpoints();
  CallFacts rejected;
  rejected.reason = ErrorReason::kUpstreamCredentialsRejected;
  rejected.upstream.http_status = 401;
  metrics.upstream.RecordAttempt(AllEndpoints()[0], absl::InternalError("key rejected"), rejected,
                                 absl::Milliseconds(20));
  metrics.upstream.sent_bytes.Add({}).Increment(100);
  metrics.upstream.received_bytes.Add({}).Increment(20);
  auto load = ExportHttpClientLoad(
      *registry, metrics.upstream,
      [] {
        return CurlHttpClientStats{1, 2, 3};
      },
      256);

  metrics.key_check.Enable();
  metrics.key_check.RecordCheck("rejected");

  metrics.budgets.Update({"identify", 10, 7, 1, 4, 2, true, 100, 20, {{"queue_full", 3}}, 5});
  metrics.budgets.OnAdmitted("identify", "billing", absl::Milliseconds(30));
  metrics.budgets.OnRejected("identify", "someone", "queue_full");
  RetrySnapshot retry;
  retry.calls = 10;
  retry.retries_by_reason = {{"upstream_unavailable", 2}};
  retry.gave_up_by_reason = {{"deadline", 1}};
  retry.circuit_state = CircuitStateValue::kOpen;
  metrics.retries.Update(retry);
  metrics.jobs.Update({2, 1, 30, 1, 60, 1, 4096, 5, 1, 2, 1, 20000, 1000, 8});
  metrics.log.Update(3, 4096);
  JobLaneSnapshot lane;
  lane.lane = "bulk";
  lane.waiting = 1;
  lane.max_waiting = 4;
  lane.job_running = true;
  lane.admitted_immediately = 3;
  lane.admitted_after_wait = 2;
  lane.rejections = {{"wait_exceeds_deadline", 1}};
  lane.conflicts = 1;
  metrics.job_lanes.Update(lane);
  metrics.job_lanes.OnSent("bulk", absl::Seconds(4));
  metrics.security.RecordAuthRefused("bad_token", "");
  metrics.security.RecordAuthRefused("not_allowed", "billing");
  metrics.security.RecordConnectionRefused("limit");
  metrics.security.SetConnectionsOpen(3);

  metrics.delivery.Enable();
  DeliverySnapshot delivery;
  delivery.backlog = 12;
  delivery.backlog_age_seconds = 3.5;
  delivery.dead_letters = 1;
  delivery.bytes = 1 << 20;
  delivery.max_bytes = 1 << 30;
  delivery.in_flight = 4;
  delivery.max_in_flight = 64;
  delivery.stored = 100;
  delivery.duplicates = 2;
  delivery.refused_full = 1;
  delivery.fsyncs = 40;
  delivery.fsync_seconds = 0.08;
  delivery.replay_torn_tail_bytes = 40;
  metrics.delivery.Update(delivery);
  metrics.delivery.RecordAppend(absl::Milliseconds(2));
  metrics.delivery.RecordAttempt("dead", true);

  std::cout << registry->Serialize();
  return 0;
}
