#include "service/jobs/import/import_row_rules.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "service/validation/request_validator.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr auto kUsers = v1::IMPORT_TARGET_USERS_BULK;
constexpr auto kImport = v1::IMPORT_TARGET_HISTORICAL_IMPORT;

// "field: description" for each violation of `status` (empty when OK).
std::vector<std::string> Violations(const CallStatus& status) {
  std::vector<std::string> out;
  auto bad = wire::Detail<google::rpc::BadRequest>(status);
  if (!bad.has_value()) return out;
  for (const auto& v : bad->field_violations()) {
    out.push_back(absl::StrCat(v.field(), ": ", v.description()));
  }
  return out;
}

std::vector<std::string> CheckLine(v1::ImportTarget target, absl::string_view line,
                                   int64_t number = 1) {
  JsonRowReader reader;
  JsonRow row;
  std::string error;
  EXPECT_TRUE(reader.Read(line, &row, &error)) << error;
  return Violations(ImportRowRules(target, ValidationLimits()).CheckJsonRow(row, number));
}

// The descriptions alone, with each field's prefix (`users[0].`, `file line 1.`) removed.
std::vector<std::string> WithoutPrefix(std::vector<std::string> violations,
                                       absl::string_view prefix) {
  for (std::string& v : violations) {
    if (absl::StartsWith(v, prefix)) v.erase(0, prefix.size());
  }
  return violations;
}

TEST(ImportRowRulesTest, NdjsonRowsAreRefusedAsTheUnaryCallsRefuseThem) {
  const std::string big_id(100 * 1024, 'i');
  std::string many_keys;
  for (int i = 0; i < 1000; ++i) absl::StrAppend(&many_keys, i ? "," : "", "\"k", i, "\":", i);
  const std::string big_value(10 * 1024, 'v');
  const std::string long_key(200, 'k');
  // Each row is a BulkUser written as JSON: the unary BulkIdentifyUsers call must refuse it
  // with exactly the descriptions the import gives, field for field.
  const std::vector<std::string> rows = {
      R"({"user_id":"a\u0000b"})",
      R"({"user_id":"a\nb"})",
      R"({"user_id":"   "})",
      absl::StrCat(R"({"user_id":")", big_id, R"("})"),
      R"({"user_id":"u","company_id":"c\u001f"})",
      absl::StrCat(R"({"user_id":"u","metadata":{)", many_keys, "}}"),
      absl::StrCat(R"({"user_id":"u","metadata":{"v":")", big_value, R"("}})"),
      R"({"user_id":"u","metadata":{"v":"a\u0000"}})",
      R"({"user_id":"u","metadata":{"":1,"tab\t":2}})",
      absl::StrCat(R"({"user_id":"u","metadata":{")", long_key, R"(":1}})"),
      R"({"user_id":"u","metadata":{"o":{"x":1},"l":[1]}})",
  };
  const RequestValidator unary;
  for (const std::string& line : rows) {
    SCOPED_TRACE(line.substr(0, 80));
    v1::BulkIdentifyUsersRequest request;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, request.add_users()).ok());
    const std::vector<std::string> expected =
        WithoutPrefix(Violations(unary.Validate(request)), "users[0].");
    ASSERT_THAT(expected, ::testing::Not(IsEmpty()));
    // The unary validator lists metadata keys sorted, the import in file order.
    EXPECT_THAT(WithoutPrefix(CheckLine(kUsers, line), "file line 1."),
                ::testing::UnorderedElementsAreArray(expected));
  }
}

TEST(ImportRowRulesTest, RepeatedKeysAreRefusedWhereverTheyAre) {
  EXPECT_THAT(CheckLine(kUsers, R"({"user_id":"u","metadata":{"a":{}},"metadata":{"b":1}})", 4),
              ElementsAre("file line 4.metadata: appears more than once in the row",
                          "file line 4.metadata.a: must be a string, number, boolean or null, "
                          "not an object"));
  EXPECT_THAT(CheckLine(kUsers, R"({"user_id":"u","user_id":"v","user_id":"w"})"),
              ElementsAre("file line 1.user_id: appears more than once in the row"));
  EXPECT_THAT(CheckLine(kUsers, R"({"user_id":"u","metadata":{"a":1,"b":2,"a":{}}})"),
              ElementsAre("file line 1.metadata.a: appears more than once in metadata",
                          "file line 1.metadata.a: must be a string, number, boolean or null, "
                          "not an object"));
}

