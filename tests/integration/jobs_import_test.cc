// ImportData through the real gateway against the emulator: every target reaches "Userpilot"
// byte for byte as multipart, malformed files are refused naming the line, limits hold, 409 is
// either refused or waited out, and no spool file survives a call.
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "tests/emulator/multipart.h"
#include "tests/integration/jobs_test_env.h"
#include "tests/integration/rpc_detail.h"

namespace userpilot::gateway::testing {
namespace {

using ::testing::HasSubstr;

// A fresh directory for spool files.
class TempDir {
 public:
  TempDir() {
    char path[] = "/tmp/upgw-jobs-it-XXXXXX";
    path_ = ::mkdtemp(path);
  }
  ~TempDir() { ::rmdir(path_.c_str()); }
  const std::string& path() const { return path_; }
  size_t entries() const {
    size_t n = 0;
    DIR* dir = ::opendir(path_.c_str());
    while (dirent* e = ::readdir(dir)) n += e->d_name[0] != '.';
    ::closedir(dir);
    return n;
  }

 private:
  std::string path_;
};

// Open descriptors of this process that refer to files in `dir`.
size_t OpenFilesIn(const std::string& dir) {
  size_t n = 0;
  DIR* fds = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(fds)) {
    char target[4096];
    const std::string link = absl::StrCat("/proc/self/fd/", e->d_name);
    const ssize_t len = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (len > 0 && absl::StartsWith(absl::string_view(target, static_cast<size_t>(len)), dir)) ++n;
  }
  ::closedir(fds);
  return n;
}

v1::ImportHeader Header(v1::ImportTarget target, v1::ImportFormat format,
                        const std::string& filename = "") {
  v1::ImportHeader header;
  header.set_target(target);
  header.set_format(format);
  header.set_filename(filename);
  return header;
}

std::string UsersFile(int rows) {
  std::string file;
  for (int i = 0; i < rows; ++i) {
    absl::StrAppend(&file, "{\"user_id\":\"user-", i, "\",\"company_id\":\"c", i % 7,
                    "\",\"metadata\":{\"plan\":\"pro\",\"seats\":", i, ",\"é\":true}}\n");
  }
  return file;
}

class JobsImportTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(Options()); }

  JobsEnvOptions Options() {
    JobsEnvOptions options;
    options.job_step = absl::Seconds(30);
    options.watch.min_poll_interval = absl::Milliseconds(50);
    options.watch.max_poll_interval = absl::Milliseconds(100);
    options.import.spool_dir = spool_.path();
    options.import.conflict_retry_interval = absl::Milliseconds(100);
    return options;
  }

  void Start(JobsEnvOptions options) {
    env_.reset();
    env_ = std::make_unique<JobsTestEnv>(std::move(options));
    client_ = env_->Client();
  }

  void TearDown() override {
    env_.reset();
    EXPECT_EQ(spool_.entries(), 0u);
    EXPECT_EQ(OpenFilesIn(spool_.path()), 0u) << "a spool file is still open";
  }

  // Sends `header` then `file` in chunks of `chunk` bytes.
  grpc::Status Import(const v1::ImportHeader& header, const std::string& file, v1::Job* job,
                      size_t chunk = 1000, absl::Duration timeout = absl::Seconds(10)) {
    auto context = JobsContext(timeout);
    std::unique_ptr<grpc::ClientWriter<v1::ImportDataRequest>> writer =
        client_->ImportData(context.get(), job);
    v1::ImportDataRequest message;
    *message.mutable_header() = header;
    bool open = writer->Write(message);
    for (size_t i = 0; open && i < file.size(); i += chunk) {
      message.set_chunk(file.substr(i, chunk));
      open = writer->Write(message);
    }
    if (open) writer->WritesDone();
    return writer->Finish();
  }

  // The one upload the emulator received, and its file part.
  struct Upload {
    RecordedRequest request;
    std::string filename;
    std::string content_type;
    std::string data;
  };
  std::vector<Upload> Uploads() {
    std::vector<Upload> out;
    for (const RecordedRequest& r : env_->emulator().Requests()) {
      if (r.method != "POST") continue;
      auto parts = ParseMultipart(r.Header("content-type"), r.body);
      EXPECT_TRUE(parts.ok()) << parts.status();
      if (!parts.ok()) continue;
      const MultipartPart* file = FindPart(*parts, "file");
      EXPECT_NE(file, nullptr);
      EXPECT_EQ(parts->size(), 1u);
      if (file == nullptr) continue;
      out.push_back({r, file->filename, file->content_type, std::string(file->data)});
    }
    return out;
  }

  TempDir spool_;
  std::unique_ptr<JobsTestEnv> env_;
  std::unique_ptr<v1::UserpilotGateway::Stub> client_;
};

