#include "service/common/status_details.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

TEST(StatusDetailsTest, InvalidArgumentCarriesEveryViolation) {
  absl::Status status =
      InvalidArgumentError({{"users[3].user_id", "is required"}, {"metadata.plan", "is nested"}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), testing::HasSubstr("users[3].user_id: is required"));
  auto bad_request = GetDetail<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad_request.has_value());
  ASSERT_EQ(bad_request->field_violations_size(), 2);
  EXPECT_EQ(bad_request->field_violations(0).field(), "users[3].user_id");
  EXPECT_EQ(bad_request->field_violations(1).field(), "metadata.plan");
}

TEST(StatusDetailsTest, DetailsAreSortedAndTyped) {
  absl::Status status = absl::ResourceExhaustedError("slow down");
  SetDetail(status, MakeRetryInfo(absl::Milliseconds(1500)));
  SetDetail(status, MakeErrorInfo(kReasonUpstreamRateLimited, {{"budget", "identify"}}));
  auto details = GetDetails(status);
  ASSERT_EQ(details.size(), 2u);
  EXPECT_EQ(details[0].type_url(), "type.googleapis.com/google.rpc.ErrorInfo");
  EXPECT_EQ(details[1].type_url(), "type.googleapis.com/google.rpc.RetryInfo");
  auto retry = GetDetail<google::rpc::RetryInfo>(status);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->retry_delay().seconds(), 1);
  EXPECT_EQ(retry->retry_delay().nanos(), 500000000);
  auto info = GetDetail<google::rpc::ErrorInfo>(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->domain(), "userpilot-gateway");
  EXPECT_EQ(info->metadata().at("budget"), "identify");
}

TEST(StatusDetailsTest, OkStatusTakesNoDetail) {
  absl::Status status;
  SetDetail(status, MakeRetryInfo(absl::Seconds(1)));
  EXPECT_TRUE(status.ok());
  EXPECT_TRUE(GetDetails(status).empty());
}

}  // namespace
}  // namespace userpilot::gateway
