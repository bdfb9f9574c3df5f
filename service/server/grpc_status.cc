#include "service/server/grpc_status.h"

#include <string>

#include "service/server/error_details.h"

namespace userpilot::gateway {

grpc::Status ToGrpcStatus(const absl::Status& status, const CallFacts& facts) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode both follow google.rpc.Code; 1..16 are the same values.
  const auto code = static_cast<grpc::StatusCode>(status.code());
  const google::rpc::Status rpc_status = ToRpcStatus(status, facts);
  if (rpc_status.details_size() == 0) return grpc::Status(code, std::string(status.message()));
  return grpc::Status(code, std::string(status.message()), rpc_status.SerializeAsString());
}

}  // namespace userpilot::gateway
