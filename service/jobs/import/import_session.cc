#include "service/jobs/import/import_session.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/call_result.h"
#include "service/jobs/import/import_header.h"

namespace userpilot::gateway {

std::shared_ptr<ImportSession> ImportSession::Create(Importer& importer, ImportCall call,
                                                     std::weak_ptr<ImportStream> stream) {
  return std::shared_ptr<ImportSession>(
      new ImportSession(importer, std::move(call), std::move(stream)));
}

ImportSession::ImportSession(Importer& importer, ImportCall call,
                             std::weak_ptr<ImportStream> stream)
    : importer_(importer), call_(std::move(call)), stream_(std::move(stream)) {}

ImportSession::~ImportSession() {
  // Finish() cancels the timers; a session that never finished (its stream vanished first)
  // cancels them here. Their callbacks hold the session weakly, so a late one does nothing.
  if (idle_timer_.has_value()) importer_.scheduler().Cancel(*idle_timer_);
  if (deadline_timer_.has_value()) importer_.scheduler().Cancel(*deadline_timer_);
}

void ImportSession::Start() {
  Result<Importer::Permit> permit = importer_.Admit();
  if (!permit.ok()) return Finish(std::move(permit).error());
  permit_.emplace(*std::move(permit));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ != Step::kIdle) return;
    step_ = Step::kRead;
    if (call_.deadline != absl::InfiniteFuture()) {
      deadline_timer_ = importer_.scheduler().RunAt(call_.deadline, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->OnDeadline();
      });
    }
  }
  ReadNext();
}

void ImportSession::ReadNext() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ != Step::kRead) return;
    const uint64_t read = ++reads_;
    idle_timer_ = importer_.scheduler().RunAfter(importer_.options().idle_timeout,
                                                 [weak = weak_from_this(), read] {
                                                   if (auto self = weak.lock()) self->OnIdle(read);
                                                 });
  }
  if (auto stream = stream_.lock()) stream->ReadNext();
}

void ImportSession::OnMessage(v1::ImportDataRequest message) {
  std::optional<Scheduler::TimerId> idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ != Step::kRead) return;
    step_ = Step::kWork;
    idle = std::exchange(idle_timer_, std::nullopt);
  }
  if (idle.has_value()) importer_.scheduler().Cancel(*idle);
  ++messages_;
  if (!header_.has_value()) {
    if (!message.has_header()) {
      return Finish(InvalidArgumentError(
          {{"header", "the first message must be the header (target, filename, format)"}}));
    }
    if (CallStatus valid = ValidateImportHeader(message.header(), importer_.options().limits);
        !valid.ok()) {
      return Finish(valid);
    }
    header_ = std::move(*message.mutable_header());
    return Work([this]() -> CallStatus {
      auto spool =
          ImportSpool::Create(importer_.options().spool_dir, *header_, importer_.options().limits);
      if (!spool.ok()) return spool.status();
      spool_ = *std::move(spool);
      return absl::OkStatus();
    });
  }
  if (message.has_header()) {
    return Finish(InvalidArgumentError(
        {{"header", "only the first message may be a header; later ones carry chunks"}}));
  }
  auto chunk = std::make_shared<std::string>(std::move(*message.mutable_chunk()));
  Work([this, chunk]() -> CallStatus {
    CallStatus appended = spool_->Append(*chunk);
    if (appended.ok()) importer_.RecordReceivedBytes(chunk->size());
    return appended;
  });
}

template <typename Task>
void ImportSession::Work(Task task) {
  importer_.RunBlocking([self = shared_from_this(), task = std::move(task)]() mutable {
    if (CallStatus status = task(); !status.ok()) return self->Finish(status);
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      if (self->step_ != Step::kWork) return;  // Ended meanwhile.
      self->step_ = Step::kRead;
    }
    self->ReadNext();
  });
}

void ImportSession::OnUndecodableMessage() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ != Step::kRead) return;
  }
  Finish(InvalidArgumentError(
      {{absl::StrCat("message ", messages_ + 1),
        "is not an ImportDataRequest (it cannot be decoded); nothing was uploaded"}}));
}

