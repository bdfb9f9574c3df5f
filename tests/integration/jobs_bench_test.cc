// Benchmark scenarios of issue 4, as disabled tests (they print numbers; they take ~30 s):
//
//   jobs_bench_test --gtest_also_run_disabled_tests [--gtest_filter=*Watch*|*Import*]
//
// The gateway runs in this process (the real server, registry, importer, HTTP stub and
// libcurl); the emulator runs as its own process (the userpilot-emulator binary), so that the
// resident memory measured here is the gateway's (plus, for the watch scenario, the client
// side of the subscriptions, which also lives here: see the printed note).
//
//  - Watch: UPGW_BENCH_SUBSCRIBERS (10000) watchers over UPGW_BENCH_JOBS (100) jobs with a
//    fixed 1 s poll pace; prints upstream job reads per interval (must equal the job count),
//    resident memory growth, and the delay from a status change at the emulator to its
//    arrival at every watcher (p50, p99, max).
//  - Import: a UPGW_BENCH_IMPORT_MB (50) MB NDJSON users file streamed through ImportData in
//    256 KiB chunks; prints the peak resident memory growth during the import (target: under
//    16 MB) and the throughput.
// The clients of both scenarios run in a child process (this binary again, with
// UPGW_BENCH_TARGET set), so the resident memory printed is the gateway's alone.
//
// Experiment switch: UPGW_BENCH_RAW_SERVER=1 serves through a plain grpc::Server built here
// instead of GatewayServer, with UPGW_BENCH_BDP (0/1) and UPGW_BENCH_LOOKAHEAD (bytes) as its
// HTTP/2 BDP-probe and per-stream window settings. gRPC's BDP probe lets a fast client push
// tens of MB into the server's receive buffers ahead of a reader that takes one message at a
// time; with BDP off (and a 256 KiB window) the import's growth drops from ~25-40 MB to ~4 MB.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "service/app/upstream_stack.h"
#include "service/common/scheduler.h"
#include "service/http/curl_http_client.h"
#include "service/jobs/import/importer.h"
#include "service/jobs/watch/job_watch_registry.h"
#include "service/server/gateway_server.h"
#include "service/server/gateway_service.h"
#include "service/validation/request_validator.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway {
namespace {

constexpr char kKey[] = "bench-key";

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  int64_t parsed = 0;
  return value != nullptr && absl::SimpleAtoi(value, &parsed) ? parsed : fallback;
}

// Resident set size of this process, in bytes.
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      int64_t kb = 0;
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb * 1024;
    }
  }
  return 0;
}

// The userpilot-emulator binary in a child process.
class EmulatorProcess {
 public:
  explicit EmulatorProcess(absl::Duration job_step) {
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    const std::string step = absl::StrCat("--job_step=", absl::FormatDuration(job_step));
    std::vector<std::string> args = {UPGW_EMULATOR_BINARY,
                                     "--listen=127.0.0.1:0",
                                     absl::StrCat("--api_key=", kKey),
                                     "--rate_limits=false",
                                     "--threads=400",
                                     "--request_log_capacity=0",
                                     step};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, UPGW_EMULATOR_BINARY, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    const size_t at = line.find("http://");
    EXPECT_NE(at, std::string::npos) << line;
    url_ = line.substr(at);
  }
  ~EmulatorProcess() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = 0;
  std::string url_;
};

