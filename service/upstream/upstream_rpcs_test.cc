#include "service/upstream/upstream_rpcs.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;

TEST(UpstreamRpcsTest, EveryRowNamesAnRpcOfGatewayProtoAndItsLevelIsTheProtos) {
  const google::protobuf::ServiceDescriptor* service =
      v1::Job::descriptor()->file()->FindServiceByName("UserpilotGateway");
  ASSERT_NE(service, nullptr);
  for (const RpcInfo& rpc : AllRpcs()) {
    SCOPED_TRACE(std::string(rpc.name));
    const auto* method = service->FindMethodByName(std::string(rpc.proto_method));
    ASSERT_NE(method, nullptr);
    const auto level = method->options().idempotency_level();
    const Idempotency want =
        level == google::protobuf::MethodOptions::IDEMPOTENT        ? Idempotency::kIdempotent
        : level == google::protobuf::MethodOptions::NO_SIDE_EFFECTS ? Idempotency::kNoSideEffects
                                                                    : Idempotency::kDefault;
    EXPECT_EQ(IdempotencyOf(rpc.id), want);
  }
}

// The contract as gateway.proto states it (a change there must be a decision, seen here).
TEST(UpstreamRpcsTest, WhichCallsMayBeRepeated) {
  std::map<std::string, bool> may_repeat;
  for (const RpcInfo& rpc : AllRpcs())
    may_repeat[std::string(rpc.name)] = MayRepeat(IdempotencyOf(rpc.id));
  EXPECT_EQ(may_repeat, (std::map<std::string, bool>{{"IdentifyUser", true},
                                                     {"IdentifyCompany", true},
                                                     {"BulkIdentifyUsers", false},
                                                     {"BulkIdentifyCompanies", false},
                                                     {"TrackEvent", false},
                                                     {"ListJobs", true},
                                                     {"GetJob", true},
                                                     {"DeleteUsers", true},
                                                     {"DeleteCompanies", true},
                                                     {"ImportFile", false}}));
  EXPECT_EQ(IdempotencyOf(RpcId::kGetJob), Idempotency::kNoSideEffects);
  EXPECT_EQ(IdempotencyOf(RpcId::kDeleteUsers), Idempotency::kIdempotent);
}

TEST(UpstreamRpcsTest, RowsInTableOrderWithTheirIds) {
  ASSERT_EQ(AllRpcs().size(), 10u);
  for (size_t i = 0; i < AllRpcs().size(); ++i) {
    EXPECT_EQ(static_cast<size_t>(AllRpcs()[i].id), i);
    EXPECT_EQ(&RpcInfoOf(AllRpcs()[i].id), &AllRpcs()[i]);
  }
  EXPECT_EQ(RpcInfoOf(RpcId::kImportFile).name, "ImportFile");
  EXPECT_EQ(RpcInfoOf(RpcId::kImportFile).proto_method, "ImportData");
}

TEST(UpstreamRpcsTest, RoutesDeriveTheEndpointLabelFromMethodAndPath) {
  EXPECT_EQ(IdentifyUserRpc::kRoute.method, "POST");
  EXPECT_EQ(IdentifyUserRpc::kRoute.path, "/v1/identify");
  EXPECT_EQ(IdentifyUserRpc::kRoute.endpoint, "POST /v1/identify");
  EXPECT_EQ(GetJobRpc::kRoute.endpoint, "GET /v1/background_jobs/{job_id}");
  EXPECT_EQ(DeleteCompaniesRpc::kRoute.endpoint, "DELETE /v1/companies");
  for (const RpcInfo& rpc : AllRpcs()) {
    for (const Route& route : rpc.routes) {
      EXPECT_EQ(route.endpoint, std::string(route.method) + " " + std::string(route.path));
    }
  }
}

TEST(UpstreamRpcsTest, BudgetsPerRoute) {
  std::map<std::string, std::string> budget_of;
  for (const RpcInfo& rpc : AllRpcs()) {
    budget_of[std::string(rpc.name)] = std::string(BudgetName(rpc.routes[0].budget));
  }
  EXPECT_EQ(budget_of, (std::map<std::string, std::string>{{"IdentifyUser", "identify"},
                                                           {"IdentifyCompany", "identify"},
                                                           {"BulkIdentifyUsers", "bulk"},
                                                           {"BulkIdentifyCompanies", "bulk"},
                                                           {"TrackEvent", "track"},
                                                           {"ListJobs", "job_read"},
                                                           {"GetJob", "job_read"},
                                                           {"DeleteUsers", "delete"},
                                                           {"DeleteCompanies", "delete"},
                                                           {"ImportFile", "imports"}}));
}

TEST(UpstreamRpcsTest, AnImportFileGoesWhereItsTargetSays) {
  ImportFileRequest request;
  request.target = v1::IMPORT_TARGET_HISTORICAL_IMPORT;
  EXPECT_EQ(Routing<ImportFileRpc>::For(request).endpoint, "POST /v1/imports");
  EXPECT_EQ(Routing<ImportFileRpc>::For(request).budget, BudgetId::kImports);
  request.target = v1::IMPORT_TARGET_USERS_BULK;
  EXPECT_EQ(Routing<ImportFileRpc>::For(request).endpoint, "POST /v1/users/bulk_identify");
  EXPECT_EQ(Routing<ImportFileRpc>::For(request).budget, BudgetId::kBulk);
  request.target = v1::IMPORT_TARGET_COMPANIES_BULK;
  EXPECT_EQ(Routing<ImportFileRpc>::For(request).endpoint, "POST /v1/companies/bulk_identify");
  request.target = v1::IMPORT_TARGET_UNSPECIFIED;
  EXPECT_EQ(Routing<ImportFileRpc>::For(request).endpoint, "POST /v1/imports");
  // Every other RPC has its row's one route.
  EXPECT_EQ(&Routing<GetJobRpc>::For(v1::GetJobRequest()), &Routing<GetJobRpc>::kRoutes[0]);
}

TEST(UpstreamRpcsTest, EveryEndpointOnceInTableOrder) {
  EXPECT_THAT(
      AllEndpoints(),
      ElementsAre("POST /v1/identify", "POST /v1/companies/identify",
                  "POST /v1/users/bulk_identify", "POST /v1/companies/bulk_identify",
                  "POST /v1/track", "GET /v1/background_jobs", "GET /v1/background_jobs/{job_id}",
                  "DELETE /v1/users", "DELETE /v1/companies", "POST /v1/imports"));
}

}  // namespace
}  // namespace userpilot::gateway
