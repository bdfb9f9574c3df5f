// ImportSession: one ImportData call, apart from gRPC. It owns the call's admission slot, the
// header checks, the spool file (checked as it is written), the byte counts, the call's
// deadline and idle timeout, and the submission; the gRPC reactor (service/server/
// job_streams.cc) only turns gRPC's reads and completions into the calls below, and carries
// out what the session asks of its ImportStream.
//
// A call goes through these steps, one at a time:
//  1. Start: a slot from Importer::Admit (else the call ends with its refusal), a timer for the
//     call's deadline, then the first read.
//  2. Each message, on a worker thread (Importer::RunBlocking): the first must be the header
//     (ValidateImportHeader), which creates the spool file; every later one is a chunk,
//     checked and appended (ImportSpool::Append). Only then is the next message read, so
//     gRPC's flow control holds the caller back meanwhile: memory stays at about one chunk per
//     import, and no gRPC thread ever writes a file or parses JSON.
//  3. The end of the stream - only a real half-close by the caller (OnEndOfStream): the
//     file's last checks and header.size_bytes, on a worker thread; then the submission
//     (Importer::Submit), whose answer ends the call.
// A message that cannot be decoded ends the call with INVALID_ARGUMENT naming it; a stream that
// breaks (OnStreamBroken) or a cancelled call ends it with CANCELLED. Whatever ends a call
// before step 3 is done, nothing is uploaded. A caller that sends nothing for
// ImportOptions::idle_timeout while the gateway waits for a message, or a call still reading
// when its deadline comes, ends with DEADLINE_EXCEEDED (counted in ImportStats); from step 3
// on, the submission keeps the deadline.
//
// The slot and the spool file are held until the session is destroyed: when its stream has let
// go of it and no worker task still uses the spool.
//
// Thread-safety: every method from any thread; the session serialises its own state with a
// mutex and calls its stream and the importer without holding it.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_SESSION_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_SESSION_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/common/call_result.h"
#include "service/common/scheduler.h"
#include "service/common/trace_context.h"
#include "service/http/http_client.h"
#include "service/jobs/import/import_spool.h"
#include "service/jobs/import/importer.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// What a session asks of the stream that carries its call (the gRPC reactor). Both methods may
// be called from any thread, and must not call back into the session before returning.
class ImportStream {
 public:
  virtual ~ImportStream() = default;

  // Reads the next message. Exactly one of OnMessage, OnUndecodableMessage, OnEndOfStream and
  // OnStreamBroken follows, unless the call ends first.
  virtual void ReadNext() = 0;

  // Ends the call with the job Userpilot created, or the error. Called once.
  virtual void Finish(Result<v1::Job> result) = 0;
};

// The call's facts that come from gRPC.
struct ImportCall {
  // The caller's deadline, cut to the gateway's maximum, or the gateway's default when the
  // caller set none (as for unary calls).
  absl::Time deadline = absl::InfiniteFuture();
  // The caller's name (x-caller), for the upstream trace and fairness.
  std::string caller = "unknown";
  // The call's W3C trace context (common/trace_context.h), sent upstream with the upload.
  TraceContext trace;
};

class ImportSession : public std::enable_shared_from_this<ImportSession> {
 public:
  // A session for one call, carried by `stream`, which it holds weakly (a stream that has gone
  // away is simply not called). `importer` must outlive the session. Nothing happens until
  // Start().
  static std::shared_ptr<ImportSession> Create(Importer& importer, ImportCall call,
                                               std::weak_ptr<ImportStream> stream);
  ~ImportSession();

  ImportSession(const ImportSession&) = delete;
  ImportSession& operator=(const ImportSession&) = delete;

  // Step 1 above.
  void Start();

  // The message asked for by ReadNext().
  void OnMessage(v1::ImportDataRequest message);
  // The bytes read are not an ImportDataRequest.
  void OnUndecodableMessage();
  // The caller half-closed the stream: the file is complete.
  void OnEndOfStream();
  // The read failed and the stream did not end cleanly (the caller vanished, the transport
  // refused a message).
  void OnStreamBroken();
  // The call was cancelled (the caller left, or gRPC's deadline passed).
  void OnCancel();

 private:
  enum class Step {
    kIdle,    // Before Start().
    kRead,    // A read is out.
    kWork,    // A worker task is out.
    kSubmit,  // The submission is out.
    kDone,    // The stream was told to finish.
  };

  ImportSession(Importer& importer, ImportCall call, std::weak_ptr<ImportStream> stream);

  // Asks for the next message and sets the idle timer. `step_` must be kRead.
  void ReadNext();
  // Runs `task` on a worker thread; then reads on, or ends the call with the task's error.
  template <typename Task>
  void Work(Task task);
  // The end of the file: its last checks and header.size_bytes; then the body to upload.
  Result<std::shared_ptr<const HttpBodySource>> CompleteFile();
  void Submit(std::shared_ptr<const HttpBodySource> body);
  void OnIdle(uint64_t read);
  void OnDeadline();
  // Ends the call with `result`, once; later calls do nothing.
  void Finish(Result<v1::Job> result);

  Importer& importer_;
  const ImportCall call_;
  const std::weak_ptr<ImportStream> stream_;

  // Used by one step at a time (a reaction, then the worker task it hands over to, ...).
  std::optional<Importer::Permit> permit_;
  std::optional<v1::ImportHeader> header_;
  std::unique_ptr<ImportSpool> spool_;
  int64_t messages_ = 0;  // Messages received, the header included.

  std::mutex mu_;
  Step step_ = Step::kIdle;                           // Guarded by mu_.
  bool cancelled_ = false;                            // Guarded by mu_.
  uint64_t reads_ = 0;                                // Guarded by mu_: reads asked for.
  std::optional<Scheduler::TimerId> idle_timer_;      // Guarded by mu_.
  std::optional<Scheduler::TimerId> deadline_timer_;  // Guarded by mu_.
  std::shared_ptr<ImportSubmission> submission_;      // Guarded by mu_.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_SESSION_H_
