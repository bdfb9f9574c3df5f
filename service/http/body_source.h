// Request bodies read while they are sent (HttpBodySource, http_client.h): a string, a local
// file, their concatenation, and the multipart/form-data body of one file upload built from
// them, so that a large file travels from disk to the socket without ever sitting in memory.
//
//   auto file = FileBodySource::Adopt(fd);                    // takes ownership of fd
//   MultipartBody body = MakeMultipartFileBody("file", "users.ndjson",
//                                              "application/x-ndjson", *file);
//   request.headers.emplace_back("Content-Type", body.content_type);
//   request.body_source = body.source;
//
// Thread-safety: every source here is immutable after construction; ReadAt() is safe from any
// thread, concurrently (files are read with pread, which has no shared position).
#ifndef USERPILOT_GATEWAY_SERVICE_HTTP_BODY_SOURCE_H_
#define USERPILOT_GATEWAY_SERVICE_HTTP_BODY_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/http/http_client.h"

namespace userpilot::gateway {

// A body held in memory (the small parts around a streamed file).
class StringBodySource final : public HttpBodySource {
 public:
  explicit StringBodySource(std::string data) : data_(std::move(data)) {}
  int64_t size() const override { return static_cast<int64_t>(data_.size()); }
  absl::StatusOr<size_t> ReadAt(int64_t offset, char* buffer, size_t length) const override;

 private:
  const std::string data_;
};

// A local file's contents, read with pread. The size is taken once, at construction: the file
// must not change while the source is in use (a ReadAt that finds it shorter fails with
// DATA_LOSS rather than sending a body shorter than its Content-Length).
class FileBodySource final : public HttpBodySource {
 public:
  // Takes ownership of `fd` (closed by the destructor, also on error), which must be open for
  // reading. INTERNAL when it cannot be inspected.
  static absl::StatusOr<std::shared_ptr<const FileBodySource>> Adopt(int fd);
  // Opens `path` read-only. NOT_FOUND / PERMISSION_DENIED / INTERNAL as the OS says.
  static absl::StatusOr<std::shared_ptr<const FileBodySource>> Open(const std::string& path);

  ~FileBodySource() override;
  FileBodySource(const FileBodySource&) = delete;
  FileBodySource& operator=(const FileBodySource&) = delete;

  int64_t size() const override { return size_; }
  absl::StatusOr<size_t> ReadAt(int64_t offset, char* buffer, size_t length) const override;

 private:
  FileBodySource(int fd, int64_t size) : fd_(fd), size_(size) {}

  const int fd_;
  const int64_t size_;
};

// The parts, one after the other. Parts are shared, not copied.
class ConcatBodySource final : public HttpBodySource {
 public:
  explicit ConcatBodySource(std::vector<std::shared_ptr<const HttpBodySource>> parts);
  int64_t size() const override { return size_; }
  absl::StatusOr<size_t> ReadAt(int64_t offset, char* buffer, size_t length) const override;

 private:
  const std::vector<std::shared_ptr<const HttpBodySource>> parts_;
  std::vector<int64_t> starts_;  // Offset of each part in the whole.
  int64_t size_ = 0;
};

// A multipart/form-data body (RFC 7578) with one file part.
struct MultipartBody {
  std::string content_type;  // "multipart/form-data; boundary=..."
  std::shared_ptr<const HttpBodySource> source;
};

// Builds the body: `--boundary`, the part's headers
//   Content-Disposition: form-data; name="<field>"; filename="<filename>"
//   Content-Type: <file_content_type>
// the file's bytes exactly, then `--boundary--`. In `filename`, `"`, CR and LF are written as
// %22, %0D and %0A (the HTML standard's multipart encoding). `boundary` empty means a fresh
// random one (RandomMultipartBoundary): 32 random hex digits make a collision with the file's
// content practically impossible, so the file is not scanned for it.
MultipartBody MakeMultipartFileBody(absl::string_view field, absl::string_view filename,
                                    absl::string_view file_content_type,
                                    std::shared_ptr<const HttpBodySource> file,
                                    std::string boundary = "");

// "upgw-" followed by 32 random hex digits.
std::string RandomMultipartBoundary();

// Reads all of `source` into memory: for tests and small bodies only.
absl::StatusOr<std::string> ReadWholeBody(const HttpBodySource& source);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_HTTP_BODY_SOURCE_H_
