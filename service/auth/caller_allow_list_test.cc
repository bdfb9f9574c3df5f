#include "service/auth/caller_allow_list.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const google::protobuf::ServiceDescriptor& Service() {
  const google::protobuf::ServiceDescriptor* service =
      v1::IdentifyUserRequest::descriptor()->file()->FindServiceByName("UserpilotGateway");
  EXPECT_NE(service, nullptr);
  return *service;
}

constexpr char kExample[] =
    "gdpr-service=DeleteUsers|DeleteCompanies,billing=IdentifyUser|TrackEvent,"
    "*=IdentifyUser|IdentifyCompany|TrackEvent|GetJob|ListJobs|WatchJob";

TEST(CallerAllowListTest, EmptyAllowsEverything) {
  for (const char* spec : {"", "   "}) {
    absl::StatusOr<CallerAllowList> list = CallerAllowList::Parse(spec, Service());
    ASSERT_TRUE(list.ok()) << list.status();
    EXPECT_TRUE(list->allows_everything());
    EXPECT_TRUE(list->Allows("anyone", "DeleteUsers"));
  }
  EXPECT_TRUE(CallerAllowList().Allows("anyone", "ImportData"));
}

TEST(CallerAllowListTest, TheIssueExample) {
  absl::StatusOr<CallerAllowList> list = CallerAllowList::Parse(kExample, Service());
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_FALSE(list->allows_everything());
  // Its own entry...
  EXPECT_TRUE(list->Allows("gdpr-service", "DeleteUsers"));
  EXPECT_TRUE(list->Allows("gdpr-service", "DeleteCompanies"));
  // ...plus the * entry.
  EXPECT_TRUE(list->Allows("gdpr-service", "GetJob"));
  EXPECT_FALSE(list->Allows("gdpr-service", "BulkIdentifyUsers"));
  EXPECT_TRUE(list->Allows("billing", "TrackEvent"));
  EXPECT_FALSE(list->Allows("billing", "DeleteUsers"));
  // Anyone else: the * entry only.
  EXPECT_TRUE(list->Allows("analytics", "IdentifyCompany"));
  EXPECT_TRUE(list->Allows("analytics", "WatchJob"));
  EXPECT_FALSE(list->Allows("analytics", "WatchJobs"));
  EXPECT_FALSE(list->Allows("analytics", "DeleteUsers"));
  EXPECT_FALSE(list->Allows("analytics", "ImportData"));
  EXPECT_FALSE(list->Allows("analytics", "NoSuchRpc"));
  EXPECT_THAT(list->Callers(), ElementsAre("billing", "gdpr-service"));
  EXPECT_EQ(list->DebugString(),
            "billing=IdentifyUser|TrackEvent,gdpr-service=DeleteCompanies|DeleteUsers,"
            "*=GetJob|IdentifyCompany|IdentifyUser|ListJobs|TrackEvent|WatchJob");
}

TEST(CallerAllowListTest, WithoutAStarEntryUnnamedCallersMayCallNothing) {
  absl::StatusOr<CallerAllowList> list =
      CallerAllowList::Parse(" billing = TrackEvent | IdentifyUser ", Service());
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->Allows("billing", "IdentifyUser"));
  EXPECT_FALSE(list->Allows("other", "IdentifyUser"));
}

TEST(CallerAllowListTest, EveryRpcOfTheServiceCanBeNamed) {
  const google::protobuf::ServiceDescriptor& service = Service();
  std::string all;
  for (int i = 0; i < service.method_count(); ++i) {
    all += (i == 0 ? "" : "|") + service.method(i)->name();
  }
  absl::StatusOr<CallerAllowList> list = CallerAllowList::Parse("ops=" + all, service);
  ASSERT_TRUE(list.ok()) << list.status();
  for (int i = 0; i < service.method_count(); ++i) {
    EXPECT_TRUE(list->Allows("ops", service.method(i)->name()));
  }
}

struct BadSpec {
  const char* name;
  const char* spec;
  const char* message;
};

void PrintTo(const BadSpec& c, std::ostream* os) { *os << c.name; }

class CallerAllowListErrorTest : public ::testing::TestWithParam<BadSpec> {};

TEST_P(CallerAllowListErrorTest, NamesTheEntry) {
  absl::StatusOr<CallerAllowList> list = CallerAllowList::Parse(GetParam().spec, Service());
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(list.status().message(), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, CallerAllowListErrorTest,
    ::testing::Values(
        BadSpec{"UnknownRpc", "billing=IdentifyUser,gdpr=DeleteUser",
                "entry 2 'gdpr=DeleteUser': 'DeleteUser' is not an RPC of "
                "userpilot.gateway.v1.UserpilotGateway (BulkIdentifyCompanies, "},
        BadSpec{"QualifiedRpc", "billing=userpilot.gateway.v1.UserpilotGateway/TrackEvent",
                "is not an RPC of"},
        BadSpec{"NoEquals", "billing", "entry 1 'billing': expected CALLER=RPC|RPC|..."},
        BadSpec{"EmptyList", "billing=", "entry 1 'billing=': an empty RPC name"},
        BadSpec{"EmptyItem", "billing=TrackEvent||GetJob", "an empty RPC name"},
        BadSpec{"BadCaller", "bill ing=TrackEvent", "the caller must be * or a caller name"},
        BadSpec{"WildcardPattern", "bill*=TrackEvent", "the caller must be * or a caller name"},
        BadSpec{"DuplicateCaller", "billing=TrackEvent,*=GetJob,billing=GetJob",
                "entry 3 'billing=GetJob': caller 'billing' already has entry 1"},
        BadSpec{"DuplicateRpc", "billing=TrackEvent|TrackEvent", "'TrackEvent' is listed twice"},
        BadSpec{"TrailingComma", "billing=TrackEvent,", "entry 2 '': expected CALLER="}),
    [](const ::testing::TestParamInfo<BadSpec>& info) { return info.param.name; });

TEST(CallerAllowListTest, ReportsEveryBadEntryAtOnce) {
  absl::StatusOr<CallerAllowList> list =
      CallerAllowList::Parse("a=Nope,b=TrackEvent,c=Nada", Service());
  ASSERT_FALSE(list.ok());
  EXPECT_THAT(list.status().message(), HasSubstr("entry 1 'a=Nope'"));
  EXPECT_THAT(list.status().message(), HasSubstr("entry 3 'c=Nada'"));
}

}  // namespace
}  // namespace userpilot::gateway
