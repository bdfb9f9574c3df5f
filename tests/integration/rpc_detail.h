// The google.rpc error details of a failed gRPC call, for the integration tests' assertions.
#ifndef USERPILOT_GATEWAY_TESTS_INTEGRATION_RPC_DETAIL_H_
#define USERPILOT_GATEWAY_TESTS_INTEGRATION_RPC_DETAIL_H_

#include <optional>

#include "google/rpc/status.pb.h"
#include "grpcpp/support/status.h"

namespace userpilot::gateway::testing {

// The first google.rpc detail of type T carried by `status`, if any.
template <typename T>
std::optional<T> Detail(const grpc::Status& status) {
  google::rpc::Status rpc_status;
  if (!rpc_status.ParseFromString(status.error_details())) return std::nullopt;
  for (const auto& any : rpc_status.details()) {
    T detail;
    if (any.UnpackTo(&detail)) return detail;
  }
  return std::nullopt;
}

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_INTEGRATION_RPC_DETAIL_H_