TEST_F(JobsImportTest, EveryTargetReachesUserpilotByteExact) {
  struct Case {
    v1::ImportTarget target;
    v1::ImportFormat format;
    std::string file;
    std::string path;
    std::string content_type;
    std::string filename;
  };
  std::string companies;
  for (int i = 0; i < 300; ++i) {
    absl::StrAppend(&companies, "{\"company_id\":\"c", i, "\",\"metadata\":{\"n\":", i, "}}\r\n");
  }
  std::string csv = "event_type,user_id,event_name,inserted_at,note\r\n";
  for (int i = 0; i < 200; ++i) {
    absl::StrAppend(&csv, "track,u", i, ",exported,2024-07-28 08:55:35.874555,\"{\"\"a\"\"\n: ", i,
                    "}\"\r\n");
  }
  std::string events;
  for (int i = 0; i < 200; ++i) {
    absl::StrAppend(&events, "{\"event_type\":\"page_view\",\"user_id\":\"u", i,
                    "\",\"source\":\"backend-http-import\"}\n");
  }
  const std::vector<Case> cases = {
      {v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON, UsersFile(500),
       "/v1/users/bulk_identify", "application/x-ndjson", "users.ndjson"},
      {v1::IMPORT_TARGET_COMPANIES_BULK, v1::IMPORT_FORMAT_NDJSON, companies,
       "/v1/companies/bulk_identify", "application/x-ndjson", "import.ndjson"},
      {v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV, csv, "/v1/imports", "text/csv",
       "events 2024.csv"},
      {v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_NDJSON, events, "/v1/imports",
       "application/x-ndjson", "events.ndjson"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path + " " + c.content_type);
    env_->emulator().Reset();
    const int64_t received_before = env_->importer().Stats().bytes_received;
    v1::Job job;
    const grpc::Status status =
        Import(Header(c.target, c.format, c.filename == "import.ndjson" ? "" : c.filename), c.file,
               &job, 777);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(job.job_id().empty());
    EXPECT_EQ(job.filename(), c.filename);
    EXPECT_EQ(job.file_size(), static_cast<int64_t>(c.file.size()));
    EXPECT_EQ(env_->importer().Stats().bytes_received - received_before,
              static_cast<int64_t>(c.file.size()));  // userpilot_gateway_import_bytes_total
    const std::vector<Upload> uploads = Uploads();
    ASSERT_EQ(uploads.size(), 1u);
    EXPECT_EQ(uploads[0].request.path, c.path);
    EXPECT_EQ(uploads[0].request.Header("authorization"), absl::StrCat("Token ", kJobsApiKey));
    EXPECT_EQ(uploads[0].filename, c.filename);
    EXPECT_EQ(uploads[0].content_type, c.content_type);
    EXPECT_TRUE(uploads[0].data == c.file) << "the file changed on the way";
    EXPECT_EQ(uploads[0].request.Header("content-length"),
              absl::StrCat(uploads[0].request.body.size()));
    // Bulk jobs finish before the next one may start.
    if (c.target != v1::IMPORT_TARGET_HISTORICAL_IMPORT) {
      ASSERT_TRUE(env_->emulator().ForceJobStatus(job.job_id(), "completed").ok());
    }
  }
}

TEST_F(JobsImportTest, MalformedFileIsRefusedNamingTheLineAndNothingIsSent) {
  std::string file = UsersFile(40);
  file += "\n{\"user_id\":\"ok\"}\n{\"user_id\":\"bad\",\"metadata\":{\"nested\":{\"x\":1}}}\n";
  file += UsersFile(1000);  // More chunks after the bad line: the gateway stops reading.
  v1::Job job;
  const grpc::Status status =
      Import(Header(v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON), file, &job, 512);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("file line 43"));
  EXPECT_THAT(status.error_message(), HasSubstr("metadata.nested"));
  auto bad = Detail<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->field_violations(0).field(), "file line 43.metadata.nested");
  EXPECT_TRUE(env_->emulator().Requests().empty());

  const grpc::Status csv =
      Import(Header(v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV),
             "event_type,user_id\npage_view,u1\npage_view,u2,3\n", &job);
  EXPECT_EQ(csv.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(csv.error_message(), HasSubstr("file line 3: has 3 columns"));
  EXPECT_TRUE(env_->emulator().Requests().empty());
}

TEST_F(JobsImportTest, HeaderMustComeFirstAndBeValid) {
  v1::Job job;
  auto context = JobsContext();
  auto writer = client_->ImportData(context.get(), &job);
  v1::ImportDataRequest chunk;
  chunk.set_chunk("{}\n");
  writer->Write(chunk);
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("the first message must be the header"));

  status = Import(Header(v1::IMPORT_TARGET_COMPANIES_BULK, v1::IMPORT_FORMAT_CSV), "a\n1\n", &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("header.format"));
  EXPECT_TRUE(env_->emulator().Requests().empty());
}

