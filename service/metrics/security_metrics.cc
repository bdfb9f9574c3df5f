#include <set>
#include <string>
#include <utility>

#include "service/metrics/gateway_metrics.h"

namespace userpilot::gateway {

SecurityMetrics::SecurityMetrics(prometheus::Registry& registry, std::set<std::string> callers)
    : auth_refused(
          prometheus::BuildCounter()
              .Name("userpilot_gateway_auth_refused_total")
              .Help("Calls refused by authentication before any work, by reason (no_credentials, "
                    "bad_token, bad_certificate, not_allowed) and caller (configured names only, "
                    "other for the rest, empty when unauthenticated).")
              .Register(registry)),
      connections_refused(prometheus::BuildCounter()
                              .Name("userpilot_gateway_connections_refused_total")
                              .Help("gRPC connections reset by the listener, by reason (limit: "
                                    "--max_connections reached; accept_error: out of "
                                    "descriptors or memory).")
                              .Register(registry)),
      connections_open(prometheus::BuildGauge()
                           .Name("userpilot_gateway_connections_open")
                           .Help("gRPC connections open (counted only with --max_connections).")
                           .Register(registry)),
      callers_(callers.begin(), callers.end()) {
  // Every unauthenticated reason and every connection refusal exists from the start, at 0, so
  // rate() and alerts see the first one.
  for (const char* reason : {"no_credentials", "bad_token", "bad_certificate"}) {
    auth_refused.Add({{"reason", reason}, {"caller", ""}});
  }
  for (const char* reason : {"limit", "accept_error"})
    connections_refused.Add({{"reason", reason}});
}

void SecurityMetrics::RecordAuthRefused(absl::string_view reason, absl::string_view caller) {
  std::string label;
  if (!caller.empty()) label = callers_.count(caller) > 0 ? std::string(caller) : "other";
  auth_refused.Add({{"reason", std::string(reason)}, {"caller", label}}).Increment();
}

void SecurityMetrics::RecordConnectionRefused(absl::string_view reason) {
  connections_refused.Add({{"reason", std::string(reason)}}).Increment();
}

void SecurityMetrics::SetConnectionsOpen(size_t open) {
  connections_open.Add({}).Set(static_cast<double>(open));
}

}  // namespace userpilot::gateway
