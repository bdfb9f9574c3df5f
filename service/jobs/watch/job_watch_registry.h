// JobWatchRegistry: one upstream poller per watched job, however many watchers; fan-out of
// every change to all of them; the poller ends with its last watcher.
//
// WatchJob and WatchJobs streams (server/job_streams.h), and ImportData while it waits for a
// running job, subscribe here. For each job id there is at most one poller, which reads
// GET /v1/background_jobs/{id} through the UserpilotStub stack (so polls spend the job-read
// budget and get its retries), and one more poller for the whole job list (WatchJobs).
//
// Per poller:
//  - The first poll starts at once when the first watcher arrives. A watcher that joins later
//    gets the state last read, at once, without an extra poll.
//  - Pace: PollPace (job_state.h): `min_poll_interval` after a poll that saw a change,
//    growing by `poll_interval_growth` per poll without one, up to `max_poll_interval`. Polls
//    are timed from the start of the previous one, so a job is read once per interval however
//    long an answer takes (never two reads of one job at once).
//  - A change (JobChanged) is offered to every watcher. A terminal job (COMPLETED/FAILED) is
//    offered, then every watcher is told the watch ended OK, and the poller ends.
//  - NOT_FOUND ends every watcher with NOT_FOUND. Any other error is retried at the next poll
//    (the pace grows as for "no change"); after `unreadable_timeout` without one good read,
//    every watcher ends with UNAVAILABLE saying since when and why.
//  - When its last watcher leaves (Close), the poller's timer is cancelled; an answer still in
//    flight is dropped on arrival.
// The list poller works the same way, with ListJobs: jobs new to the list or changed are
// offered; it never ends on its own.
//
// Watchers never slow each other: each JobSubscription keeps, per job, only the latest state
// not yet taken (a slot, not a queue), so memory per watcher is bounded by the jobs it watches,
// and a watcher that is slow to take sees intermediate states skipped, never the terminal one
// (it is the last state of its job, and the end comes after it).
//
// Bounds: at most `max_subscribers` subscriptions and `max_watched_jobs` job pollers at once;
// beyond them WatchJob/WatchAllJobs answer RESOURCE_EXHAUSTED. After Shutdown() every
// subscription ends with UNAVAILABLE and new ones are refused with UNAVAILABLE.
//
// Thread-safety: every method may be called from any thread. Sinks are notified with no
// registry lock held, from the scheduler's, the stub's or the caller's thread.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_WATCH_JOB_WATCH_REGISTRY_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_WATCH_JOB_WATCH_REGISTRY_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/common/scheduler.h"
#include "service/jobs/watch/job_watch_options.h"
#include "service/upstream/userpilot_stub.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// Counters and gauges, for metrics and tests.
struct JobWatchStats {
  size_t subscribers = 0;     // Open subscriptions.
  size_t watched_jobs = 0;    // Job pollers running.
  bool list_watched = false;  // The list poller is running.
  int64_t polls = 0;          // Upstream reads started (jobs and list).
  int64_t poll_errors = 0;    // Reads that failed.
  int64_t changes = 0;        // Changed states offered (each counted once, not per watcher).
  int64_t refused = 0;        // Subscriptions refused for a bound.
};

// Receives "something to take" notices for one subscription. Implemented by the stream
// reactors (and by ImportData while it waits).
class JobWatchSink {
 public:
  // Called when the subscription has something to take after a TakeNext() that found nothing
  // (at most once per such TakeNext()). From any thread, with no registry or subscription lock
  // held; must not block. Typically: take and start a write.
  virtual void OnJobsReady() = 0;
  // The registry holds a reference while it calls OnJobsReady(), so that a sink ending on
  // another thread at that moment is not destroyed under it. A sink that deletes itself does
  // so when its count drops to zero, not directly in gRPC's OnDone.
  virtual void Ref() = 0;
  virtual void Unref() = 0;

 protected:
  ~JobWatchSink() = default;
};

namespace jobs_internal {
class RegistryCore;  // The registry's state, shared with in-flight polls (weakly).
struct Poller;
}  // namespace jobs_internal

