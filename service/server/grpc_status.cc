#include "service/server/grpc_status.h"

#include <string>

#include "service/common/status_details.h"

namespace userpilot::gateway {

google::rpc::Status ToRpcStatus(const absl::Status& status) {
  google::rpc::Status rpc_status;
  rpc_status.set_code(static_cast<int>(status.code()));
  rpc_status.set_message(std::string(status.message()));
  for (google::protobuf::Any& detail : GetDetails(status)) {
    *rpc_status.add_details() = std::move(detail);
  }
  return rpc_status;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode both follow google.rpc.Code; 1..16 are the same values.
  const auto code = static_cast<grpc::StatusCode>(status.code());
  google::rpc::Status rpc_status = ToRpcStatus(status);
  if (rpc_status.details_size() == 0) return grpc::Status(code, std::string(status.message()));
  return grpc::Status(code, std::string(status.message()), rpc_status.SerializeAsString());
}

}  // namespace userpilot::gateway
