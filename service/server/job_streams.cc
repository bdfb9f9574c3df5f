#include "service/server/job_streams.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "service/common/call_result.h"
#include "service/jobs/import/import_spool.h"
#include "service/jobs/import/import_validator.h"
#include "service/server/gateway_service.h"
#include "service/server/grpc_status.h"

namespace userpilot::gateway {
namespace {

grpc::Status Unimplemented(absl::string_view rpc) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      absl::StrCat(rpc, " is not enabled on this gateway"));
}

// A server stream that ends at once.
class EndedWriter final : public grpc::ServerWriteReactor<v1::Job> {
 public:
  explicit EndedWriter(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

class EndedReader final : public grpc::ServerReadReactor<v1::ImportDataRequest> {
 public:
  explicit EndedReader(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// ----- WatchJob / WatchJobs -----

class JobStreamReactor final : public grpc::ServerWriteReactor<v1::Job>, public JobWatchSink {
 public:
  using Subscribe = absl::FunctionRef<Result<std::shared_ptr<JobSubscription>>(JobWatchSink*)>;

  // Subscribes (with this reactor as the sink) and starts the first write if a state is ready.
  explicit JobStreamReactor(Subscribe subscribe) {
    Result<std::shared_ptr<JobSubscription>> sub = subscribe(this);
    if (!sub.ok()) {
      finishing_ = true;
      Finish(ToGrpcStatus(sub.error()));
      return;
    }
    subscription_ = *std::move(sub);
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_.reset();
      if (!ok) cancelled_ = true;  // The stream is broken: no later write can succeed.
    }
    Pump();
  }

  void OnCancel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
    }
    Pump();
  }

  void OnDone() override {
    if (subscription_ != nullptr) subscription_->Close();
    Unref();
  }

  // JobWatchSink.
  void OnJobsReady() override { Pump(); }
  void Ref() override { refs_.fetch_add(1); }
  void Unref() override {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

 private:
  ~JobStreamReactor() override = default;

  // Starts the next write, or finishes, unless a write is in flight or the call is finishing.
  void Pump() {
    std::shared_ptr<const v1::Job> write;
    std::optional<grpc::Status> finish;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finishing_ || writing_ != nullptr) return;
      if (cancelled_) {
        finishing_ = true;
        finish = grpc::Status(grpc::StatusCode::CANCELLED, "the watch was cancelled");
      } else {
        JobSubscription::Next next = subscription_->TakeNext();
        if (next.job != nullptr) {
          writing_ = std::move(next.job);
          write = writing_;
        } else if (next.end.has_value()) {
          finishing_ = true;
          finish = ToGrpcStatus(*next.end);
        }
      }
    }
    if (write != nullptr) {
      StartWrite(write.get());  // Immutable and kept alive by writing_ until OnWriteDone.
    } else if (finish.has_value()) {
      subscription_->Close();
      Finish(*std::move(finish));
    }
  }

  std::atomic<int> refs_{1};  // gRPC's, dropped in OnDone; plus one per notice running.
  std::shared_ptr<JobSubscription> subscription_;  // Set in the constructor, then constant.
  std::mutex mu_;
  std::shared_ptr<const v1::Job> writing_;  // Guarded by mu_: the message being written.
  bool cancelled_ = false;                  // Guarded by mu_.
  bool finishing_ = false;                  // Guarded by mu_: Finish called or about to be.
};

// ----- ImportData -----

