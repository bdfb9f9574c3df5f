#include "clients/cli/streams.h"

#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway::cli {
namespace {

std::unique_ptr<grpc::ClientContext> Context(absl::Time deadline, const std::string& caller) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (deadline != absl::InfiniteFuture()) context->set_deadline(absl::ToChronoTime(deadline));
  context->AddMetadata("x-caller", caller);
  return context;
}

template <typename Reader>
grpc::Status Drain(Reader& reader, const JobCallback& on_job) {
  v1::Job job;
  while (reader.Read(&job)) on_job(job);
  return reader.Finish();
}

}  // namespace

grpc::Status WatchJob(const std::shared_ptr<grpc::Channel>& channel, const std::string& job_id,
                      absl::Time deadline, const std::string& caller, const JobCallback& on_job) {
  auto stub = v1::UserpilotGateway::NewStub(channel);
  auto context = Context(deadline, caller);
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  auto reader = stub->WatchJob(context.get(), request);
  return Drain(*reader, on_job);
}

grpc::Status WatchJobs(const std::shared_ptr<grpc::Channel>& channel, bool include_existing,
                       absl::Time deadline, const std::string& caller, const JobCallback& on_job) {
  auto stub = v1::UserpilotGateway::NewStub(channel);
  auto context = Context(deadline, caller);
  v1::WatchJobsRequest request;
  request.set_include_existing(include_existing);
  auto reader = stub->WatchJobs(context.get(), request);
  return Drain(*reader, on_job);
}

absl::StatusOr<v1::ImportHeader> CompleteImportHeader(v1::ImportHeader header,
                                                      const std::string& path) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return absl::InvalidArgumentError(absl::StrCat("--file: cannot read '", path, "'"));
  const std::streamoff size = file.tellg();
  if (size < 0) return absl::InvalidArgumentError(absl::StrCat("--file: cannot size '", path, "'"));
  const size_t slash = path.find_last_of('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (header.filename().empty()) header.set_filename(base);
  if (header.format() == v1::IMPORT_FORMAT_UNSPECIFIED) {
    const std::string lower = absl::AsciiStrToLower(base);
    if (absl::EndsWith(lower, ".csv")) {
      header.set_format(v1::IMPORT_FORMAT_CSV);
    } else if (absl::EndsWith(lower, ".ndjson") || absl::EndsWith(lower, ".jsonl") ||
               absl::EndsWith(lower, ".json")) {
      header.set_format(v1::IMPORT_FORMAT_NDJSON);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot tell the format of '", base,
          "' from its name: set \"format\" (IMPORT_FORMAT_CSV or IMPORT_FORMAT_NDJSON)"));
    }
  }
  header.set_size_bytes(static_cast<int64_t>(size));
  return header;
}

grpc::Status ImportFile(const std::shared_ptr<grpc::Channel>& channel,
                        const v1::ImportHeader& header, const std::string& path,
                        absl::Time deadline, const std::string& caller, v1::Job* job,
                        size_t chunk_bytes) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return grpc::Status(grpc::StatusCode::UNKNOWN, absl::StrCat("cannot read '", path, "'"));
  }
  auto stub = v1::UserpilotGateway::NewStub(channel);
  auto context = Context(deadline, caller);
  auto writer = stub->ImportData(context.get(), job);
  v1::ImportDataRequest message;
  *message.mutable_header() = header;
  bool open = writer->Write(message);
  std::string buffer(chunk_bytes, '\0');
  bool read_failed = false;
  while (open) {
    file.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize n = file.gcount();
    if (n > 0) {
      message.set_chunk(buffer.data(), static_cast<size_t>(n));
      open = writer->Write(message);  // Blocks while the gateway is not ready (flow control).
    }
    if (file.eof()) break;
    if (!file) {
      read_failed = true;
      break;
    }
  }
  if (read_failed) {
    context->TryCancel();
    writer->Finish();
    return grpc::Status(grpc::StatusCode::UNKNOWN,
                        absl::StrCat("reading '", path, "' failed; the import was cancelled"));
  }
  if (open) writer->WritesDone();
  return writer->Finish();
}

std::string ProgressLine(const v1::Job& job) {
  std::string line =
      absl::StrCat(job.job_id(), "  ", job.raw_status().empty() ? "?" : job.raw_status());
  if (job.has_total_rows()) {
    absl::StrAppend(
        &line, "  ",
        job.has_completed_rows() ? absl::StrCat(job.completed_rows()) : std::string("?"), "/",
        job.total_rows(), " rows");
  }
  if (job.has_elapsed_time()) absl::StrAppend(&line, "  ", job.elapsed_time(), "s");
  return line;
}

}  // namespace userpilot::gateway::cli
