// The Dispatcher's coalescing (dispatcher.h, "Coalescing"): one bulk identify job of queued
// identifies of distinct users, its rows leased until the job's outcome is known.
#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/delivery/bulk_rows.h"
#include "service/delivery/dispatcher.h"
#include "service/jobs/watch/job_state.h"
#include "service/jobs/watch/job_watch_registry.h"

namespace userpilot::gateway {

// Hands the registry's notices to the dispatcher while the job is watched. Reference-counted as
// JobWatchSink requires; Detach() (before the dispatcher may go) stops the notices, and a
// notice being handed over counts as an outstanding operation, so Join() waits for it.
class Dispatcher::JobSink final : public JobWatchSink {
 public:
  JobSink(Dispatcher* owner, uint64_t job) : owner_(owner), job_(job) {}

  void OnJobsReady() override {
    Dispatcher* owner = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      owner = owner_;
      if (owner != nullptr) {
        std::lock_guard<std::mutex> owner_lock(owner->mu_);
        ++owner->ops_;
      }
    }
    if (owner == nullptr) return;
    owner->OnJobWatchReady(job_);
    std::lock_guard<std::mutex> owner_lock(owner->mu_);
    owner->EndOpLocked();
  }
  void Ref() override { refs_.fetch_add(1); }
  void Unref() override {
    if (refs_.fetch_sub(1) == 1) delete this;
  }
  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    owner_ = nullptr;
  }

 private:
  ~JobSink() = default;

  std::mutex mu_;
  Dispatcher* owner_;  // Guarded by mu_; null once detached.
  const uint64_t job_;
  std::atomic<int> refs_{1};
};

bool Dispatcher::CoalescingOn() const {
  return jobs_ != nullptr && options_.coalesce.threshold > 0 && options_.coalesce.max_rows >= 2;
}

std::optional<uint32_t> Dispatcher::CoalesceKind(absl::Time now) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (job_ != nullptr || now < coalesce_not_before_) return std::nullopt;
  }
  const DeliveryStoreStats stats = store_.Stats();
  std::optional<uint32_t> kind;
  uint64_t deepest = 0;
  for (uint32_t k : {kIdentifyUserKind, kIdentifyCompanyKind}) {
    auto it = stats.pending_by_kind.find(k);
    const uint64_t pending = it == stats.pending_by_kind.end() ? 0 : it->second;
    if (pending >= options_.coalesce.threshold && pending > deepest) {
      deepest = pending;
      kind = k;
    }
  }
  return kind;
}

void Dispatcher::OnCoalesceLeased(uint32_t kind,
                                  absl::StatusOr<std::vector<LeasedDelivery>> leased) {
  std::vector<std::pair<std::string, std::string>> undeliverable;
  std::vector<std::string> handed_back;  // Did not fit this job: leasable again at once.
  bool send = false;
  bool gate = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    lease_outstanding_ = false;
    const absl::Time now = scheduler_.Now();
    if (!leased.ok()) {
      SchedulePollLocked(now + options_.idle_poll);
    } else {
      auto job = std::make_unique<Job>();
      job->number = next_job_++;
      job->kind = kind;
      BulkRequestBuilder builder(kind, options_.coalesce.max_rows,
                                 options_.coalesce.max_request_bytes);
      std::vector<Held> singles;
      for (LeasedDelivery& record : *leased) {
        Held held;
        if (!ParseLocked(record, held, undeliverable)) continue;
        if (MayBeInABulkJob(held)) {
          gate = true;
          GateLocked(std::move(held), now);
          continue;
        }
        switch (stopping_ ? BulkRequestBuilder::Added::kNotARow : builder.Add(held.request)) {
          case BulkRequestBuilder::Added::kAdded:
            job->rows.push_back(std::move(held));
            break;
          case BulkRequestBuilder::Added::kNotARow:
            singles.push_back(std::move(held));  // As it would have gone without coalescing.
            break;
          case BulkRequestBuilder::Added::kDuplicate:  // Heads have distinct keys: never, but
          case BulkRequestBuilder::Added::kFull:       // never sent beside its user's job row.
            ++in_flight_;
            handed_back.push_back(held.record.info.delivery_id);
            break;
        }
      }
      if (job->rows.size() >= 2) {
        if (kind == kIdentifyUserKind) {
          job->users = std::make_shared<const v1::BulkIdentifyUsersRequest>(builder.users());
        } else {
          job->companies =
              std::make_shared<const v1::BulkIdentifyCompaniesRequest>(builder.companies());
        }
        job_ = std::move(job);
        send = true;
      } else {
        // Not worth a job (a bulk job takes minutes): sent singly; look again later.
        for (Held& row : job->rows) singles.push_back(std::move(row));
        coalesce_not_before_ = now + options_.idle_poll;
      }
      for (Held& held : singles) {
        ++in_flight_;
        waiting_[static_cast<size_t>(held.budget)].push_back(std::move(held));
      }
    }
    EndOpLocked();
  }
  AfterLease(leased.status(), undeliverable);
  for (const std::string& id : handed_back) {
    Complete(id,
             DeliveryOutcome::Retry("left out of a full bulk job; sent next", scheduler_.Now()));
  }
  if (send) SendJob();
  if (gate) RunGate();
  Drain();
  Pump();  // Single calls keep flowing beside the job.
}