// One ImportData call. Its life is a chain of asynchronous steps, one at a time: a read, a
// worker task, the submission. `step_` says which is out. OnCancel never finishes the call
// itself: it marks it cancelled (and cancels a submission), and the step that is out ends the
// call when it completes. So Finish - after which gRPC may delete the reactor - is only ever
// called when nothing of ours still refers to it.
class ImportDataReactor final : public grpc::ServerReadReactor<v1::ImportDataRequest> {
 public:
  ImportDataReactor(Importer& importer, grpc::CallbackServerContext* context, v1::Job* response)
      : importer_(importer), context_(context), response_(response) {
    Result<Importer::Permit> permit = importer_.Admit();
    if (!permit.ok()) {
      step_ = Step::kDone;
      Finish(ToGrpcStatus(permit.error()));
      return;
    }
    permit_.emplace(*std::move(permit));
    const ImportOptions& options = importer_.options();
    const absl::Time now = absl::Now();
    const auto deadline = context->deadline();
    deadline_ = deadline == std::chrono::system_clock::time_point::max()
                    ? now + options.default_deadline
                    : std::min(absl::FromChrono(deadline), now + options.max_deadline);
    step_ = Step::kRead;
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!Begin(Step::kReaction)) return;
    if (!ok) return OnEndOfStream();
    if (!header_.has_value()) return OnHeader();
    OnChunk();
  }

  void OnCancel() override {
    std::shared_ptr<ImportSubmission> submission;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      submission = submission_;
    }
    if (submission != nullptr) submission->Cancel();  // Its completion ends the call.
  }

  void OnDone() override { Unref(); }

 private:
  ~ImportDataReactor() override = default;
  void Ref() { refs_.fetch_add(1); }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  enum class Step {
    kRead,      // A StartRead is out.
    kReaction,  // A reaction or completion is deciding what comes next.
    kWork,      // A worker task is out.
    kSubmit,    // The submission is out.
    kDone,      // Finish was called.
  };

  // Moves to `next` unless the call was cancelled; then ends it (CANCELLED) and returns false.
  bool Begin(Step next) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (step_ == Step::kDone) return false;
      if (!cancelled_) {
        step_ = next;
        return true;
      }
    }
    End(absl::CancelledError("the import was cancelled"));
    return false;
  }

  // Finishes the call (once).
  void End(const CallStatus& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (step_ == Step::kDone) return;
      step_ = Step::kDone;
      submission_.reset();
    }
    Finish(ToGrpcStatus(status));
  }

  void OnHeader() {
    if (!message_.has_header()) {
      return End(InvalidArgumentError(
          {{"header", "the first message must be the header (target, filename, format)"}}));
    }
    v1::ImportHeader header = message_.header();
    if (CallStatus valid = ValidateImportHeader(header); !valid.ok()) return End(valid);
    const ImportLimits& limits = importer_.options().limits;
    if (header.has_size_bytes() &&
        (header.size_bytes() < 0 || header.size_bytes() > limits.max_file_bytes)) {
      return End(InvalidArgumentError(
          {{"header.size_bytes",
            absl::StrCat("the file is larger than the gateway accepts: the limit is ",
                         limits.max_file_bytes, " bytes")}}));
    }
    header_ = std::move(header);
    Work([this]() -> CallStatus {
      auto spool =
          ImportSpool::Create(importer_.options().spool_dir, *header_, importer_.options().limits);
      if (!spool.ok()) return spool.status();
      spool_ = *std::move(spool);
      return absl::OkStatus();
    });
  }

  void OnChunk() {
    if (message_.has_header()) {
      return End(InvalidArgumentError(
          {{"header", "only the first message may be a header; later ones carry chunks"}}));
    }
    // Taken out of the message, which the next read reuses.
    auto chunk = std::make_shared<std::string>(std::move(*message_.mutable_chunk()));
    message_.Clear();
    Work([this, chunk] {
      CallStatus appended = spool_->Append(*chunk);
      if (appended.ok()) importer_.RecordReceivedBytes(chunk->size());
      return appended;
    });
  }

  void OnEndOfStream() {
    if (!header_.has_value()) {
      return End(InvalidArgumentError(
          {{"header", "the stream ended before the header (target, filename, format)"}}));
    }
    auto contents = std::make_shared<std::shared_ptr<const HttpBodySource>>();
    Work(
        [this, contents]() -> CallStatus {
          if (CallStatus valid = spool_->Finish(); !valid.ok()) return valid;
          if (header_->has_size_bytes() && header_->size_bytes() != spool_->size()) {
            return InvalidArgumentError(
                {{"header.size_bytes", absl::StrCat("the header announced ", header_->size_bytes(),
                                                    " bytes but the stream carried ",
                                                    spool_->size(), "; nothing was uploaded")}});
          }
          absl::StatusOr<std::shared_ptr<const HttpBodySource>> body = spool_->Contents();
          if (!body.ok()) return body.status();
          *contents = *std::move(body);
          return absl::OkStatus();
        },
        [this, contents] { Submit(std::move(*contents)); });
  }

  // Runs `task` on a worker thread; then `next`, or (by default) reads the next message. Ends
  // the call with the task's error, or CANCELLED if the caller left meanwhile.
  template <typename Task>
  void Work(Task task, absl::AnyInvocable<void() &&> next = nullptr) {
    if (!Begin(Step::kWork)) return;
    importer_.RunBlocking([this, task = std::move(task), next = std::move(next)]() mutable {
      const CallStatus status = task();
      if (!status.ok()) return End(status);
      if (next != nullptr) {
        if (Begin(Step::kReaction)) std::move(next)();
        return;
      }
      if (Begin(Step::kRead)) StartRead(&message_);
    });
  }

  void Submit(std::shared_ptr<const HttpBodySource> body) {
    // A client that vanished mid-stream can look like one that finished: never upload then.
    if (context_->IsCancelled()) return End(absl::CancelledError("the import was cancelled"));
    ImportFileRequest request;
    request.target = header_->target();
    request.format = header_->format();
    request.filename = ImportFilename(*header_);
    request.file = std::move(body);
    CallOptions options;
    options.deadline = deadline_;
    options.caller = CallerName(*context_);
    if (!Begin(Step::kSubmit)) return;
    // The answer may come inside Submit() (a stub that answers at once) and end the call, after
    // which gRPC may delete the reactor on another thread: hold it until this function is done.
    Ref();
    std::shared_ptr<ImportSubmission> submission = importer_.Submit(
        options, std::move(request), header_->wait_for_running_job(), [this](Result<v1::Job> job) {
          if (job.ok()) *response_ = *std::move(job);
          End(job.error());
        });
    // Kept so OnCancel can cancel a wait; unless it already ended (inside Submit).
    bool cancelled = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (step_ == Step::kSubmit) {
        submission_ = submission;
        cancelled = cancelled_;
      }
    }
    if (cancelled) submission->Cancel();  // OnCancel ran before submission_ was set.
    Unref();
  }

  std::atomic<int> refs_{1};  // gRPC's (dropped in OnDone), plus Submit's while it runs.
  Importer& importer_;
  grpc::CallbackServerContext* const context_;
  v1::Job* const response_;
  std::optional<Importer::Permit> permit_;  // Released when the reactor is deleted.
  absl::Time deadline_;

  // Used by one step at a time (a reaction, then the worker task it hands over to, ...).
  v1::ImportDataRequest message_;
  std::optional<v1::ImportHeader> header_;
  std::unique_ptr<ImportSpool> spool_;

  std::mutex mu_;
  Step step_ = Step::kReaction;                   // Guarded by mu_.
  bool cancelled_ = false;                        // Guarded by mu_.
  std::shared_ptr<ImportSubmission> submission_;  // Guarded by mu_.
};

}  // namespace

