#include "service/upstream/json_mapping.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using google::protobuf::Value;
using google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using ::testing::Not;

// A request from its proto3 JSON (shapes mirror REST, so this reads like the REST body).
template <typename T>
T FromJson(const std::string& json) {
  T message;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << json;
  return message;
}

v1::Job JobFromText(const std::string& text) {
  v1::Job job;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &job)) << text;
  return job;
}

// ----- Request bodies: exact bytes -----

struct BodyCase {
  std::string name;
  std::function<std::string()> body;
  std::string expected;
};

std::vector<BodyCase> BodyCases() {
  return {
      {"IdentifyMinimal",
       [] { return RequestBody(FromJson<v1::IdentifyUserRequest>(R"({"user_id":"u1"})")); },
       R"({"user_id":"u1"})"},
      {"IdentifyMetadataTypesKeptAndKeysSorted",
       [] {
         return RequestBody(FromJson<v1::IdentifyUserRequest>(
             R"({"user_id":"u1","metadata":{"s":"x","i":8,"f":3.25,"b":true,"off":false,)"
             R"("n":null,"ms":1706000000123,"neg":-2,"zero":0}})"));
       },
       R"({"user_id":"u1","metadata":{"b":true,"f":3.25,"i":8,"ms":1706000000123,"n":null,)"
       R"("neg":-2,"off":false,"s":"x","zero":0}})"},
      {"IdentifyIntegralDoubleHasNoFraction",
       [] {
         v1::IdentifyUserRequest request;
         request.set_user_id("u1");
         (*request.mutable_metadata()->mutable_fields())["years"].set_number_value(8.0);
         return RequestBody(request);
       },
       R"({"user_id":"u1","metadata":{"years":8}})"},
      {"IdentifyEmptyMetadataOmitted",
       [] {
         return RequestBody(FromJson<v1::IdentifyUserRequest>(R"({"user_id":"u1","metadata":{}})"));
       },
       R"({"user_id":"u1"})"},
      {"IdentifyCompanyWithoutProperties",
       [] {
         return RequestBody(FromJson<v1::IdentifyUserRequest>(
             R"({"user_id":"u1","company":{"company_id":"c1"}})"));
       },
       R"({"user_id":"u1","company":{"company_id":"c1"}})"},
      {"IdentifyCompanyPropertiesFlattenedBesideCompanyId",
       [] {
         return RequestBody(FromJson<v1::IdentifyUserRequest>(
             R"({"user_id":"u1","metadata":{"plan":"pro"},)"
             R"("company":{"company_id":"c1","metadata":{"seats":12,"name":"Acme","gone":null}}})"));
       },
       R"({"user_id":"u1","metadata":{"plan":"pro"},)"
       R"("company":{"company_id":"c1","gone":null,"name":"Acme","seats":12}})"},
      {"IdentifyCompanyReservedKeysNeverOverrideTheId",
       [] {
         return RequestBody(FromJson<v1::IdentifyUserRequest>(
             R"({"user_id":"u1","company":{"company_id":"c1",)"
             R"("metadata":{"company_id":"evil","id":"old","k":1}}})"));
       },
       R"({"user_id":"u1","company":{"company_id":"c1","k":1}})"},
      {"IdentifyStringsEscapedByProtobuf",
       [] {
         return RequestBody(FromJson<v1::IdentifyUserRequest>(
             R"({"user_id":"a\"b\\c\n","metadata":{"name":"Zoë <b>"}})"));
       },
       R"({"user_id":"a\"b\\c\n","metadata":{"name":"Zoë \u003cb\u003e"}})"},
      {"CompanyIdentify",
       [] {
         return RequestBody(FromJson<v1::IdentifyCompanyRequest>(
             R"({"company_id":"c1","metadata":{"size":"100-500","mau":1500}})"));
       },
       R"({"company_id":"c1","metadata":{"mau":1500,"size":"100-500"}})"},
      {"CompanyIdentifyWithoutMetadata",
       [] { return RequestBody(FromJson<v1::IdentifyCompanyRequest>(R"({"company_id":"c1"})")); },
       R"({"company_id":"c1"})"},
      {"CompanyIdentifyEmptyMetadataOmitted",
       [] {
         return RequestBody(
             FromJson<v1::IdentifyCompanyRequest>(R"({"company_id":"c1","metadata":{}})"));
       },
       R"({"company_id":"c1"})"},
      {"BulkUsers",
       [] {
         return RequestBody(FromJson<v1::BulkIdentifyUsersRequest>(
             R"({"users":[{"user_id":"u1","company_id":"c1","metadata":{"a":1}},)"
             R"({"user_id":"u2","metadata":{}},{"user_id":"u3","metadata":{"b":null}}]})"));
       },
       R"({"users":[{"user_id":"u1","company_id":"c1","metadata":{"a":1}},{"user_id":"u2"},)"
       R"({"user_id":"u3","metadata":{"b":null}}]})"},
      {"BulkCompanies",
       [] {
         return RequestBody(FromJson<v1::BulkIdentifyCompaniesRequest>(
             R"({"companies":[{"company_id":"c1","metadata":{"x":true}},{"company_id":"c2"}]})"));
       },
       R"({"companies":[{"company_id":"c1","metadata":{"x":true}},{"company_id":"c2"}]})"},
      {"Track",
       [] {
         return RequestBody(FromJson<v1::TrackEventRequest>(
             R"({"user_id":"u1","event_name":"purchase_completed","metadata":{"amount":9.99}})"));
       },
       R"({"user_id":"u1","event_name":"purchase_completed","metadata":{"amount":9.99}})"},
      {"TrackWithoutMetadata",
       [] {
         return RequestBody(
             FromJson<v1::TrackEventRequest>(R"({"user_id":"u1","event_name":"e"})"));
       },
       R"({"user_id":"u1","event_name":"e"})"},
      {"DeleteUsers",
       [] {
         return RequestBody(FromJson<v1::DeleteUsersRequest>(R"({"user_ids":["u1","u\"2"]})"));
       },
       R"({"users":["u1","u\"2"]})"},
      {"DeleteCompanies",
       [] {
         return RequestBody(FromJson<v1::DeleteCompaniesRequest>(R"({"company_ids":["c1"]})"));
       },
       R"({"companies":["c1"]})"},
      {"DeleteUsersEmptyList", [] { return RequestBody(v1::DeleteUsersRequest()); },
       R"({"users":[]})"},
  };
}

