// RequestMix: which call the load generator sends as its n-th call, and the same request as a
// gRPC message (for the gateway) and as a REST body (for the direct baseline), so both paths
// carry identical content.
//
// The mix is a weighted round-robin ("identify=1,track=3"): call n is the (n mod total)-th
// slot of a fixed pattern, so every run and both targets see the same sequence.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway::bench {

// kRefused: an IdentifyUser without a user_id, which the gateway answers INVALID_ARGUMENT from
// its validation, on the gRPC thread, without an upstream request or any other thread: what a
// gRPC call through the gateway's server costs with no work behind it (the floor the other ops
// are measured against). Its expected answer is INVALID_ARGUMENT; gateway target only.
enum class Op { kIdentify, kIdentifyCompany, kTrack, kRefused };

const char* OpName(Op op);

class RequestMix {
 public:
  // Parses "identify=1,track=1" (ops: identify, identify_company, track, refused; weights 0..100,
  // at least one positive).
  static absl::StatusOr<RequestMix> Parse(const std::string& spec);

  Op OpFor(uint64_t seq) const { return pattern_[seq % pattern_.size()]; }
  // The ops that occur, in a fixed order (for per-op reporting).
  const std::vector<Op>& ops() const { return ops_; }
  std::string ToString() const;

  // Request n as a gRPC message.
  static void Fill(uint64_t seq, v1::IdentifyUserRequest* request);
  static void Fill(uint64_t seq, v1::IdentifyCompanyRequest* request);
  static void Fill(uint64_t seq, v1::TrackEventRequest* request);
  // Request n as Userpilot's REST path and JSON body (what the gateway would send upstream).
  static const char* RestPath(Op op);
  static std::string RestBody(Op op, uint64_t seq);

 private:
  std::vector<Op> pattern_;
  std::vector<Op> ops_;
  std::vector<int> weights_;
};

}  // namespace userpilot::gateway::bench
