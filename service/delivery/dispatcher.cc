#include "service/delivery/dispatcher.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "service/delivery/enqueued_call.h"

namespace userpilot::gateway {
namespace {

size_t Index(BudgetId budget) { return static_cast<size_t>(budget); }

// A refusal for good: Userpilot rejected the request itself, or the gateway's own checks did
// (a limit lowered since the call was enqueued). Retrying the same bytes cannot succeed.
bool IsPermanent(const absl::Status& status, const CallFacts& facts) {
  if (facts.reason == ErrorReason::kUpstreamRejectedRequest) return true;
  return status.code() == absl::StatusCode::kInvalidArgument && facts.upstream.http_status == 0 &&
         facts.reason == ErrorReason::kNone;
}

std::string DescribeFailure(const absl::Status& status, const CallFacts& facts) {
  if (facts.upstream.http_status != 0) {
    return absl::StrCat("Userpilot answered HTTP ", facts.upstream.http_status, ": ",
                        status.message());
  }
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message());
}

}  // namespace

absl::string_view DeliveryAttemptOutcomeName(DeliveryAttemptOutcome outcome) {
  switch (outcome) {
    case DeliveryAttemptOutcome::kDelivered:
      return "delivered";
    case DeliveryAttemptOutcome::kRetry:
      return "retry";
    case DeliveryAttemptOutcome::kDead:
      return "dead";
  }
  return "unknown";
}

absl::string_view CoalescedRowOutcomeName(CoalescedRowOutcome outcome) {
  switch (outcome) {
    case CoalescedRowOutcome::kDelivered:
      return "delivered";
    case CoalescedRowOutcome::kReturned:
      return "returned";
  }
  return "unknown";
}

absl::string_view CoalescedJobOutcomeName(CoalescedJobOutcome outcome) {
  switch (outcome) {
    case CoalescedJobOutcome::kCompleted:
      return "completed";
    case CoalescedJobOutcome::kFailed:
      return "failed";
    case CoalescedJobOutcome::kRefused:
      return "refused";
    case CoalescedJobOutcome::kTimeout:
      return "timeout";
    case CoalescedJobOutcome::kStopped:
      return "stopped";
  }
  return "unknown";
}

absl::Duration PaceFor(int64_t limit, absl::Duration window, double sync_share, int replicas) {
  const double share = std::clamp(1.0 - sync_share, 0.0, 1.0);
  const int64_t mine =
      static_cast<int64_t>(std::floor(static_cast<double>(limit) * share / std::max(replicas, 1)));
  return Gcra::IntervalFor(window, std::max<int64_t>(mine, 1));
}

Dispatcher::Dispatcher(DeliveryStore& store, UserpilotStub& stub, Scheduler& scheduler,
                       DispatcherOptions options, JobWatchRegistry* jobs)
    : store_(store),
      stub_(stub),
      scheduler_(scheduler),
      options_(std::move(options)),
      renew_interval_(store.LeaseTimeout() == absl::InfiniteDuration()
                          ? absl::InfiniteDuration()
                          : std::max(store.LeaseTimeout() / 3, absl::Milliseconds(1))),
      jobs_(jobs) {
  for (size_t i = 0; i < kBudgetCount; ++i) {
    if (options_.pace[i].has_value()) pacers_[i].emplace(*options_.pace[i]);
  }
}

Dispatcher::~Dispatcher() {
  Stop();
  Join();
}

void Dispatcher::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_ || stopping_) return;
    started_ = true;
  }
  Pump();
}

void Dispatcher::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_ || stopping_) return;
    if (lease_outstanding_) {
      woken_ = true;
      return;
    }
    if (poll_timer_.has_value()) {
      if (!scheduler_.Cancel(*poll_timer_)) return;  // Running now: it pumps.
      poll_timer_.reset();
      EndOpLocked();
    }
  }
  Pump();
}

size_t Dispatcher::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

size_t Dispatcher::coalesced_rows() const {
  std::lock_guard<std::mutex> lock(mu_);
  return job_ != nullptr ? job_->rows.size() : 0;
}

void Dispatcher::EndOpLocked() {
  --ops_;
  if (ops_ == 0) idle_.notify_all();
}

void Dispatcher::SchedulePollLocked(absl::Time when) {
  if (poll_timer_.has_value() || stopping_) return;
  ++ops_;
  poll_timer_ = scheduler_.RunAt(when, [this] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      poll_timer_.reset();
      EndOpLocked();
    }
    Pump();
  });
}

