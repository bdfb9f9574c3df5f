#include "service/jobs/watch/job_watch_registry.h"

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "service/jobs/watch/job_state.h"

// Locking: std::mutex, not absl::Mutex (Debian's Abseil lacks ThreadSanitizer annotations).
// Two kinds of lock, always taken in this order: the registry's `mu_`, then a subscription's
// `mu_`. Sinks and the stub are called with neither held.

namespace userpilot::gateway {
namespace jobs_internal {

// How long a refused subscriber is asked to wait before trying again.
constexpr absl::Duration kRetryRefusedAfter = absl::Seconds(5);

struct Poller {
  enum class Kind { kJob, kList };
  Kind kind = Kind::kJob;
  std::string job_id;  // kJob only.

  // Every field below is guarded by the registry's mu_.
  // Open subscriptions. Raw: a subscription leaves (Close) before it is destroyed.
  absl::flat_hash_set<JobSubscription*> subscribers;
  bool have_state = false;
  std::shared_ptr<const v1::Job> last;                                     // kJob.
  std::vector<std::shared_ptr<const v1::Job>> list;                        // kList, in order.
  absl::flat_hash_map<std::string, std::shared_ptr<const v1::Job>> by_id;  // kList.
  absl::Duration interval;
  absl::Time poll_started;
  absl::Time last_good;  // The last good read, or when the poller started.
  absl::Status last_error;
  std::optional<Scheduler::TimerId> timer;
  bool in_flight = false;
  bool stopped = false;
};

using NotifyList = std::vector<std::shared_ptr<JobSubscription>>;

class RegistryCore : public std::enable_shared_from_this<RegistryCore> {
 public:
  RegistryCore(UserpilotStub& stub, Scheduler& scheduler, const JobWatchOptions& options)
      : stub_(stub), scheduler_(scheduler), options_(options) {
    pace_.min = options.min_poll_interval;
    pace_.max = options.max_poll_interval;
    pace_.growth = options.poll_interval_growth;
  }

  Result<std::shared_ptr<JobSubscription>> Subscribe(Poller::Kind kind, absl::string_view job_id,
                                                     JobWatchSink* sink, bool include_existing) {
    std::shared_ptr<Poller> start;
    std::shared_ptr<JobSubscription> sub;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shut_down_) return ShuttingDown();
      if (subscribers_ >= options_.max_subscribers) {
        return Refuse(absl::StrCat("the gateway already serves its maximum of ",
                                   options_.max_subscribers, " job watches"));
      }
      std::shared_ptr<Poller> poller = kind == Poller::Kind::kList ? list_ : nullptr;
      if (kind == Poller::Kind::kJob) {
        auto it = jobs_.find(job_id);
        if (it != jobs_.end()) poller = it->second;
      }
      if (poller == nullptr) {
        if (kind == Poller::Kind::kJob && jobs_.size() >= options_.max_watched_jobs) {
          return Refuse(absl::StrCat("the gateway already watches its maximum of ",
                                     options_.max_watched_jobs, " distinct jobs"));
        }
        poller = std::make_shared<Poller>();
        poller->kind = kind;
        poller->job_id = std::string(job_id);
        poller->interval = pace_.min;
        poller->last_good = scheduler_.Now();
        if (kind == Poller::Kind::kJob) {
          jobs_.emplace(poller->job_id, poller);
        } else {
          list_ = poller;
        }
        BeginPollLocked(*poller);
        start = poller;
      }
      sub.reset(new JobSubscription(sink, weak_from_this(), include_existing));
      sub->poller_ = poller;
      poller->subscribers.insert(sub.get());
      ++subscribers_;
      // The state last read is ready at once (no notice needed: nothing has been taken yet).
      if (poller->have_state) {
        if (kind == Poller::Kind::kJob) {
          sub->Offer(poller->last);
        } else if (include_existing) {
          for (const auto& job : poller->list) sub->Offer(job);
        }
      }
    }
    if (start != nullptr) StartPoll(start);
    return sub;
  }

  // A subscription leaves (JobSubscription::Close).
  void Unsubscribe(JobSubscription* sub) {
    std::lock_guard<std::mutex> lock(mu_);
    if (sub->counted_) {
      sub->counted_ = false;
      --subscribers_;
    }
    std::shared_ptr<Poller> poller = sub->poller_.lock();
    if (poller == nullptr || poller->stopped) return;
    poller->subscribers.erase(sub);
    if (poller->subscribers.empty()) StopLocked(*poller);
  }