TEST(ImportRowRulesTest, HistoricalImportRows) {
  EXPECT_THAT(CheckLine(kImport, R"({"event_type":"track","user_id":"u","event_name":"e"})"),
              IsEmpty());
  EXPECT_THAT(CheckLine(kImport, R"({"event_type":"page_view","user_id":"u","event_name":""})"),
              IsEmpty());
  EXPECT_THAT(CheckLine(kImport, R"({"event_type":"identify_company","company_id":"c"})"),
              IsEmpty());
  EXPECT_THAT(CheckLine(kImport, R"({"event_type":7,"user_id":"u"})"),
              ElementsAre("file line 1.event_type: must be a string, not a number"));
  EXPECT_THAT(
      CheckLine(kImport, absl::StrCat(R"({"event_type":"track","user_id":"u","event_name":")",
                                      std::string(300, 'e'), R"(","source":"s\u0000"})")),
      ElementsAre("file line 1.event_name: must be at most 256 bytes (got 300)",
                  "file line 1.source: must not contain U+0000 (NUL)"));
  EXPECT_THAT(
      CheckLine(kImport, R"({"event_type":"identify_user","user_id":"u","company_id":""})"),
      ElementsAre("file line 1.company_id: must not be empty (leave it out, or null, for none)"));
  EXPECT_THAT(CheckLine(kImport, R"({"event_type":"page_view","user_id":null})"),
              ElementsAre("file line 1.user_id: is required"));
  // Keys the rules do not know are passed through unchecked (but never twice).
  EXPECT_THAT(
      CheckLine(kImport, R"({"event_type":"page_view","user_id":"u","extra":{"deep":[{}]}})"),
      IsEmpty());
}

std::vector<absl::string_view> Cells(absl::string_view record) {
  return absl::StrSplit(record, ',');
}

TEST(ImportRowRulesTest, CsvHeaderNamesTheColumnsTheRowsNeed) {
  ImportRowRules rules(kImport, ValidationLimits());
  EXPECT_THAT(Violations(rules.SetCsvHeader(Cells("user_id,plan,plan"), 1)),
              ElementsAre("file line 1.plan: appears more than once in the header row",
                          "file line 1: the header row has no event_type column"));
  EXPECT_THAT(Violations(rules.SetCsvHeader(Cells("event_type,plan"), 1)),
              ElementsAre("file line 1: the header row has no user_id or company_id column"));
  EXPECT_THAT(Violations(rules.SetCsvHeader({"event_type", "user_id", "b\xff"}, 3)),
              ElementsAre("file line 3[\"b\\xFF\"]: key must be valid UTF-8 (bad byte at offset "
                          "1)"));
  EXPECT_TRUE(rules.SetCsvHeader(Cells("event_type,user_id,event_name,note"), 1).ok());
}

TEST(ImportRowRulesTest, CsvCellsFollowTheSameRules) {
  ImportRowRules rules(kImport, ValidationLimits());
  ASSERT_TRUE(rules.SetCsvHeader(Cells("event_type,user_id,event_name,note"), 1).ok());
  EXPECT_TRUE(rules.CheckCsvRecord(Cells("track,u1,signed_up,hello"), 2).ok());
  EXPECT_TRUE(rules.CheckCsvRecord(Cells("page_view,u1,,"), 2).ok());
  EXPECT_THAT(Violations(rules.CheckCsvRecord({"page_view", "u1", "", "bad\xC3"}, 5)),
              ElementsAre("file line 5.note: must be valid UTF-8 (bad byte at offset 3)"));
  EXPECT_THAT(Violations(rules.CheckCsvRecord({"page_view", "u1", "", std::string("a\0b", 3)}, 5)),
              ElementsAre("file line 5.note: must not contain U+0000 (NUL)"));
  EXPECT_THAT(Violations(rules.CheckCsvRecord({"page_view", std::string("u\0", 2), "", ""}, 6)),
              ElementsAre("file line 6.user_id: must not contain control characters (U+0000 at "
                          "byte 1)"));
  EXPECT_THAT(Violations(rules.CheckCsvRecord(Cells("track,u1,,"), 7)),
              ElementsAre("file line 7.event_name: is required for track events"));
  EXPECT_THAT(Violations(rules.CheckCsvRecord(Cells(",u1,,"), 8)),
              ElementsAre("file line 8.event_type: is required: identify_user, identify_company, "
                          "page_view or track"));
  EXPECT_THAT(Violations(rules.CheckCsvRecord(Cells("identify_company,u1,,"), 9)),
              ElementsAre("file line 9.company_id: is required"));
}

}  // namespace
}  // namespace userpilot::gateway