grpc::ServerWriteReactor<v1::Job>* StartWatchJob(grpc::CallbackServerContext* context,
                                                 const v1::WatchJobRequest& request,
                                                 const RequestValidator& validator,
                                                 JobWatchRegistry* registry) {
  if (registry == nullptr) return new EndedWriter(Unimplemented("WatchJob"));
  v1::GetJobRequest as_get;
  as_get.set_job_id(request.job_id());
  if (CallStatus valid = validator.Validate(as_get); !valid.ok()) {
    return new EndedWriter(ToGrpcStatus(valid));
  }
  return new JobStreamReactor(
      [&](JobWatchSink* sink) { return registry->WatchJob(request.job_id(), sink); });
}

grpc::ServerWriteReactor<v1::Job>* StartWatchJobs(grpc::CallbackServerContext* context,
                                                  const v1::WatchJobsRequest& request,
                                                  JobWatchRegistry* registry) {
  if (registry == nullptr) return new EndedWriter(Unimplemented("WatchJobs"));
  return new JobStreamReactor(
      [&](JobWatchSink* sink) { return registry->WatchAllJobs(sink, request.include_existing()); });
}

grpc::ServerReadReactor<v1::ImportDataRequest>* StartImportData(
    grpc::CallbackServerContext* context, v1::Job* response, Importer* importer) {
  if (importer == nullptr) return new EndedReader(Unimplemented("ImportData"));
  return new ImportDataReactor(*importer, context, response);
}

}  // namespace userpilot::gateway