class RequestBodyTest : public ::testing::TestWithParam<BodyCase> {};

TEST_P(RequestBodyTest, ExactBytes) { EXPECT_EQ(GetParam().body(), GetParam().expected); }

INSTANTIATE_TEST_SUITE_P(Bodies, RequestBodyTest, ::testing::ValuesIn(BodyCases()),
                         [](const auto& info) { return info.param.name; });

TEST(RequestBodyTest, LargeBulkIsDeterministic) {
  v1::BulkIdentifyUsersRequest request;
  for (int i = 0; i < 1000; ++i) {
    v1::BulkUser* user = request.add_users();
    user->set_user_id("u" + std::to_string(i));
    for (const char* key : {"z", "a", "m", "b", "y"}) {
      (*user->mutable_metadata()->mutable_fields())[key].set_number_value(i);
    }
  }
  const std::string first = RequestBody(request);
  EXPECT_EQ(RequestBody(v1::BulkIdentifyUsersRequest(request)), first);
  EXPECT_NE(first.find(R"({"user_id":"u7","metadata":{"a":7,"b":7,"m":7,"y":7,"z":7}})"),
            std::string::npos);
}

// ----- The OpenAPI document's request examples, round-tripped -----

Value ParseValue(const std::string& json) {
  Value value;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &value);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return value;
}

void ExpectSameJson(const std::string& actual, const std::string& expected) {
  const Value a = ParseValue(actual);
  const Value e = ParseValue(expected);
  EXPECT_TRUE(MessageDifferencer::Equals(a, e))
      << "actual:   " << actual << "\nexpected: " << expected;
}