// The gateway's job path, as Gateway::Start is meant to wire it.
class Gateway {
 public:
  Gateway(const std::string& upstream, JobWatchOptions watch, ImportOptions import) {
    CurlHttpClientOptions http_options;
    http_options.max_in_flight = 512;
    http_ = *CurlHttpClient::Create(http_options);
    UpstreamStackOptions stack;
    stack.upstream.base_url = upstream;
    stack.upstream.api_key = kKey;
    stack.retry = std::nullopt;
    stub_ = MakeUpstreamStack(std::move(stack), *http_, scheduler_).stub;
    registry_ = std::make_unique<JobWatchRegistry>(*stub_, scheduler_, watch);
    importer_ = std::make_unique<Importer>(*stub_, *registry_, scheduler_, import);
    service_ = std::make_unique<GatewayService>(validator_, *stub_, GatewayServiceOptions(),
                                                JobServices{registry_.get(), importer_.get()});
    if (std::getenv("UPGW_BENCH_RAW_SERVER") != nullptr) {
      // Experiment: a plain server with chosen channel arguments instead of GatewayServer.
      grpc::ServerBuilder builder;
      builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &raw_port_);
      builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE,
                                 static_cast<int>(EnvInt("UPGW_BENCH_BDP", 1)));
      const int64_t lookahead = EnvInt("UPGW_BENCH_LOOKAHEAD", 0);
      if (lookahead > 0) {
        builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
                                   static_cast<int>(lookahead));
      }
      builder.RegisterService(service_.get());
      raw_ = builder.BuildAndStart();
      return;
    }
    GatewayServerOptions options;
    options.listen = "127.0.0.1:0";
    options.reflection = false;
    server_ = *GatewayServer::Start(*service_, options);
  }
  ~Gateway() {
    registry_->Shutdown();
    if (raw_ != nullptr) raw_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    if (server_ != nullptr) server_->Shutdown(absl::Now() + absl::Seconds(5));
    importer_->Shutdown();
    http_->Shutdown();
  }
  std::string target() const {
    return absl::StrCat("127.0.0.1:", raw_ != nullptr ? raw_port_ : server_->port());
  }
  HttpClient& http() { return *http_; }
  JobWatchRegistry& registry() { return *registry_; }

 private:
  ThreadScheduler scheduler_;
  RequestValidator validator_;
  std::unique_ptr<CurlHttpClient> http_;
  std::shared_ptr<UserpilotStub> stub_;
  std::unique_ptr<JobWatchRegistry> registry_;
  std::unique_ptr<Importer> importer_;
  std::unique_ptr<GatewayService> service_;
  std::unique_ptr<GatewayServer> server_;
  std::unique_ptr<grpc::Server> raw_;
  int raw_port_ = 0;
};

// One blocking HTTP call to the emulator (admin API).
HttpResult Http(HttpClient& http, std::string method, std::string url, std::string body = "") {
  HttpRequest request;
  request.method = std::move(method);
  request.url = std::move(url);
  request.body = std::move(body);
  request.deadline = absl::Now() + absl::Seconds(10);
  std::promise<HttpResult> result;
  http.Send(std::move(request), [&result](HttpResult r) { result.set_value(std::move(r)); });
  return result.get_future().get();
}

std::string Encode(absl::string_view id) {
  std::string out;
  for (char c : id) out += c == ':' ? std::string("%3A") : std::string(1, c);
  return out;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

// A watcher on the callback API: records when each status arrives.
class Watcher : public grpc::ClientReadReactor<v1::Job> {
 public:
  Watcher(v1::UserpilotGateway::Stub& stub, const std::string& job_id) {
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    stub.async()->WatchJob(&context_, &request, this);
    StartRead(&job_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      arrivals_.emplace_back(job_.raw_status(), absl::Now());
    }
    received_.fetch_add(1);
    StartRead(&job_);
  }
  void OnDone(const grpc::Status&) override { done_.store(true); }
  void Cancel() { context_.TryCancel(); }
  bool done() const { return done_.load(); }
  int received() const { return received_.load(); }
  // When `status` first arrived.
  std::optional<absl::Time> ArrivalOf(const std::string& status) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [s, t] : arrivals_) {
      if (s == status) return t;
    }
    return std::nullopt;
  }

 private:
  grpc::ClientContext context_;
  v1::Job job_;
  std::mutex mu_;
  std::vector<std::pair<std::string, absl::Time>> arrivals_;
  std::atomic<int> received_{0};
  std::atomic<bool> done_{false};
};

