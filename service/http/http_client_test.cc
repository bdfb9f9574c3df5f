#include "service/http/http_client.h"

#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

TEST(HttpResponseTest, HeaderIsCaseInsensitiveAndReturnsTheFirstMatch) {
  HttpResponse response;
  response.headers = {
      {"content-type", "application/json"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}};
  EXPECT_EQ(response.Header("Content-Type"), "application/json");
  EXPECT_EQ(response.Header("SET-COOKIE"), "a=1");
  EXPECT_EQ(response.Header("x-missing"), "");
}

}  // namespace
}  // namespace userpilot::gateway