  void Shutdown() {
    NotifyList notify;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Reads being handed to the stub right now finish first: after Shutdown() returns the
      // registry never calls the stub again, so the stub may be destroyed.
      calls_done_.wait(lock, [this] { return calls_in_progress_ == 0; });
      if (shut_down_) return;
      shut_down_ = true;
      const absl::Status status = absl::UnavailableError(
          "this gateway replica is shutting down: watch again (another replica will serve it)");
      std::vector<std::shared_ptr<Poller>> all;
      for (auto& [id, poller] : jobs_) all.push_back(poller);
      if (list_ != nullptr) all.push_back(list_);
      for (auto& poller : all) {
        EndAllLocked(*poller, status, notify);
        StopLocked(*poller);
      }
    }
    for (auto& sub : notify) sub->Notify();
  }

  JobWatchStats Stats() {
    std::lock_guard<std::mutex> lock(mu_);
    JobWatchStats stats = counters_;
    stats.subscribers = subscribers_;
    stats.watched_jobs = jobs_.size();
    stats.list_watched = list_ != nullptr;
    return stats;
  }

 private:
  static absl::Status ShuttingDown() {
    return absl::UnavailableError(
        "this gateway replica is shutting down: watch on another replica");
  }

  CallStatus Refuse(absl::string_view why) {
    ++counters_.refused;
    CallFacts facts;
    facts.retry_delay = RetryDelay{kRetryRefusedAfter, RetryDelaySource::kGateway};
    return CallStatus(
        absl::ResourceExhaustedError(absl::StrCat(why, "; try again later or on another replica")),
        std::move(facts));
  }

  // Marks a poll as started (its answer is awaited); the caller sends it after unlocking, then
  // calls EndCall().
  void BeginPollLocked(Poller& poller) {
    poller.in_flight = true;
    poller.poll_started = scheduler_.Now();
    ++counters_.polls;
    ++calls_in_progress_;
  }

  void EndCall() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--calls_in_progress_ == 0) calls_done_.notify_all();
  }

  // Sends the read for `poller` (begun with BeginPollLocked). No lock held: the stub may answer
  // inline.
  void StartPoll(const std::shared_ptr<Poller>& poller) {
    struct Done {
      RegistryCore* core;
      ~Done() { core->EndCall(); }
    } done{this};
    CallOptions options;
    options.deadline = scheduler_.Now() + options_.poll_timeout;
    options.caller = options_.poll_caller;
    std::weak_ptr<RegistryCore> weak = weak_from_this();
    if (poller->kind == Poller::Kind::kJob) {
      v1::GetJobRequest request;
      request.set_job_id(poller->job_id);
      stub_.GetJob(options, request, [weak, poller](Result<v1::Job> job) {
        if (auto core = weak.lock()) core->OnJob(poller, std::move(job));
      });
    } else {
      stub_.ListJobs(options, v1::ListJobsRequest(),
                     [weak, poller](Result<v1::ListJobsResponse> list) {
                       if (auto core = weak.lock()) core->OnList(poller, std::move(list));
                     });
    }
  }

  void OnJob(const std::shared_ptr<Poller>& poller, Result<v1::Job> answer) {
    NotifyList notify;
    {
      std::lock_guard<std::mutex> lock(mu_);
      poller->in_flight = false;
      if (poller->stopped) return;
      if (answer.ok()) {
        auto job = std::make_shared<const v1::Job>(*std::move(answer));
        const bool changed = !poller->have_state || JobChanged(*poller->last, *job);
        poller->have_state = true;
        poller->last = job;
        poller->last_good = scheduler_.Now();
        if (changed) {
          ++counters_.changes;
          OfferAllLocked(*poller, job, notify);
        }
        if (IsTerminal(*job)) {
          EndAllLocked(*poller, absl::OkStatus(), notify);
          StopLocked(*poller);
        } else {
          ScheduleLocked(poller, changed);
        }
      } else if (absl::IsNotFound(answer.status())) {
        EndAllLocked(*poller, answer.error(), notify);
        StopLocked(*poller);
      } else {
        FailedReadLocked(poller, answer.status(), notify);
      }
    }
    for (auto& sub : notify) sub->Notify();
  }

  void OnList(const std::shared_ptr<Poller>& poller, Result<v1::ListJobsResponse> answer) {
    NotifyList notify;
    {
      std::lock_guard<std::mutex> lock(mu_);
      poller->in_flight = false;
      if (poller->stopped) return;
      if (!answer.ok()) {
        FailedReadLocked(poller, answer.status(), notify);
      } else {
        const bool first = !poller->have_state;
        std::vector<std::shared_ptr<const v1::Job>> list;
        absl::flat_hash_map<std::string, std::shared_ptr<const v1::Job>> by_id;
        list.reserve(static_cast<size_t>(answer->jobs_size()));
        bool changed = false;
        for (v1::Job& entry : *answer->mutable_jobs()) {
          if (by_id.contains(entry.job_id())) continue;  // Keep the first of duplicates.
          auto job = std::make_shared<const v1::Job>(std::move(entry));
          list.push_back(job);
          by_id.emplace(job->job_id(), job);
          if (first) continue;
          auto before = poller->by_id.find(job->job_id());
          if (before == poller->by_id.end() || JobChanged(*before->second, *job)) {
            changed = true;
            ++counters_.changes;
            OfferAllLocked(*poller, job, notify);
          }
        }
        poller->list = std::move(list);
        poller->by_id = std::move(by_id);
        poller->have_state = true;
        poller->last_good = scheduler_.Now();
        if (first) {
          for (JobSubscription* sub : poller->subscribers) {
            if (!sub->include_existing_) continue;
            for (const auto& job : poller->list) Collect(sub, sub->Offer(job), notify);
          }
        }
        ScheduleLocked(poller, first || changed);
      }
    }
    for (auto& sub : notify) sub->Notify();
  }

  // A read failed: retry at the next poll, or give up after unreadable_timeout.
  void FailedReadLocked(const std::shared_ptr<Poller>& poller, const absl::Status& error,
                        NotifyList& notify) {
    ++counters_.poll_errors;
    poller->last_error = error;
    const absl::Time now = scheduler_.Now();
    if (now - poller->last_good < options_.unreadable_timeout) {
      ScheduleLocked(poller, /*changed=*/false);
      return;
    }
    const std::string what = poller->kind == Poller::Kind::kJob
                                 ? absl::StrCat("job ", poller->job_id)
                                 : std::string("the job list");
    EndAllLocked(*poller,
                 absl::UnavailableError(absl::StrCat(
                     what, " could not be read from Userpilot for ",
                     absl::FormatDuration(now - poller->last_good), " (since ",
                     absl::FormatTime(absl::RFC3339_sec, poller->last_good, absl::UTCTimeZone()),
                     "); last error: ", error.message())),
                 notify);
    StopLocked(*poller);
  }

  // Sets the timer of the next read: one interval after the start of the last one.
  void ScheduleLocked(const std::shared_ptr<Poller>& poller, bool changed) {
    poller->interval = pace_.Next(poller->interval, changed);
    std::weak_ptr<RegistryCore> weak_core = weak_from_this();
    std::weak_ptr<Poller> weak_poller = poller;
    poller->timer =
        scheduler_.RunAt(poller->poll_started + poller->interval, [weak_core, weak_poller] {
          auto core = weak_core.lock();
          auto poller = weak_poller.lock();
          if (core != nullptr && poller != nullptr) {
            core->OnTimer(poller);
          }
        });
  }

  void OnTimer(const std::shared_ptr<Poller>& poller) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (poller->stopped) return;
      poller->timer.reset();
      BeginPollLocked(*poller);
    }
    StartPoll(poller);
  }

  void OfferAllLocked(Poller& poller, const std::shared_ptr<const v1::Job>& job,
                      NotifyList& notify) {
    for (JobSubscription* sub : poller.subscribers) Collect(sub, sub->Offer(job), notify);
  }

  void EndAllLocked(Poller& poller, const CallStatus& status, NotifyList& notify) {
    for (JobSubscription* sub : poller.subscribers) Collect(sub, sub->End(status), notify);
    poller.subscribers.clear();
  }

  static void Collect(JobSubscription* sub, bool needs_notice, NotifyList& notify) {
    if (!needs_notice) return;
    // Null when the subscription is being destroyed: it is closing, nobody to tell.
    if (auto shared = sub->weak_from_this().lock()) notify.push_back(std::move(shared));
  }

  // Ends the poller's life: no further reads; an answer in flight is dropped on arrival.
  void StopLocked(Poller& poller) {
    poller.stopped = true;
    if (poller.timer.has_value()) {
      scheduler_.Cancel(*poller.timer);
      poller.timer.reset();
    }
    if (poller.kind == Poller::Kind::kList) {
      if (list_.get() == &poller) list_ = nullptr;
    } else {
      auto it = jobs_.find(poller.job_id);
      if (it != jobs_.end() && it->second.get() == &poller) jobs_.erase(it);
    }
  }

  UserpilotStub& stub_;
  Scheduler& scheduler_;
  const JobWatchOptions options_;
  PollPace pace_;

  std::mutex mu_;
  std::condition_variable calls_done_;  // Signalled when calls_in_progress_ drops to 0.
  int calls_in_progress_ = 0;           // Guarded by mu_: stub calls being made right now.
  absl::flat_hash_map<std::string, std::shared_ptr<Poller>> jobs_;  // Guarded by mu_.
  std::shared_ptr<Poller> list_;                                    // Guarded by mu_.
  size_t subscribers_ = 0;                                          // Guarded by mu_.
  bool shut_down_ = false;                                          // Guarded by mu_.
  JobWatchStats counters_;                                          // Guarded by mu_.
};

}  // namespace jobs_internal

