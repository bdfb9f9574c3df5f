// The gRPC side of the job RPCs: WatchJob and WatchJobs (server streams fed by the
// JobWatchRegistry) and ImportData (a client stream spooled, checked and uploaded by the
// Importer). GatewayService delegates to the factories below; the logic lives in service/jobs.
//
// Streams (callback API, gRPC's idiom: a small reactor per call that starts its first operation
// in its constructor and deletes itself when done):
//  - Watch streams write one state at a time: after a write completes they take the next state
//    from their JobSubscription (the latest per job), or wait for the registry's notice. A slow
//    reader therefore costs one pending state, never a queue. They end with the
//    subscription's end status, or CANCELLED when the caller leaves (which also frees the
//    poller when it was the last watcher). A watch reactor is reference-counted (see
//    JobWatchSink): it deletes itself once gRPC is done with it and no notice is running.
//  - ImportData reads one message at a time: each chunk is handed to a worker thread
//    (Importer::RunBlocking) that validates it and appends it to the spool file, and only then
//    is the next message read - gRPC's flow control holds the client back meanwhile, so memory
//    stays at about one chunk per import, and no gRPC thread ever writes a file or parses JSON.
//    At the end of the stream the worker finishes validation, and the Importer submits the
//    file. The spool file is nameless from birth (import_spool.h) and closed when the call
//    ends, whatever happens.
//
// Thread-safety: reactions may run on any gRPC thread, notices on the registry's threads,
// completions on worker and HTTP threads; each reactor serialises its own state with a mutex
// and calls gRPC (StartWrite, StartRead, Finish) without holding it.
#ifndef USERPILOT_GATEWAY_SERVICE_SERVER_JOB_STREAMS_H_
#define USERPILOT_GATEWAY_SERVICE_SERVER_JOB_STREAMS_H_

#include "grpcpp/grpcpp.h"
#include "service/jobs/import/importer.h"
#include "service/jobs/watch/job_watch_registry.h"
#include "service/validation/request_validator.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// What the job RPCs need, owned by the composition root; each must outlive the gRPC server.
// A null member makes its RPCs answer UNIMPLEMENTED.
struct JobServices {
  JobWatchRegistry* registry = nullptr;  // WatchJob, WatchJobs (and ImportData's waiting).
  Importer* importer = nullptr;          // ImportData.
};

// WatchJob: validates job_id as GetJob does (INVALID_ARGUMENT), subscribes and streams.
grpc::ServerWriteReactor<v1::Job>* StartWatchJob(grpc::CallbackServerContext* context,
                                                 const v1::WatchJobRequest& request,
                                                 const RequestValidator& validator,
                                                 JobWatchRegistry* registry);

// WatchJobs: subscribes to the shared list poller and streams.
grpc::ServerWriteReactor<v1::Job>* StartWatchJobs(grpc::CallbackServerContext* context,
                                                  const v1::WatchJobsRequest& request,
                                                  JobWatchRegistry* registry);

// ImportData: admission, then header, chunks, validation, submission; `response` receives
// the job. The call's deadline is the caller's, cut to ImportOptions::max_deadline, or
// ImportOptions::default_deadline when the caller set none.
grpc::ServerReadReactor<v1::ImportDataRequest>* StartImportData(
    grpc::CallbackServerContext* context, v1::Job* response, Importer* importer);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_SERVER_JOB_STREAMS_H_
