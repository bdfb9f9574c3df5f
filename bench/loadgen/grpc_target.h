// GrpcTarget: calls the gateway with the gRPC callback API, so one thread of the load generator
// can keep thousands of calls in flight without a thread each.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/loadgen/target.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway::bench {

struct GrpcTargetOptions {
  std::string address;  // host:port
  int channels = 1;     // separate HTTP/2 connections, used round-robin
  std::string caller;   // sent as x-caller metadata (the gateway's fairness key); "" = none
  absl::Duration deadline = absl::Seconds(5);
};

class GrpcTarget final : public Target {
 public:
  // Connects every channel (waits up to `connect_timeout`) so that the first calls do not pay
  // for connection set-up.
  static absl::StatusOr<std::unique_ptr<GrpcTarget>> Connect(GrpcTargetOptions options,
                                                             absl::Duration connect_timeout);

  std::string name() const override { return "gateway"; }
  void Start(Op op, uint64_t seq, DoneCallback done) override;
  std::string CodeName(int code) const override;

 private:
  explicit GrpcTarget(GrpcTargetOptions options) : options_(std::move(options)) {}

  GrpcTargetOptions options_;
  std::vector<std::unique_ptr<v1::UserpilotGateway::Stub>> stubs_;
  std::atomic<uint64_t> next_{0};
};

// Polls grpc.health.v1.Health/Check on `address` until it answers SERVING; returns the
// steady_clock time (CLOCK_MONOTONIC, comparable across processes) when it first did.
absl::StatusOr<int64_t> WaitServing(const std::string& address, absl::Duration timeout);

}  // namespace userpilot::gateway::bench
