#include "bench/loadgen/grpc_target.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace userpilot::gateway::bench {
namespace {

// One call's state, alive until its completion callback.
template <typename Request, typename Response>
struct Call {
  grpc::ClientContext context;
  Request request;
  Response response;
  DoneCallback done;
};

// `expected`: the status code that counts as success (INVALID_ARGUMENT for Op::kRefused).
template <typename Request, typename Response, typename Method>
void Launch(uint64_t seq, const GrpcTargetOptions& options, DoneCallback done, Method method,
            grpc::StatusCode expected = grpc::StatusCode::OK) {
  auto* call = new Call<Request, Response>;
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
  if (!options.caller.empty()) call->context.AddMetadata("x-caller", options.caller);
  RequestMix::Fill(seq, &call->request);
  if (expected == grpc::StatusCode::INVALID_ARGUMENT) {
    // Op::kRefused: the same message without its user_id.
    if constexpr (std::is_same_v<Request, v1::IdentifyUserRequest>) call->request.clear_user_id();
  }
  method(&call->context, &call->request, &call->response, [call, expected](grpc::Status status) {
    call->done(Outcome{static_cast<int>(status.error_code()), status.error_code() == expected});
    delete call;
  });
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, int id) {
  grpc::ChannelArguments args;
  // Channels with equal arguments share one connection: a distinct argument gives each its own.
  args.SetInt("upgw_bench.channel_id", id);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcTarget>> GrpcTarget::Connect(GrpcTargetOptions options,
                                                                absl::Duration connect_timeout) {
  std::unique_ptr<GrpcTarget> target(new GrpcTarget(std::move(options)));
  const auto deadline = absl::ToChronoTime(absl::Now() + connect_timeout);
  for (int i = 0; i < std::max(1, target->options_.channels); ++i) {
    std::shared_ptr<grpc::Channel> channel = NewChannel(target->options_.address, i);
    if (!channel->WaitForConnected(deadline)) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to the gateway at ", target->options_.address));
    }
    target->stubs_.push_back(v1::UserpilotGateway::NewStub(channel));
  }
  return target;
}

void GrpcTarget::Start(Op op, uint64_t seq, DoneCallback done) {
  auto* async = stubs_[next_.fetch_add(1, std::memory_order_relaxed) % stubs_.size()]->async();
  switch (op) {
    case Op::kIdentify:
      Launch<v1::IdentifyUserRequest, v1::IdentifyUserResponse>(
          seq, options_, std::move(done), [async](auto... a) { async->IdentifyUser(a...); });
      return;
    case Op::kIdentifyCompany:
      Launch<v1::IdentifyCompanyRequest, v1::IdentifyCompanyResponse>(
          seq, options_, std::move(done), [async](auto... a) { async->IdentifyCompany(a...); });
      return;
    case Op::kTrack:
      Launch<v1::TrackEventRequest, v1::TrackEventResponse>(
          seq, options_, std::move(done), [async](auto... a) { async->TrackEvent(a...); });
      return;
    case Op::kRefused:
      Launch<v1::IdentifyUserRequest, v1::IdentifyUserResponse>(
          seq, options_, std::move(done), [async](auto... a) { async->IdentifyUser(a...); },
          grpc::StatusCode::INVALID_ARGUMENT);
      return;
  }
}

std::string GrpcTarget::CodeName(int code) const {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  if (code >= 0 && code < static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) {
    return kNames[code];
  }
  return absl::StrCat("CODE_", code);
}

absl::StatusOr<int64_t> WaitServing(const std::string& address, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  int attempt = 0;
  std::string last = "no answer";
  while (absl::Now() < give_up) {
    // A fresh channel per attempt: a channel whose first connect was refused backs off for up
    // to a second before retrying, which would blur a start-up time measured in milliseconds.
    auto stub = grpc::health::v1::Health::NewStub(NewChannel(address, ++attempt));
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(std::min(give_up, absl::Now() + absl::Milliseconds(200))));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status = stub->Check(&context, request, &response);
    if (status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    }
    last = status.ok() ? absl::StrCat("status ", response.status()) : status.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(address, " not SERVING within ", absl::FormatDuration(timeout), ": ", last));
}

}  // namespace userpilot::gateway::bench
