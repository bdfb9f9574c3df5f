#include "clients/cli/call.h"

namespace userpilot::gateway::cli {

ClientOptions CliClientOptions(const std::string& caller) {
  ClientOptions options;
  options.caller = caller;
  return options;
}

Client MakeClient(const std::shared_ptr<grpc::Channel>& channel, const std::string& caller) {
  return Client(channel, CliClientOptions(caller));
}

CallOptions CallOptionsFor(absl::Time deadline) {
  CallOptions options;
  // gRPC reads time_point::max() (what ToChronoTime makes of InfiniteFuture) as no deadline,
  // and the library never waits to retry past it.
  options.deadline = absl::ToChronoTime(deadline);
  return options;
}

grpc::Status CallUnary(const std::shared_ptr<grpc::Channel>& channel,
                       const google::protobuf::MethodDescriptor& method,
                       const google::protobuf::Message& request,
                       google::protobuf::Message& response, absl::Duration deadline,
                       const std::string& caller, std::optional<int> max_attempts) {
  const absl::Time end =
      deadline == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + deadline;
  CallOptions options = CallOptionsFor(end);
  options.max_attempts = max_attempts;
  return MakeClient(channel, caller).Call(method, request, &response, options);
}

}  // namespace userpilot::gateway::cli