// ----- JobSubscription -----

JobSubscription::JobSubscription(JobWatchSink* sink,
                                 std::weak_ptr<jobs_internal::RegistryCore> registry,
                                 bool include_existing)
    : include_existing_(include_existing), registry_(std::move(registry)), sink_(sink) {}

JobSubscription::~JobSubscription() { Close(); }

JobSubscription::Next JobSubscription::TakeNext() {
  std::lock_guard<std::mutex> lock(mu_);
  Next next;
  if (closed_) {
    next.end = absl::CancelledError("the watch was closed");
    return next;
  }
  if (!pending_.empty()) {
    auto first = pending_.begin();
    next.job = std::move(first->second);
    slot_of_job_.erase(next.job->job_id());
    pending_.erase(first);
    return next;
  }
  if (end_.has_value()) {
    next.end = *end_;
    return next;
  }
  armed_ = true;
  return next;
}

void JobSubscription::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    sink_ = nullptr;
    armed_ = false;
    pending_.clear();
    slot_of_job_.clear();
  }
  if (auto core = registry_.lock()) core->Unsubscribe(this);
}

bool JobSubscription::Offer(std::shared_ptr<const v1::Job> job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || end_.has_value()) return false;
  auto slot = slot_of_job_.find(job->job_id());
  if (slot != slot_of_job_.end()) {
    pending_[slot->second] = std::move(job);  // Newer state, same place in line.
  } else {
    const uint64_t seq = next_seq_++;
    slot_of_job_.emplace(job->job_id(), seq);
    pending_.emplace(seq, std::move(job));
  }
  const bool notify = armed_;
  armed_ = false;
  return notify;
}

