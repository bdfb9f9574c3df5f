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
#include "service/jobs/import/import_session.h"
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

class EndedReader final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
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

// One ImportData call: turns gRPC's reads and completions into ImportSession calls, and carries
// out what the session asks (read the next message, finish).
//
// Messages are read raw (grpc::ByteBuffer) and decoded here, because gRPC's typed reads report a
// message that fails to decode exactly as they report the end of the stream (OnReadDone(false)),
// and a truncated file must never pass for a complete one. A read that fails is then either the
// caller's half-close or a broken stream (the caller vanished, or gRPC refused an oversized
// message and cancelled the call): sending the initial metadata tells them apart, since it
// succeeds only on a stream that is still open.
//
// The reactor is shared with the session (weakly) and keeps itself alive until OnDone; ops_mu_
// orders the session's requests with gRPC's operations, so nothing is started after Finish.
class ImportDataReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer>,
                                public ImportStream,
                                public std::enable_shared_from_this<ImportDataReactor> {
 public:
  explicit ImportDataReactor(grpc::ByteBuffer* response) : response_(response) {}

  // Starts the session (admission, then the first read).
  void Begin(Importer& importer, ImportCall call) {
    self_ = shared_from_this();
    session_ = ImportSession::Create(importer, std::move(call), weak_from_this());
    session_->Start();
  }

  // ImportStream.
  void ReadNext() override {
    std::lock_guard<std::mutex> lock(ops_mu_);
    if (!finished_) StartRead(&buffer_);
  }

  void Finish(Result<v1::Job> result) override {
    std::lock_guard<std::mutex> lock(ops_mu_);
    if (finished_) return;
    finished_ = true;
    if (result.ok()) {
      bool own_buffer = false;
      grpc::Status serialized =
          grpc::SerializationTraits<v1::Job>::Serialize(*result, response_, &own_buffer);
      if (!serialized.ok()) {
        result =
            Result<v1::Job>(absl::InternalError("the job could not be serialized for the caller"));
      }
    }
    grpc::ServerReadReactor<grpc::ByteBuffer>::Finish(ToGrpcStatus(result.error()));
  }

  // gRPC reactions.
  void OnReadDone(bool ok) override {
    if (ok) {
      v1::ImportDataRequest message;
      if (grpc::SerializationTraits<v1::ImportDataRequest>::Deserialize(&buffer_, &message).ok()) {
        session_->OnMessage(std::move(message));
      } else {
        session_->OnUndecodableMessage();
      }
      return;
    }
    std::lock_guard<std::mutex> lock(ops_mu_);
    if (!finished_) StartSendInitialMetadata();
  }

  void OnSendInitialMetadataDone(bool ok) override {
    if (ok) {
      session_->OnEndOfStream();
    } else {
      session_->OnStreamBroken();
    }
  }

  void OnCancel() override { session_->OnCancel(); }

  void OnDone() override { self_.reset(); }  // May delete this.

 private:
  grpc::ByteBuffer* const response_;
  grpc::ByteBuffer buffer_;                  // The message being read (one read at a time).
  std::shared_ptr<ImportSession> session_;   // Set in Begin(), then constant.
  std::shared_ptr<ImportDataReactor> self_;  // Until OnDone.
  std::mutex ops_mu_;
  bool finished_ = false;  // Guarded by ops_mu_.
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

grpc::ServerReadReactor<grpc::ByteBuffer>* StartImportData(grpc::CallbackServerContext* context,
                                                           grpc::ByteBuffer* response,
                                                           Importer* importer,
                                                           absl::Time deadline,
                                                           std::string caller) {
  if (importer == nullptr) return new EndedReader(Unimplemented("ImportData"));
  auto reactor = std::make_shared<ImportDataReactor>(response);
  ImportCall call;
  call.deadline = deadline;
  call.caller = std::move(caller);
  call.trace = CallTraceContext(*context);
  reactor->Begin(*importer, std::move(call));
  return reactor.get();  // Kept alive by itself until OnDone.
}

}  // namespace userpilot::gateway
