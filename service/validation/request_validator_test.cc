#include "service/validation/request_validator.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/validation_test_util.h"

// One table per request type: every rule, and each limit exactly at and one past its bound
// (with the small limits of TestLimits()).
namespace userpilot::gateway {
namespace {

using v1::BulkIdentifyCompaniesRequest;
using v1::BulkIdentifyUsersRequest;
using v1::DeleteCompaniesRequest;
using v1::DeleteUsersRequest;
using v1::GetJobRequest;
using v1::IdentifyCompanyRequest;
using v1::IdentifyUserRequest;
using v1::ListJobsRequest;
using v1::TrackEventRequest;
using validation_testing::Case;
using validation_testing::RunTable;
using validation_testing::SetValue;
using validation_testing::TestLimits;

TEST(RequestValidatorTest, IdentifyUser) {
  const std::vector<Case<IdentifyUserRequest>> table = {
      {"minimal", R"({"user_id": "u1"})", {}},
      {"every primitive and a company",
       R"({"user_id": "u1",
           "metadata": {"plan": "pro", "seats": 3, "trial": false, "gone": null},
           "company": {"company_id": "c1", "metadata": {"tier": "gold"}}})",
       {}},
      {"user_id missing", R"({})", {{"user_id", "is required"}}},
      {"user_id spaces and tab",
       R"({"user_id": " \t "})",
       {{"user_id", "must not be only whitespace"}}},
      {"user_id non-ASCII whitespace",
       R"({"user_id": "\u00a0\u3000\u2003"})",
       {{"user_id", "must not be only whitespace"}}},
      {"user_id zero-width space",
       R"({"user_id": "\u200b"})",
       {{"user_id", "must not be blank: only invisible characters (U+200B) and whitespace"}}},
      {"user_id invisible characters and spaces",
       R"({"user_id": "\ufeff \u2060"})",
       {{"user_id", "must not be blank: only invisible characters (U+FEFF) and whitespace"}}},
      {"user_id with an invisible character and a letter is kept", R"({"user_id": "a\u200b"})", {}},
      {"user_id with inner and outer spaces is kept", R"({"user_id": " a b "})", {}},
      {"user_id at limit", R"({"user_id": "abcdefgh"})", {}},
      {"user_id one over",
       R"({"user_id": "abcdefghi"})",
       {{"user_id", "must be at most 8 bytes (got 9)"}}},
      {"user_id multibyte at limit", R"({"user_id": "éééé"})", {}},
      {"user_id multibyte one over",
       R"({"user_id": "éééé1"})",
       {{"user_id", "must be at most 8 bytes (got 9)"}}},
      {"user_id C0",
       R"({"user_id": "a\u0001"})",
       {{"user_id", "must not contain control characters (U+0001 at byte 1)"}}},
      {"user_id newline", R"({"user_id": "a\nb"})", {{"user_id", "(U+000A at byte 1)"}}},
      {"user_id NUL", R"({"user_id": "a\u0000"})", {{"user_id", "(U+0000 at byte 1)"}}},
      {"user_id DEL", R"({"user_id": "ab\u007f"})", {{"user_id", "(U+007F at byte 2)"}}},
      {"user_id C1", R"({"user_id": "a\u0085"})", {{"user_id", "(U+0085 at byte 1)"}}},
      {"user_id last C1", R"({"user_id": "a\u009f"})", {{"user_id", "(U+009F at byte 1)"}}},
      {"user_id first after C1 is fine", R"({"user_id": "a\u00a1"})", {}},
      {"user_id too long and control: both",
       R"({"user_id": "abcdefgh\u0001"})",
       {{"user_id", "at most 8 bytes (got 9)"}, {"user_id", "control characters"}}},
      {"user_id not UTF-8",
       R"({"user_id": "x"})",
       {{"user_id", "must be valid UTF-8 (bad byte at offset 1)"}},
       [](IdentifyUserRequest& r) { r.set_user_id("a\xff"); }},
      {"user_id surrogate",
       R"({"user_id": "x"})",
       {{"user_id", "must be valid UTF-8"}},
       [](IdentifyUserRequest& r) { r.set_user_id("\xed\xa0\x80"); }},
      {"user_id overlong",
       R"({"user_id": "x"})",
       {{"user_id", "must be valid UTF-8"}},
       [](IdentifyUserRequest& r) { r.set_user_id("\xc0\xaf"); }},
      // Metadata values.
      {"nested object",
       R"({"user_id": "u", "metadata": {"plan": {"a": 1}}})",
       {{"metadata.plan", "must be a string, number, boolean or null, not an object"}}},
      {"empty nested object",
       R"({"user_id": "u", "metadata": {"plan": {}}})",
       {{"metadata.plan", "not an object"}}},
      {"list",
       R"({"user_id": "u", "metadata": {"tags": ["a"]}})",
       {{"metadata.tags", "must be a string, number, boolean or null, not a list"}}},
      {"value with no kind",
       R"({"user_id": "u"})",
       {{"metadata.x", "no value is set"}},
       [](IdentifyUserRequest& r) { (*r.mutable_metadata()->mutable_fields())["x"]; }},
      {"NaN",
       R"({"user_id": "u"})",
       {{"metadata.n", "must be a finite number (got NaN)"}},
       [](IdentifyUserRequest& r) {
         SetValue(r.mutable_metadata(), "n", std::numeric_limits<double>::quiet_NaN());
       }},
      {"infinity",
       R"({"user_id": "u"})",
       {{"metadata.n", "(got Infinity)"}},
       [](IdentifyUserRequest& r) { SetValue(r.mutable_metadata(), "n", HUGE_VAL); }},
      {"minus infinity",
       R"({"user_id": "u"})",
       {{"metadata.n", "(got -Infinity)"}},
       [](IdentifyUserRequest& r) { SetValue(r.mutable_metadata(), "n", -HUGE_VAL); }},
      {"huge finite number", R"({"user_id": "u", "metadata": {"n": 1.7e308, "m": -0.0}})", {}},
      {"string value at limit", R"({"user_id": "u", "metadata": {"s": "abcde"}})", {}},
      {"string value one over",
       R"({"user_id": "u", "metadata": {"s": "abcdef"}})",
       {{"metadata.s", "must be at most 5 bytes (got 6)"}}},
      {"string value may hold newlines and tabs",
       R"({"user_id": "u", "metadata": {"s": "a\n\tb"}})",
       {}},
      {"string value NUL",
       R"({"user_id": "u", "metadata": {"s": "a\u0000b"}})",
       {{"metadata.s", "must not contain U+0000"}}},
      {"string value not UTF-8",
       R"({"user_id": "u"})",
       {{"metadata.s", "must be valid UTF-8 (bad byte at offset 0)"}},
       [](IdentifyUserRequest& r) {
         (*r.mutable_metadata()->mutable_fields())["s"].set_string_value("\x80");
       }},
      {"empty string value is fine", R"({"user_id": "u", "metadata": {"s": ""}})", {}},
      // Metadata keys.
      {"keys at limit", R"({"user_id": "u", "metadata": {"a": 1, "b": 2, "c": 3, "d": 4}})", {}},
      {"keys one over",
       R"({"user_id": "u", "metadata": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}})",
       {{"metadata", "must have at most 4 keys (got 5)"}}},
      {"empty key",
       R"({"user_id": "u", "metadata": {"": 1}})",
       {{R"(metadata[""])", "key must not be empty"}}},
      {"key at limit", R"({"user_id": "u", "metadata": {"abcdefghij": 1}})", {}},
      {"key one over",
       R"({"user_id": "u", "metadata": {"abcdefghijk": 1}})",
       {{"metadata.abcdefghijk", "key must be at most 10 bytes (got 11)"}}},
      {"multibyte key one over",
       R"({"user_id": "u", "metadata": {"ééééé1": 1}})",
       {{R"(metadata["ééééé1"])", "key must be at most 10 bytes (got 11)"}}},
      {"key with control character",
       R"({"user_id": "u", "metadata": {"a\tb": 1}})",
       {{R"(metadata["a\u0009b"])", "key must not contain control characters (U+0009 at byte 1)"}}},
      {"key with C1",
       R"({"user_id": "u", "metadata": {"a\u0080": 1}})",
       {{R"(metadata["a\u0080"])", "key must not contain control characters (U+0080"}}},
      {"key not UTF-8",
       R"({"user_id": "u"})",
       {{R"(metadata["a\xFF"])", "key must be valid UTF-8 (bad byte at offset 1)"}},
       [](IdentifyUserRequest& r) {
         (*r.mutable_metadata()->mutable_fields())["a\xff"].set_bool_value(true);
       }},
      {"odd key quoted in path",
       R"({"user_id": "u", "metadata": {"a.b": {}}})",
       {{R"(metadata["a.b"])", "not an object"}}},
      {"quote and backslash escaped in path",
       R"({"user_id": "u", "metadata": {"\"\\": []}})",
       {{R"(metadata["\"\\"])", "not a list"}}},
      {"non-ASCII key kept readable",
       R"({"user_id": "u", "metadata": {"plän": []}})",
       {{R"(metadata["plän"])", "not a list"}}},
      {"user metadata may use company_id and id",
       R"({"user_id": "u",
           "metadata": {"company_id": 1, "id": 2}})",
       {}},
      // Company.
      {"company without id",
       R"({"user_id": "u", "company": {}})",
       {{"company.company_id", "is required when company is set"}}},
      {"company with metadata but no id",
       R"({"user_id": "u", "company": {"metadata": {"a": 1}}})",
       {{"company.company_id", "is required when company is set"}}},
      {"company id blank",
       R"({"user_id": "u", "company": {"company_id": " "}})",
       {{"company.company_id", "must not be only whitespace"}}},
      {"company id at limit", R"({"user_id": "u", "company": {"company_id": "12345678"}})", {}},
      {"company id one over",
       R"({"user_id": "u", "company": {"company_id": "123456789"}})",
       {{"company.company_id", "must be at most 8 bytes (got 9)"}}},
      {"company id control",
       R"({"user_id": "u", "company": {"company_id": "c\r"}})",
       {{"company.company_id", "control characters (U+000D"}}},
      {"company metadata reserved keys",
       R"({"user_id": "u", "company": {"company_id": "c", "metadata": {"company_id": "x", "id": 1}}})",
       {{"company.metadata.company_id", "is a reserved key"},
        {"company.metadata.id", "set company.company_id instead"}}},
      {"reserved keys are case-sensitive",
       R"({"user_id": "u", "company": {"company_id": "c", "metadata": {"ID": 1, "Company_Id": 2}}})",
       {}},
      {"company metadata nested",
       R"({"user_id": "u",
           "company": {"company_id": "c", "metadata": {"x": {"y": 1}}}})",
       {{"company.metadata.x", "not an object"}}},
      {"company metadata keys one over",
       R"({"user_id": "u",
           "company": {"company_id": "c", "metadata": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}}})",
       {{"company.metadata", "must have at most 4 keys (got 5)"}}},
      // Several at once, in field order, metadata keys sorted.
      {"every violation at once",
       R"({"metadata": {"z": [], "a": {}, "": 1},
           "company": {"metadata": {"id": "x"}}})",
       {{"user_id", "is required"},
        {R"(metadata[""])", "key must not be empty"},
        {"metadata.a", "not an object"},
        {"metadata.z", "not a list"},
        {"company.company_id", "is required when company is set"},
        {"company.metadata.id", "is a reserved key"}}},
  };
  RunTable(RequestValidator(TestLimits()), table);
}

