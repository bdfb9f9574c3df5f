#include "service/server/gateway_service.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "service/auth/authenticator.h"
#include "service/delivery/delivery_frontend.h"
#include "service/logging/access_log.h"
#include "service/server/grpc_status.h"
#include "service/server/request_decoder.h"

namespace userpilot::gateway {
namespace {

constexpr size_t kMaxCallerLength = 64;

bool IsCallerChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

// The call's deadline: the caller's own (at most max_deadline away), or the default when it
// set none.
absl::Time CallDeadline(const grpc::CallbackServerContext& context,
                        const GatewayServiceOptions& options) {
  const absl::Time now = absl::Now();
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return now + options.default_deadline;
  }
  return std::min(absl::FromChrono(deadline), now + options.max_deadline);
}

// What bounds the size of each unary RPC's request (validation_limits.h).
ValidationLimits::RequestShape ShapeOf(RpcId rpc) {
  using Shape = ValidationLimits::RequestShape;
  switch (rpc) {
    case RpcId::kBulkIdentifyUsers:
    case RpcId::kBulkIdentifyCompanies:
    case RpcId::kImportFile:
      return Shape::kBulk;
    case RpcId::kDeleteUsers:
    case RpcId::kDeleteCompanies:
      return Shape::kDelete;
    case RpcId::kListJobs:
    case RpcId::kGetJob:
      return Shape::kJob;
    case RpcId::kIdentifyUser:
    case RpcId::kIdentifyCompany:
    case RpcId::kTrackEvent:
      return Shape::kEntity;
  }
  return Shape::kBulk;
}

// Every value of metadata `key`, in order.
std::vector<absl::string_view> MetadataValues(const grpc::CallbackServerContext& context,
                                              absl::string_view key) {
  std::vector<absl::string_view> values;
  const auto range =
      context.client_metadata().equal_range(grpc::string_ref(key.data(), key.size()));
  for (auto it = range.first; it != range.second; ++it) {
    values.emplace_back(it->second.data(), it->second.size());
  }
  return values;
}

// A stream refused before it started (authentication).
class RefusedWriter final : public grpc::ServerWriteReactor<v1::Job> {
 public:
  explicit RefusedWriter(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

class RefusedReader final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  explicit RefusedReader(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// The access log's caller for a refused call: the authenticated name when there is one.
std::string RefusedCaller(const CallFacts& facts) {
  return facts.access_refusal.has_value() ? facts.access_refusal->caller : "unauthenticated";
}

}  // namespace

TraceContext CallTraceContext(const grpc::CallbackServerContext& context) {
  return TraceContextForCall(MetadataValues(context, "traceparent"),
                             MetadataValues(context, "tracestate"));
}

std::string CallerName(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("x-caller");
  if (it == metadata.end()) return "unknown";
  const absl::string_view name(it->second.data(), it->second.size());
  if (name.empty() || name.size() > kMaxCallerLength ||
      !std::all_of(name.begin(), name.end(), IsCallerChar)) {
    return "invalid";
  }
  return std::string(name);
}

GatewayService::GatewayService(const RequestValidator& validator, UserpilotStub& stub,
                               GatewayServiceOptions options, JobServices jobs)
    : validator_(validator), stub_(stub), options_(options), jobs_(jobs) {}

Result<std::string> GatewayService::Authenticate(const grpc::CallbackServerContext& context,
                                                 absl::string_view rpc) const {
  if (options_.authenticator == nullptr) return CallerName(context);
  return options_.authenticator->Authenticate(context, rpc);
}

template <typename Rpc>
grpc::ServerUnaryReactor* GatewayService::Unary(grpc::CallbackServerContext* context,
                                                const grpc::ByteBuffer* request_bytes,
                                                grpc::ByteBuffer* response) {
  using Request = typename Rpc::Request;
  using Response = typename Rpc::Response;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = absl::Now();
  // Who calls comes first: a refused call costs no validation and no budget.
  Result<std::string> caller = Authenticate(*context, Rpc::kName);
  CallOptions options;
  options.caller = caller.ok() ? *caller : RefusedCaller(caller.facts());
  options.trace = CallTraceContext(*context);
  // Finishes the call and logs it with the facts the layers below gathered.
  auto finish = [reactor, access_log = options_.access_log, caller = options.caller,
                 trace = options.trace, start](const absl::Status& status, const CallFacts& facts) {
    const grpc::Status answer = ToGrpcStatus(status, facts);
    if (access_log != nullptr) {
      access_log->Record(Rpc::kName, caller, trace, answer, facts, absl::Now() - start);
    }
    reactor->Finish(answer);
  };
  if (!caller.ok()) {
    finish(caller.status(), caller.facts());
    return reactor;
  }
  // Larger than anything validation could let through: refused from its size, before the bytes
  // are copied or parsed, and freed as the call ends.
  const int64_t max_bytes = validator_.limits().MaxRequestBytes(ShapeOf(Rpc::kId));
  if (const int64_t bytes = static_cast<int64_t>(request_bytes->Length()); bytes > max_bytes) {
    const CallStatus refused = InvalidArgumentError(
        {FieldViolation{std::string(kWholeRequestField),
                        absl::StrCat("must be at most ", max_bytes, " bytes serialized for ",
                                     Rpc::kName, " (got ", bytes, ")")}});
    finish(refused.status(), refused.facts());
    return reactor;
  }
  // The stub copies what it keeps of the request; it lives until the stub has it.
  Request request;
  if (CallStatus decoded = DecodeRequest(*request_bytes, request); !decoded.ok()) {
    if (options_.undecodable != nullptr) options_.undecodable(Rpc::kName);
    finish(decoded.status(), decoded.facts());
    return reactor;
  }
  if (CallStatus valid = validator_.Validate(request); !valid.ok()) {
    finish(valid.status(), valid.facts());
    return reactor;
  }
  options.deadline = CallDeadline(*context, options_);
  // The answer below serializes one small response, logs a line and finishes the reactor.
  options.short_callback = true;
  InvokeRpc<Rpc>(stub_, options, request,
                 [finish = std::move(finish), response](Result<Response> result) mutable {
                   if (result.ok()) *response = SerializeResponse(*result);
                   finish(result.status(), result.facts());
                 });
  return reactor;
}

grpc::ServerUnaryReactor* GatewayService::IdentifyUser(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return Unary<IdentifyUserRpc>(context, request, response);
}

grpc::ServerUnaryReactor* GatewayService::IdentifyCompany(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request,
                                                          grpc::ByteBuffer* response) {
  return Unary<IdentifyCompanyRpc>(context, request, response);
}

grpc::ServerUnaryReactor* GatewayService::BulkIdentifyUsers(grpc::CallbackServerContext* context,
                                                            const grpc::ByteBuffer* request,
                                                            grpc::ByteBuffer* response) {
  return Unary<BulkIdentifyUsersRpc>(context, request, response);
}

grpc::ServerUnaryReactor* GatewayService::BulkIdentifyCompanies(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<BulkIdentifyCompaniesRpc>(context, request, response);
}

grpc::ServerUnaryReactor* GatewayService::TrackEvent(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  return Unary<TrackEventRpc>(context, request, response);
}

grpc::ServerUnaryReactor* GatewayService::ListJobs(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* request,
                                                   grpc::ByteBuffer* response) {
  return Unary<ListJobsRpc>(context, request, response);
}

grpc::ServerUnaryReactor* GatewayService::GetJob(grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  return Unary<GetJobRpc>(context, request, response);
}

grpc::ServerUnaryReactor* GatewayService::DeleteUsers(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  return Unary<DeleteUsersRpc>(context, request, response);
}

grpc::ServerUnaryReactor* GatewayService::DeleteCompanies(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request,
                                                          grpc::ByteBuffer* response) {
  return Unary<DeleteCompaniesRpc>(context, request, response);
}

template <typename Request, typename Response, typename Method>
grpc::ServerUnaryReactor* GatewayService::Delivery(absl::string_view name,
                                                   grpc::CallbackServerContext* context,
                                                   const Request& request, Response* response,
                                                   Method method) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = absl::Now();
  auto finish = [reactor, name, access_log = options_.access_log, caller = CallerName(*context),
                 trace = CallTraceContext(*context),
                 start](const absl::Status& status, const CallFacts& facts) {
    const grpc::Status answer = ToGrpcStatus(status, facts);
    if (access_log != nullptr) {
      access_log->Record(name, caller, trace, answer, facts, absl::Now() - start);
    }
    reactor->Finish(answer);
  };
  if (options_.delivery == nullptr) {
    finish(absl::FailedPreconditionError(
               absl::StrCat(name,
                            ": async delivery is off on this gateway (it runs without "
                            "--queue_dir and --queue_redis); call the synchronous RPC, or "
                            "start the gateway with a queue")),
           CallFacts());
    return reactor;
  }
  (options_.delivery->*method)(
      request, [finish = std::move(finish), response](Result<Response> result) mutable {
        if (result.ok()) *response = *std::move(result);
        finish(result.status(), result.facts());
      });
  return reactor;
}

grpc::ServerUnaryReactor* GatewayService::Enqueue(grpc::CallbackServerContext* context,
                                                  const v1::EnqueueRequest* request,
                                                  v1::EnqueueResponse* response) {
  return Delivery("Enqueue", context, *request, response, &DeliveryFrontend::Enqueue);
}

grpc::ServerUnaryReactor* GatewayService::EnqueueBatch(grpc::CallbackServerContext* context,
                                                       const v1::EnqueueBatchRequest* request,
                                                       v1::EnqueueBatchResponse* response) {
  return Delivery("EnqueueBatch", context, *request, response, &DeliveryFrontend::EnqueueBatch);
}

grpc::ServerUnaryReactor* GatewayService::GetDelivery(grpc::CallbackServerContext* context,
                                                      const v1::GetDeliveryRequest* request,
                                                      v1::GetDeliveryResponse* response) {
  return Delivery("GetDelivery", context, *request, response, &DeliveryFrontend::GetDelivery);
}

grpc::ServerUnaryReactor* GatewayService::ListDeadLetters(grpc::CallbackServerContext* context,
                                                          const v1::ListDeadLettersRequest* request,
                                                          v1::ListDeadLettersResponse* response) {
  return Delivery("ListDeadLetters", context, *request, response,
                  &DeliveryFrontend::ListDeadLetters);
}

grpc::ServerUnaryReactor* GatewayService::RedriveDeadLetters(
    grpc::CallbackServerContext* context, const v1::RedriveDeadLettersRequest* request,
    v1::RedriveDeadLettersResponse* response) {
  return Delivery("RedriveDeadLetters", context, *request, response,
                  &DeliveryFrontend::RedriveDeadLetters);
}

grpc::ServerWriteReactor<v1::Job>* GatewayService::WatchJob(grpc::CallbackServerContext* context,
                                                            const v1::WatchJobRequest* request) {
  if (Result<std::string> caller = Authenticate(*context, "WatchJob"); !caller.ok()) {
    return new RefusedWriter(ToGrpcStatus(caller.error()));
  }
  return StartWatchJob(context, *request, validator_, jobs_.registry);
}

grpc::ServerWriteReactor<v1::Job>* GatewayService::WatchJobs(grpc::CallbackServerContext* context,
                                                             const v1::WatchJobsRequest* request) {
  if (Result<std::string> caller = Authenticate(*context, "WatchJobs"); !caller.ok()) {
    return new RefusedWriter(ToGrpcStatus(caller.error()));
  }
  return StartWatchJobs(context, *request, jobs_.registry);
}

grpc::ServerReadReactor<grpc::ByteBuffer>* GatewayService::ImportData(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  Result<std::string> caller = Authenticate(*context, "ImportData");
  if (!caller.ok()) return new RefusedReader(ToGrpcStatus(caller.error()));
  return StartImportData(context, response, jobs_.importer, CallDeadline(*context, options_),
                         *std::move(caller));
}

}  // namespace userpilot::gateway