void Dispatcher::SendJob() {
  std::unique_lock<std::mutex> sending(send_mu_);
  uint64_t number = 0;
  std::shared_ptr<const v1::BulkIdentifyUsersRequest> users;
  std::shared_ptr<const v1::BulkIdentifyCompaniesRequest> companies;
  CallOptions call;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || job_ == nullptr) return;  // Stop() handed the rows back.
    number = job_->number;
    users = job_->users;
    companies = job_->companies;
    const absl::Time now = scheduler_.Now();
    call.deadline = now + options_.attempt_deadline;
    call.caller = options_.caller;
    job_->sent = true;
    ops_ += 2;  // The bulk call and the deadline timer.
    job_->deadline_timer = scheduler_.RunAt(now + options_.coalesce.job_timeout, [this, number] {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (job_ != nullptr && job_->number == number) job_->deadline_timer.reset();
        EndOpLocked();
      }
      EndJob(number, CoalescedJobOutcome::kTimeout,
             absl::StrCat("the bulk job did not end within ",
                          absl::FormatDuration(options_.coalesce.job_timeout),
                          " (--queue_coalesce_job_timeout)"),
             /*may_still_run=*/true);
    });
  }
  auto done = [this, number](Result<v1::Job> answer) {
    OnJobAnswer(number, std::move(answer));
    std::lock_guard<std::mutex> lock(mu_);
    EndOpLocked();
  };
  if (users != nullptr) {
    stub_.BulkIdentifyUsers(call, *users, std::move(done));
  } else {
    stub_.BulkIdentifyCompanies(call, *companies, std::move(done));
  }
}

void Dispatcher::OnJobAnswer(uint64_t number, Result<v1::Job> answer) {
  if (!answer.ok()) {
    const CallFacts& facts = answer.facts();
    // Only an answer in the 4xx range (Userpilot refused it), or no request made at all, says
    // that no job was started; a 5xx, a lost answer or a timeout leave it open.
    const int http = facts.upstream.http_status;
    const bool may_have_started = facts.http_attempts > 0 && !(http >= 400 && http < 500);
    EndJob(number, CoalescedJobOutcome::kRefused,
           facts.upstream.http_status != 0
               ? absl::StrCat("the bulk call failed: Userpilot answered HTTP ",
                              facts.upstream.http_status, ": ", answer.status().message())
               : absl::StrCat(
                     "the bulk call failed: ", absl::StatusCodeToString(answer.status().code()),
                     ": ", answer.status().message()),
           may_have_started);
    return;
  }
  const v1::Job& job = *answer;
  if (job.job_id().empty()) {
    EndJob(number, CoalescedJobOutcome::kRefused, "Userpilot's answer named no job to watch",
           /*may_still_run=*/true);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (job_ == nullptr || job_->number != number) return;
    job_->job_id = job.job_id();
  }
  if (IsTerminal(job)) {
    const bool completed = job.status() == v1::JOB_STATUS_COMPLETED;
    EndJob(number, completed ? CoalescedJobOutcome::kCompleted : CoalescedJobOutcome::kFailed,
           absl::StrCat("bulk job ", job.job_id(), " ", job.raw_status()),
           /*may_still_run=*/false);
    return;
  }
  WatchJob(number);
}

void Dispatcher::WatchJob(uint64_t number) {
  std::unique_lock<std::mutex> sending(send_mu_);  // Stop() waits: jobs_ stays valid.
  std::string job_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || job_ == nullptr || job_->number != number) return;
    job_id = job_->job_id;
  }
  JobSink* sink = new JobSink(this, number);
  Result<std::shared_ptr<JobSubscription>> watch = jobs_->WatchJob(job_id, sink);
  bool take = false;
  std::string unwatchable;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (job_ == nullptr || job_->number != number) {
      // Ended meanwhile (its deadline): nothing to watch for.
    } else if (watch.ok()) {
      job_->subscription = *watch;
      job_->sink = sink;
      sink = nullptr;
      take = true;
    } else if (absl::IsResourceExhausted(watch.status())) {
      // The registry's bound: try again after one poll interval (the deadline still holds).
      ++ops_;
      job_->rewatch_timer = scheduler_.RunAfter(jobs_->options().min_poll_interval, [this, number] {
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (job_ != nullptr && job_->number == number) job_->rewatch_timer.reset();
          EndOpLocked();
        }
        WatchJob(number);
      });
    } else {
      unwatchable =
          absl::StrCat("bulk job ", job_id, " cannot be watched: ", watch.status().message());
    }
  }
  if (sink != nullptr) {
    if (watch.ok()) (*watch)->Close();
    sink->Detach();
    sink->Unref();
  }
  sending.unlock();
  if (!unwatchable.empty()) {
    EndJob(number, CoalescedJobOutcome::kTimeout, unwatchable, /*may_still_run=*/true);
  }
  if (take) OnJobWatchReady(number);  // The state last read may be there already.
}

