#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/validation/request_validator.h"
#include "tests/util/validation_test_util.h"
#include "tests/util/wire_details.h"

// The default limits at their boundaries, the request size bound, the violation cap, and
// behaviour that no single table shows (ordering, thread-safety, bad limits).
namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using v1::BulkIdentifyCompaniesRequest;
using v1::BulkIdentifyUsersRequest;
using v1::DeleteUsersRequest;
using v1::GetJobRequest;
using v1::IdentifyCompanyRequest;
using v1::IdentifyUserRequest;
using v1::TrackEventRequest;
using validation_testing::ExpectViolations;
using validation_testing::Parse;
using validation_testing::SetValue;
using validation_testing::TestLimits;

// The default limits, checked at each boundary: exactly at the limit passes, one over fails.
TEST(RequestValidatorTest, DefaultLimitBoundaries) {
  const RequestValidator validator;
  const ValidationLimits& limits = validator.limits();
  EXPECT_EQ(limits.max_id_bytes, 256);
  EXPECT_EQ(limits.max_event_name_bytes, 256);
  EXPECT_EQ(limits.max_metadata_keys, 100);
  EXPECT_EQ(limits.max_metadata_key_bytes, 128);
  EXPECT_EQ(limits.max_string_value_bytes, 4096);
  EXPECT_EQ(limits.max_bulk_rows, 10000);
  EXPECT_EQ(limits.max_bulk_request_bytes, 16 * 1024 * 1024);
  EXPECT_EQ(limits.max_delete_ids, 1000);
  EXPECT_EQ(limits.max_job_id_bytes, 512);
  EXPECT_EQ(limits.max_violations, 10);

  auto identify = [&](std::string user_id) {
    IdentifyUserRequest r;
    r.set_user_id(std::move(user_id));
    return validator.Validate(r);
  };
  EXPECT_TRUE(identify(std::string(256, 'u')).ok());
  ExpectViolations(identify(std::string(257, 'u')),
                   {{"user_id", "must be at most 256 bytes (got 257)"}});

  auto track = [&](std::string event_name) {
    TrackEventRequest r;
    r.set_user_id("u");
    r.set_event_name(std::move(event_name));
    return validator.Validate(r);
  };
  EXPECT_TRUE(track(std::string(256, 'e')).ok());
  ExpectViolations(track(std::string(257, 'e')),
                   {{"event_name", "must be at most 256 bytes (got 257)"}});

  auto with_keys = [&](int keys) {
    IdentifyCompanyRequest r;
    r.set_company_id("c");
    for (int i = 0; i < keys; ++i) SetValue(r.mutable_metadata(), absl::StrCat("k", i), i);
    return validator.Validate(r);
  };
  EXPECT_TRUE(with_keys(100).ok());
  ExpectViolations(with_keys(101), {{"metadata", "must have at most 100 keys (got 101)"}});

  auto with_key = [&](std::string key) {
    IdentifyCompanyRequest r;
    r.set_company_id("c");
    SetValue(r.mutable_metadata(), key, 1);
    return validator.Validate(r);
  };
  EXPECT_TRUE(with_key(std::string(128, 'k')).ok());
  // A key of more than 64 bytes is shortened to 48 in its path.
  ExpectViolations(with_key(std::string(129, 'k')),
                   {{absl::StrCat("metadata[\"", std::string(48, 'k'), "\"...]"),
                     "key must be at most 128 bytes (got 129)"}});

  auto with_string = [&](std::string value) {
    IdentifyCompanyRequest r;
    r.set_company_id("c");
    (*r.mutable_metadata()->mutable_fields())["s"].set_string_value(std::move(value));
    return validator.Validate(r);
  };
  EXPECT_TRUE(with_string(std::string(4096, 's')).ok());
  ExpectViolations(with_string(std::string(4097, 's')),
                   {{"metadata.s", "must be at most 4096 bytes (got 4097)"}});

  auto bulk = [&](int rows) {
    BulkIdentifyUsersRequest r;
    for (int i = 0; i < rows; ++i) r.add_users()->set_user_id(absl::StrCat("u", i));
    return validator.Validate(r);
  };
  EXPECT_TRUE(bulk(10000).ok());
  ExpectViolations(bulk(10001), {{"users", "must have at most 10000 rows (got 10001)"}});

  auto bulk_companies = [&](int rows) {
    BulkIdentifyCompaniesRequest r;
    for (int i = 0; i < rows; ++i) r.add_companies()->set_company_id(absl::StrCat("c", i));
    return validator.Validate(r);
  };
  EXPECT_TRUE(bulk_companies(10000).ok());
  ExpectViolations(bulk_companies(10001),
                   {{"companies", "must have at most 10000 rows (got 10001)"}});

  auto del = [&](int ids) {
    DeleteUsersRequest r;
    for (int i = 0; i < ids; ++i) r.add_user_ids(absl::StrCat("u", i));
    return validator.Validate(r);
  };
  EXPECT_TRUE(del(1000).ok());
  ExpectViolations(del(1001), {{"user_ids", "must have at most 1000 ids (got 1001)"}});

  auto get_job = [&](std::string job_id) {
    GetJobRequest r;
    r.set_job_id(std::move(job_id));
    return validator.Validate(r);
  };
  EXPECT_TRUE(get_job(std::string(512, 'j')).ok());
  ExpectViolations(get_job(std::string(513, 'j')),
                   {{"job_id", "must be at most 512 bytes (got 513)"}});
}

