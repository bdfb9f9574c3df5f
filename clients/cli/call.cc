#include "clients/cli/call.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace userpilot::gateway::cli {
namespace {

absl::Status UsageError(const std::string& flag, const grpc::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", status.error_message()));
}

}  // namespace

absl::StatusOr<ClientOptions> ClientOptionsFor(const Invocation& inv,
                                               const std::optional<std::string>& env_token) {
  ClientOptions options;
  options.caller = inv.caller;
  if (inv.tls) {
    options.tls.emplace();
    grpc::Status loaded =
        client::LoadTlsFiles(inv.tls_ca_file, inv.tls_cert_file, inv.tls_key_file, &*options.tls);
    if (!loaded.ok()) return UsageError("cannot set up TLS", loaded);
    options.tls->server_name = inv.tls_server_name;
  }
  if (!inv.token_file.empty()) {
    grpc::Status read = client::ReadBearerToken(inv.token_file, &options.bearer_token);
    if (!read.ok()) return UsageError("--token_file", read);
  } else if (env_token.has_value()) {
    grpc::Status checked = client::CheckBearerToken(*env_token, kTokenEnvVar);
    if (!checked.ok()) return UsageError(kTokenEnvVar, checked);
    options.bearer_token = *env_token;
  }
  options.token_over_plaintext = inv.token_over_plaintext;
  return options;
}

CallOptions CallOptionsFor(absl::Time deadline) {
  CallOptions options;
  // gRPC reads time_point::max() (what ToChronoTime makes of InfiniteFuture) as no deadline,
  // and the library never waits to retry past it.
  options.deadline = absl::ToChronoTime(deadline);
  return options;
}

grpc::Status CallUnary(Client& client, const google::protobuf::MethodDescriptor& method,
                       const google::protobuf::Message& request,
                       google::protobuf::Message& response, absl::Duration deadline,
                       std::optional<int> max_attempts) {
  const absl::Time end =
      deadline == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + deadline;
  CallOptions options = CallOptionsFor(end);
  options.max_attempts = max_attempts;
  return client.Call(method, request, &response, options);
}

}  // namespace userpilot::gateway::cli