TEST(RequestValidatorTest, IdentifyCompany) {
  const std::vector<Case<IdentifyCompanyRequest>> table = {
      {"minimal", R"({"company_id": "c1"})", {}},
      {"metadata may use company_id and id (it is nested upstream)",
       R"({"company_id": "c1", "metadata": {"company_id": "x", "id": 1, "n": null}})",
       {}},
      {"company_id missing", R"({"metadata": {"a": 1}})", {{"company_id", "is required"}}},
      {"company_id blank",
       R"({"company_id": "\u2028"})",
       {{"company_id", "must not be only whitespace"}}},
      {"company_id at limit", R"({"company_id": "abcdefgh"})", {}},
      {"company_id one over",
       R"({"company_id": "abcdefghi"})",
       {{"company_id", "must be at most 8 bytes (got 9)"}}},
      {"company_id control",
       R"({"company_id": "\u001bc"})",
       {{"company_id", "(U+001B at byte 0)"}}},
      {"company_id not UTF-8",
       R"({"company_id": "x"})",
       {{"company_id", "valid UTF-8"}},
       [](IdentifyCompanyRequest& r) { r.set_company_id("\xf4\x90\x80\x80"); }},
      {"metadata nested and too many keys",
       R"({"company_id": "c", "metadata": {"a": [1], "b": 2, "c": 3, "d": 4, "e": 5}})",
       {{"metadata", "must have at most 4 keys (got 5)"}, {"metadata.a", "not a list"}}},
      {"metadata string one over",
       R"({"company_id": "c", "metadata": {"s": "123456"}})",
       {{"metadata.s", "at most 5 bytes (got 6)"}}},
  };
  RunTable(RequestValidator(TestLimits()), table);
}

