#include "service/ratelimit/job_lane.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "service/ratelimit/job_lane_observer.h"

namespace userpilot::gateway {
namespace {

bool Finished(const v1::Job& job) {
  return job.status() == v1::JOB_STATUS_COMPLETED || job.status() == v1::JOB_STATUS_FAILED;
}

bool IsJobInProgress(const CallStatus& status) {
  return absl::IsFailedPrecondition(status.status()) &&
         status.facts().reason == ErrorReason::kJobInProgress;
}

}  // namespace

std::string UnfinishedJobOn(BudgetId lane, const v1::ListJobsResponse& jobs) {
  for (const v1::Job& job : jobs.jobs()) {
    const bool import = job.type() == "import";
    if (!Finished(job) && import == (lane == BudgetId::kImports)) return job.job_id();
  }
  return std::string();
}

absl::Status JobLaneOptions::Validate() const {
  if (poll_interval <= absl::ZeroDuration() || poll_interval == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError("job lanes: poll_interval must be positive and finite");
  }
  if (headroom < absl::ZeroDuration() || headroom == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError("job lanes: headroom must be >= 0 and finite");
  }
  if (max_waiting < 1) return absl::InvalidArgumentError("job lanes: max_waiting must be >= 1");
  return absl::OkStatus();
}

// One lane's state. Every step of the call being checked (the "head") runs outside the lock;
// `busy_` says a head exists, so one call per lane is checked and sent at a time.
class JobLaneStub::Lane : public std::enable_shared_from_this<JobLaneStub::Lane> {
 public:
  Lane(std::string name, BudgetId id, std::shared_ptr<UserpilotStub> inner, Scheduler& scheduler,
       JobLaneOptions options)
      : name_(std::move(name)),
        id_(id),
        inner_(std::move(inner)),
        scheduler_(scheduler),
        options_(options) {}

  void Enter(Entry entry) {
    entry.entered = scheduler_.Now();
    std::optional<CallStatus> refusal;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (busy_) {
        if (waiting_.size() >= options_.max_waiting) {
          ++stats_.refused_lane_full;
          refusal = RefusalLocked(absl::StrCat(options_.max_waiting, " calls already wait"));
        } else {
          const uint64_t seq = ++next_seq_;
          waiting_.push_back({seq, std::move(entry), 0});
          // Every wait has a deadline: a waiting call is refused when its own comes.
          const absl::Time give_up = waiting_.back().entry.deadline - options_.headroom;
          if (give_up != absl::InfiniteFuture()) {
            waiting_.back().timer = scheduler_.RunAt(give_up, [weak = weak_from_this(), seq] {
              if (auto lane = weak.lock()) lane->Expire(seq);
            });
          }
          return;
        }
      } else {
        busy_ = true;
      }
    }
    if (refusal.has_value()) {
      // Never inside the call.
      scheduler_.RunAt(scheduler_.Now(),
                       [answer = std::move(entry.answer), refusal = *std::move(refusal)]() mutable {
                         std::move(answer)(Result<v1::Job>(std::move(refusal)));
                       });
      return;
    }
    Check(std::make_shared<Entry>(std::move(entry)), /*conflicts=*/0, /*waited=*/false);
  }

