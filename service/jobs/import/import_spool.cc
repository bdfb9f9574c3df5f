#include "service/jobs/import/import_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/http/body_source.h"

namespace userpilot::gateway {
namespace {

std::string SpoolDir(const std::string& dir) {
  if (!dir.empty()) return dir;
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

// A nameless file in `dir`: O_TMPFILE where supported, else mkstemp and unlink at once.
absl::StatusOr<int> NamelessFile(const std::string& dir) {
#ifdef O_TMPFILE
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    return absl::InternalError(
        absl::StrCat("cannot create an import spool file in '", dir, "': ", std::strerror(errno)));
  }
#endif
  std::string path = absl::StrCat(dir, "/upgw-import-XXXXXX");
  std::vector<char> buffer(path.begin(), path.end());
  buffer.push_back('\0');
  const int named = ::mkostemp(buffer.data(), O_CLOEXEC);
  if (named < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create an import spool file in '", dir, "': ", std::strerror(errno)));
  }
  ::unlink(buffer.data());
  return named;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ImportSpool>> ImportSpool::Create(const std::string& dir,
                                                                 const v1::ImportHeader& header,
                                                                 const ImportLimits& limits) {
  absl::StatusOr<int> fd = NamelessFile(SpoolDir(dir));
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<ImportSpool>(new ImportSpool(*fd, header, limits));
}

ImportSpool::ImportSpool(int fd, const v1::ImportHeader& header, const ImportLimits& limits)
    : fd_(fd), validator_(header.target(), header.format(), limits) {}

ImportSpool::~ImportSpool() { ::close(fd_); }

CallStatus ImportSpool::Append(absl::string_view chunk) {
  if (CallStatus valid = validator_.Feed(chunk); !valid.ok()) return valid;
  while (!chunk.empty()) {
    const ssize_t n = ::write(fd_, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(
          absl::StrCat("cannot write the import spool file: ", std::strerror(errno)));
    }
    chunk.remove_prefix(static_cast<size_t>(n));
    size_ += n;
  }
  return absl::OkStatus();
}

CallStatus ImportSpool::Finish() { return validator_.Finish(); }

absl::StatusOr<std::shared_ptr<const HttpBodySource>> ImportSpool::Contents() const {
  const int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot reopen the import spool file: ", std::strerror(errno)));
  }
  absl::StatusOr<std::shared_ptr<const FileBodySource>> source = FileBodySource::Adopt(fd);
  if (!source.ok()) return source.status();
  return std::shared_ptr<const HttpBodySource>(*std::move(source));
}

}  // namespace userpilot::gateway