// POST /v1/identify, requestBody example.
constexpr char kIdentifyExample[] = R"({
  "user_id": "user_789456",
  "metadata": {
    "name": "Sarah Johnson", "email": "sarah.johnson@techstartup.com",
    "job_title": "Product Manager", "department": "Product", "location": "New York, NY",
    "hire_date": "2022-03-15", "years_experience": 8,
    "skills": "Product Strategy, User Research, Agile", "subscription_plan": "Pro",
    "last_login": "2024-01-15T10:30:00Z", "preferences_language": "en",
    "preferences_timezone": "America/New_York", "preferences_notifications": "email"
  },
  "company": {
    "company_id": "comp_techstartup_2024", "name": "TechStartup Inc.", "industry": "SaaS",
    "size": "50-100", "location": "New York, NY", "website": "https://techstartup.com",
    "subscription_tier": "Enterprise", "annual_revenue": "$5M-$10M", "founded_year": "2020",
    "primary_product": "Project Management Platform", "customer_count": 2500,
    "team_engineering": 25, "team_sales": 15, "team_marketing": 8, "team_support": 12
  }
})";

// POST /v1/companies/identify, requestBody example.
constexpr char kCompanyIdentifyExample[] = R"({
  "company_id": "comp_techstartup_2024",
  "metadata": {
    "name": "Acme Corporation", "industry": "Technology", "size": "100-500",
    "location": "San Francisco, CA", "website": "https://acme.com",
    "subscription_tier": "Enterprise", "annual_revenue": "$10M-$50M", "founded_year": "2020"
  }
})";

// POST /v1/users/bulk_identify, requestBody example.
constexpr char kBulkUsersExample[] = R"({"users": [
  {"user_id": "user_123", "company_id": "comp_techstartup_2024",
   "metadata": {"name": "John Smith", "email": "john.smith@techstartup.com",
     "job_title": "Support Manager", "tickets_created": "2024-01-15T08:00:00Z",
     "tickets_resolved": "2024-01-15T16:30:00Z", "tickets_pending": 3,
     "avg_resolution_time": 3.25, "customer_satisfaction": "95%", "escalation_count": 10}},
  {"user_id": "user_456", "company_id": "comp_techstartup_2024",
   "metadata": {"name": "Emma Davis", "email": "emma.davis@techstartup.com",
     "job_title": "Support Specialist", "tickets_created": "2024-01-15T09:15:00Z",
     "tickets_resolved": "2024-01-15T17:45:00Z", "tickets_pending": 5,
     "avg_resolution_time": 4.5, "customer_satisfaction": "92%", "escalation_count": 8}}
]})";

// POST /v1/companies/bulk_identify, requestBody example.
constexpr char kBulkCompaniesExample[] = R"({"companies": [
  {"company_id": "comp_techstartup_2024",
   "metadata": {"subscription_status": "active", "subscription_plan": "enterprise",
     "deal_size": "$50,000", "monthly_active_users": 1500, "platform_usage_score": 85,
     "account_manager": "Sarah Wilson"}},
  {"company_id": "comp_saas_corp_2024",
   "metadata": {"subscription_status": "trial", "subscription_plan": "pro",
     "deal_size": "$10,000", "monthly_active_users": 500, "platform_usage_score": 65,
     "account_manager": "Mike Thompson"}}
]})";

// POST /v1/track, requestBody example.
constexpr char kTrackExample[] = R"({
  "user_id": "user_789456", "event_name": "schedule_appointment",
  "metadata": {
    "appointment_date": "2024-02-01T10:00:00Z", "appointment_type": "Initial Consultation",
    "scheduled_by": "Sarah Johnson", "specialty": "Cardiology", "provider_id": "dr_smith_123",
    "appointment_status": "confirmed"
  }
})";

TEST(OpenApiExampleTest, IdentifyRoundTrips) {
  // The REST company object holds its properties beside company_id; the proto nests them.
  const Value rest = ParseValue(kIdentifyExample);
  const auto& fields = rest.struct_value().fields();
  v1::IdentifyUserRequest request;
  request.set_user_id(fields.at("user_id").string_value());
  *request.mutable_metadata() = fields.at("metadata").struct_value();
  for (const auto& [key, value] : fields.at("company").struct_value().fields()) {
    if (key == "company_id") {
      request.mutable_company()->set_company_id(value.string_value());
    } else {
      (*request.mutable_company()->mutable_metadata()->mutable_fields())[key] = value;
    }
  }
  ExpectSameJson(RequestBody(request), kIdentifyExample);
}

TEST(OpenApiExampleTest, CompanyIdentifyRoundTrips) {
  ExpectSameJson(RequestBody(FromJson<v1::IdentifyCompanyRequest>(kCompanyIdentifyExample)),
                 kCompanyIdentifyExample);
}