TEST(RequestValidatorTest, BulkRequestSize) {
  BulkIdentifyUsersRequest users;
  users.add_users()->set_user_id("u1");
  BulkIdentifyCompaniesRequest companies;
  companies.add_companies()->set_company_id("c1");
  for (auto* row : {users.mutable_users(0)->mutable_metadata(),
                    companies.mutable_companies(0)->mutable_metadata()}) {
    (*row->mutable_fields())["s"].set_string_value(std::string(100, 'x'));
  }
  ValidationLimits limits;
  limits.max_bulk_request_bytes = static_cast<int64_t>(users.ByteSizeLong());
  EXPECT_TRUE(RequestValidator(limits).Validate(users).ok());
  limits.max_bulk_request_bytes -= 1;
  ExpectViolations(
      RequestValidator(limits).Validate(users),
      {{"users", absl::StrCat("request must be at most ", limits.max_bulk_request_bytes,
                              " bytes serialized (got ", users.ByteSizeLong(), ")")}});

  limits.max_bulk_request_bytes = static_cast<int64_t>(companies.ByteSizeLong());
  EXPECT_TRUE(RequestValidator(limits).Validate(companies).ok());
  limits.max_bulk_request_bytes -= 1;
  ExpectViolations(RequestValidator(limits).Validate(companies),
                   {{"companies", "bytes serialized"}});
}

BulkIdentifyUsersRequest BulkWithBadRows(int rows) {
  BulkIdentifyUsersRequest r;
  for (int i = 0; i < rows; ++i) r.add_users();  // Each row lacks its user_id.
  return r;
}

TEST(RequestValidatorTest, ViolationsAtTheCapAreAllListed) {
  ValidationLimits limits = TestLimits();
  limits.max_bulk_rows = 100;
  limits.max_violations = 5;
  ExpectViolations(RequestValidator(limits).Validate(BulkWithBadRows(5)),
                   {{"users[0].user_id", "is required"},
                    {"users[1].user_id", "is required"},
                    {"users[2].user_id", "is required"},
                    {"users[3].user_id", "is required"},
                    {"users[4].user_id", "is required"}});
}

TEST(RequestValidatorTest, ViolationsBeyondTheCapAreSummedUp) {
  ValidationLimits limits = TestLimits();
  limits.max_bulk_rows = 100;
  limits.max_violations = 5;
  const RequestValidator validator(limits);
  ExpectViolations(validator.Validate(BulkWithBadRows(6)),
                   {{"users[0].user_id", "is required"},
                    {"users[1].user_id", "is required"},
                    {"users[2].user_id", "is required"},
                    {"users[3].user_id", "is required"},
                    {"users[4].user_id", "is required"},
                    {"users", "and 1 more violation not listed (the error lists the first 5)"}});

  const CallStatus status = validator.Validate(BulkWithBadRows(100));
  auto bad_request = wire::Detail<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad_request.has_value());
  ASSERT_EQ(bad_request->field_violations_size(), 6);
  EXPECT_EQ(bad_request->field_violations(5).field(), "users");
  EXPECT_EQ(bad_request->field_violations(5).description(),
            "and 95 more violations not listed (the error lists the first 5)");
}

TEST(RequestValidatorTest, DefaultCapKeepsAHugeBadBulkSmall) {
  const RequestValidator validator;
  BulkIdentifyUsersRequest r = BulkWithBadRows(10000);
  for (auto& row : *r.mutable_users()) {
    (*row.mutable_metadata()->mutable_fields())["nested"].mutable_struct_value();
  }
  const CallStatus status = validator.Validate(r);
  auto bad_request = wire::Detail<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad_request.has_value());
  EXPECT_EQ(bad_request->field_violations_size(), 11);
  EXPECT_THAT(bad_request->field_violations(10).description(), HasSubstr("and 19990 more"));
  // Small enough for gRPC's default 8 KiB limit on response trailers, with room to spare.
  EXPECT_LT(status.message().size() + bad_request->ByteSizeLong(), 2048u);
}

TEST(RequestValidatorTest, SummaryNamesTheTopLevelFieldOfTheFirstOmittedViolation) {
  ValidationLimits limits = TestLimits();
  limits.max_violations = 1;
  IdentifyUserRequest r =
      Parse<IdentifyUserRequest>(R"({"metadata": {"a": {}}, "company": {"metadata": {"b": []}}})");
  ExpectViolations(RequestValidator(limits).Validate(r),
                   {{"user_id", "is required"}, {"metadata", "and 3 more violations"}});
}

TEST(RequestValidatorTest, MessageNamesEveryListedViolation) {
  const CallStatus status = RequestValidator().Validate(TrackEventRequest());
  EXPECT_EQ(status.message(), "invalid request: user_id: is required; event_name: is required");
}

TEST(RequestValidatorTest, ViolationOrderIsStable) {
  IdentifyUserRequest r;
  r.set_user_id("u");
  for (int i = 0; i < 50; ++i) {
    (*r.mutable_metadata()->mutable_fields())[absl::StrCat("k", 99 - i)].mutable_list_value();
  }
  const CallStatus status = RequestValidator().Validate(r);
  auto bad_request = wire::Detail<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad_request.has_value());
  EXPECT_EQ(bad_request->field_violations(0).field(), "metadata.k50");
  EXPECT_EQ(bad_request->field_violations(1).field(), "metadata.k51");
}

TEST(RequestValidatorTest, SafeToShareAcrossThreads) {
  const RequestValidator validator(TestLimits());
  const IdentifyUserRequest bad =
      Parse<IdentifyUserRequest>(R"({"metadata": {"a": {}, "b": [], "c": "toolong"}})");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        const CallStatus status = validator.Validate(bad);
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      }
    });
  }
  for (auto& thread : threads) thread.join();
}

TEST(RequestValidatorDeathTest, InvalidLimitsAbort) {
  ValidationLimits limits;
  limits.max_bulk_rows = 20000;
  EXPECT_DEATH(RequestValidator{limits}, "max_bulk_rows must be between 1 and 10000");
}

}  // namespace
}  // namespace userpilot::gateway