  JobLaneStats Stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    JobLaneStats stats = stats_;
    stats.lane = name_;
    stats.waiting = waiting_.size();
    stats.max_waiting = options_.max_waiting;
    stats.remembered_job = job_id_;
    return stats;
  }

 private:
  struct Waiting {
    uint64_t seq;
    Entry entry;
    Scheduler::TimerId timer;
  };

  // The head: sends it when no remembered job may be running, else polls that job.
  void Check(std::shared_ptr<Entry> head, int conflicts, bool waited) {
    std::string job_id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_id = job_id_;
    }
    if (job_id.empty()) {
      Send(std::move(head), conflicts, waited);
      return;
    }
    CallOptions options;
    options.deadline = head->deadline - options_.headroom;
    options.caller = "gateway-job-lane";
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    inner_->GetJob(options, request,
                   [self = shared_from_this(), head = std::move(head), job_id, conflicts,
                    waited](Result<v1::Job> job) mutable {
                     self->OnPoll(std::move(head), job_id, std::move(job), conflicts, waited);
                   });
  }

  void OnPoll(std::shared_ptr<Entry> head, const std::string& job_id, Result<v1::Job> job,
              int conflicts, bool waited) {
    // Finished, or unknown to Userpilot (nothing to wait for): send.
    if ((job.ok() && Finished(*job)) || absl::IsNotFound(job.status())) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (job_id_ == job_id) job_id_.clear();
      }
      Send(std::move(head), conflicts, waited);
      return;
    }
    // Still running (or the poll failed: the job may still run). Poll again if the call can
    // still be sent after that; otherwise refuse now.
    const absl::Time next = scheduler_.Now() + options_.poll_interval;
    if (next >= head->deadline - options_.headroom) {
      CallStatus refusal;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.refused_job_unfinished;
        refusal = RefusalLocked("it would not end before the call's deadline");
      }
      std::move(head->answer)(Result<v1::Job>(std::move(refusal)));
      Next();
      return;
    }
    scheduler_.RunAt(next,
                     [self = shared_from_this(), head = std::move(head), conflicts]() mutable {
                       self->Check(std::move(head), conflicts, /*waited=*/true);
                     });
  }

  void Send(std::shared_ptr<Entry> head, int conflicts, bool waited) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.sent;
      if (waited) ++stats_.waited;
    }
    if (options_.observer != nullptr) {
      options_.observer->OnSent(name_, scheduler_.Now() - head->entered);
    }
    Entry& entry = *head;
    entry.send([self = shared_from_this(), head = std::move(head),
                conflicts](Result<v1::Job> answer) mutable {
      self->OnAnswer(std::move(head), std::move(answer), conflicts);
    });
  }

  void OnAnswer(std::shared_ptr<Entry> head, Result<v1::Job> answer, int conflicts) {
    if (answer.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      job_id_ = Finished(*answer) ? std::string() : answer->job_id();
    } else if (IsJobInProgress(answer.error())) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.conflicts;
      }
      if (conflicts == 0) {
        FindRunningJob(std::move(head), std::move(answer));
        return;
      }
    }
    std::move(head->answer)(std::move(answer));
    Next();
  }

  // After a 409: the unfinished job of this lane's kind, from ListJobs; waits for it and sends
  // once more, or answers the 409 when none is found.
  void FindRunningJob(std::shared_ptr<Entry> head, Result<v1::Job> conflict) {
    CallOptions options;
    options.deadline = head->deadline - options_.headroom;
    options.caller = "gateway-job-lane";
    auto held = std::make_shared<Result<v1::Job>>(std::move(conflict));
    inner_->ListJobs(options, v1::ListJobsRequest(),
                     [self = shared_from_this(), head = std::move(head),
                      held](Result<v1::ListJobsResponse> jobs) mutable {
                       const std::string running =
                           jobs.ok() ? UnfinishedJobOn(self->id_, *jobs) : std::string();
                       if (running.empty()) {
                         held->facts().job_id = running;
                         std::move(head->answer)(std::move(*held));
                         self->Next();
                         return;
                       }
                       {
                         std::lock_guard<std::mutex> lock(self->mu_);
                         self->job_id_ = running;
                       }
                       self->Check(std::move(head), /*conflicts=*/1, /*waited=*/true);
                     });
  }

  // FAILED_PRECONDITION / JOB_IN_PROGRESS naming the remembered job, nothing sent.
  CallStatus RefusalLocked(absl::string_view why) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CallFacts facts;
    facts.reason = ErrorReason::kJobInProgress;
    facts.job_id = job_id_;
    const std::string kind = id_ == BudgetId::kImports ? "import job" : "bulk identify job";
    return CallStatus(absl::FailedPreconditionError(absl::StrCat(
                          "Userpilot runs one ", kind, " at a time",
                          job_id_.empty() ? std::string(" and one is being submitted")
                                          : absl::StrCat(": job ", job_id_, " is unfinished"),
                          ", and ", why, "; nothing was sent")),
                      std::move(facts));
  }

  // A waiting call's deadline came.
  void Expire(uint64_t seq) {
    StubCallback<v1::Job> answer;
    CallStatus refusal;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = std::find_if(waiting_.begin(), waiting_.end(),
                             [seq](const Waiting& w) { return w.seq == seq; });
      if (it == waiting_.end()) return;
      answer = std::move(it->entry.answer);
      waiting_.erase(it);
      ++stats_.refused_deadline;
      refusal = RefusalLocked("the call's deadline came while it waited its turn");
    }
    std::move(answer)(Result<v1::Job>(std::move(refusal)));
  }

  // The head is done: the next waiting call becomes the head.
  void Next() {
    std::shared_ptr<Entry> head;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (waiting_.empty()) {
        busy_ = false;
        return;
      }
      Waiting next = std::move(waiting_.front());
      waiting_.pop_front();
      if (next.timer != 0) scheduler_.Cancel(next.timer);
      head = std::make_shared<Entry>(std::move(next.entry));
    }
    Check(std::move(head), /*conflicts=*/0, /*waited=*/true);
  }

  const std::string name_;
  const BudgetId id_;
  const std::shared_ptr<UserpilotStub> inner_;
  Scheduler& scheduler_;
  const JobLaneOptions options_;

  mutable std::mutex mu_;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  std::string job_id_ ABSL_GUARDED_BY(mu_);  // The job to wait for; "" when none may run.
  std::deque<Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  JobLaneStats stats_ ABSL_GUARDED_BY(mu_);
};

JobLaneStub::JobLaneStub(std::shared_ptr<UserpilotStub> inner, Scheduler& scheduler,
                         JobLaneOptions options)
    : ForwardingStub(std::move(inner)), scheduler_(scheduler) {
  if (absl::Status status = options.Validate(); !status.ok()) {
    std::fprintf(stderr, "JobLaneStub: %s\n", status.ToString().c_str());
    std::abort();
  }
  bulk_ = std::make_shared<Lane>("bulk", BudgetId::kBulk, this->inner(), scheduler_, options);
  imports_ =
      std::make_shared<Lane>("imports", BudgetId::kImports, this->inner(), scheduler_, options);
}

void JobLaneStub::Enter(BudgetId lane, Entry entry) {
  (lane == BudgetId::kImports ? imports_ : bulk_)->Enter(std::move(entry));
}

std::vector<JobLaneStats> JobLaneStub::Stats() const { return {bulk_->Stats(), imports_->Stats()}; }

template class RpcDispatcher<JobLaneStub>;

}  // namespace userpilot::gateway
