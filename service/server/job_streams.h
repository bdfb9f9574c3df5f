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
//  - ImportData: the call itself is an ImportSession (service/jobs/import/import_session.h),
//    which owns admission, the header, the spool, the deadline and idle timeout, and the
//    submission; the reactor reads one message at a time when the session asks, decodes it,
//    and reports it - or the real end of the stream, or a broken one - to the session.
//
// Thread-safety: reactions may run on any gRPC thread, notices on the registry's threads,
// completions on worker and HTTP threads; each reactor serialises its own state with a mutex.
// Watch reactors call gRPC (StartWrite, Finish) without holding it; the ImportData reactor holds
// a mutex of its own around its gRPC calls only to order them (gRPC never runs a reaction
// inside StartRead, StartSendInitialMetadata or Finish).
#ifndef USERPILOT_GATEWAY_SERVICE_SERVER_JOB_STREAMS_H_
#define USERPILOT_GATEWAY_SERVICE_SERVER_JOB_STREAMS_H_

#include <string>

#include "absl/time/time.h"
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

// ImportData: an ImportSession carried by a reactor that reads raw messages (job_streams.cc says
// why); `response` receives the serialized job. `deadline` is the call's, derived as for unary
// calls (the caller's, cut to --max_deadline, or --default_deadline when it set none). `caller`
// is the authenticated caller (or the trusted x-caller name), who is charged for the upload.
grpc::ServerReadReactor<grpc::ByteBuffer>* StartImportData(grpc::CallbackServerContext* context,
                                                           grpc::ByteBuffer* response,
                                                           Importer* importer, absl::Time deadline,
                                                           std::string caller);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_SERVER_JOB_STREAMS_H_