TEST(RequestValidatorTest, BulkIdentifyUsers) {
  const std::vector<Case<BulkIdentifyUsersRequest>> table = {
      {"one row", R"({"users": [{"user_id": "u1"}]})", {}},
      {"rows at limit, with optional fields",
       R"({"users": [{"user_id": "u1", "company_id": "c1", "metadata": {"plan": "pro"}},
                     {"user_id": "u2", "metadata": {"company_id": "x"}},
                     {"user_id": "u3", "company_id": ""}]})",
       {}},
      {"no rows", R"({})", {{"users", "must have at least 1 row"}}},
      {"rows one over",
       R"({"users": [{"user_id": "1"}, {"user_id": "2"}, {"user_id": "3"}, {"user_id": "4"}]})",
       {{"users", "must have at most 3 rows (got 4)"}}},
      {"row ids",
       R"({"users": [{"user_id": "ok"}, {}, {"user_id": "u", "company_id": "c\u0007"}]})",
       {{"users[1].user_id", "is required"},
        {"users[2].company_id", "control characters (U+0007 at byte 1)"}}},
      {"row company_id blank when present",
       R"({"users": [{"user_id": "u", "company_id": "  "}]})",
       {{"users[0].company_id", "must not be only whitespace"}}},
      {"row company_id one over",
       R"({"users": [{"user_id": "u", "company_id": "123456789"}]})",
       {{"users[0].company_id", "at most 8 bytes (got 9)"}}},
      {"row metadata",
       R"({"users": [{"user_id": "u", "metadata": {"plan": {}, "a.b": [], "ok": 1}}]})",
       {{R"(users[0].metadata["a.b"])", "not a list"},
        {"users[0].metadata.plan", "not an object"}}},
      {"row metadata NaN",
       R"({"users": [{"user_id": "u"}]})",
       {{"users[0].metadata.n", "finite number"}},
       [](BulkIdentifyUsersRequest& r) {
         SetValue(r.mutable_users(0)->mutable_metadata(), "n", std::nan(""));
       }},
      {"too many rows and bad rows together",
       R"({"users": [{"user_id": "1"}, {}, {"user_id": "3"}, {"user_id": " "}]})",
       {{"users", "at most 3 rows (got 4)"},
        {"users[1].user_id", "is required"},
        {"users[3].user_id", "only whitespace"}}},
  };
  RunTable(RequestValidator(TestLimits()), table);
}