TEST(OpenApiExampleTest, BulkUsersRoundTrips) {
  ExpectSameJson(RequestBody(FromJson<v1::BulkIdentifyUsersRequest>(kBulkUsersExample)),
                 kBulkUsersExample);
}

TEST(OpenApiExampleTest, BulkCompaniesRoundTrips) {
  ExpectSameJson(RequestBody(FromJson<v1::BulkIdentifyCompaniesRequest>(kBulkCompaniesExample)),
                 kBulkCompaniesExample);
}

TEST(OpenApiExampleTest, TrackRoundTrips) {
  ExpectSameJson(RequestBody(FromJson<v1::TrackEventRequest>(kTrackExample)), kTrackExample);
}

TEST(OpenApiExampleTest, NumbersStayNumbersInTheExactBytes) {
  const std::string body = RequestBody(FromJson<v1::BulkIdentifyUsersRequest>(kBulkUsersExample));
  EXPECT_NE(body.find(R"("avg_resolution_time":3.25)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("tickets_pending":3,)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("customer_satisfaction":"95%")"), std::string::npos) << body;
}

// ----- Job status -----

TEST(ParseJobStatusTest, EveryDocumentedStatusAndUnknowns) {
  const std::vector<std::pair<std::string, v1::JobStatus>> cases = {
      {"queued", v1::JOB_STATUS_QUEUED},
      {"validating", v1::JOB_STATUS_VALIDATING},
      {"processing", v1::JOB_STATUS_PROCESSING},
      {"pending_refresh", v1::JOB_STATUS_PENDING_REFRESH},
      {"completed", v1::JOB_STATUS_COMPLETED},
      {"failed", v1::JOB_STATUS_FAILED},
      {" Completed ", v1::JOB_STATUS_COMPLETED},
      {"FAILED", v1::JOB_STATUS_FAILED},
      {"archived", v1::JOB_STATUS_UNSPECIFIED},
      {"", v1::JOB_STATUS_UNSPECIFIED},
      {"pending refresh", v1::JOB_STATUS_UNSPECIFIED},
  };
  for (const auto& [raw, expected] : cases) {
    EXPECT_EQ(ParseJobStatus(raw), expected) << "'" << raw << "'";
  }
}

// ----- Job objects -----

struct JobCase {
  std::string name;
  std::string json;
  std::string expected;  // v1::Job in text format.
};