void Dispatcher::Pump() {
  // Read before mu_: the store's Stats() takes the store's lock, which its callbacks hold.
  const std::optional<uint32_t> coalesce =
      CoalescingOn() ? CoalesceKind(scheduler_.Now()) : std::nullopt;
  LeaseOptions lease;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_ || stopping_ || lease_outstanding_ || in_flight_ >= options_.max_in_flight) {
      return;
    }
    if (coalesce.has_value() && job_ == nullptr) {
      lease.max_records = std::min(options_.coalesce.max_rows, kMaxLeaseRecords);
      lease.kinds = {*coalesce};
    } else {
      lease.max_records = std::min(options_.max_in_flight - in_flight_, kMaxLeaseRecords);
    }
    lease_outstanding_ = true;
    woken_ = false;
    ++ops_;
  }
  if (!lease.kinds.empty()) {
    const uint32_t kind = lease.kinds.front();
    store_.Lease(std::move(lease),
                 [this, kind](absl::StatusOr<std::vector<LeasedDelivery>> leased) {
                   OnCoalesceLeased(kind, std::move(leased));
                 });
    return;
  }
  store_.Lease(std::move(lease), [this](absl::StatusOr<std::vector<LeasedDelivery>> leased) {
    OnLeased(std::move(leased));
  });
}

bool Dispatcher::ParseLocked(LeasedDelivery& record, Held& held,
                             std::vector<std::pair<std::string, std::string>>& undeliverable) {
  bool parsed = held.request.ParseFromString(record.payload);
  bool served = parsed && VisitEnqueuedCall(held.request, [&](auto rpc, const auto& call) {
                  using Rpc = decltype(rpc);
                  held.budget = Routing<Rpc>::For(call).budget;
                });
  if (!served) {
    ++in_flight_;  // Until its dead outcome is recorded.
    undeliverable.emplace_back(record.info.delivery_id,
                               parsed ? "the stored call is of a type this gateway cannot "
                                        "deliver"
                                      : "the stored call cannot be decoded");
    return false;
  }
  held.record = std::move(record);
  held.record.payload.clear();  // Decoded into held.request: not kept twice.
  return true;
}

void Dispatcher::OnLeased(absl::StatusOr<std::vector<LeasedDelivery>> leased) {
  // Records that cannot be sent (undecodable: written by a different build, or damaged) are
  // dead letters at once.
  std::vector<std::pair<std::string, std::string>> undeliverable;
  bool again = false;
  bool gate = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    lease_outstanding_ = false;
    if (!leased.ok()) {
      SchedulePollLocked(scheduler_.Now() + options_.idle_poll);
    } else {
      for (LeasedDelivery& record : *leased) {
        Held held;
        if (!ParseLocked(record, held, undeliverable)) continue;
        if (MayBeInABulkJob(held)) {
          gate = true;
          GateLocked(std::move(held), scheduler_.Now());
          continue;
        }
        ++in_flight_;
        waiting_[Index(held.budget)].push_back(std::move(held));
      }
      if (leased->empty() && !woken_) {
        SchedulePollLocked(scheduler_.Now() + options_.idle_poll);
      } else {
        again = true;
      }
    }
    EndOpLocked();
  }
  AfterLease(leased.status(), undeliverable);
  if (gate) RunGate();
  Drain();
  if (again) Pump();
}

void Dispatcher::AfterLease(const absl::Status& status,
                            std::vector<std::pair<std::string, std::string>>& undeliverable) {
  if (!status.ok() && options_.observer.on_store_error) options_.observer.on_store_error(status);
  for (auto& [id, reason] : undeliverable) {
    if (options_.observer.on_attempt) {
      options_.observer.on_attempt(DeliveryAttemptOutcome::kDead, false);
    }
    Complete(id, DeliveryOutcome::Dead(reason));
  }
}

void Dispatcher::Drain() {
  std::vector<Held> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = scheduler_.Now();
    for (size_t b = 0; b < kBudgetCount; ++b) {
      std::deque<Held>& queue = waiting_[b];
      while (!queue.empty()) {
        absl::Time retry_at;
        if (stopping_ || !pacers_[b].has_value() || pacers_[b]->TryTake(now, &retry_at)) {
          ready.push_back(std::move(queue.front()));
          queue.pop_front();
          continue;
        }
        if (!pace_timers_[b].has_value()) {
          ++ops_;
          pace_timers_[b] = scheduler_.RunAt(retry_at, [this, b] {
            {
              std::lock_guard<std::mutex> lock(mu_);
              pace_timers_[b].reset();
              EndOpLocked();
            }
            Drain();
          });
        }
        break;
      }
    }
    ArmRenewalLocked(now);
  }
  for (Held& held : ready) Send(std::move(held));
}