TEST(RequestValidatorTest, BulkIdentifyCompanies) {
  const std::vector<Case<BulkIdentifyCompaniesRequest>> table = {
      {"one row", R"({"companies": [{"company_id": "c1"}]})", {}},
      {"rows at limit",
       R"({"companies": [{"company_id": "1", "metadata": {"company_id": "x"}},
                         {"company_id": "2"}, {"company_id": "3"}]})",
       {}},
      {"no rows", R"({"companies": []})", {{"companies", "must have at least 1 row"}}},
      {"rows one over",
       R"({"companies": [{"company_id": "1"}, {"company_id": "2"}, {"company_id": "3"},
                         {"company_id": "4"}]})",
       {{"companies", "must have at most 3 rows (got 4)"}}},
      {"row violations",
       R"({"companies": [{}, {"company_id": "c", "metadata": {"x": [], "abcdefghijk": "123456"}}]})",
       {{"companies[0].company_id", "is required"},
        {"companies[1].metadata.abcdefghijk", "key must be at most 10 bytes (got 11)"},
        {"companies[1].metadata.abcdefghijk", "must be at most 5 bytes (got 6)"},
        {"companies[1].metadata.x", "not a list"}}},
  };
  RunTable(RequestValidator(TestLimits()), table);
}

TEST(RequestValidatorTest, TrackEvent) {
  const std::vector<Case<TrackEventRequest>> table = {
      {"minimal", R"({"user_id": "u", "event_name": "purchase"})", {}},
      {"with metadata",
       R"({"user_id": "u", "event_name": "purchase", "metadata": {"amount": 9.5, "sku": "x"}})",
       {}},
      {"both missing", R"({})", {{"user_id", "is required"}, {"event_name", "is required"}}},
      {"event_name blank",
       R"({"user_id": "u", "event_name": " "})",
       {{"event_name", "must not be only whitespace"}}},
      {"event_name at limit", R"({"user_id": "u", "event_name": "abcdefghij"})", {}},
      {"event_name one over",
       R"({"user_id": "u", "event_name": "abcdefghijk"})",
       {{"event_name", "must be at most 10 bytes (got 11)"}}},
      {"event_name control",
       R"({"user_id": "u", "event_name": "a\u0085b"})",
       {{"event_name", "control characters (U+0085 at byte 1)"}}},
      {"event_name not UTF-8",
       R"({"user_id": "u"})",
       {{"event_name", "valid UTF-8"}},
       [](TrackEventRequest& r) { r.set_event_name("\xe0\x80\x80"); }},
      {"user_id one over and nested metadata",
       R"({"user_id": "123456789", "event_name": "e", "metadata": {"x": {"y": {}}}})",
       {{"user_id", "at most 8 bytes (got 9)"}, {"metadata.x", "not an object"}}},
  };
  RunTable(RequestValidator(TestLimits()), table);
}

