// userpilotctl: calls any method of the userpilot-gateway gRPC API, JSON in, JSON out.
// See command_line.h for the synopsis and `userpilotctl --help` for the full text.
#include <cstdlib>
#include <iostream>

#include "clients/cli/call.h"
#include "clients/cli/cli.h"
#include "clients/cli/command_line.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace {

constexpr int kExitRpcError = 1;
constexpr int kExitUsage = 2;

int UsageError(absl::string_view message) {
  std::cerr << "userpilotctl: " << message << "\nRun 'userpilotctl --help' for usage.\n";
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = userpilot::gateway::cli;
  const char* env_target = std::getenv(cli::kTargetEnvVar);
  absl::StatusOr<cli::Invocation> inv =
      cli::ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc),
                            env_target ? std::optional<std::string>(env_target) : std::nullopt);
  if (!inv.ok()) return UsageError(inv.status().message());
  if (inv->action == cli::Invocation::Action::kHelp) {
    std::cout << cli::UsageText();
    return 0;
  }
  if (inv->action == cli::Invocation::Action::kList) {
    std::cout << cli::MethodListing();
    return 0;
  }

  absl::StatusOr<const google::protobuf::MethodDescriptor*> method = cli::FindMethod(inv->method);
  if (!method.ok()) return UsageError(method.status().message());
  absl::StatusOr<std::string> text = cli::ReadRequestText(inv->request_arg, std::cin);
  if (!text.ok()) return UsageError(text.status().message());
  absl::StatusOr<std::unique_ptr<google::protobuf::Message>> request =
      cli::ParseRequest(**method, *text);
  if (!request.ok()) return UsageError(request.status().message());

  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(inv->target, grpc::InsecureChannelCredentials());
  std::unique_ptr<google::protobuf::Message> response = cli::NewResponse(**method);
  grpc::Status status =
      cli::CallUnary(channel, **method, **request, *response, inv->deadline, inv->caller);
  if (status.ok()) {
    absl::StatusOr<std::string> json = cli::MessageToJson(*response, inv->pretty);
    if (json.ok()) {
      std::cout << *json << "\n";
      return 0;
    }
    status = grpc::Status(grpc::StatusCode::INTERNAL, std::string(json.status().message()));
  }
  std::cerr << cli::ErrorToJson(status, inv->pretty) << "\n";
  return kExitRpcError;
}