std::vector<JobCase> JobCases() {
  return {
      {"SingleJobReadNumbersAsNumbers",
       R"({"job_id":"bulk:jobs:NX-ac54070e:c6f91301-54c1-4df7-a077-b34715c38875",
           "status":"processing","type":"bulk_identify_users","filename":"users.ndjson",
           "file_size":379,"total_rows":10000,"completed_rows":1200,
           "start_time":"2025-05-19T07:29:12Z","end_time":null,"elapsed_time":61,
           "links":"/v1/background_jobs/bulk:jobs:NX-ac54070e"})",
       R"(job_id: "bulk:jobs:NX-ac54070e:c6f91301-54c1-4df7-a077-b34715c38875"
          status: JOB_STATUS_PROCESSING raw_status: "processing" type: "bulk_identify_users"
          filename: "users.ndjson" file_size: 379 total_rows: 10000 completed_rows: 1200
          start_time: "2025-05-19T07:29:12Z" elapsed_time: 61
          links: "/v1/background_jobs/bulk:jobs:NX-ac54070e"
          start_timestamp { seconds: 1747639752 })"},
      {"ImportsFormNumbersAsStrings",
       R"({"job_id":"imp-1","status":"queued","filename":"data_import.csv","file_size":"1234",
           "total_rows":"56","start_time":"2024-07-28 08:55:35","end_time":"","links":""})",
       R"(job_id: "imp-1" status: JOB_STATUS_QUEUED raw_status: "queued"
          filename: "data_import.csv" file_size: 1234 total_rows: 56
          start_time: "2024-07-28 08:55:35")"},
      {"MinimalBulkForm",
       R"({"job_id":"bulk:jobs:NX-1","status":"queued","submitted_at":"2025-05-19T07:29:12Z"})",
       R"(job_id: "bulk:jobs:NX-1" status: JOB_STATUS_QUEUED raw_status: "queued"
          submitted_at: "2025-05-19T07:29:12Z" submitted_timestamp { seconds: 1747639752 })"},
      {"NullsAreAbsent",
       R"({"job_id":"j","status":null,"file_size":null,"total_rows":null,"end_time":null,
           "links":null})",
       R"(job_id: "j")"},
      {"UnknownFieldsIgnored",
       R"({"job_id":"j","status":"completed","owner":{"id":1},"tags":["a"],"v":2})",
       R"(job_id: "j" status: JOB_STATUS_COMPLETED raw_status: "completed")"},
      {"UnknownStatusKeptRaw", R"({"job_id":"j","status":"archived"})",
       R"(job_id: "j" status: JOB_STATUS_UNSPECIFIED raw_status: "archived")"},
      {"StatusCaseIgnoredRawKeptExactly", R"({"status":"Completed"})",
       R"(status: JOB_STATUS_COMPLETED raw_status: "Completed")"},
      {"NumericStringVariants",
       R"({"file_size":" 42 ","total_rows":"1e3","completed_rows":"12.6","elapsed_time":-5})",
       R"(file_size: 42 total_rows: 1000 completed_rows: 13 elapsed_time: -5)"},
      {"FractionsRound", R"({"file_size":12.4,"elapsed_time":0.5})",
       R"(file_size: 12 elapsed_time: 1)"},
      {"UnusableNumbersLeftUnset",
       R"({"file_size":"abc","total_rows":true,"completed_rows":1e30,"elapsed_time":"",
           "job_id":"j"})",
       R"(job_id: "j")"},
      {"LargeIntegerKept", R"({"file_size":"9007199254740993"})", R"(file_size: 9007199254740993)"},
      {"TextFromOtherTypes",
       R"({"job_id":123,"start_time":1700000000,"end_time":1.5,"type":true,
           "links":{"self":"/v1/background_jobs/j","b":[1,"x"]}})",
       R"(job_id: "123" start_time: "1700000000" end_time: "1.5" type: "true"
          links: "{\"self\":\"/v1/background_jobs/j\",\"b\":[1,\"x\"]}")"},
      {"TimestampsFromRfc3339WithAZone",
       R"({"start_time":"2025-05-19T09:29:12.5+02:00","end_time":"2025-05-19t07:30:00z",
           "submitted_at":"0001-01-01T00:00:00Z"})",
       R"(start_time: "2025-05-19T09:29:12.5+02:00" start_timestamp { seconds: 1747639752
          nanos: 500000000 } end_time: "2025-05-19t07:30:00z"
          end_timestamp { seconds: 1747639800 } submitted_at: "0001-01-01T00:00:00Z"
          submitted_timestamp { seconds: -62135596800 })"},
      {"NoTimestampsWithoutAZoneOrOutOfRange",
       R"({"start_time":"2025-05-19T07:29:12","end_time":"10000-01-01T00:00:00Z",
           "submitted_at":"0000-12-31T23:59:59Z"})",
       R"(start_time: "2025-05-19T07:29:12" end_time: "10000-01-01T00:00:00Z"
          submitted_at: "0000-12-31T23:59:59Z")"},
      {"NoTimestampFromANumberOrGarbage",
       R"({"start_time":1747639752,"end_time":"yesterday","submitted_at":"2025-05-19T07:29:12Zjunk"})",
       R"(start_time: "1747639752" end_time: "yesterday"
          submitted_at: "2025-05-19T07:29:12Zjunk")"},
      {"EmptyObject", "{}", ""},
      {"ByteOrderMarkAndWhitespace", "\xEF\xBB\xBF \n{\"job_id\":\"j\"}\n", R"(job_id: "j")"},
  };
}

class ParseJobTest : public ::testing::TestWithParam<JobCase> {};

TEST_P(ParseJobTest, Parses) {
  const absl::StatusOr<v1::Job> job = ParseJob(GetParam().json);
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::Job expected = JobFromText(GetParam().expected);
  EXPECT_TRUE(MessageDifferencer::Equals(*job, expected)) << "got:\n"
                                                          << job->DebugString() << "want:\n"
                                                          << expected.DebugString();
}

INSTANTIATE_TEST_SUITE_P(Jobs, ParseJobTest, ::testing::ValuesIn(JobCases()),
                         [](const auto& info) { return info.param.name; });