TEST_F(JobsImportTest, SizeLimitHoldsWhetherAnnouncedOrNot) {
  JobsEnvOptions options = Options();
  options.import.limits.max_file_bytes = 64 * 1024;
  Start(options);
  const std::string file = UsersFile(2000);  // About 150 KB.
  ASSERT_GT(file.size(), 64u * 1024);
  v1::Job job;
  grpc::Status status =
      Import(Header(v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON), file, &job, 4096);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("the limit is 65536 bytes"));
  // Announced in the header: refused before any chunk is read.
  v1::ImportHeader announced = Header(v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON);
  announced.set_size_bytes(static_cast<int64_t>(file.size()));
  status = Import(announced, file, &job, 4096);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("header.size_bytes"));
  EXPECT_TRUE(env_->emulator().Requests().empty());
}

TEST_F(JobsImportTest, StreamShorterThanAnnouncedIsNeverUploaded) {
  const std::string file = UsersFile(10);
  v1::ImportHeader header = Header(v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON);
  header.set_size_bytes(static_cast<int64_t>(file.size()) + 10);
  v1::Job job;
  const grpc::Status status = Import(header, file, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("announced"));
  EXPECT_TRUE(env_->emulator().Requests().empty());
}

TEST_F(JobsImportTest, ConflictIsJobInProgressUnlessTheCallerWaits) {
  const std::string csv = "event_type,user_id\npage_view,u1\n";
  v1::Job first;
  ASSERT_TRUE(
      Import(Header(v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV), csv, &first).ok());
  ASSERT_TRUE(env_->emulator().ForceJobStatus(first.job_id(), "processing").ok());

  // Not waiting: refused at once.
  v1::Job job;
  grpc::Status refused =
      Import(Header(v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV), csv, &job);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  auto info = Detail<google::rpc::ErrorInfo>(refused);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "JOB_IN_PROGRESS");

  // Waiting: submitted again once the running job ends.
  env_->emulator().ClearRequests();
  v1::ImportHeader wait = Header(v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV);
  wait.set_wait_for_running_job(true);
  grpc::Status waited;
  v1::Job second;
  std::thread importer([&] { waited = Import(wait, csv, &second, 1000, absl::Seconds(10)); });
  ASSERT_TRUE(WaitUntil([&] { return env_->registry().Stats().watched_jobs == 1; }))
      << "the gateway watches the running job";
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_TRUE(env_->emulator().ForceJobStatus(first.job_id(), "completed").ok());
  importer.join();
  ASSERT_TRUE(waited.ok()) << waited.error_message();
  EXPECT_NE(second.job_id(), first.job_id());
  int posts = 0, statuses_409 = 0;
  for (const RecordedRequest& r : env_->emulator().Requests()) {
    if (r.method != "POST") continue;
    ++posts;
    statuses_409 += r.response_status == 409;
  }
  EXPECT_EQ(posts, 2);
  EXPECT_EQ(statuses_409, 1);
}

TEST_F(JobsImportTest, WaitingPastTheDeadlineIsDeadlineExceeded) {
  const std::string csv = "event_type,user_id\npage_view,u1\n";
  v1::Job first;
  ASSERT_TRUE(
      Import(Header(v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV), csv, &first).ok());
  ASSERT_TRUE(env_->emulator().ForceJobStatus(first.job_id(), "processing").ok());
  v1::ImportHeader wait = Header(v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV);
  wait.set_wait_for_running_job(true);
  v1::Job job;
  const grpc::Status status = Import(wait, csv, &job, 1000, absl::Milliseconds(700));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(WaitUntil([&] { return env_->registry().Stats().subscribers == 0; }));
  EXPECT_TRUE(WaitUntil([&] { return env_->importer().Stats().running == 0; }));
}

TEST_F(JobsImportTest, ConcurrentImportsAreBounded) {
  JobsEnvOptions options = Options();
  options.import.max_concurrent_imports = 1;
  Start(options);
  auto context = JobsContext();
  v1::Job job;
  auto open = client_->ImportData(context.get(), &job);
  v1::ImportDataRequest header;
  *header.mutable_header() = Header(v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON);
  ASSERT_TRUE(open->Write(header));
  ASSERT_TRUE(WaitUntil([&] { return env_->importer().Stats().running == 1; }));
  v1::Job other;
  const grpc::Status refused =
      Import(Header(v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON), UsersFile(1), &other);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  context->TryCancel();
  open->Finish();
  EXPECT_TRUE(WaitUntil([&] { return env_->importer().Stats().running == 0; }));
  EXPECT_TRUE(env_->emulator().Requests().empty());
}

}  // namespace
}  // namespace userpilot::gateway::testing
