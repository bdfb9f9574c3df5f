#include "clients/cli/call.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "grpcpp/support/stub_options.h"

namespace userpilot::gateway::cli {

grpc::Status CallUnary(const std::shared_ptr<grpc::Channel>& channel,
                       const google::protobuf::MethodDescriptor& method,
                       const google::protobuf::Message& request,
                       google::protobuf::Message& response, absl::Duration deadline,
                       const std::string& caller) {
  if (method.client_streaming() || method.server_streaming()) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        absl::StrCat(method.name(),
                                     " is a streaming method; userpilotctl calls "
                                     "unary methods only"));
  }
  grpc::ClientContext context;
  if (deadline != absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  }
  context.AddMetadata("x-caller", caller);

  std::string bytes = request.SerializeAsString();
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::Status status;
  absl::Notification done;
  grpc::GenericStub stub(channel);
  stub.UnaryCall(&context, absl::StrCat("/", method.service()->full_name(), "/", method.name()),
                 grpc::StubOptions(), &request_buffer, &response_buffer,
                 [&status, &done](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return status;

  std::vector<grpc::Slice> slices;
  grpc::Status dumped = response_buffer.Dump(&slices);
  if (!dumped.ok()) return dumped;
  std::string answer;
  for (const grpc::Slice& s : slices)
    answer.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (!response.ParseFromString(answer)) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("the answer is not a valid ", response.GetTypeName()));
  }
  return grpc::Status::OK;
}

}  // namespace userpilot::gateway::cli