TEST(ParseJobTest, OptionalIntegersTrackPresence) {
  const absl::StatusOr<v1::Job> job = ParseJob(R"({"file_size":0})");
  ASSERT_TRUE(job.ok());
  EXPECT_TRUE(job->has_file_size());
  EXPECT_EQ(job->file_size(), 0);
  EXPECT_FALSE(job->has_total_rows());
  EXPECT_FALSE(job->has_completed_rows());
  EXPECT_FALSE(job->has_elapsed_time());
}

TEST(ParseJobTest, RejectsWhatIsNotAJobObject) {
  for (const std::string body :
       {"", " ", "null", "[]", R"([{"job_id":"j"}])", R"("queued")", "42", "true", "{",
        R"({"job_id":"j"} trailing)", "<html><body>502 Bad Gateway</body></html>",
        "job_id=j&status=queued"}) {
    const absl::StatusOr<v1::Job> job = ParseJob(body);
    EXPECT_FALSE(job.ok()) << "'" << body << "'";
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << body;
  }
}

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(ParseJobTest, NestingIsBoundedWhileParsing) {
  // The job object is one level: links may nest kMaxJsonDepth - 1 more.
  const absl::StatusOr<v1::Job> deepest =
      ParseJob(absl::StrCat(R"({"job_id":"j","links":)", Nested(kMaxJsonDepth - 1), "}"));
  ASSERT_TRUE(deepest.ok()) << deepest.status();
  EXPECT_EQ(deepest->links(), Nested(kMaxJsonDepth - 1));
  for (const std::string& body :
       {absl::StrCat(R"({"job_id":"j","links":)", Nested(kMaxJsonDepth), "}"), Nested(12000),
        std::string(100000, '[')}) {
    const absl::StatusOr<v1::Job> job = ParseJob(body);
    ASSERT_FALSE(job.ok()) << body.size();
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(job.status().message()), HasSubstr("nested deeper than 32"));
    EXPECT_FALSE(ParseJobList(body).ok());
    EXPECT_TRUE(ParseErrorBody(body).empty());
  }
}

TEST(ParseJobTest, SizeIsBoundedBeforeParsing) {
  std::string big = R"({"job_id":"j","links":")";
  big.append(kMaxAnswerBytes, 'x');
  big += R"("})";
  const absl::StatusOr<v1::Job> job = ParseJob(big);
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(std::string(job.status().message()), HasSubstr("over the 8388608 read"));
  // Error bodies have a tighter bound: only a few hundred bytes of them are ever quoted.
  std::string error = R"({"errors":[{"message":"m","details":")";
  error.append(kMaxErrorBodyBytes, 'x');
  error += R"("}]})";
  EXPECT_TRUE(ParseErrorBody(error).empty());
  EXPECT_EQ(ParseErrorBody(R"({"errors":[{"message":"m"}]})").size(), 1u);
}

TEST(ParseJobTest, InvalidUtf8IsNotJsonAndTheErrorQuotesNothing) {
  const absl::StatusOr<v1::Job> job = ParseJob("{\"job_id\":\"SECRET\xff\"}");
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(std::string(job.status().message()), HasSubstr("not JSON"));
  EXPECT_THAT(std::string(job.status().message()), Not(HasSubstr("SECRET")));
}

TEST(ParseResponseTest, AJobAnswerMustNameAJob) {
  v1::Job job;
  const absl::Status empty = ParseResponse("{}", "r", &job);
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(empty.message()), HasSubstr("neither a job_id nor a status"));
  EXPECT_FALSE(ParseResponse(R"({"links":"x","file_size":3})", "r", &job).ok());
  EXPECT_TRUE(ParseResponse(R"({"status":"queued"})", "r", &job).ok());
  EXPECT_TRUE(ParseResponse(R"({"job_id":"j"})", "r", &job).ok());
}

// ----- Job lists -----

