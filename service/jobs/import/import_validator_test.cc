#include "service/jobs/import/import_validator.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

constexpr auto kUsers = v1::IMPORT_TARGET_USERS_BULK;
constexpr auto kCompanies = v1::IMPORT_TARGET_COMPANIES_BULK;
constexpr auto kImport = v1::IMPORT_TARGET_HISTORICAL_IMPORT;
constexpr auto kNdjson = v1::IMPORT_FORMAT_NDJSON;
constexpr auto kCsv = v1::IMPORT_FORMAT_CSV;

// Feeds `file` in pieces of `piece` bytes, then finishes.
CallStatus Validate(v1::ImportTarget target, v1::ImportFormat format, const std::string& file,
                    size_t piece = 0, ImportLimits limits = {}) {
  ImportFileValidator validator(target, format, limits);
  if (piece == 0) piece = file.size() + 1;
  for (size_t i = 0; i < file.size(); i += piece) {
    if (CallStatus s = validator.Feed(file.substr(i, piece)); !s.ok()) return s;
  }
  return validator.Finish();
}

// The BadRequest field of an error ("" when none).
std::string Field(const CallStatus& status) {
  auto bad = wire::Detail<google::rpc::BadRequest>(status);
  return bad && bad->field_violations_size() > 0 ? bad->field_violations(0).field() : "";
}

struct Case {
  std::string name;
  v1::ImportTarget target;
  v1::ImportFormat format;
  std::string file;
  std::string field;    // Expected BadRequest field; "" means valid.
  std::string message;  // Expected in the message.
};

class ImportValidatorTableTest : public ::testing::TestWithParam<Case> {};

