#include "service/metrics/metrics_stub.h"

#include <memory>
#include <optional>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/metrics/metrics_registry.h"
#include "tests/mocks/mock_userpilot_stub.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::_;

class MetricsStubTest : public ::testing::Test {
 protected:
  MetricsStubTest()
      : mock_(std::make_shared<MockUserpilotStub>()),
        metrics_(registry_.registry()),
        stub_(mock_, metrics_) {}

  double Requests(const std::string& endpoint, const std::string& status_class) {
    const auto metric = FindMetric(registry_.Collect(), "userpilot_gateway_upstream_requests_total",
                                   {{"endpoint", endpoint}, {"status_class", status_class}});
    return !metric.has_value() ? -1 : metric->counter.value;
  }

  uint64_t Observations(const std::string& endpoint) {
    const auto metric =
        FindMetric(registry_.Collect(), "userpilot_gateway_upstream_request_duration_seconds",
                   {{"endpoint", endpoint}});
    return !metric.has_value() ? 0 : metric->histogram.sample_count;
  }

  MetricsRegistry registry_;
  std::shared_ptr<MockUserpilotStub> mock_;
  UpstreamMetrics metrics_;
  MetricsStub stub_;
};

TEST_F(MetricsStubTest, EveryEndpointStartsAtZero) {
  for (absl::string_view endpoint : AllEndpoints()) {
    EXPECT_EQ(Requests(std::string(endpoint), "2xx"), 0) << endpoint;
  }
}

TEST_F(MetricsStubTest, SuccessPassesThroughAndCountsAs2xx) {
  EXPECT_CALL(*mock_, TrackEvent(_, _, _))
      .WillOnce([](const CallOptions&, const v1::TrackEventRequest&,
                   StubCallback<v1::TrackEventResponse> done) {
        v1::TrackEventResponse response;
        response.set_upstream_request_id("r-1");
        std::move(done)(response);
      });
  std::optional<Result<v1::TrackEventResponse>> got;
  stub_.TrackEvent({}, v1::TrackEventRequest(),
                   [&](Result<v1::TrackEventResponse> result) { got = std::move(result); });
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok());
  EXPECT_EQ((*got)->upstream_request_id(), "r-1");
  EXPECT_EQ(Requests("POST /v1/track", "2xx"), 1);
  EXPECT_EQ(Observations("POST /v1/track"), 1u);
}

TEST_F(MetricsStubTest, ErrorsCountByClassAndReasonAndPassThroughUnchanged) {
  CallFacts facts;
  facts.reason = ErrorReason::kUpstreamRateLimited;
  facts.upstream.http_status = 429;
  const CallStatus rate_limited(absl::ResourceExhaustedError("429"), facts);
  EXPECT_CALL(*mock_, GetJob(_, _, _))
      .WillOnce([&](const CallOptions&, const v1::GetJobRequest&, StubCallback<v1::Job> done) {
        std::move(done)(rate_limited);
      })
      .WillOnce([](const CallOptions&, const v1::GetJobRequest&, StubCallback<v1::Job> done) {
        std::move(done)(absl::UnavailableError("connection refused"));
      });
  CallStatus first, second;
  v1::GetJobRequest request;
  request.set_job_id("bulk:jobs:secret-job-id");
  stub_.GetJob({}, request, [&](Result<v1::Job> r) { first = std::move(r).error(); });
  stub_.GetJob({}, request, [&](Result<v1::Job> r) { second = std::move(r).error(); });
  EXPECT_EQ(first.status(), rate_limited.status());
  EXPECT_EQ(wire::Metadata(first), wire::Metadata(rate_limited));
  EXPECT_TRUE(absl::IsUnavailable(second.status()));
  EXPECT_EQ(Requests("GET /v1/background_jobs/{job_id}", "4xx"), 1);
  EXPECT_EQ(Requests("GET /v1/background_jobs/{job_id}", "transport"), 1);
  const auto families = registry_.Collect();
  const auto limited = FindMetric(
      families, "userpilot_gateway_upstream_errors_total",
      {{"endpoint", "GET /v1/background_jobs/{job_id}"}, {"reason", "UPSTREAM_RATE_LIMITED"}});
  ASSERT_TRUE(limited.has_value());
  EXPECT_EQ(limited->counter.value, 1);
  EXPECT_EQ(registry_.Serialize().find("secret-job-id"), std::string::npos);
}

TEST_F(MetricsStubTest, EachMethodHasItsEndpoint) {
  auto ack = [](auto&&, auto&&, auto done) { std::move(done)(absl::InternalError("x")); };
  EXPECT_CALL(*mock_, IdentifyUser(_, _, _)).WillOnce(ack);
  EXPECT_CALL(*mock_, IdentifyCompany(_, _, _)).WillOnce(ack);
  EXPECT_CALL(*mock_, BulkIdentifyUsers(_, _, _)).WillOnce(ack);
  EXPECT_CALL(*mock_, BulkIdentifyCompanies(_, _, _)).WillOnce(ack);
  EXPECT_CALL(*mock_, ListJobs(_, _, _)).WillOnce(ack);
  EXPECT_CALL(*mock_, DeleteUsers(_, _, _)).WillOnce(ack);
  EXPECT_CALL(*mock_, DeleteCompanies(_, _, _)).WillOnce(ack);
  auto ignore = [](auto) {};
  stub_.IdentifyUser({}, {}, ignore);
  stub_.IdentifyCompany({}, {}, ignore);
  stub_.BulkIdentifyUsers({}, {}, ignore);
  stub_.BulkIdentifyCompanies({}, {}, ignore);
  stub_.ListJobs({}, {}, ignore);
  stub_.DeleteUsers({}, {}, ignore);
  stub_.DeleteCompanies({}, {}, ignore);
  for (const char* endpoint :
       {"POST /v1/identify", "POST /v1/companies/identify", "POST /v1/users/bulk_identify",
        "POST /v1/companies/bulk_identify", "GET /v1/background_jobs", "DELETE /v1/users",
        "DELETE /v1/companies"}) {
    EXPECT_EQ(Requests(endpoint, "transport"), 1) << endpoint;
  }
}

TEST_F(MetricsStubTest, ImportsCountUnderTheirTargetsEndpoint) {
  EXPECT_CALL(*mock_, ImportFile(_, _, _))
      .Times(3)
      .WillRepeatedly([](const CallOptions&, const ImportFileRequest&, StubCallback<v1::Job> done) {
        std::move(done)(v1::Job());
      });
  ImportFileRequest request;
  for (v1::ImportTarget target : {v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_TARGET_USERS_BULK,
                                  v1::IMPORT_TARGET_COMPANIES_BULK}) {
    request.target = target;
    stub_.ImportFile({}, request, [](Result<v1::Job> job) { EXPECT_TRUE(job.ok()); });
  }
  EXPECT_EQ(Requests("POST /v1/imports", "2xx"), 1);
  EXPECT_EQ(Requests("POST /v1/users/bulk_identify", "2xx"), 1);
  EXPECT_EQ(Requests("POST /v1/companies/bulk_identify", "2xx"), 1);
}

}  // namespace
}  // namespace userpilot::gateway
