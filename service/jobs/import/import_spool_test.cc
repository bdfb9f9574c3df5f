#include "service/jobs/import/import_spool.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/http/body_source.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

// A fresh empty directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char path[] = "/tmp/upgw-spool-test-XXXXXX";
    path_ = ::mkdtemp(path);
  }
  ~TempDir() { ::rmdir(path_.c_str()); }
  const std::string& path() const { return path_; }

  std::vector<std::string> Entries() const {
    std::vector<std::string> names;
    DIR* dir = ::opendir(path_.c_str());
    while (dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(dir);
    return names;
  }

 private:
  std::string path_;
};

v1::ImportHeader Header(v1::ImportTarget target, v1::ImportFormat format) {
  v1::ImportHeader header;
  header.set_target(target);
  header.set_format(format);
  return header;
}

TEST(ImportSpoolTest, SpoolsByteExactNamelessAndReadableAfterClose) {
  TempDir dir;
  auto spool = ImportSpool::Create(
      dir.path(), Header(v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON), {});
  ASSERT_TRUE(spool.ok()) << spool.status();
  EXPECT_TRUE(dir.Entries().empty()) << "the spool file has a name";
  std::string file;
  for (int i = 0; i < 1000; ++i) absl::StrAppend(&file, "{\"user_id\":\"u", i, "\"}\n");
  for (size_t i = 0; i < file.size(); i += 4096) {
    ASSERT_TRUE((*spool)->Append(file.substr(i, 4096)).ok());
  }
  ASSERT_TRUE((*spool)->Finish().ok());
  EXPECT_EQ((*spool)->size(), static_cast<int64_t>(file.size()));
  EXPECT_EQ((*spool)->rows(), 1000);
  auto contents = (*spool)->Contents();
  ASSERT_TRUE(contents.ok());
  spool->reset();  // The body source keeps the file readable.
  EXPECT_EQ(*ReadWholeBody(**contents), file);
  EXPECT_TRUE(dir.Entries().empty());
}

TEST(ImportSpoolTest, InvalidChunkIsNotWritten) {
  TempDir dir;
  auto spool = ImportSpool::Create(
      dir.path(), Header(v1::IMPORT_TARGET_COMPANIES_BULK, v1::IMPORT_FORMAT_NDJSON), {});
  ASSERT_TRUE(spool.ok());
  ASSERT_TRUE((*spool)->Append("{\"company_id\":\"c\"}\n").ok());
  const CallStatus bad = (*spool)->Append("{\"user_id\":\"u\"}\n");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("file line 2"));
  EXPECT_EQ((*spool)->size(), 19);
}

TEST(ImportSpoolTest, UnusableDirectoryIsInternalAndNamesIt) {
  auto spool = ImportSpool::Create(
      "/nonexistent/upgw", Header(v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV), {});
  EXPECT_EQ(spool.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(spool.status().message(), HasSubstr("/nonexistent/upgw"));
}

}  // namespace
}  // namespace userpilot::gateway