TEST_P(ImportValidatorTableTest, AnySplitGivesTheSameVerdict) {
  const Case& c = GetParam();
  // Every chunk size from 1 byte to the whole file: lines and BOMs span chunks.
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{0}}) {
    SCOPED_TRACE(absl::StrCat("piece ", piece));
    const CallStatus status = Validate(c.target, c.format, c.file, piece);
    if (c.field.empty()) {
      EXPECT_TRUE(status.ok()) << status;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
      EXPECT_EQ(Field(status), c.field) << status;
      EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Files, ImportValidatorTableTest,
    ::testing::ValuesIn(std::vector<Case>{
        {"users_ok", kUsers, kNdjson,
         "{\"user_id\":\"u1\",\"company_id\":\"c1\",\"metadata\":{\"plan\":\"pro\",\"seats\":3,"
         "\"trial\":false,\"gone\":null}}\n{\"user_id\":\"u2\"}\n",
         "", ""},
        {"users_crlf_blank_lines_no_final_newline", kUsers, kNdjson,
         "\r\n{\"user_id\":\"u1\"}\r\n   \r\n{\"user_id\":\"u2\"}", "", ""},
        {"users_bom", kUsers, kNdjson, "\xEF\xBB\xBF{\"user_id\":\"u1\"}\n", "file line 1",
         "byte order mark"},
        {"users_bom_prefix_is_content", kUsers, kNdjson, "\xEF\xBB{\"user_id\":\"u1\"}\n",
         "file line 1", "one JSON object"},
        {"users_missing_id", kUsers, kNdjson, "{\"user_id\":\"u1\"}\n\n{\"name\":\"x\"}\n",
         "file line 3.user_id", "is required"},
        {"users_numeric_id", kUsers, kNdjson, "{\"user_id\":7}\n", "file line 1.user_id",
         "must be a string, not a number"},
        {"users_blank_company", kUsers, kNdjson, "{\"user_id\":\"u\",\"company_id\":\" \"}\n",
         "file line 1.company_id", "must not be only whitespace"},
        {"users_nested_metadata", kUsers, kNdjson,
         "{\"user_id\":\"u\"}\n{\"user_id\":\"u\",\"metadata\":{\"a\":{\"b\":1}}}\n",
         "file line 2.metadata.a", "must be a string, number, boolean or null, not an object"},
        {"users_metadata_array", kUsers, kNdjson,
         "{\"user_id\":\"u\",\"metadata\":{\"tags\":[1]}}\n", "file line 1.metadata.tags",
         "not a list"},
        {"users_metadata_not_object", kUsers, kNdjson, "{\"user_id\":\"u\",\"metadata\":3}\n",
         "file line 1.metadata", "must be an object, not a number"},
        {"users_not_json", kUsers, kNdjson, "{\"user_id\":\"u\"}\n{\"user_id\":\n", "file line 2",
         "not a valid JSON object"},
        {"users_array_line", kUsers, kNdjson, "[1,2]\n", "file line 1", "one JSON object"},
        {"users_empty_file", kUsers, kNdjson, "\n \n", "file", "no rows"},
        {"companies_ok", kCompanies, kNdjson, "{\"company_id\":\"c1\",\"metadata\":{\"x\":1}}\n",
         "", ""},
        {"companies_user_row", kCompanies, kNdjson, "{\"user_id\":\"u1\"}\n",
         "file line 1.company_id", "is required"},
        {"import_ok", kImport, kNdjson,
         "{\"event_type\":\"track\",\"user_id\":\"u1\",\"event_name\":\"x\",\"source\":"
         "\"backend-http-import\",\"inserted_at\":\"2024-07-28 08:55:35.874555\"}\n"
         "{\"event_type\":\"identify_company\",\"company_id\":\"c1\"}\n"
         "{\"event_type\":\"page_view\",\"user_id\":\"u1\",\"metadata\":{\"url\":\"/a\"}}\n",
         "", ""},
        {"import_unknown_event", kImport, kNdjson, "{\"event_type\":\"click\",\"user_id\":\"u\"}\n",
         "file line 1.event_type", "must be identify_user, identify_company, page_view or track"},
        {"import_missing_event", kImport, kNdjson, "{\"user_id\":\"u\"}\n",
         "file line 1.event_type", "is required"},
        {"import_company_event_needs_company", kImport, kNdjson,
         "{\"event_type\":\"identify_company\",\"user_id\":\"u\"}\n", "file line 1.company_id",
         "is required"},
        {"import_track_needs_a_name", kImport, kNdjson,
         "{\"event_type\":\"track\",\"user_id\":\"u\"}\n", "file line 1.event_name",
         "is required for track events"},
        {"import_bad_inserted_at", kImport, kNdjson,
         "{\"event_type\":\"page_view\",\"user_id\":\"u\",\"inserted_at\":17}\n",
         "file line 1.inserted_at", "must be a string, not a number"},
        {"csv_ok", kImport, kCsv,
         "event_type,user_id,event_name,note\r\ntrack,u1,x,\"a, \"\"quoted\"\"\nvalue\"\r\n\r\n"
         "page_view,u2,,\n",
         "", ""},
        {"csv_company_rows_no_final_newline", kImport, kCsv,
         "event_type,company_id\nidentify_company,c1", "", ""},
        {"csv_bom", kImport, kCsv,
         "\xEF\xBB\xBF"
         "event_type,user_id\npage_view,u1\n",
         "file line 1", "byte order mark"},
        {"csv_without_event_type", kImport, kCsv, "user_id,plan\nu1,pro\n", "file line 1",
         "no event_type column"},
        {"csv_without_ids", kImport, kCsv, "event_type,plan\npage_view,pro\n", "file line 1",
         "no user_id or company_id column"},
        {"csv_row_without_its_id", kImport, kCsv, "event_type,user_id\nidentify_company,u1\n",
         "file line 2.company_id", "is required"},
        {"csv_short_row", kImport, kCsv, "event_type,user_id,c\npage_view,u,3\n\npage_view,u\n",
         "file line 4", "has 2 columns, but the header row has 3"},
        {"csv_long_row_after_multiline_field", kImport, kCsv,
         "event_type,user_id,note\npage_view,u,\"x\ny\"\npage_view,u,3,4\n", "file line 4",
         "has 4 columns"},
        {"csv_row_starting_on_its_line", kImport, kCsv,
         "event_type,user_id\npage_view,\"multi\nline\",3\n", "file line 2", "has 3 columns"},
        {"csv_unclosed_quote", kImport, kCsv, "event_type,user_id\npage_view,\"open\n",
         "file line 2", "quoted field is not closed"},
        {"csv_junk_after_quote", kImport, kCsv, "event_type,user_id\n\"x\"y,2\n", "file line 2",
         "must end at a comma"},
        {"csv_empty_header_name", kImport, kCsv, "event_type,,user_id\n1,2,3\n", "file line 1",
         "empty column name (column 2)"},
        {"csv_header_only", kImport, kCsv, "event_type,user_id\n\n", "file", "no data rows"},
        {"csv_empty", kImport, kCsv, "", "file", "no header row"},
    }),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(ImportValidatorTest, SizeLimitRefusesTheChunkThatCrossesIt) {
  ImportLimits limits;
  limits.max_file_bytes = 100;
  ImportFileValidator validator(kUsers, kNdjson, limits);
  const std::string row = "{\"user_id\":\"u0000001\"}\n";  // 23 bytes.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(validator.Feed(row).ok());
  const CallStatus over = validator.Feed(row);
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Field(over), "file");
  EXPECT_THAT(over.message(), HasSubstr("the limit is 100 bytes"));
  EXPECT_EQ(validator.bytes(), 92);
  EXPECT_EQ(validator.Feed("x").code(), absl::StatusCode::kInvalidArgument) << "sticky";
  EXPECT_EQ(validator.Finish().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ImportValidatorTest, DefaultLimitIsFiftyMiBAndSaysSo) {
  ImportFileValidator validator(kImport, kCsv, ImportLimits());
  const CallStatus over = validator.Feed(std::string(50 * 1024 * 1024 + 1, 'a'));
  EXPECT_THAT(over.message(), HasSubstr("52428800 bytes (50 MiB)"));
}

TEST(ImportValidatorTest, BulkRowLimitNamesTheFirstRowOver) {
  ImportLimits limits;
  limits.rows.max_bulk_rows = 3;
  std::string file;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&file, "\n{\"company_id\":\"c", i, "\"}\n");
  const CallStatus status = Validate(kCompanies, kNdjson, file, 5, limits);
  EXPECT_EQ(Field(status), "file line 8");
  EXPECT_THAT(status.message(), HasSubstr("more than 3 rows"));
  // Historical imports have no row limit.
  std::string events;
  for (int i = 0; i < 5; ++i)
    absl::StrAppend(&events, "{\"event_type\":\"page_view\",\"user_id\":\"u\"}\n");
  EXPECT_TRUE(Validate(kImport, kNdjson, events, 0, limits).ok());
}

TEST(ImportValidatorTest, LongLinesAreRefusedWithoutBufferingThem) {
  ImportLimits limits;
  limits.max_line_bytes = 1024;
  const std::string file =
      absl::StrCat("{\"user_id\":\"u\"}\n{\"user_id\":\"", std::string(2000, 'x'), "\"}\n");
  const CallStatus status = Validate(kUsers, kNdjson, file, 100, limits);
  EXPECT_EQ(Field(status), "file line 2");
  EXPECT_THAT(status.message(), HasSubstr("longer than the gateway accepts (1024 bytes)"));
  const CallStatus csv = Validate(
      kImport, kCsv,
      absl::StrCat("event_type,user_id\npage_view,\"", std::string(2000, 'y'), "\"\n"), 64, limits);
  EXPECT_EQ(Field(csv), "file line 2");
}

TEST(ImportValidatorTest, CountsRows) {
  ImportFileValidator validator(kImport, kCsv, ImportLimits());
  ASSERT_TRUE(validator.Feed("event_type,user_id\npage_view,1\n\npage_view,2\n").ok());
  ASSERT_TRUE(validator.Finish().ok());
  EXPECT_EQ(validator.rows(), 2);
}

}  // namespace
}  // namespace userpilot::gateway