// One watcher's view: the states not yet taken (the latest per job), then how the watch
// ended. Created by JobWatchRegistry; shared by the registry and the watcher.
class JobSubscription : public std::enable_shared_from_this<JobSubscription> {
 public:
  // What to do next; at most one of the two is set.
  struct Next {
    // Send this state, then call TakeNext() again.
    std::shared_ptr<const v1::Job> job;
    // The watch is over: finish with this status (OK after a terminal state). Only once every
    // state has been taken.
    std::optional<CallStatus> end;
  };

  ~JobSubscription();
  JobSubscription(const JobSubscription&) = delete;
  JobSubscription& operator=(const JobSubscription&) = delete;

  // The oldest untaken state, else the end, else nothing: then the sink's OnJobsReady() is
  // called once something arrives. After Close(): end = CANCELLED.
  Next TakeNext();

  // Leaves the watch (the poller stops if this was its last watcher) and drops the sink: no
  // OnJobsReady() starts after Close() returns. Idempotent; also done by the destructor.
  void Close();

 private:
  friend class jobs_internal::RegistryCore;

  JobSubscription(JobWatchSink* sink, std::weak_ptr<jobs_internal::RegistryCore> registry,
                  bool include_existing);

  // Registry side, with the registry's lock held. Each returns true when the sink must be
  // notified (the caller does so after releasing its lock, through Notify()).
  bool Offer(std::shared_ptr<const v1::Job> job);
  bool End(CallStatus status);
  // Calls the sink's OnJobsReady() if the subscription is still open.
  void Notify();

  const bool include_existing_;
  const std::weak_ptr<jobs_internal::RegistryCore> registry_;
  std::weak_ptr<jobs_internal::Poller> poller_;  // Guarded by the registry's lock.
  bool counted_ = true;  // Guarded by the registry's lock: counts in `subscribers`.

  std::mutex mu_;
  JobWatchSink* sink_;   // Guarded by mu_. Null once closed.
  bool armed_ = false;   // Guarded by mu_. A TakeNext() found nothing: notify on arrival.
  bool closed_ = false;  // Guarded by mu_.
  // Guarded by mu_: untaken states by arrival order, and where each job's slot is.
  std::map<uint64_t, std::shared_ptr<const v1::Job>> pending_;
  absl::flat_hash_map<std::string, uint64_t> slot_of_job_;
  uint64_t next_seq_ = 0;
  std::optional<CallStatus> end_;  // Guarded by mu_.
};

class JobWatchRegistry {
 public:
  // `stub` and `scheduler` must outlive the registry and every poll it started (the HTTP
  // client completes in-flight polls at its shutdown). `options` must pass Validate() (the
  // constructor aborts the process otherwise: configuration is checked at start-up).
  JobWatchRegistry(UserpilotStub& stub, Scheduler& scheduler, JobWatchOptions options);
  // Shutdown(), then forgets everything; answers still in flight are dropped on arrival.
  ~JobWatchRegistry();

  JobWatchRegistry(const JobWatchRegistry&) = delete;
  JobWatchRegistry& operator=(const JobWatchRegistry&) = delete;

  // Subscribes `sink` to job `job_id` (non-empty; validated by the caller). The state last
  // read, if any, is ready to take at once. `sink` must stay valid (see JobWatchSink::Ref)
  // until the subscription is closed. RESOURCE_EXHAUSTED (with RetryInfo) at a bound,
  // UNAVAILABLE after Shutdown().
  Result<std::shared_ptr<JobSubscription>> WatchJob(absl::string_view job_id, JobWatchSink* sink);

  // Subscribes `sink` to every job of the account (the list poller). With `include_existing`
  // the whole list as last read is ready to take first (or as soon as the first read arrives).
  Result<std::shared_ptr<JobSubscription>> WatchAllJobs(JobWatchSink* sink, bool include_existing);

  // Ends every subscription with UNAVAILABLE ("shutting down: reconnect"), stops every poller
  // and refuses new subscriptions. Idempotent. Call at the start of a drain, before the gRPC
  // server waits for calls to finish, so watches end promptly. Once it returns the registry
  // never calls the stub again (answers still in flight are dropped on arrival), so the stub
  // may be destroyed; it waits for a read being handed to the stub at that moment (a
  // non-blocking call), so it must not be called from inside a stub call.
  void Shutdown();

  JobWatchStats Stats() const;
  const JobWatchOptions& options() const { return options_; }

 private:
  const JobWatchOptions options_;
  std::shared_ptr<jobs_internal::RegistryCore> core_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_WATCH_JOB_WATCH_REGISTRY_H_
