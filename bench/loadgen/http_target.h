// HttpTarget: the direct baseline. Sends the same requests as GrpcTarget straight to the REST
// API (the emulator) with libcurl's multi interface on one event thread and a pool of
// keep-alive connections: what a service would do with its own good HTTP client.
#pragma once

#include <curl/curl.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/loadgen/target.h"

namespace userpilot::gateway::bench {

struct HttpTargetOptions {
  std::string base_url;  // http://127.0.0.1:PORT
  std::string api_key;   // sent as Authorization: Token <key>; never printed
  int connections = 64;  // most open connections; more calls queue inside libcurl
  absl::Duration deadline = absl::Seconds(5);
};

class HttpTarget final : public Target {
 public:
  static absl::StatusOr<std::unique_ptr<HttpTarget>> Create(HttpTargetOptions options);
  ~HttpTarget() override;  // Ends calls still in flight without running their callbacks.

  std::string name() const override { return "direct"; }
  void Start(Op op, uint64_t seq, DoneCallback done) override;
  std::string CodeName(int code) const override;

 private:
  struct Transfer {
    CURL* easy = nullptr;
    DoneCallback done;
  };
  struct Pending {
    Op op;
    uint64_t seq;
    DoneCallback done;
  };

  explicit HttpTarget(HttpTargetOptions options);
  void Loop();
  void AddTransfer(Pending pending);
  void FinishTransfers();

  const HttpTargetOptions options_;
  CURLM* multi_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::thread thread_;

  std::mutex mu_;
  std::deque<Pending> submitted_;  // bounded by the runner's in-flight limit
  bool stopping_ = false;

  // Owned by the event thread.
  std::vector<std::unique_ptr<Transfer>> idle_;
  absl::flat_hash_set<Transfer*> active_;
};

}  // namespace userpilot::gateway::bench