TEST(RequestValidatorTest, ListJobs) {
  const std::vector<Case<ListJobsRequest>> table = {
      {"empty", R"({})", {}},
  };
  RunTable(RequestValidator(TestLimits()), table);
}

TEST(RequestValidatorTest, GetJob) {
  const std::vector<Case<GetJobRequest>> table = {
      {"Userpilot-style id", R"({"job_id": "bulk:jobs:NX-ac5"})", {}},
      {"slashes and dot segments inside are allowed", R"({"job_id": "a/../b"})", {}},
      {"leading dot-dot is allowed", R"({"job_id": "../x"})", {}},
      {"three dots are allowed", R"({"job_id": "..."})", {}},
      {"percent and query characters are allowed", R"({"job_id": "a%2F?b#c"})", {}},
      {"missing", R"({})", {{"job_id", "is required"}}},
      {"blank", R"({"job_id": "  "})", {{"job_id", "must not be only whitespace"}}},
      {"dot", R"({"job_id": "."})", {{"job_id", R"(must not be "." or "..")"}}},
      {"dot-dot", R"({"job_id": ".."})", {{"job_id", R"(must not be "." or "..")"}}},
      {"at limit", R"({"job_id": "0123456789abcdef"})", {}},
      {"one over",
       R"({"job_id": "0123456789abcdefg"})",
       {{"job_id", "must be at most 16 bytes (got 17)"}}},
      {"control", R"({"job_id": "a\u0000b"})", {{"job_id", "(U+0000 at byte 1)"}}},
      {"line break (header injection)",
       R"({"job_id": "a\r\nX: y"})",
       {{"job_id", "(U+000D at byte 1)"}}},
      {"not UTF-8",
       R"({"job_id": "x"})",
       {{"job_id", "valid UTF-8"}},
       [](GetJobRequest& r) { r.set_job_id("ok\xc3"); }},
  };
  RunTable(RequestValidator(TestLimits()), table);
}

TEST(RequestValidatorTest, DeleteUsers) {
  const std::vector<Case<DeleteUsersRequest>> table = {
      {"one id", R"({"user_ids": ["u1"]})", {}},
      {"ids at limit", R"({"user_ids": ["1", "2", "3"]})", {}},
      {"duplicates are allowed", R"({"user_ids": ["u1", "u1"]})", {}},
      {"no ids", R"({})", {{"user_ids", "must have at least 1 id"}}},
      {"ids one over",
       R"({"user_ids": ["1", "2", "3", "4"]})",
       {{"user_ids", "must have at most 3 ids (got 4)"}}},
      {"bad ids",
       R"({"user_ids": ["ok", "", "a\u0001", " "]})",
       {{"user_ids", "at most 3 ids (got 4)"},
        {"user_ids[1]", "is required"},
        {"user_ids[2]", "control characters (U+0001 at byte 1)"},
        {"user_ids[3]", "must not be only whitespace"}}},
      {"id at limit", R"({"user_ids": ["abcdefgh"]})", {}},
      {"id one over",
       R"({"user_ids": ["abcdefghi"]})",
       {{"user_ids[0]", "must be at most 8 bytes (got 9)"}}},
      {"id not UTF-8",
       R"({"user_ids": ["x"]})",
       {{"user_ids[0]", "valid UTF-8"}},
       [](DeleteUsersRequest& r) { r.set_user_ids(0, "\xff"); }},
  };
  RunTable(RequestValidator(TestLimits()), table);
}

TEST(RequestValidatorTest, DeleteCompanies) {
  const std::vector<Case<DeleteCompaniesRequest>> table = {
      {"one id", R"({"company_ids": ["c1"]})", {}},
      {"ids at limit with duplicates", R"({"company_ids": ["c", "c", "c"]})", {}},
      {"no ids", R"({"company_ids": []})", {{"company_ids", "must have at least 1 id"}}},
      {"ids one over",
       R"({"company_ids": ["1", "2", "3", "4"]})",
       {{"company_ids", "must have at most 3 ids (got 4)"}}},
      {"bad ids",
       R"({"company_ids": ["", "123456789", "\u00a0"]})",
       {{"company_ids[0]", "is required"},
        {"company_ids[1]", "at most 8 bytes (got 9)"},
        {"company_ids[2]", "must not be only whitespace"}}},
  };
  RunTable(RequestValidator(TestLimits()), table);
}

}  // namespace
}  // namespace userpilot::gateway
