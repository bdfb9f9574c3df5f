// userpilotctl's streaming calls (clients/cli/streams.h) against the in-process gateway and
// emulator: --file uploads through ImportData, WatchJob follows the job to its end.
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/cli/streams.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/emulator/multipart.h"
#include "tests/integration/jobs_test_env.h"

namespace userpilot::gateway::testing {
namespace {

TEST(JobsCliTest, ImportsAFileAndWatchesItsJobToTheEnd) {
  JobsEnvOptions options;
  options.job_step = absl::Milliseconds(150);
  options.watch.min_poll_interval = absl::Milliseconds(50);
  options.watch.max_poll_interval = absl::Milliseconds(200);
  JobsTestEnv env(options);

  const std::string path = ::testing::TempDir() + "/companies.ndjson";
  std::string file;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&file, "{\"company_id\":\"c", i, "\"}\n");
  std::ofstream(path, std::ios::binary) << file;

  v1::ImportHeader header;
  header.set_target(v1::IMPORT_TARGET_COMPANIES_BULK);
  auto complete = cli::CompleteImportHeader(header, path);
  ASSERT_TRUE(complete.ok()) << complete.status();
  client::ClientOptions client_options;
  client_options.caller = "cli-test";
  client::Client client(env.Channel(), client_options);
  v1::Job job;
  const grpc::Status imported =
      cli::ImportFile(client, *complete, path, absl::Now() + absl::Seconds(10), &job,
                      /*chunk_bytes=*/4096);
  ASSERT_TRUE(imported.ok()) << imported.error_message();
  EXPECT_EQ(job.filename(), "companies.ndjson");

  std::vector<std::string> statuses;
  const grpc::Status watched =
      cli::WatchJob(client, job.job_id(), absl::Now() + absl::Seconds(10),
                    [&](const v1::Job& state) { statuses.push_back(state.raw_status()); });
  ASSERT_TRUE(watched.ok()) << watched.error_message();
  ASSERT_FALSE(statuses.empty());
  EXPECT_EQ(statuses.back(), "completed");

  const std::vector<RecordedRequest> requests = env.emulator().Requests();
  ASSERT_FALSE(requests.empty());
  auto parts = ParseMultipart(requests[0].Header("content-type"), requests[0].body);
  ASSERT_TRUE(parts.ok());
  EXPECT_TRUE(FindPart(*parts, "file")->data == file);
}

}  // namespace
}  // namespace userpilot::gateway::testing