void Dispatcher::OnJobWatchReady(uint64_t number) {
  std::shared_ptr<JobSubscription> subscription;
  std::string job_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (job_ == nullptr || job_->number != number) return;
    subscription = job_->subscription;
    job_id = job_->job_id;
  }
  if (subscription == nullptr) return;
  std::optional<CoalescedJobOutcome> outcome;
  std::string why;
  bool may_still_run = false;
  while (true) {
    JobSubscription::Next next = subscription->TakeNext();
    if (next.job != nullptr) {
      if (IsTerminal(*next.job)) {
        outcome = next.job->status() == v1::JOB_STATUS_COMPLETED ? CoalescedJobOutcome::kCompleted
                                                                 : CoalescedJobOutcome::kFailed;
        why = absl::StrCat("bulk job ", job_id, " ", next.job->raw_status());
        break;
      }
      continue;
    }
    if (next.end.has_value() && !outcome.has_value()) {
      const absl::Status& end = next.end->status();
      if (absl::IsNotFound(end)) {
        outcome = CoalescedJobOutcome::kFailed;
        why = absl::StrCat("Userpilot no longer knows bulk job ", job_id);
      } else if (!absl::IsCancelled(end)) {
        outcome = CoalescedJobOutcome::kTimeout;
        may_still_run = true;
        why = absl::StrCat("bulk job ", job_id, " could not be watched: ", end.message());
      }
    }
    break;
  }
  if (outcome.has_value()) EndJob(number, *outcome, why, may_still_run);
}

std::unique_ptr<Dispatcher::Job> Dispatcher::TakeJobLocked() {
  std::unique_ptr<Job> job = std::move(job_);
  job_.reset();
  return job;
}

void Dispatcher::ReleaseJob(Job& job) {
  if (job.subscription != nullptr) job.subscription->Close();
  job.subscription.reset();
  if (job.sink != nullptr) {
    job.sink->Detach();
    job.sink->Unref();
    job.sink = nullptr;
  }
  for (std::optional<Scheduler::TimerId>* timer : {&job.deadline_timer, &job.rewatch_timer}) {
    // A timer that cannot be cancelled is running: it ends its own operation.
    if (timer->has_value() && scheduler_.Cancel(**timer)) {
      std::lock_guard<std::mutex> lock(mu_);
      EndOpLocked();
    }
    timer->reset();
  }
}

void Dispatcher::EndJob(uint64_t number, CoalescedJobOutcome outcome, const std::string& why,
                        bool may_still_run) {
  std::unique_ptr<Job> job;
  const bool delivered = outcome == CoalescedJobOutcome::kCompleted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (job_ == nullptr || job_->number != number) return;  // Ended already.
    job = TakeJobLocked();
    const absl::Time now = scheduler_.Now();
    if (!delivered) {
      // Still leased, keys held: each row's next attempt is a single call, in its user's order;
      // after the bulk check when the job may still run.
      for (Held& row : job->rows) {
        if (may_still_run) {
          GateLocked(std::move(row), now);
        } else {
          ++in_flight_;
          waiting_[static_cast<size_t>(row.budget)].push_back(std::move(row));
        }
      }
    } else {
      in_flight_ += job->rows.size();  // Counted as single records while being completed.
    }
  }
  ReleaseJob(*job);
  const size_t rows = job->rows.size();
  if (options_.observer.on_coalesced_job) {
    options_.observer.on_coalesced_job(
        outcome, delivered ? CoalescedRowOutcome::kDelivered : CoalescedRowOutcome::kReturned, rows,
        why);
  }
  if (delivered) {
    for (Held& row : job->rows) {
      if (options_.observer.on_attempt) {
        options_.observer.on_attempt(DeliveryAttemptOutcome::kDelivered, row.record.in_doubt);
      }
      Complete(row.record.info.delivery_id, DeliveryOutcome::Delivered());
    }
  } else {
    {
      // Not worth looking again at once: let the single calls drain first.
      std::lock_guard<std::mutex> lock(mu_);
      coalesce_not_before_ = scheduler_.Now() + options_.idle_poll;
    }
    if (may_still_run) RunGate();
  }
  Drain();
  Pump();
}

}  // namespace userpilot::gateway