TEST(ParseJobListTest, ArrayOfJobsInOrder) {
  const absl::StatusOr<v1::ListJobsResponse> list = ParseJobList(
      R"([{"job_id":"a","status":"completed","file_size":10},
          {"job_id":"b","status":"failed","total_rows":"3"}])");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->jobs_size(), 2);
  EXPECT_EQ(list->jobs(0).job_id(), "a");
  EXPECT_EQ(list->jobs(0).status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(list->jobs(0).file_size(), 10);
  EXPECT_EQ(list->jobs(1).job_id(), "b");
  EXPECT_EQ(list->jobs(1).status(), v1::JOB_STATUS_FAILED);
  EXPECT_EQ(list->jobs(1).total_rows(), 3);
}

TEST(ParseJobListTest, AcceptedForms) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"[]", {}},
      {R"([{"job_id":"a"}])", {"a"}},
      {R"({"jobs":[{"job_id":"a"},{"job_id":"b"}]})", {"a", "b"}},
      {R"({"data":[{"job_id":"a"}],"total":1})", {"a"}},
      {R"([{"job_id":"a"},null,{"job_id":"b"}])", {"a", "b"}},
      {R"([{"job_id":"a"},"junk",3,[]])", {"a"}},
  };
  for (const auto& [body, ids] : cases) {
    const absl::StatusOr<v1::ListJobsResponse> list = ParseJobList(body);
    ASSERT_TRUE(list.ok()) << body << ": " << list.status();
    std::vector<std::string> got;
    for (const v1::Job& job : list->jobs()) got.push_back(job.job_id());
    EXPECT_EQ(got, ids) << body;
  }
}

TEST(ParseJobListTest, RejectsOtherShapes) {
  for (const std::string body : {"", "null", R"({"job_id":"a"})", R"({"jobs":"a"})", R"({})",
                                 R"("[]")", "<html></html>", "[", "42"}) {
    const absl::StatusOr<v1::ListJobsResponse> list = ParseJobList(body);
    EXPECT_FALSE(list.ok()) << "'" << body << "'";
    EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument) << body;
  }
}

// ----- Error bodies -----

struct ErrorCase {
  std::string name;
  std::string body;
  std::vector<std::vector<std::string>> expected;  // {error, error_code, message, details}
};

std::vector<ErrorCase> ErrorCases() {
  return {
      {"Documented",
       R"({"errors":[{"error":"Unauthorized","error_code":"invalid_token",)"
       R"("message":"The token is invalid","details":"check your key"}]})",
       {{"Unauthorized", "invalid_token", "The token is invalid", "check your key"}}},
      {"SeveralEntries",
       R"({"errors":[{"message":"user_id is required"},{"error_code":"bad_meta","details":"x"}]})",
       {{"", "", "user_id is required", ""}, {"", "bad_meta", "", "x"}}},
      {"BareStringEntries",
       R"({"errors":["first","second"]})",
       {{"", "", "first", ""}, {"", "", "second", ""}}},
      {"ErrorsAsOneObject", R"({"errors":{"message":"m"}})", {{"", "", "m", ""}}},
      {"ErrorsAsString", R"({"errors":"m"})", {{"", "", "m", ""}}},
      {"TopLevelFields",
       R"({"error":"Conflict","message":"Import job already in progress"})",
       {{"Conflict", "", "Import job already in progress", ""}}},
      {"NonStringValuesAsText",
       R"({"errors":[{"error_code":409,"details":{"k":"v"}}]})",
       {{"", "409", "", R"({"k":"v"})"}}},
      {"EmptyEntriesDropped",
       R"({"errors":[{},{"other":"x"},null,{"message":"m"}]})",
       {{"", "", "m", ""}}},
      {"NoErrors", R"({"errors":[]})", {}},
      {"UnrelatedObject", R"({"status":"ok"})", {}},
      {"Html", "<html><head><title>502 Bad Gateway</title></head></html>", {}},
      {"PlainText", "upstream connect error or disconnect/reset before headers", {}},
      {"Empty", "", {}},
      {"Array", R"([{"message":"m"}])", {}},
      {"Truncated", R"({"errors":[{"message":"m")", {}},
  };
}

class ParseErrorBodyTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ParseErrorBodyTest, Parses) {
  std::vector<std::vector<std::string>> got;
  for (const UpstreamError& e : ParseErrorBody(GetParam().body)) {
    got.push_back({e.error, e.error_code, e.message, e.details});
  }
  EXPECT_EQ(got, GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(Errors, ParseErrorBodyTest, ::testing::ValuesIn(ErrorCases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace userpilot::gateway