bool JobSubscription::End(CallStatus status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || end_.has_value()) return false;
  end_ = std::move(status);
  const bool notify = armed_;
  armed_ = false;
  return notify;
}

void JobSubscription::Notify() {
  JobWatchSink* sink = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || sink_ == nullptr) return;
    sink = sink_;
    sink->Ref();
  }
  sink->OnJobsReady();
  sink->Unref();
}

// ----- JobWatchRegistry -----

JobWatchRegistry::JobWatchRegistry(UserpilotStub& stub, Scheduler& scheduler,
                                   JobWatchOptions options)
    : options_(std::move(options)) {
  if (absl::Status valid = options_.Validate(); !valid.ok()) {
    std::fprintf(stderr, "%s\n", std::string(valid.message()).c_str());
    std::abort();
  }
  core_ = std::make_shared<jobs_internal::RegistryCore>(stub, scheduler, options_);
}

JobWatchRegistry::~JobWatchRegistry() { Shutdown(); }

Result<std::shared_ptr<JobSubscription>> JobWatchRegistry::WatchJob(absl::string_view job_id,
                                                                    JobWatchSink* sink) {
  return core_->Subscribe(jobs_internal::Poller::Kind::kJob, job_id, sink,
                          /*include_existing=*/false);
}

Result<std::shared_ptr<JobSubscription>> JobWatchRegistry::WatchAllJobs(JobWatchSink* sink,
                                                                        bool include_existing) {
  return core_->Subscribe(jobs_internal::Poller::Kind::kList, "", sink, include_existing);
}

void JobWatchRegistry::Shutdown() { core_->Shutdown(); }

JobWatchStats JobWatchRegistry::Stats() const { return core_->Stats(); }

}  // namespace userpilot::gateway