// The client side of the watch scenario, in its own process (run by
// DISABLED_WatchManySubscribersOverManyJobs with UPGW_BENCH_TARGET set): opens the watches,
// says "ready" on stdout, waits for the parent's measurements, changes every job's status at
// the emulator and reports how long each watcher took to see it.
TEST(JobsBench, DISABLED_WatchClient) {
  const char* target = std::getenv("UPGW_BENCH_TARGET");
  if (target == nullptr) GTEST_SKIP() << "run by DISABLED_WatchManySubscribersOverManyJobs";
  const std::string emulator_url = std::getenv("UPGW_BENCH_EMULATOR");
  const std::vector<std::string> ids = absl::StrSplit(std::getenv("UPGW_BENCH_JOB_IDS"), ',');
  const int subscribers = static_cast<int>(EnvInt("UPGW_BENCH_SUBSCRIBERS", 10000));
  auto http = *CurlHttpClient::Create({});

  std::vector<std::unique_ptr<v1::UserpilotGateway::Stub>> stubs;
  for (int i = 0; i < 16; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("bench-channel", i);  // Distinct channels: distinct connections.
    stubs.push_back(v1::UserpilotGateway::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
  }
  std::vector<std::unique_ptr<Watcher>> watchers;
  for (int i = 0; i < subscribers; ++i) {
    watchers.push_back(std::make_unique<Watcher>(*stubs[i % stubs.size()], ids[i % ids.size()]));
  }
  const absl::Time limit = absl::Now() + absl::Seconds(60);
  for (auto& w : watchers) {
    while (w->received() < 1 && absl::Now() < limit) absl::SleepFor(absl::Milliseconds(5));
    ASSERT_GE(w->received(), 1) << "a watch did not start";
  }
  std::printf("ready\n");
  std::fflush(stdout);
  absl::SleepFor(absl::Seconds(8));  // The parent measures memory and reads meanwhile.

  std::vector<absl::Time> changed(ids.size());
  for (size_t j = 0; j < ids.size(); ++j) {
    Http(*http, "POST", absl::StrCat(emulator_url, "/_emulator/jobs/", Encode(ids[j]), "/status"),
         R"({"status":"processing"})");
    changed[j] = absl::Now();
  }
  std::vector<double> delays_ms;
  const absl::Time wait_limit = absl::Now() + absl::Seconds(30);
  for (size_t i = 0; i < watchers.size(); ++i) {
    std::optional<absl::Time> at;
    while (!(at = watchers[i]->ArrivalOf("processing")).has_value() && absl::Now() < wait_limit) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    if (at.has_value()) {
      delays_ms.push_back(absl::ToDoubleMilliseconds(*at - changed[i % ids.size()]));
    }
  }
  std::printf(
      "  change at the emulator -> arrival at the watcher, over %zu watchers: p50 %.0f ms, "
      "p99 %.0f ms, max %.0f ms (a change waits up to one poll interval for the next read)\n",
      delays_ms.size(), Percentile(delays_ms, 0.5), Percentile(delays_ms, 0.99),
      Percentile(delays_ms, 1.0));
  std::fflush(stdout);
  EXPECT_EQ(delays_ms.size(), watchers.size());
  for (auto& w : watchers) w->Cancel();
  for (auto& w : watchers) {
    while (!w->done()) absl::SleepFor(absl::Milliseconds(1));
  }
  http->Shutdown();
}

TEST(JobsBench, DISABLED_WatchManySubscribersOverManyJobs) {
  const int jobs = static_cast<int>(EnvInt("UPGW_BENCH_JOBS", 100));
  const int subscribers = static_cast<int>(EnvInt("UPGW_BENCH_SUBSCRIBERS", 10000));
  const absl::Duration pace = absl::Seconds(1);
  EmulatorProcess emulator(absl::Hours(1));
  JobWatchOptions watch;
  watch.min_poll_interval = pace;
  watch.max_poll_interval = pace;
  watch.poll_interval_growth = 1.0;
  watch.max_subscribers = static_cast<size_t>(subscribers) + 10;
  Gateway gateway(emulator.url(), watch, ImportOptions());
  auto client = v1::UserpilotGateway::NewStub(
      grpc::CreateChannel(gateway.target(), grpc::InsecureChannelCredentials()));

  // Userpilot runs one bulk job at a time: create each, let it end, then pin them all queued.
  std::vector<std::string> ids;
  for (int i = 0; i < jobs; ++i) {
    v1::BulkIdentifyUsersRequest request;
    request.add_users()->set_user_id(absl::StrCat("u", i));
    v1::Job job;
    grpc::ClientContext context;
    ASSERT_TRUE(client->BulkIdentifyUsers(&context, request, &job).ok());
    ids.push_back(job.job_id());
    Http(gateway.http(), "POST",
         absl::StrCat(emulator.url(), "/_emulator/jobs/", Encode(job.job_id()), "/status"),
         R"({"status":"completed"})");
  }
  for (const std::string& id : ids) {
    Http(gateway.http(), "POST",
         absl::StrCat(emulator.url(), "/_emulator/jobs/", Encode(id), "/status"),
         R"({"status":"queued"})");
  }
  absl::SleepFor(absl::Milliseconds(500));
  const int64_t rss_before = ResidentBytes();

  // The watchers, in a child process.
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<std::string> env_strings = {
      absl::StrCat("UPGW_BENCH_TARGET=", gateway.target()),
      absl::StrCat("UPGW_BENCH_EMULATOR=", emulator.url()),
      absl::StrCat("UPGW_BENCH_JOB_IDS=", absl::StrJoin(ids, ","))};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string self = "/proc/self/exe";
  std::string also = "--gtest_also_run_disabled_tests";
  std::string filter = "--gtest_filter=JobsBench.DISABLED_WatchClient";
  char* argv[] = {self.data(), also.data(), filter.data(), nullptr};
  pid_t child = 0;
  ASSERT_EQ(posix_spawn(&child, "/proc/self/exe", &actions, nullptr, argv, envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  auto read_line = [&] {
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    return line;
  };
  std::string line;
  while ((line = read_line()) != "ready" && !line.empty()) {
  }
  ASSERT_EQ(line, "ready") << "the watch client did not start its watches";
  absl::SleepFor(2 * pace);
  const int64_t rss_watching = ResidentBytes();
  const JobWatchStats stats = gateway.registry().Stats();

  // Upstream reads per interval over 5 intervals.
  Http(gateway.http(), "DELETE", absl::StrCat(emulator.url(), "/_emulator/stats"));
  const absl::Time window_start = absl::Now();
  absl::SleepFor(5 * pace);
  const HttpResult emulator_stats =
      Http(gateway.http(), "GET", absl::StrCat(emulator.url(), "/_emulator/stats"));
  const absl::Duration window = absl::Now() - window_start;
  int64_t reads = 0;
  const std::string& body = emulator_stats.response.body;
  const size_t at = body.find("\"get_job\":");
  if (at != std::string::npos) {
    const size_t from = at + 10;
    absl::SimpleAtoi(absl::string_view(body).substr(from, body.find_first_of(",}", from) - from),
                     &reads);
  }
  std::printf(
      "watch: %d subscribers over %d jobs (registry: %zu subscriptions, %zu pollers), pace %s\n"
      "  upstream job reads per interval: %.1f (the job count is %d)\n"
      "  gateway resident memory: %.1f MB before the watches, %.1f MB with them open "
      "(+%.1f MB, %.1f KB per watch)\n",
      subscribers, jobs, stats.subscribers, stats.watched_jobs, absl::FormatDuration(pace).c_str(),
      static_cast<double>(reads) / absl::FDivDuration(window, pace), jobs, rss_before / 1e6,
      rss_watching / 1e6, (rss_watching - rss_before) / 1e6,
      (rss_watching - rss_before) / 1e3 / subscribers);
  while (!(line = read_line()).empty()) {
    if (line[0] != '[' && !absl::StartsWith(line, "Running") && !absl::StartsWith(line, "Note")) {
      std::printf("%s\n", line.c_str());
    }
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the watch client failed";
}

// The client side of the import scenario, in its own process so that the memory measured is
// the gateway's: run by DISABLED_ImportFiftyMegabytes with UPGW_BENCH_TARGET set.
TEST(JobsBench, DISABLED_ImportClient) {
  const char* target = std::getenv("UPGW_BENCH_TARGET");
  if (target == nullptr) GTEST_SKIP() << "run by DISABLED_ImportFiftyMegabytes";
  const int64_t megabytes = EnvInt("UPGW_BENCH_IMPORT_MB", 50);
  auto client = v1::UserpilotGateway::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  // 10,000 rows (the bulk limit) padded to the size wanted with metadata values of at most
  // 4,000 bytes (the gateway refuses strings over --max_string_value_bytes, 4096 by default).
  const int rows = 10000;
  const int64_t per_row = (megabytes * 1024 * 1024 - 4096) / rows;
  std::string padding;
  int64_t pad_left = std::max<int64_t>(per_row - 80, 1);
  for (int p = 0; pad_left > 0; ++p) {
    const int64_t n = std::min<int64_t>(pad_left, 4000);
    absl::StrAppend(&padding, p == 0 ? "" : ",", "\"pad", p, "\":\"",
                    std::string(static_cast<size_t>(n), 'x'), "\"");
    pad_left -= n + 10;
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(5)));
  v1::Job job;
  auto writer = client->ImportData(&context, &job);
  v1::ImportDataRequest message;
  message.mutable_header()->set_target(v1::IMPORT_TARGET_USERS_BULK);
  message.mutable_header()->set_format(v1::IMPORT_FORMAT_NDJSON);
  bool open = writer->Write(message);
  std::string chunk;
  int64_t sent = 0;
  for (int i = 0; open && i < rows; ++i) {
    absl::StrAppend(&chunk, "{\"user_id\":\"user-", i, "\",\"metadata\":{", padding, "}}\n");
    if (chunk.size() >= 256 * 1024 || i == rows - 1) {
      sent += static_cast<int64_t>(chunk.size());
      message.set_chunk(std::move(chunk));
      chunk.clear();
      open = writer->Write(message);
    }
  }
  if (open) writer->WritesDone();
  const grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(job.file_size(), sent);
  std::printf("client: sent %.1f MB in %d rows\n", sent / 1e6, rows);
}

TEST(JobsBench, DISABLED_ImportFiftyMegabytes) {
  EmulatorProcess emulator(absl::Hours(1));
  Gateway gateway(emulator.url(), JobWatchOptions(), ImportOptions());
  // Let start-up allocations settle before the baseline.
  absl::SleepFor(absl::Milliseconds(500));
  const int64_t rss_before = ResidentBytes();

  const std::string target_env = absl::StrCat("UPGW_BENCH_TARGET=", gateway.target());
  std::vector<std::string> env_strings = {target_env};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string self = "/proc/self/exe";
  std::string also = "--gtest_also_run_disabled_tests";
  std::string filter = "--gtest_filter=JobsBench.DISABLED_ImportClient";
  char* argv[] = {self.data(), also.data(), filter.data(), nullptr};
  const absl::Time start = absl::Now();
  pid_t child = 0;
  ASSERT_EQ(posix_spawn(&child, "/proc/self/exe", nullptr, nullptr, argv, envp.data()), 0);
  int64_t peak = rss_before;
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    peak = std::max(peak, ResidentBytes());
    absl::SleepFor(absl::Milliseconds(5));
  }
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the client failed";
  const double megabytes = static_cast<double>(EnvInt("UPGW_BENCH_IMPORT_MB", 50)) * 1.048576;
  std::printf(
      "import: %.1f MB NDJSON (10000 rows) through ImportData in %s: %.1f MB/s end to end "
      "(client stream, validation, spool, multipart upload to the emulator)\n"
      "  gateway peak resident memory growth during the import: %.1f MB (target: under 16 MB)\n",
      megabytes, absl::FormatDuration(took).c_str(), megabytes / absl::ToDoubleSeconds(took),
      (peak - rss_before) / 1e6);
}

}  // namespace
}  // namespace userpilot::gateway
