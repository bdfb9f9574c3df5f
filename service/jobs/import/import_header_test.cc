#include "service/jobs/import/import_header.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

constexpr auto kUsers = v1::IMPORT_TARGET_USERS_BULK;
constexpr auto kImport = v1::IMPORT_TARGET_HISTORICAL_IMPORT;
constexpr auto kNdjson = v1::IMPORT_FORMAT_NDJSON;
constexpr auto kCsv = v1::IMPORT_FORMAT_CSV;

// The BadRequest field of an error ("" when none).
std::string Field(const CallStatus& status) {
  auto bad = wire::Detail<google::rpc::BadRequest>(status);
  return bad && bad->field_violations_size() > 0 ? bad->field_violations(0).field() : "";
}

TEST(ImportHeaderTest, RequiresTargetAndFormatAndAllowsCsvOnlyForImports) {
  const ImportLimits limits;
  v1::ImportHeader header;
  CallStatus status = ValidateImportHeader(header, limits);
  auto bad = wire::Detail<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad.has_value());
  ASSERT_EQ(bad->field_violations_size(), 2);
  EXPECT_EQ(bad->field_violations(0).field(), "header.target");
  EXPECT_EQ(bad->field_violations(1).field(), "header.format");
  header.set_target(kUsers);
  header.set_format(kCsv);
  EXPECT_THAT(ValidateImportHeader(header, limits).message(), HasSubstr("must be NDJSON"));
  header.set_format(kNdjson);
  EXPECT_TRUE(ValidateImportHeader(header, limits).ok());
  EXPECT_EQ(ImportFilename(header), "import.ndjson");
  header.set_target(kImport);
  header.set_format(kCsv);
  EXPECT_TRUE(ValidateImportHeader(header, limits).ok());
  EXPECT_EQ(ImportFilename(header), "import.csv");
}

TEST(ImportHeaderTest, FilenameRules) {
  const ImportLimits limits;
  v1::ImportHeader header;
  header.set_target(kImport);
  header.set_format(kCsv);
  for (const char* bad_name : {"a/b.csv", "a\"b", "a\\b", "a\nb", " ", "\xff.csv"}) {
    header.set_filename(bad_name);
    EXPECT_EQ(Field(ValidateImportHeader(header, limits)), "header.filename") << bad_name;
  }
  header.set_filename(std::string(256, 'a'));
  EXPECT_EQ(Field(ValidateImportHeader(header, limits)), "header.filename");
  header.set_filename("événements 2024.csv");
  EXPECT_TRUE(ValidateImportHeader(header, limits).ok());
  EXPECT_EQ(ImportFilename(header), "événements 2024.csv");
}

TEST(ImportHeaderTest, AnnouncedSizeMustFitTheLimit) {
  ImportLimits limits;
  limits.max_file_bytes = 1000;
  v1::ImportHeader header;
  header.set_target(kUsers);
  header.set_format(kNdjson);
  header.set_size_bytes(1000);
  EXPECT_TRUE(ValidateImportHeader(header, limits).ok());
  header.set_size_bytes(1001);
  CallStatus status = ValidateImportHeader(header, limits);
  EXPECT_EQ(Field(status), "header.size_bytes");
  EXPECT_THAT(status.message(), HasSubstr("the limit is 1000 bytes"));
  header.set_size_bytes(-1);
  status = ValidateImportHeader(header, limits);
  EXPECT_EQ(Field(status), "header.size_bytes");
  EXPECT_THAT(status.message(), HasSubstr("must not be negative"));
}

}  // namespace
}  // namespace userpilot::gateway
