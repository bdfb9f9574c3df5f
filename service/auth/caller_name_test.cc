#include "service/auth/caller_name.h"

#include <string>

#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

TEST(CallerNameTest, AcceptsServiceAndDnsNames) {
  for (const char* name :
       {"billing", "gdpr-service", "billing.prod.svc.cluster.local", "batch_import", "A1", "x"}) {
    EXPECT_TRUE(IsValidCallerName(name)) << name;
  }
  EXPECT_TRUE(IsValidCallerName(std::string(kMaxCallerNameBytes, 'a')));
}

TEST(CallerNameTest, RefusesWhatCouldNotBeALabel) {
  for (const char* name : {"", "*", "*.prod.svc", "billing service", "billing\n", "b/c", "b:c",
                           "caf\xC3\xA9", "a=b", "a,b"}) {
    EXPECT_FALSE(IsValidCallerName(name)) << name;
  }
  EXPECT_FALSE(IsValidCallerName(std::string(kMaxCallerNameBytes + 1, 'a')));
}

}  // namespace
}  // namespace userpilot::gateway
