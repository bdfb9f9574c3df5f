#include "service/http/body_source.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// Reads `source` in pieces of `piece` bytes.
std::string ReadInPieces(const HttpBodySource& source, size_t piece) {
  std::string out;
  std::string buffer(piece, '\0');
  int64_t offset = 0;
  while (true) {
    absl::StatusOr<size_t> n = source.ReadAt(offset, buffer.data(), piece);
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok() || *n == 0) break;
    out.append(buffer.data(), *n);
    offset += static_cast<int64_t>(*n);
  }
  return out;
}

// An unlinked temporary file holding `data`; returns its descriptor.
int TempFileWith(const std::string& data) {
  char path[] = "/tmp/upgw-body-test-XXXXXX";
  const int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  ::unlink(path);
  EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  return fd;
}

TEST(BodySourceTest, StringSourceReadsAnyPieceAndRefusesOffsetsPastTheEnd) {
  StringBodySource source("hello world");
  EXPECT_EQ(source.size(), 11);
  for (size_t piece : {1, 2, 3, 5, 11, 100}) {
    EXPECT_EQ(ReadInPieces(source, piece), "hello world") << piece;
  }
  char c;
  EXPECT_EQ(*source.ReadAt(11, &c, 1), 0u);
  EXPECT_EQ(source.ReadAt(12, &c, 1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(source.ReadAt(-1, &c, 1).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(BodySourceTest, FileSourceReadsPositionallyAndClosesItsDescriptor) {
  std::string data;
  for (int i = 0; i < 10000; ++i) absl::StrAppend(&data, i, "\n");
  const int fd = TempFileWith(data);
  {
    auto source = FileBodySource::Adopt(fd);
    ASSERT_TRUE(source.ok()) << source.status();
    EXPECT_EQ((*source)->size(), static_cast<int64_t>(data.size()));
    EXPECT_EQ(ReadInPieces(**source, 4096), data);
    EXPECT_EQ(ReadInPieces(**source, 7), data);  // Positional: a second pass starts at 0.
    char buffer[5];
    ASSERT_EQ(*(*source)->ReadAt(10, buffer, 5), 5u);
    EXPECT_EQ(std::string(buffer, 5), data.substr(10, 5));
  }
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "the descriptor is still open";
}

TEST(BodySourceTest, FileSourceThatShrankIsDataLoss) {
  const int fd = TempFileWith("0123456789");
  auto source = FileBodySource::Adopt(::dup(fd));
  ASSERT_TRUE(source.ok());
  ASSERT_EQ(::ftruncate(fd, 4), 0);
  ::close(fd);
  char buffer[10];
  EXPECT_EQ((*source)->ReadAt(0, buffer, 10).status().code(), absl::StatusCode::kDataLoss);
}

TEST(BodySourceTest, OpenOfAMissingFileIsNotFound) {
  auto source = FileBodySource::Open("/nonexistent/upgw/file");
  EXPECT_EQ(source.status().code(), absl::StatusCode::kNotFound);
}

TEST(BodySourceTest, ConcatReadsAcrossPartBoundariesAndSkipsEmptyParts) {
  std::vector<std::shared_ptr<const HttpBodySource>> parts = {
      std::make_shared<StringBodySource>("ab"), std::make_shared<StringBodySource>(""),
      std::make_shared<StringBodySource>("cde"), std::make_shared<StringBodySource>("f")};
  ConcatBodySource source(parts);
  EXPECT_EQ(source.size(), 6);
  for (size_t piece : {1, 2, 3, 4, 6, 9}) EXPECT_EQ(ReadInPieces(source, piece), "abcdef");
  char buffer[3];
  ASSERT_EQ(*source.ReadAt(1, buffer, 3), 3u);
  EXPECT_EQ(std::string(buffer, 3), "bcd");
  ASSERT_EQ(*source.ReadAt(5, buffer, 3), 1u);
  EXPECT_EQ(buffer[0], 'f');
}

TEST(BodySourceTest, MultipartFileBodyIsExactlyRfc7578) {
  MultipartBody body =
      MakeMultipartFileBody("file", "we\"ird\r\nname.csv", "text/csv",
                            std::make_shared<StringBodySource>("a,b\r\n1,2\r\n"), "XyZ");
  EXPECT_EQ(body.content_type, "multipart/form-data; boundary=XyZ");
  EXPECT_EQ(*ReadWholeBody(*body.source),
            "--XyZ\r\n"
            "Content-Disposition: form-data; name=\"file\"; filename=\"we%22ird%0D%0Aname.csv\"\r\n"
            "Content-Type: text/csv\r\n"
            "\r\n"
            "a,b\r\n1,2\r\n"
            "\r\n--XyZ--\r\n");
}

TEST(BodySourceTest, RandomBoundariesDiffer) {
  const std::string a = RandomMultipartBoundary();
  EXPECT_THAT(a, MatchesRegex("upgw-[0-9a-f]{32}"));
  EXPECT_NE(a, RandomMultipartBoundary());
  MultipartBody body =
      MakeMultipartFileBody("file", "x", "text/csv", std::make_shared<StringBodySource>("1"));
  EXPECT_THAT(body.content_type, HasSubstr("boundary=upgw-"));
}

}  // namespace
}  // namespace userpilot::gateway
