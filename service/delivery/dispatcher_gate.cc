// The Dispatcher's bulk check (dispatcher.h, "The bulk check"): records whose earlier bulk job
// may still run at Userpilot wait, leased, until one ListJobs finds no bulk job running.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/delivery/bulk_rows.h"
#include "service/delivery/dispatcher.h"
#include "service/ratelimit/job_lane.h"

namespace userpilot::gateway {

absl::string_view BulkCheckResultName(BulkCheckResult result) {
  switch (result) {
    case BulkCheckResult::kNoJob:
      return "no_job";
    case BulkCheckResult::kJobRunning:
      return "job_running";
    case BulkCheckResult::kFailed:
      return "failed";
  }
  return "unknown";
}

absl::string_view BulkGateReleaseName(BulkGateRelease why) {
  switch (why) {
    case BulkGateRelease::kNoJob:
      return "no_job";
    case BulkGateRelease::kDeadline:
      return "deadline";
  }
  return "unknown";
}

bool Dispatcher::MayBeInABulkJob(const Held& held) {
  if (!held.record.in_doubt) return false;
  switch (held.request.call_case()) {
    case v1::EnqueueRequest::kIdentifyUser:
      return BulkRowOf(held.request.identify_user()).has_value();
    case v1::EnqueueRequest::kIdentifyCompany:
      return true;
    default:
      return false;
  }
}

size_t Dispatcher::gated_rows() const {
  std::lock_guard<std::mutex> lock(mu_);
  return gated_.size();
}

void Dispatcher::GateLocked(Held held, absl::Time now) {
  gated_.push_back({std::move(held), next_gate_seq_++, now + options_.bulk_gate.timeout});
}

void Dispatcher::ReleaseGatedLocked(size_t n) {
  for (size_t i = 0; i < n; ++i) {
    Held& held = gated_.front().held;
    ++in_flight_;  // A single record from now on, as a failed job's rows.
    waiting_[static_cast<size_t>(held.budget)].push_back(std::move(held));
    gated_.pop_front();
  }
}

void Dispatcher::RunGate() {
  size_t expired = 0;
  std::string last_known;
  uint64_t covers = 0;
  {
    // Held while the check is handed to the stub (Stop() waits: no call after it returns).
    std::unique_lock<std::mutex> sending(send_mu_);
    CallOptions call;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      const absl::Time now = scheduler_.Now();
      while (expired < gated_.size() && gated_[expired].deadline <= now) ++expired;
      ReleaseGatedLocked(expired);
      last_known = gate_last_known_;
      if (!gated_.empty() && !gate_checking_ && now >= gate_next_check_) {
        gate_checking_ = true;
        covers = next_gate_seq_;
        ++ops_;  // The ListJobs below.
        call.deadline = now + options_.attempt_deadline;
        call.caller = options_.caller;
      }
      // The timer: at the next check when none is outstanding, and at the first deadline.
      absl::Time when = absl::InfiniteFuture();
      if (!gated_.empty()) {
        when = gated_.front().deadline;
        if (!gate_checking_) when = std::min(when, gate_next_check_);
      }
      if (gate_timer_.has_value() && when < gate_timer_at_ && scheduler_.Cancel(*gate_timer_)) {
        gate_timer_.reset();
        EndOpLocked();
      }
      if (!gate_timer_.has_value() && when != absl::InfiniteFuture()) {
        ++ops_;
        gate_timer_at_ = when;
        gate_timer_ = scheduler_.RunAt(when, [this] {
          {
            std::lock_guard<std::mutex> lock(mu_);
            gate_timer_.reset();
            gate_timer_at_ = absl::InfiniteFuture();
            EndOpLocked();
          }
          RunGate();
        });
      }
    }
    if (covers != 0) {
      stub_.ListJobs(call, v1::ListJobsRequest(),
                     [this, covers](Result<v1::ListJobsResponse> jobs) {
                       OnGateChecked(covers, std::move(jobs));
                       std::lock_guard<std::mutex> lock(mu_);
                       EndOpLocked();
                     });
    }
  }
  if (expired > 0) {
    if (options_.observer.on_gate_released) {
      options_.observer.on_gate_released(
          BulkGateRelease::kDeadline, expired,
          absl::StrCat(
              "no check found the bulk jobs ended within ",
              absl::FormatDuration(options_.bulk_gate.timeout),
              " (--queue_coalesce_job_timeout); sent as single calls all the same",
              last_known.empty() ? std::string() : absl::StrCat("; last known: ", last_known)));
    }
    Drain();
  }
}

void Dispatcher::OnGateChecked(uint64_t covers, Result<v1::ListJobsResponse> jobs) {
  BulkCheckResult result = BulkCheckResult::kNoJob;
  std::string detail;
  size_t waiting = 0;
  size_t released = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    gate_checking_ = false;
    if (stopping_) return;  // The records stay leased, in doubt.
    waiting = gated_.size();
    const absl::Time now = scheduler_.Now();
    if (jobs.ok()) {
      gate_failures_ = 0;
      detail = UnfinishedJobOn(BudgetId::kBulk, *jobs);
      if (detail.empty()) {
        while (released < gated_.size() && gated_[released].seq < covers) ++released;
        ReleaseGatedLocked(released);
        gate_next_check_ = now;  // Those that came in meanwhile: checked at once.
      } else {
        result = BulkCheckResult::kJobRunning;
        gate_last_known_ = absl::StrCat("bulk job ", detail, " running");
        gate_next_check_ = now + options_.bulk_gate.poll_interval;
      }
    } else {
      result = BulkCheckResult::kFailed;
      ++gate_failures_;
      const CallFacts& facts = jobs.facts();
      detail =
          facts.upstream.http_status != 0
              ? absl::StrCat("ListJobs failed: Userpilot answered HTTP ",
                             facts.upstream.http_status, ": ", jobs.status().message())
              : absl::StrCat("ListJobs failed: ", absl::StatusCodeToString(jobs.status().code()),
                             ": ", jobs.status().message());
      gate_last_known_ = detail;
      absl::Duration delay = std::max(BackoffFor(gate_failures_), options_.bulk_gate.poll_interval);
      if (facts.retry_delay.has_value()) delay = std::max(delay, facts.retry_delay->delay);
      gate_next_check_ = now + delay;
    }
  }
  if (options_.observer.on_bulk_check) options_.observer.on_bulk_check(result, waiting, detail);
  if (released > 0 && options_.observer.on_gate_released) {
    options_.observer.on_gate_released(BulkGateRelease::kNoJob, released, "");
  }
  RunGate();
  if (released > 0) Drain();
}

}  // namespace userpilot::gateway
