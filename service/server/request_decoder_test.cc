#include "service/server/request_decoder.h"

#include <string>

#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {
namespace {

// A length-delimited field (wire type 2) with a one-byte length.
std::string Field(int number, const std::string& value) {
  return std::string(1, static_cast<char>(number << 3 | 2)) +
         std::string(1, static_cast<char>(value.size())) + value;
}

std::string Describe(const CallStatus& status) {
  if (status.ok()) return "OK";
  std::string out;
  for (const FieldViolation& v : status.facts().violations) {
    out += v.field + ": " + v.description + ";";
  }
  return out;
}

TEST(RequestDecoderTest, AValidRequestDecodes) {
  v1::IdentifyUserRequest request;
  ASSERT_TRUE(DecodeRequest(Field(1, "u-1"), request).ok());
  EXPECT_EQ(request.user_id(), "u-1");
  // From a ByteBuffer too, and a response serializes back.
  v1::IdentifyUserResponse response;
  response.set_upstream_request_id("r-1");
  const grpc::ByteBuffer bytes = SerializeResponse(response);
  v1::IdentifyUserResponse back;
  ASSERT_TRUE(DecodeRequest(bytes, back).ok());
  EXPECT_EQ(back.upstream_request_id(), "r-1");
}

TEST(RequestDecoderTest, InvalidUtf8NamesTheField) {
  v1::TrackEventRequest request;
  const CallStatus status = DecodeRequest(Field(1, "u") + Field(2, "ev-\xff"), request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Describe(status), "event_name: is not valid UTF-8 (byte 3);");
  EXPECT_TRUE(request.user_id().empty()) << "nothing half-decoded is left";
}

TEST(RequestDecoderTest, InvalidUtf8DeeperNamesTheTopLevelFieldAndTheInnerOne) {
  v1::IdentifyUserRequest request;
  const std::string entry = Field(1, "\xfe") + Field(2, Field(3, "v"));
  const CallStatus status = DecodeRequest(Field(1, "u") + Field(2, Field(1, entry)), request);
  EXPECT_EQ(Describe(status),
            "metadata: holds google.protobuf.Struct.FieldsEntry.key that is not valid UTF-8;");
}

TEST(RequestDecoderTest, NestingPastTheRecursionLimitNamesTheField) {
  google::protobuf::Struct deep;
  google::protobuf::Struct* level = &deep;
  for (int i = 0; i < 60; ++i) level = (*level->mutable_fields())["k"].mutable_struct_value();
  v1::IdentifyUserRequest request;
  const CallStatus status = DecodeRequest(
      Field(1, "u") + "\x12" +
          [&] {
            // metadata (field 2) with a varint length: the nested Struct is longer than 127 bytes.
            const std::string body = deep.SerializeAsString();
            std::string out;
            size_t n = body.size();
            while (n >= 0x80) {
              out += static_cast<char>((n & 0x7F) | 0x80);
              n >>= 7;
            }
            out += static_cast<char>(n);
            return out + body;
          }(),
      request);
  EXPECT_EQ(Describe(status), "metadata: is nested more than 100 levels deep;");
}

TEST(RequestDecoderTest, MalformedWireDataIsNamedAsSuch) {
  v1::IdentifyUserRequest request;
  for (const std::string& data :
       {std::string("\x0a\x80", 2),
        std::string("\x0a\x10"
                    "abc",
                    5),
        std::string("\x0f\x00", 2), std::string("\x02\x00", 2), std::string("\x0c", 1)}) {
    SCOPED_TRACE(testing::PrintToString(data));
    const CallStatus status = DecodeRequest(data, request);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Describe(status),
              "request: is not valid protobuf wire data for "
              "userpilot.gateway.v1.IdentifyUserRequest;");
  }
}

TEST(RequestDecoderTest, MalformedDataInsideAFieldNamesThatField) {
  v1::IdentifyUserRequest request;
  const CallStatus status = DecodeRequest(Field(1, "u") + Field(2, "\x0a\x80"), request);
  EXPECT_EQ(Describe(status), "metadata: is not valid protobuf wire data;");
}

}  // namespace
}  // namespace userpilot::gateway
