#include "service/server/grpc_status.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

TEST(GrpcStatusTest, OkStaysOk) { EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok()); }

TEST(GrpcStatusTest, CodesMapOneToOne) {
  const absl::Status cases[] = {
      absl::InvalidArgumentError("a"),    absl::NotFoundError("b"),
      absl::FailedPreconditionError("c"), absl::ResourceExhaustedError("d"),
      absl::UnavailableError("e"),        absl::DeadlineExceededError("f"),
      absl::InternalError("g"),           absl::CancelledError("h"),
  };
  for (const absl::Status& status : cases) {
    grpc::Status converted = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(converted.error_code()), static_cast<int>(status.code()));
    EXPECT_EQ(converted.error_message(), status.message());
    EXPECT_TRUE(converted.error_details().empty()) << status;
  }
}

TEST(GrpcStatusTest, DetailsTravelAsGoogleRpcStatus) {
  CallFacts facts;
  facts.retry_delay = RetryDelay{absl::Seconds(2), RetryDelaySource::kGateway};
  grpc::Status converted = ToGrpcStatus(absl::ResourceExhaustedError("over budget"), facts);
  ASSERT_EQ(converted.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  google::rpc::Status rpc_status;
  ASSERT_TRUE(rpc_status.ParseFromString(converted.error_details()));
  EXPECT_EQ(rpc_status.code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_EQ(rpc_status.message(), "over budget");
  ASSERT_EQ(rpc_status.details_size(), 1);
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(rpc_status.details(0).UnpackTo(&retry));
  EXPECT_EQ(retry.retry_delay().seconds(), 2);
}

}  // namespace
}  // namespace userpilot::gateway