void Dispatcher::ArmRenewalLocked(absl::Time from) {
  if (renew_interval_ == absl::InfiniteDuration() || stopping_ || renew_timer_.has_value() ||
      renew_outstanding_) {
    return;
  }
  bool held = (job_ != nullptr && !job_->rows.empty()) || !gated_.empty();
  for (size_t b = 0; b < kBudgetCount && !held; ++b) held = !waiting_[b].empty();
  if (!held) return;
  ++ops_;
  renew_timer_ = scheduler_.RunAt(from + renew_interval_, [this] { RenewHeld(); });
}

void Dispatcher::RenewHeld() {
  std::vector<std::string> ids;
  absl::Time fired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    renew_timer_.reset();
    fired = scheduler_.Now();
    if (!stopping_) {
      if (job_ != nullptr) {
        for (const Held& row : job_->rows) ids.push_back(row.record.info.delivery_id);
      }
      for (const std::deque<Held>& queue : waiting_) {
        for (const Held& held : queue) ids.push_back(held.record.info.delivery_id);
      }
      for (const Gated& gated : gated_) ids.push_back(gated.held.record.info.delivery_id);
      if (!ids.empty()) {
        renew_outstanding_ = true;
        ++ops_;  // The Renew() below.
      }
    }
    EndOpLocked();  // This timer.
  }
  if (ids.empty()) return;
  std::vector<std::string> asked = ids;
  store_.Renew(std::move(asked),
               [this, ids = std::move(ids), fired](std::vector<absl::Status> statuses) {
                 OnRenewed(ids, statuses, fired);
               });
}

void Dispatcher::OnRenewed(const std::vector<std::string>& ids,
                           const std::vector<absl::Status>& statuses, absl::Time fired) {
  absl::flat_hash_set<std::string> lost;
  absl::Status failed;
  for (size_t i = 0; i < ids.size(); ++i) {
    const absl::Status status =
        i < statuses.size() ? statuses[i] : absl::InternalError("no renewal answer");
    if (absl::IsFailedPrecondition(status) || absl::IsNotFound(status)) {
      lost.insert(ids[i]);
    } else if (!status.ok() && failed.ok()) {
      failed = status;  // Unreachable: the leases stand; the next renewal tries again.
    }
  }
  size_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    renew_outstanding_ = false;
    if (!lost.empty()) {
      auto gone = [&lost](const Held& held) { return lost.contains(held.record.info.delivery_id); };
      if (job_ != nullptr) {
        std::vector<Held>& rows = job_->rows;
        const size_t before = rows.size();
        rows.erase(std::remove_if(rows.begin(), rows.end(), gone), rows.end());
        dropped += before - rows.size();
      }
      for (std::deque<Held>& queue : waiting_) {
        const size_t before = queue.size();
        queue.erase(std::remove_if(queue.begin(), queue.end(), gone), queue.end());
        in_flight_ -= before - queue.size();  // Not held any more: no outcome to record.
        dropped += before - queue.size();
      }
      const size_t before = gated_.size();
      gated_.erase(std::remove_if(gated_.begin(), gated_.end(),
                                  [&gone](const Gated& gated) { return gone(gated.held); }),
                   gated_.end());
      dropped += before - gated_.size();
    }
    ArmRenewalLocked(std::max(fired, scheduler_.Now() - renew_interval_));
    EndOpLocked();
  }
  if (!failed.ok() && options_.observer.on_store_error) options_.observer.on_store_error(failed);
  if (dropped > 0 && options_.observer.on_leases_lost) options_.observer.on_leases_lost(dropped);
  if (dropped > 0) Pump();
}

void Dispatcher::Send(Held held) {
  std::unique_lock<std::mutex> sending(send_mu_);
  bool stopping = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping = stopping_;
    if (!stopping) ++ops_;
  }
  if (stopping) {
    sending.unlock();
    // Handed back untried: leasable again at once (by a restarted gateway or another replica).
    Complete(held.record.info.delivery_id,
             DeliveryOutcome::Retry("gateway shutting down before sending", scheduler_.Now()));
    return;
  }
  CallOptions call;
  call.deadline = scheduler_.Now() + options_.attempt_deadline;
  call.caller = options_.caller;
  auto info = std::make_shared<DeliveryInfo>(std::move(held.record.info));
  const bool in_doubt = held.record.in_doubt;
  VisitEnqueuedCall(held.request, [&](auto rpc, const auto& request) {
    using Rpc = decltype(rpc);
    InvokeRpc<Rpc>(stub_, call, request,
                   [this, info, in_doubt](Result<typename Rpc::Response> result) {
                     Finish(*info, in_doubt, result.status(), result.facts());
                     std::lock_guard<std::mutex> lock(mu_);
                     EndOpLocked();
                   });
  });
}

