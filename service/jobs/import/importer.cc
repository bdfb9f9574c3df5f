#include "service/jobs/import/importer.h"

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/jobs/watch/job_state.h"

namespace userpilot::gateway {
namespace {

constexpr absl::Duration kRetryRefusedAfter = absl::Seconds(5);

bool IsJobInProgress(const CallStatus& status) {
  return absl::IsFailedPrecondition(status.status()) &&
         status.facts().reason == ErrorReason::kJobInProgress;
}

// Whether `job` belongs to the family that blocks an upload to `target` (Userpilot runs one
// import at a time, and one bulk identify - users or companies - at a time).
bool SameFamily(const v1::Job& job, v1::ImportTarget target) {
  const std::string type = absl::AsciiStrToLower(job.type());
  const std::string id = absl::AsciiStrToLower(job.job_id());
  const absl::string_view word = target == v1::IMPORT_TARGET_HISTORICAL_IMPORT ? "import" : "bulk";
  return absl::StrContains(type, word) || absl::StartsWith(id, word);
}

}  // namespace

// ----- Importer -----

Importer::Importer(UserpilotStub& stub, JobWatchRegistry& registry, Scheduler& scheduler,
                   ImportOptions options)
    : stub_(stub),
      registry_(registry),
      scheduler_(scheduler),
      options_(std::move(options)),
      executor_(options_.worker_threads, "upgw-import") {
  if (absl::Status valid = options_.Validate(); !valid.ok()) {
    std::fprintf(stderr, "%s\n", std::string(valid.message()).c_str());
    std::abort();
  }
}

Importer::~Importer() { Shutdown(); }

Result<Importer::Permit> Importer::Admit() {
  if (shut_down_.load()) {
    return absl::UnavailableError(
        "this gateway replica is shutting down: send the import to another replica");
  }
  size_t running = running_.load();
  while (true) {
    if (running >= options_.max_concurrent_imports) {
      refused_.fetch_add(1);
      CallFacts facts;
      facts.retry_delay = RetryDelay{kRetryRefusedAfter, RetryDelaySource::kGateway};
      return CallStatus(
          absl::ResourceExhaustedError(absl::StrCat(
              "the gateway already runs its maximum of ", options_.max_concurrent_imports,
              " concurrent imports; try again later or on another replica")),
          std::move(facts));
    }
    if (running_.compare_exchange_weak(running, running + 1)) break;
  }
  admitted_.fetch_add(1);
  return Permit(&running_);
}

std::shared_ptr<ImportSubmission> Importer::Submit(const CallOptions& options,
                                                   ImportFileRequest request,
                                                   bool wait_for_running_job,
                                                   StubCallback<v1::Job> done) {
  std::shared_ptr<ImportSubmission> submission(new ImportSubmission(
      *this, options, std::move(request), wait_for_running_job, std::move(done)));
  submission->Send();
  return submission;
}

void Importer::Shutdown() {
  shut_down_.store(true);
  executor_.Shutdown();
}

ImportStats Importer::Stats() const {
  ImportStats stats;
  stats.running = running_.load();
  stats.admitted = admitted_.load();
  stats.refused = refused_.load();
  stats.uploads = uploads_.load();
  stats.conflict_waits = conflict_waits_.load();
  stats.bytes_received = bytes_received_.load();
  stats.idle_timeouts = idle_timeouts_.load();
  stats.deadline_timeouts = deadline_timeouts_.load();
  return stats;
}

// ----- ImportSubmission -----

// Hands the registry's notices to the submission, if it still exists. Reference-counted, as
// JobWatchSink requires: the submission holds one reference while it is subscribed.
class ImportSubmission::Sink final : public JobWatchSink {
 public:
  explicit Sink(std::weak_ptr<ImportSubmission> owner) : owner_(std::move(owner)) {}
  void OnJobsReady() override {
    if (auto owner = owner_.lock()) owner->OnWatchReady();
  }
  void Ref() override { refs_.fetch_add(1); }
  void Unref() override {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

 private:
  ~Sink() = default;
  const std::weak_ptr<ImportSubmission> owner_;
  std::atomic<int> refs_{1};
};

// What a submission releases when it stops waiting; released with no lock held.
struct ImportSubmission::Waits {
  std::shared_ptr<JobSubscription> subscription;
  JobWatchSink* sink = nullptr;
  std::optional<Scheduler::TimerId> timer;
  std::optional<Scheduler::TimerId> deadline_timer;

  void Release(Scheduler& scheduler) {
    if (subscription != nullptr) subscription->Close();
    subscription.reset();
    if (sink != nullptr) sink->Unref();
    sink = nullptr;
    if (timer.has_value()) scheduler.Cancel(*timer);
    if (deadline_timer.has_value()) scheduler.Cancel(*deadline_timer);
  }
};

ImportSubmission::Waits ImportSubmission::TakeWaitsLocked() {
  Waits waits;
  waits.subscription = std::move(subscription_);
  subscription_.reset();
  waits.sink = sink_;
  sink_ = nullptr;
  waits.timer = timer_;
  timer_.reset();
  waits.deadline_timer = deadline_timer_;
  deadline_timer_.reset();
  return waits;
}

ImportSubmission::ImportSubmission(Importer& importer, const CallOptions& options,
                                   ImportFileRequest request, bool wait, StubCallback<v1::Job> done)
    : importer_(importer),
      options_(options),
      request_(std::move(request)),
      wait_(wait),
      done_(std::move(done)) {}

ImportSubmission::~ImportSubmission() {
  Waits waits = TakeWaitsLocked();
  waits.Release(importer_.scheduler_);
}

void ImportSubmission::Send() {
  bool cancelled = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled = cancelled_;
    if (!cancelled) in_flight_ = true;
  }
  if (cancelled) {
    Finish(absl::CancelledError("the import was cancelled by its caller"));
    return;
  }
  importer_.uploads_.fetch_add(1);
  importer_.stub_.ImportFile(
      options_, request_,
      [self = shared_from_this()](Result<v1::Job> answer) { self->OnAnswer(std::move(answer)); });
}

void ImportSubmission::OnAnswer(Result<v1::Job> answer) {
  bool list = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_ = false;
    if (!answer.ok() && !cancelled_ && wait_ && IsJobInProgress(answer.error())) {
      list = true;
      in_flight_ = true;
    }
  }
  if (!list) {
    Finish(std::move(answer));
    return;
  }
  importer_.conflict_waits_.fetch_add(1);
  importer_.stub_.ListJobs(
      options_, v1::ListJobsRequest(),
      [self = shared_from_this()](Result<v1::ListJobsResponse> r) { self->OnList(std::move(r)); });
}

