#include "service/server/gateway_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "service/logging/access_log.h"
#include "service/server/grpc_status.h"

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

}  // namespace

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

template <typename Request, typename Response>
grpc::ServerUnaryReactor* GatewayService::Unary(
    grpc::CallbackServerContext* context, absl::string_view method_name, const Request* request,
    Response* response,
    void (UserpilotStub::*method)(const CallOptions&, const Request&, StubCallback<Response>)) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = absl::Now();
  CallOptions options;
  options.caller = CallerName(*context);
  options.trace = std::make_shared<CallTrace>();
  options.trace->method = std::string(method_name);
  // Finishes the call and logs it; the trace is what the upstream layers recorded.
  auto finish = [reactor, access_log = options_.access_log, trace = options.trace,
                 caller = options.caller, start](const grpc::Status& status) {
    if (access_log != nullptr) access_log->Record(*trace, caller, status, absl::Now() - start);
    reactor->Finish(status);
  };
  if (absl::Status valid = validator_.Validate(*request); !valid.ok()) {
    finish(ToGrpcStatus(valid));
    return reactor;
  }
  options.deadline = CallDeadline(*context, options_);
  (stub_.*method)(options, *request,
                  [finish = std::move(finish), response](absl::StatusOr<Response> result) mutable {
                    if (!result.ok()) {
                      finish(ToGrpcStatus(result.status()));
                      return;
                    }
                    *response = *std::move(result);
                    finish(grpc::Status::OK);
                  });
  return reactor;
}

grpc::ServerUnaryReactor* GatewayService::IdentifyUser(grpc::CallbackServerContext* context,
                                                       const v1::IdentifyUserRequest* request,
                                                       v1::IdentifyUserResponse* response) {
  return Unary(context, "IdentifyUser", request, response, &UserpilotStub::IdentifyUser);
}

grpc::ServerUnaryReactor* GatewayService::IdentifyCompany(grpc::CallbackServerContext* context,
                                                          const v1::IdentifyCompanyRequest* request,
                                                          v1::IdentifyCompanyResponse* response) {
  return Unary(context, "IdentifyCompany", request, response, &UserpilotStub::IdentifyCompany);
}

grpc::ServerUnaryReactor* GatewayService::BulkIdentifyUsers(
    grpc::CallbackServerContext* context, const v1::BulkIdentifyUsersRequest* request,
    v1::Job* response) {
  return Unary(context, "BulkIdentifyUsers", request, response, &UserpilotStub::BulkIdentifyUsers);
}

grpc::ServerUnaryReactor* GatewayService::BulkIdentifyCompanies(
    grpc::CallbackServerContext* context, const v1::BulkIdentifyCompaniesRequest* request,
    v1::Job* response) {
  return Unary(context, "BulkIdentifyCompanies", request, response,
               &UserpilotStub::BulkIdentifyCompanies);
}

grpc::ServerUnaryReactor* GatewayService::TrackEvent(grpc::CallbackServerContext* context,
                                                     const v1::TrackEventRequest* request,
                                                     v1::TrackEventResponse* response) {
  return Unary(context, "TrackEvent", request, response, &UserpilotStub::TrackEvent);
}

grpc::ServerUnaryReactor* GatewayService::ListJobs(grpc::CallbackServerContext* context,
                                                   const v1::ListJobsRequest* request,
                                                   v1::ListJobsResponse* response) {
  return Unary(context, "ListJobs", request, response, &UserpilotStub::ListJobs);
}

grpc::ServerUnaryReactor* GatewayService::GetJob(grpc::CallbackServerContext* context,
                                                 const v1::GetJobRequest* request,
                                                 v1::Job* response) {
  return Unary(context, "GetJob", request, response, &UserpilotStub::GetJob);
}

grpc::ServerUnaryReactor* GatewayService::DeleteUsers(grpc::CallbackServerContext* context,
                                                      const v1::DeleteUsersRequest* request,
                                                      v1::DeleteUsersResponse* response) {
  return Unary(context, "DeleteUsers", request, response, &UserpilotStub::DeleteUsers);
}

grpc::ServerUnaryReactor* GatewayService::DeleteCompanies(grpc::CallbackServerContext* context,
                                                          const v1::DeleteCompaniesRequest* request,
                                                          v1::DeleteCompaniesResponse* response) {
  return Unary(context, "DeleteCompanies", request, response, &UserpilotStub::DeleteCompanies);
}

grpc::ServerWriteReactor<v1::Job>* GatewayService::WatchJob(grpc::CallbackServerContext* context,
                                                            const v1::WatchJobRequest* request) {
  return StartWatchJob(context, *request, validator_, jobs_.registry);
}

grpc::ServerWriteReactor<v1::Job>* GatewayService::WatchJobs(grpc::CallbackServerContext* context,
                                                             const v1::WatchJobsRequest* request) {
  return StartWatchJobs(context, *request, jobs_.registry);
}

grpc::ServerReadReactor<v1::ImportDataRequest>* GatewayService::ImportData(
    grpc::CallbackServerContext* context, v1::Job* response) {
  return StartImportData(context, response, jobs_.importer);
}

}  // namespace userpilot::gateway