absl::Duration Dispatcher::BackoffFor(uint32_t attempts) const {
  absl::Duration backoff = options_.min_backoff;
  for (uint32_t i = 1; i < attempts && backoff < options_.max_backoff; ++i) backoff *= 2;
  return std::min(backoff, options_.max_backoff);
}

void Dispatcher::Finish(const DeliveryInfo& info, bool in_doubt, const absl::Status& status,
                        const CallFacts& facts) {
  DeliveryOutcome outcome;
  DeliveryAttemptOutcome counted = DeliveryAttemptOutcome::kDelivered;
  if (status.ok()) {
    outcome = DeliveryOutcome::Delivered();
  } else if (IsPermanent(status, facts)) {
    outcome = DeliveryOutcome::Dead(DescribeFailure(status, facts));
    counted = DeliveryAttemptOutcome::kDead;
  } else {
    absl::Duration delay = BackoffFor(info.attempts);
    if (facts.retry_delay.has_value()) delay = std::max(delay, facts.retry_delay->delay);
    outcome = DeliveryOutcome::Retry(DescribeFailure(status, facts), scheduler_.Now() + delay);
    counted = DeliveryAttemptOutcome::kRetry;
  }
  if (options_.observer.on_attempt) options_.observer.on_attempt(counted, in_doubt);
  Complete(info.delivery_id, std::move(outcome));
}

void Dispatcher::Complete(const std::string& id, DeliveryOutcome outcome) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++ops_;  // Until the store answers.
    completions_.emplace_back(id, std::move(outcome));
  }
  IssueCompletions();
}

void Dispatcher::IssueCompletions() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (issuing_) return;  // That thread's loop picks these up.
    issuing_ = true;
  }
  while (true) {
    std::pair<std::string, DeliveryOutcome> next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (completing_ >= kMaxCompleting || completions_.empty()) {
        issuing_ = false;
        return;
      }
      next = std::move(completions_.front());
      completions_.pop_front();
      ++completing_;
    }
    // The answer may come inline: the loop, not recursion, issues what follows.
    store_.Complete(next.first, std::move(next.second), [this](absl::Status status) {
      if (!status.ok() && options_.observer.on_store_error) {
        options_.observer.on_store_error(status);
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        --completing_;
        --in_flight_;
        EndOpLocked();
      }
      IssueCompletions();
      Pump();
    });
  }
}

void Dispatcher::Stop() {
  std::vector<Held> handed_back;
  std::unique_ptr<Job> job;
  {
    std::lock_guard<std::mutex> sending(send_mu_);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    if (poll_timer_.has_value() && scheduler_.Cancel(*poll_timer_)) {
      poll_timer_.reset();
      EndOpLocked();
    }
    for (size_t b = 0; b < kBudgetCount; ++b) {
      if (pace_timers_[b].has_value() && scheduler_.Cancel(*pace_timers_[b])) {
        pace_timers_[b].reset();
        EndOpLocked();
      }
      for (Held& held : waiting_[b]) handed_back.push_back(std::move(held));
      waiting_[b].clear();
    }
    if (renew_timer_.has_value() && scheduler_.Cancel(*renew_timer_)) {
      renew_timer_.reset();
      EndOpLocked();
    }
    if (gate_timer_.has_value() && scheduler_.Cancel(*gate_timer_)) {
      gate_timer_.reset();
      EndOpLocked();
    }
    // Left leased without an outcome: leased again in doubt (after a restart, or by another
    // replica once the lease lapses), so they wait for the bulk check there.
    gated_.clear();
    job = TakeJobLocked();
    // A job whose bulk call was made may run on: its rows are left leased without an outcome
    // too (leased in doubt next). The rows of one never sent go back untried, below.
    if (job != nullptr && !job->sent) in_flight_ += job->rows.size();  // Until handed back.
  }
  for (Held& held : handed_back) Send(std::move(held));
  if (job != nullptr) {
    ReleaseJob(*job);
    const std::string why =
        job->sent ? absl::StrCat("gateway shutting down while bulk job ",
                                 job->job_id.empty() ? "(not yet answered)" : job->job_id,
                                 " ran; its rows are left in doubt and sent again once no bulk "
                                 "job runs")
                  : "gateway shutting down before sending a bulk job";
    if (options_.observer.on_coalesced_job) {
      options_.observer.on_coalesced_job(CoalescedJobOutcome::kStopped,
                                         CoalescedRowOutcome::kReturned, job->rows.size(), why);
    }
    if (!job->sent) {
      // Untried: leasable again at once (by a restarted gateway), as single calls or in a job.
      for (Held& row : job->rows) {
        Complete(row.record.info.delivery_id, DeliveryOutcome::Retry(why, scheduler_.Now()));
      }
    }
  }
}

void Dispatcher::Join() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return ops_ == 0; });
}

}  // namespace userpilot::gateway
