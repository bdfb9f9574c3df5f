#include "clients/cli/streams.h"

#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "clients/cli/call.h"
#include "clients/cpp/client.h"

namespace userpilot::gateway::cli {
namespace {

// The library's watch callback for userpilotctl's: watch on until the stream ends.
std::function<bool(const v1::Job&)> Always(const JobCallback& on_job) {
  return [&on_job](const v1::Job& job) {
    on_job(job);
    return true;
  };
}

CallOptions WatchOptions(absl::Time deadline) {
  CallOptions options = CallOptionsFor(deadline);
  options.max_attempts = kWatchAttempts;
  return options;
}

}  // namespace

grpc::Status WatchJob(Client& client, const std::string& job_id, absl::Time deadline,
                      const JobCallback& on_job) {
  return client.WatchJob(job_id, Always(on_job), WatchOptions(deadline)).status();
}

grpc::Status WatchJobs(Client& client, bool include_existing, absl::Time deadline,
                       const JobCallback& on_job) {
  return client.WatchJobs(include_existing, Always(on_job), WatchOptions(deadline));
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

grpc::Status ImportFile(Client& client, const v1::ImportHeader& header, const std::string& path,
                        absl::Time deadline, v1::Job* job, size_t chunk_bytes) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return grpc::Status(grpc::StatusCode::UNKNOWN, absl::StrCat("cannot read '", path, "'"));
  }
  Result<v1::Job> result = client.ImportData(header, file, CallOptionsFor(deadline), chunk_bytes);
  // The library cancels the upload when the stream fails to read; name the file.
  if (file.bad()) {
    return grpc::Status(grpc::StatusCode::UNKNOWN,
                        absl::StrCat("reading '", path, "' failed; the import was cancelled"));
  }
  if (!result.ok()) return result.status();
  *job = std::move(result.value());
  return grpc::Status::OK;
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