void ImportSubmission::OnList(Result<v1::ListJobsResponse> list) {
  std::string running;
  if (list.ok()) {
    for (const v1::Job& job : list->jobs()) {  // Newest first.
      if (!IsTerminal(job) && SameFamily(job, request_.target)) {
        running = job.job_id();
        break;
      }
    }
  }
  std::shared_ptr<JobSubscription> subscription;
  CallStatus refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_ = false;
    if (cancelled_) {
      refused = absl::CancelledError("the import was cancelled by its caller");
    } else {
      waiting_for_ = running;
      if (options_.deadline != absl::InfiniteFuture()) {
        std::weak_ptr<ImportSubmission> weak = weak_from_this();
        deadline_timer_ = importer_.scheduler_.RunAt(options_.deadline, [weak] {
          if (auto self = weak.lock()) self->OnDeadline();
        });
      }
      if (!running.empty()) {
        sink_ = new Sink(weak_from_this());
        Result<std::shared_ptr<JobSubscription>> watch =
            importer_.registry_.WatchJob(running, sink_);
        if (watch.ok()) {
          subscription_ = *watch;
          subscription = *watch;
        } else if (absl::IsUnavailable(watch.status())) {
          refused = watch.error();  // Shutting down.
        }
        // At a bound (RESOURCE_EXHAUSTED): fall back to waiting a fixed interval.
      }
    }
  }
  if (!refused.ok()) {
    Finish(refused);
  } else if (subscription != nullptr) {
    OnWatchReady();  // Take what is already there (the state last read).
  } else {
    AfterDelay(importer_.options_.conflict_retry_interval);
  }
}

void ImportSubmission::OnWatchReady() {
  std::shared_ptr<JobSubscription> subscription;
  {
    std::lock_guard<std::mutex> lock(mu_);
    subscription = subscription_;
  }
  if (subscription == nullptr) return;
  bool resubmit = false;
  CallStatus failed;
  while (true) {
    JobSubscription::Next next = subscription->TakeNext();
    if (next.job != nullptr) {
      if (IsTerminal(*next.job)) resubmit = true;
      continue;  // The end follows a terminal state.
    }
    if (next.end.has_value()) {
      if (next.end->ok() || absl::IsNotFound(next.end->status())) {
        resubmit = true;  // The job ended, or vanished from Userpilot's records.
      } else if (!absl::IsCancelled(next.end->status())) {
        failed = *next.end;
      }
    }
    break;
  }
  if (!resubmit && failed.ok()) return;  // Still running: the sink will be told.
  Waits waits;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (subscription_ != subscription) return;  // Someone else already moved on.
    waits = TakeWaitsLocked();
  }
  waits.Release(importer_.scheduler_);
  if (!failed.ok()) {
    Finish(failed);
  } else {
    Send();
  }
}

void ImportSubmission::AfterDelay(absl::Duration delay) {
  std::lock_guard<std::mutex> lock(mu_);
  std::weak_ptr<ImportSubmission> weak = weak_from_this();
  timer_ = importer_.scheduler_.RunAfter(delay, [weak] {
    auto self = weak.lock();
    if (self == nullptr) return;
    Waits waits;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      if (!self->timer_.has_value()) return;  // Cancelled meanwhile.
      self->timer_.reset();
      waits = self->TakeWaitsLocked();
    }
    waits.Release(self->importer_.scheduler_);
    self->Send();
  });
}

void ImportSubmission::OnDeadline() {
  Waits waits;
  std::string job_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!deadline_timer_.has_value()) return;
    deadline_timer_.reset();
    if (subscription_ == nullptr && !timer_.has_value()) return;  // Not waiting.
    waits = TakeWaitsLocked();
    job_id = waiting_for_;
  }
  waits.Release(importer_.scheduler_);
  CallFacts facts;
  facts.reason = ErrorReason::kJobInProgress;
  facts.job_id = job_id;
  Finish(CallStatus(
      absl::DeadlineExceededError(absl::StrCat(
          "Userpilot still runs ",
          job_id.empty() ? std::string("another job of this kind") : absl::StrCat("job ", job_id),
          " (one at a time), and the call's deadline came before it ended; nothing was uploaded")),
      std::move(facts)));
}

void ImportSubmission::Cancel() {
  Waits waits;
  bool idle = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    idle = !in_flight_;
    waits = TakeWaitsLocked();
  }
  waits.Release(importer_.scheduler_);
  if (idle) Finish(absl::CancelledError("the import was cancelled by its caller"));
}

void ImportSubmission::Finish(Result<v1::Job> result) {
  StubCallback<v1::Job> done;
  Waits waits;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done = std::move(done_);
    done_ = nullptr;
    waits = TakeWaitsLocked();
  }
  waits.Release(importer_.scheduler_);
  if (done) std::move(done)(std::move(result));
}

}  // namespace userpilot::gateway
