#include "service/http/body_source.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

absl::Status ErrnoStatus(int error, absl::string_view what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status CheckOffset(int64_t offset, int64_t size) {
  if (offset < 0 || offset > size) {
    return absl::OutOfRangeError(
        absl::StrCat("body offset ", offset, " outside the body's ", size, " bytes"));
  }
  return absl::OkStatus();
}

std::string EscapeQuotedParameter(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '"') {
      out += "%22";
    } else if (c == '\r') {
      out += "%0D";
    } else if (c == '\n') {
      out += "%0A";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<size_t> StringBodySource::ReadAt(int64_t offset, char* buffer, size_t length) const {
  if (absl::Status ok = CheckOffset(offset, size()); !ok.ok()) return ok;
  const size_t start = static_cast<size_t>(offset);
  const size_t n = std::min(length, data_.size() - start);
  if (n > 0) std::memcpy(buffer, data_.data() + start, n);
  return n;
}

absl::StatusOr<std::shared_ptr<const FileBodySource>> FileBodySource::Adopt(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    return ErrnoStatus(error, "cannot inspect the body file");
  }
  return std::shared_ptr<const FileBodySource>(
      new FileBodySource(fd, static_cast<int64_t>(st.st_size)));
}

absl::StatusOr<std::shared_ptr<const FileBodySource>> FileBodySource::Open(
    const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot open '", path, "'"));
  return Adopt(fd);
}

FileBodySource::~FileBodySource() { ::close(fd_); }

absl::StatusOr<size_t> FileBodySource::ReadAt(int64_t offset, char* buffer, size_t length) const {
  if (absl::Status ok = CheckOffset(offset, size_); !ok.ok()) return ok;
  const size_t want = static_cast<size_t>(std::min<int64_t>(length, size_ - offset));
  size_t got = 0;
  while (got < want) {
    const ssize_t n = ::pread(fd_, buffer + got, want - got, offset + static_cast<int64_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot read the body file");
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat("the body file shrank: it ends at byte ",
                                              offset + static_cast<int64_t>(got), " of ", size_));
    }
    got += static_cast<size_t>(n);
  }
  return got;
}

ConcatBodySource::ConcatBodySource(std::vector<std::shared_ptr<const HttpBodySource>> parts)
    : parts_(std::move(parts)) {
  starts_.reserve(parts_.size());
  for (const auto& part : parts_) {
    starts_.push_back(size_);
    size_ += part->size();
  }
}

absl::StatusOr<size_t> ConcatBodySource::ReadAt(int64_t offset, char* buffer, size_t length) const {
  if (absl::Status ok = CheckOffset(offset, size_); !ok.ok()) return ok;
  // The last part starting at or before `offset`.
  size_t i = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                                 starts_.begin());
  i = i == 0 ? 0 : i - 1;
  size_t copied = 0;
  while (copied < length && i < parts_.size()) {
    const int64_t at = offset + static_cast<int64_t>(copied) - starts_[i];
    if (at >= parts_[i]->size()) {
      ++i;
      continue;
    }
    absl::StatusOr<size_t> n = parts_[i]->ReadAt(at, buffer + copied, length - copied);
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return absl::DataLossError("a body part returned no bytes before its end");
    }
    copied += *n;
  }
  return copied;
}

MultipartBody MakeMultipartFileBody(absl::string_view field, absl::string_view filename,
                                    absl::string_view file_content_type,
                                    std::shared_ptr<const HttpBodySource> file,
                                    std::string boundary) {
  if (boundary.empty()) boundary = RandomMultipartBoundary();
  std::string head =
      absl::StrCat("--", boundary, "\r\n", "Content-Disposition: form-data; name=\"",
                   EscapeQuotedParameter(field), "\"; filename=\"", EscapeQuotedParameter(filename),
                   "\"\r\n", "Content-Type: ", file_content_type, "\r\n\r\n");
  std::string tail = absl::StrCat("\r\n--", boundary, "--\r\n");
  MultipartBody body;
  body.content_type = absl::StrCat("multipart/form-data; boundary=", boundary);
  body.source =
      std::make_shared<ConcatBodySource>(std::vector<std::shared_ptr<const HttpBodySource>>{
          std::make_shared<StringBodySource>(std::move(head)), std::move(file),
          std::make_shared<StringBodySource>(std::move(tail))});
  return body;
}

std::string RandomMultipartBoundary() {
  static constexpr char kHex[] = "0123456789abcdef";
  absl::BitGen gen;
  std::string boundary = "upgw-";
  for (int i = 0; i < 32; ++i) boundary += kHex[absl::Uniform(gen, 0, 16)];
  return boundary;
}

absl::StatusOr<std::string> ReadWholeBody(const HttpBodySource& source) {
  std::string out(static_cast<size_t>(source.size()), '\0');
  size_t got = 0;
  while (got < out.size()) {
    absl::StatusOr<size_t> n =
        source.ReadAt(static_cast<int64_t>(got), out.data() + got, out.size() - got);
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::DataLossError("the body ended before its size");
    got += *n;
  }
  return out;
}

}  // namespace userpilot::gateway
