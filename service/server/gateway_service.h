// The gRPC face of the gateway: the UserpilotGateway service on gRPC's callback API.
//
// Each RPC is one short, non-blocking reaction: authenticate the caller (auth/authenticator.h:
// UNAUTHENTICATED or PERMISSION_DENIED before anything else), validate the request (every violation
// at once, before any upstream cost), derive the call's deadline, caller and trace context, hand
// the request to the UserpilotStub stack, and finish the reactor from the stub's completion (which
// runs on the HTTP event thread). No gRPC thread ever waits on the network or a budget.
//
// Thread-safety: all methods are called by gRPC concurrently from its own threads. The service
// holds only immutable state and references to thread-safe collaborators.
#ifndef USERPILOT_GATEWAY_SERVICE_SERVER_GATEWAY_SERVICE_H_
#define USERPILOT_GATEWAY_SERVICE_SERVER_GATEWAY_SERVICE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "service/common/call_result.h"
#include "service/server/job_streams.h"
#include "service/upstream/userpilot_stub.h"
#include "service/validation/request_validator.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway {

class AccessLog;
class Authenticator;
class DeliveryFrontend;

struct GatewayServiceOptions {
  // Serves the delivery RPCs (Enqueue, ...); null: async delivery is off and they answer
  // FAILED_PRECONDITION. Must outlive the service and every call it started.
  DeliveryFrontend* delivery = nullptr;
  // The deadline given to a call whose caller set none (gRPC calls have none by default).
  absl::Duration default_deadline = absl::Seconds(30);
  // Longer caller deadlines are cut to this, so a forgotten deadline cannot pin resources.
  absl::Duration max_deadline = absl::Minutes(5);
  // Where every finished unary call is logged; null: not logged. Must outlive the service.
  AccessLog* access_log = nullptr;
  // Called with the method's name for every request that could not be decoded (a metric);
  // null: not counted. Thread-safe.
  std::function<void(absl::string_view method)> undecodable;
  // Who may call what; null: every caller trusted and named by `x-caller` (CallerName). Must
  // outlive the service.
  const Authenticator* authenticator = nullptr;
};

// The caller's name from the `x-caller` request metadata: up to 64 bytes of [A-Za-z0-9._-];
// "unknown" when absent, "invalid" when it holds anything else (names reach logs and metrics,
// so they are never taken verbatim).
std::string CallerName(const grpc::CallbackServerContext& context);

// The call's trace context from its `traceparent` and `tracestate` metadata
// (common/trace_context.h): the caller's trace with a new span for the gateway, or a new trace.
TraceContext CallTraceContext(const grpc::CallbackServerContext& context);

// The delivery RPCs (typed: they are not upstream RPCs, and their requests are bounded by the
// server's message limit and by validation).
using DeliveryServiceBase = v1::UserpilotGateway::WithCallbackMethod_Enqueue<
    v1::UserpilotGateway::WithCallbackMethod_EnqueueBatch<
        v1::UserpilotGateway::WithCallbackMethod_GetDelivery<
            v1::UserpilotGateway::WithCallbackMethod_ListDeadLetters<
                v1::UserpilotGateway::WithCallbackMethod_RedriveDeadLetters<
                    v1::UserpilotGateway::Service>>>>>;

// The generated callback service with every unary upstream method raw (it receives and answers a
// grpc::ByteBuffer: request_decoder.h) and ImportData raw (its reactor decodes messages itself,
// job_streams.cc); the watch streams typed.
using GatewayServiceBase = v1::UserpilotGateway::WithRawCallbackMethod_IdentifyUser<
    v1::UserpilotGateway::WithRawCallbackMethod_IdentifyCompany<
        v1::UserpilotGateway::WithRawCallbackMethod_BulkIdentifyUsers<
            v1::UserpilotGateway::WithRawCallbackMethod_BulkIdentifyCompanies<
                v1::UserpilotGateway::WithRawCallbackMethod_TrackEvent<
                    v1::UserpilotGateway::WithRawCallbackMethod_ListJobs<
                        v1::UserpilotGateway::WithRawCallbackMethod_GetJob<
                            v1::UserpilotGateway::WithRawCallbackMethod_DeleteUsers<
                                v1::UserpilotGateway::WithRawCallbackMethod_DeleteCompanies<
                                    v1::UserpilotGateway::WithCallbackMethod_WatchJob<
                                        v1::UserpilotGateway::WithCallbackMethod_WatchJobs<
                                            v1::UserpilotGateway::WithRawCallbackMethod_ImportData<
                                                DeliveryServiceBase>>>>>>>>>>>>;

