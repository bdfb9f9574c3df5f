#include "bench/loadgen/jobs_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway::bench {
namespace {

int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address, int id) {
  grpc::ChannelArguments args;
  args.SetInt("upgw_bench.channel_id", id);  // distinct channels: distinct connections
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// One WatchJob stream on the callback API.
class Watcher final : public grpc::ClientReadReactor<v1::Job> {
 public:
  Watcher(v1::UserpilotGateway::Stub& stub, const std::string& job_id, const std::string& status,
          absl::Duration timeout)
      : status_(status) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    request_.set_job_id(job_id);
    stub.async()->WatchJob(&context_, &request_, this);
    StartRead(&job_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    received_.fetch_add(1);
    if (job_.raw_status() == status_ && arrival_.load() < 0) arrival_.store(MonotonicNanos());
    StartRead(&job_);
  }
  void OnDone(const grpc::Status&) override { done_.store(true); }
  void Cancel() { context_.TryCancel(); }
  bool done() const { return done_.load(); }
  int received() const { return received_.load(); }
  int64_t arrival() const { return arrival_.load(); }

 private:
  const std::string status_;
  grpc::ClientContext context_;
  v1::WatchJobRequest request_;
  v1::Job job_;
  std::atomic<int> received_{0};
  std::atomic<int64_t> arrival_{-1};
  std::atomic<bool> done_{false};
};

}  // namespace

absl::StatusOr<WatchResult> WatchMany(const std::string& address,
                                      const std::vector<std::string>& job_ids, int watchers,
                                      int channels, const std::string& status,
                                      absl::Duration timeout) {
  if (job_ids.empty() || watchers <= 0) return absl::InvalidArgumentError("no jobs or watchers");
  std::vector<std::unique_ptr<v1::UserpilotGateway::Stub>> stubs;
  for (int i = 0; i < std::max(1, channels); ++i) {
    stubs.push_back(v1::UserpilotGateway::NewStub(Channel(address, i)));
  }
  std::vector<std::unique_ptr<Watcher>> all;
  for (int i = 0; i < watchers; ++i) {
    all.push_back(std::make_unique<Watcher>(*stubs[i % stubs.size()], job_ids[i % job_ids.size()],
                                            status, timeout));
  }
  const absl::Time give_up = absl::Now() + timeout;
  WatchResult result;
  for (auto& w : all) {
    while (w->received() < 1 && !w->done() && absl::Now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (w->received() >= 1) ++result.started;
  }
  std::printf("ready %d\n", result.started);
  std::fflush(stdout);
  for (auto& w : all) {
    while (w->arrival() < 0 && !w->done() && absl::Now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    result.arrivals.push_back(w->arrival());
  }
  for (auto& w : all) w->Cancel();
  const absl::Time drain = absl::Now() + absl::Seconds(10);
  for (auto& w : all) {
    while (!w->done() && absl::Now() < drain) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  // A stream that did not end in time still references its reactor: leak rather than free.
  for (auto& w : all) {
    if (!w->done()) w.release();
  }
  return result;
}

absl::StatusOr<ImportResult> ImportNdjson(const std::string& address, int64_t megabytes,
                                          absl::Duration deadline) {
  auto stub = v1::UserpilotGateway::NewStub(Channel(address, 0));
  const int rows = 10000;  // the bulk limit
  const int64_t per_row = (megabytes * 1024 * 1024 - 4096) / rows;
  // The padding is split into values of at most 4,000 bytes: the gateway refuses metadata
  // strings longer than --max_string_value_bytes (4096 by default), as Identify calls do.
  std::string padding;
  int64_t pad_left = std::max<int64_t>(per_row - 80, 1);
  for (int p = 0; pad_left > 0; ++p) {
    const int64_t n = std::min<int64_t>(pad_left, 4000);
    absl::StrAppend(&padding, p == 0 ? "" : ",", "\"pad", p, "\":\"",
                    std::string(static_cast<size_t>(n), 'x'), "\"");
    pad_left -= n + 10;
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  v1::Job job;
  const int64_t start = MonotonicNanos();
  auto writer = stub->ImportData(&context, &job);
  v1::ImportDataRequest message;
  message.mutable_header()->set_target(v1::IMPORT_TARGET_USERS_BULK);
  message.mutable_header()->set_format(v1::IMPORT_FORMAT_NDJSON);
  message.mutable_header()->set_filename("bench.ndjson");
  bool open = writer->Write(message);
  std::string chunk;
  ImportResult result;
  for (int i = 0; open && i < rows; ++i) {
    absl::StrAppend(&chunk, "{\"user_id\":\"bench-user-", i, "\",\"metadata\":{", padding, "}}\n");
    if (chunk.size() >= 256 * 1024 || i == rows - 1) {
      result.bytes += static_cast<int64_t>(chunk.size());
      message.set_chunk(std::move(chunk));
      chunk.clear();
      open = writer->Write(message);
    }
  }
  if (open) writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("ImportData: ", status.error_message()));
  }
  result.seconds = static_cast<double>(MonotonicNanos() - start) / 1e9;
  result.job_id = job.job_id();
  return result;
}

}  // namespace userpilot::gateway::bench
