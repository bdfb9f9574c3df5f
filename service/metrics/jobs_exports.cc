// ExportJobs and ToJobSnapshot (component_exports.h).
#include "service/jobs/import/importer.h"
#include "service/jobs/watch/job_watch_registry.h"
#include "service/metrics/component_exports.h"

namespace userpilot::gateway {

JobSnapshot ToJobSnapshot(const JobWatchStats& watches, const ImportStats* imports) {
  JobSnapshot s;
  s.watchers = watches.subscribers;
  s.pollers = watches.watched_jobs + (watches.list_watched ? 1 : 0);
  s.polls_failed = static_cast<uint64_t>(watches.poll_errors);
  s.polls_ok = static_cast<uint64_t>(watches.polls - watches.poll_errors);
  s.updates_fanned_out = static_cast<uint64_t>(watches.changes);
  s.watches_refused = static_cast<uint64_t>(watches.refused);
  if (imports != nullptr) {
    s.imports_in_flight = imports->running;
    s.import_bytes = imports->bytes_received;
    s.imports_refused = static_cast<uint64_t>(imports->refused);
    s.import_idle_timeouts = static_cast<uint64_t>(imports->idle_timeouts);
    s.import_deadline_timeouts = static_cast<uint64_t>(imports->deadline_timeouts);
  }
  return s;
}

MetricsRegistry::CollectHook ExportJobs(MetricsRegistry& registry, JobMetrics& metrics,
                                        const JobWatchRegistry& watches, const Importer* importer) {
  return registry.AddCollectHook([&metrics, &watches, importer] {
    JobSnapshot s;
    if (importer != nullptr) {
      const ImportStats imports = importer->Stats();
      s = ToJobSnapshot(watches.Stats(), &imports);
      s.max_imports = importer->options().max_concurrent_imports;
    } else {
      s = ToJobSnapshot(watches.Stats(), nullptr);
    }
    s.max_watchers = watches.options().max_subscribers;
    s.max_pollers = watches.options().max_watched_jobs;
    metrics.Update(s);
  });
}

}  // namespace userpilot::gateway
