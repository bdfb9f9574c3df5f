// userpilotctl: calls any method of the userpilot-gateway gRPC API, JSON in, JSON out.
// See command_line.h for the synopsis and `userpilotctl --help` for the full text.
#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "clients/cli/call.h"
#include "clients/cli/cli.h"
#include "clients/cli/command_line.h"
#include "clients/cli/streams.h"
#include "google/protobuf/util/json_util.h"

namespace {

namespace cli = userpilot::gateway::cli;
namespace v1 = userpilot::gateway::v1;

constexpr int kExitRpcError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitJobFailed = 3;

// How long an import may take when --deadline is not given: large files, and perhaps a wait
// for a running job.
constexpr absl::Duration kDefaultImportDeadline = absl::Minutes(10);

int UsageError(absl::string_view message) {
  std::cerr << "userpilotctl: " << message << "\nRun 'userpilotctl --help' for usage.\n";
  return kExitUsage;
}

int RpcError(const grpc::Status& status, bool pretty) {
  std::cerr << cli::ErrorToJson(status, pretty) << "\n";
  return kExitRpcError;
}

void PrintJson(const google::protobuf::Message& message, bool pretty) {
  absl::StatusOr<std::string> json = cli::MessageToJson(message, pretty);
  std::cout << (json.ok() ? *json : std::string(json.status().message())) << std::endl;
}

// The --deadline flag as an instant, or `fallback` from now when it was not given.
absl::Time Deadline(const cli::Invocation& inv, absl::Duration fallback) {
  const absl::Duration d = inv.deadline_given ? inv.deadline : fallback;
  return d == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + d;
}

// --watch: a progress line per state on stderr, the last state on stdout.
int Follow(cli::Client& client, const cli::Invocation& inv, const v1::Job& job,
           absl::Time deadline) {
  v1::Job last = job;
  std::cerr << cli::ProgressLine(job) << std::endl;
  grpc::Status status =
      cli::WatchJob(client, job.job_id(), deadline, [&last](const v1::Job& state) {
        last = state;
        std::cerr << cli::ProgressLine(state) << std::endl;
      });
  if (!status.ok()) return RpcError(status, inv.pretty);
  PrintJson(last, inv.pretty);
  return last.status() == v1::JOB_STATUS_FAILED ? kExitJobFailed : 0;
}

}  // namespace

int main(int argc, char** argv) {
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
  const char* env_token = std::getenv(cli::kTokenEnvVar);
  absl::StatusOr<cli::ClientOptions> options = cli::ClientOptionsFor(
      *inv, env_token != nullptr && *env_token != '\0' ? std::optional<std::string>(env_token)
                                                       : std::nullopt);
  if (!options.ok()) return UsageError(options.status().message());
  // One client (one channel) for the whole run.
  cli::Client client = cli::Client::Connect(inv->target, *std::move(options));
  // Watches last until the job ends unless --deadline says otherwise.
  const absl::Time watch_deadline = Deadline(*inv, absl::InfiniteDuration());

  if (inv->method == "ImportData") {
    v1::ImportHeader header;
    google::protobuf::util::JsonParseOptions options;
    if (!text->empty() &&
        !google::protobuf::util::JsonStringToMessage(*text, &header, options).ok()) {
      return UsageError(
          "the ImportData request must be an ImportHeader as JSON, e.g. "
          "{\"target\":\"IMPORT_TARGET_USERS_BULK\"} (see 'userpilotctl list')");
    }
    absl::StatusOr<v1::ImportHeader> complete = cli::CompleteImportHeader(header, inv->file);
    if (!complete.ok()) return UsageError(complete.status().message());
    v1::Job job;
    grpc::Status status =
        cli::ImportFile(client, *complete, inv->file, Deadline(*inv, kDefaultImportDeadline), &job);
    if (!status.ok()) return RpcError(status, inv->pretty);
    PrintJson(job, inv->pretty);
    return inv->watch ? Follow(client, *inv, job, watch_deadline) : 0;
  }

  absl::StatusOr<std::unique_ptr<google::protobuf::Message>> request =
      cli::ParseRequest(**method, *text);
  if (!request.ok()) return UsageError(request.status().message());

  if ((*method)->server_streaming()) {
    v1::Job last;
    auto print = [&](const v1::Job& job) {
      last = job;
      PrintJson(job, inv->pretty);
    };
    grpc::Status status =
        inv->method == "WatchJob"
            ? cli::WatchJob(client, static_cast<const v1::WatchJobRequest&>(**request).job_id(),
                            watch_deadline, print)
            : cli::WatchJobs(client,
                             static_cast<const v1::WatchJobsRequest&>(**request).include_existing(),
                             watch_deadline, print);
    if (!status.ok()) return RpcError(status, inv->pretty);
    return last.status() == v1::JOB_STATUS_FAILED ? kExitJobFailed : 0;
  }

  std::unique_ptr<google::protobuf::Message> response = cli::NewResponse(**method);
  const absl::Time deadline = Deadline(*inv, inv->deadline);
  grpc::Status status = cli::CallUnary(
      client, **method, **request, *response,
      deadline == absl::InfiniteFuture() ? absl::InfiniteDuration() : deadline - absl::Now(),
      inv->max_attempts);
  if (!status.ok()) return RpcError(status, inv->pretty);
  absl::StatusOr<std::string> json = cli::MessageToJson(*response, inv->pretty);
  if (!json.ok()) {
    return RpcError(grpc::Status(grpc::StatusCode::INTERNAL, std::string(json.status().message())),
                    inv->pretty);
  }
  std::cout << *json << "\n";
  if (inv->watch)
    return Follow(client, *inv, static_cast<const v1::Job&>(*response), watch_deadline);
  return 0;
}