void ImportSession::OnEndOfStream() {
  std::optional<Scheduler::TimerId> idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ != Step::kRead) return;
    step_ = Step::kWork;
    idle = std::exchange(idle_timer_, std::nullopt);
  }
  if (idle.has_value()) importer_.scheduler().Cancel(*idle);
  if (!header_.has_value()) {
    return Finish(InvalidArgumentError(
        {{"header", "the stream ended before the header (target, filename, format)"}}));
  }
  importer_.RunBlocking([self = shared_from_this()] {
    Result<std::shared_ptr<const HttpBodySource>> body = self->CompleteFile();
    if (!body.ok()) return self->Finish(std::move(body).error());
    self->Submit(*std::move(body));
  });
}

Result<std::shared_ptr<const HttpBodySource>> ImportSession::CompleteFile() {
  if (CallStatus valid = spool_->Finish(); !valid.ok()) return valid;
  if (header_->has_size_bytes() && header_->size_bytes() != spool_->size()) {
    return InvalidArgumentError(
        {{"header.size_bytes", absl::StrCat("the header announced ", header_->size_bytes(),
                                            " bytes but the stream carried ", spool_->size(),
                                            "; nothing was uploaded")}});
  }
  return spool_->Contents();
}

void ImportSession::Submit(std::shared_ptr<const HttpBodySource> body) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ != Step::kWork) return;  // Ended meanwhile.
    step_ = Step::kSubmit;
  }
  ImportFileRequest request;
  request.target = header_->target();
  request.format = header_->format();
  request.filename = ImportFilename(*header_);
  request.file = std::move(body);
  CallOptions options;
  options.deadline = call_.deadline;
  options.caller = call_.caller;
  options.trace = call_.trace;
  std::shared_ptr<ImportSubmission> submission =
      importer_.Submit(options, std::move(request), header_->wait_for_running_job(),
                       [weak = weak_from_this()](Result<v1::Job> job) {
                         if (auto self = weak.lock()) self->Finish(std::move(job));
                       });
  bool cancelled = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ == Step::kSubmit) {  // Not answered yet.
      submission_ = submission;
      cancelled = cancelled_;
    }
  }
  if (cancelled) submission->Cancel();  // OnCancel ran before submission_ was set.
}

void ImportSession::OnStreamBroken() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ != Step::kRead) return;
  }
  Finish(absl::CancelledError("the stream broke before the caller ended it; nothing was uploaded"));
}

void ImportSession::OnCancel() {
  std::shared_ptr<ImportSubmission> submission;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ == Step::kDone) return;
    cancelled_ = true;
    // A submission ends through its own completion (an upload in flight cannot be recalled).
    if (step_ == Step::kSubmit) {
      submission = submission_;
      if (submission == nullptr) return;  // Submit() cancels it once it is set.
    }
  }
  if (submission != nullptr) {
    submission->Cancel();
    return;
  }
  Finish(absl::CancelledError("the import was cancelled by its caller; nothing was uploaded"));
}

void ImportSession::OnIdle(uint64_t read) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ != Step::kRead || reads_ != read) return;
    idle_timer_.reset();
  }
  importer_.RecordTimeout(/*idle=*/true);
  Finish(absl::DeadlineExceededError(absl::StrCat(
      "the caller sent nothing for ", absl::FormatDuration(importer_.options().idle_timeout),
      " (the gateway's import idle timeout); nothing was uploaded")));
}

void ImportSession::OnDeadline() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    deadline_timer_.reset();
    // From the submission on, the submission keeps the deadline.
    if (step_ == Step::kDone || step_ == Step::kSubmit) return;
  }
  importer_.RecordTimeout(/*idle=*/false);
  Finish(absl::DeadlineExceededError(
      "the call's deadline came before the file was complete; nothing was uploaded"));
}

void ImportSession::Finish(Result<v1::Job> result) {
  std::optional<Scheduler::TimerId> idle;
  std::optional<Scheduler::TimerId> deadline;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (step_ == Step::kDone) return;
    step_ = Step::kDone;
    idle = std::exchange(idle_timer_, std::nullopt);
    deadline = std::exchange(deadline_timer_, std::nullopt);
    submission_.reset();
  }
  if (idle.has_value()) importer_.scheduler().Cancel(*idle);
  if (deadline.has_value()) importer_.scheduler().Cancel(*deadline);
  if (auto stream = stream_.lock()) stream->Finish(std::move(result));
}

}  // namespace userpilot::gateway