class GatewayService final : public GatewayServiceBase {
 public:
  // `validator` and `stub` must outlive the service and every call it started. `jobs` serves
  // WatchJob, WatchJobs and ImportData (server/job_streams.h); left empty, those RPCs answer
  // UNIMPLEMENTED.
  GatewayService(const RequestValidator& validator, UserpilotStub& stub,
                 GatewayServiceOptions options, JobServices jobs = {});

  // Unary RPCs, registered raw (request_decoder.h says why): each decodes its request, then
  // takes the one path of Unary().
  grpc::ServerUnaryReactor* IdentifyUser(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* IdentifyCompany(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* BulkIdentifyUsers(grpc::CallbackServerContext* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* BulkIdentifyCompanies(grpc::CallbackServerContext* context,
                                                  const grpc::ByteBuffer* request,
                                                  grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* TrackEvent(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DeleteUsers(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DeleteCompanies(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  // Delivery RPCs: delegate to options.delivery (delivery/delivery_frontend.h).
  grpc::ServerUnaryReactor* Enqueue(grpc::CallbackServerContext* context,
                                    const v1::EnqueueRequest* request,
                                    v1::EnqueueResponse* response) override;
  grpc::ServerUnaryReactor* EnqueueBatch(grpc::CallbackServerContext* context,
                                         const v1::EnqueueBatchRequest* request,
                                         v1::EnqueueBatchResponse* response) override;
  grpc::ServerUnaryReactor* GetDelivery(grpc::CallbackServerContext* context,
                                        const v1::GetDeliveryRequest* request,
                                        v1::GetDeliveryResponse* response) override;
  grpc::ServerUnaryReactor* ListDeadLetters(grpc::CallbackServerContext* context,
                                            const v1::ListDeadLettersRequest* request,
                                            v1::ListDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* RedriveDeadLetters(grpc::CallbackServerContext* context,
                                               const v1::RedriveDeadLettersRequest* request,
                                               v1::RedriveDeadLettersResponse* response) override;
  // Job streams: delegate to server/job_streams.h.
  grpc::ServerWriteReactor<v1::Job>* WatchJob(grpc::CallbackServerContext* context,
                                              const v1::WatchJobRequest* request) override;
  grpc::ServerWriteReactor<v1::Job>* WatchJobs(grpc::CallbackServerContext* context,
                                               const v1::WatchJobsRequest* request) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* ImportData(grpc::CallbackServerContext* context,
                                                        grpc::ByteBuffer* response) override;

 private:
  // The caller of a call to `rpc` (a method name, "DeleteUsers"), or its refusal.
  Result<std::string> Authenticate(const grpc::CallbackServerContext& context,
                                   absl::string_view rpc) const;

  // The one path every unary RPC takes: authenticate, decode, validate, then call the stub's
  // method of `Rpc` (the upstream RPC of the same name, upstream_rpcs.h), and answer the
  // serialized response.
  template <typename Rpc>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request, grpc::ByteBuffer* response);

  // The one path of every delivery RPC: FAILED_PRECONDITION when delivery is off, else
  // `(options_.delivery->*method)(request, done)`, answered and logged like Unary().
  template <typename Request, typename Response, typename Method>
  grpc::ServerUnaryReactor* Delivery(absl::string_view name, grpc::CallbackServerContext* context,
                                     const Request& request, Response* response, Method method);

  const RequestValidator& validator_;
  UserpilotStub& stub_;
  const GatewayServiceOptions options_;
  const JobServices jobs_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_SERVER_GATEWAY_SERVICE_H_
