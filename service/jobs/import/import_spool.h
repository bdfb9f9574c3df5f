// ImportSpool: where an ImportData file waits on local disk between arriving in chunks and
// being uploaded, checked by ImportFileValidator as each chunk is written.
//
// The file has no name from the moment it exists (O_TMPFILE, or mkstemp and an immediate
// unlink where the file system lacks O_TMPFILE): it can never be left behind - not on an error
// path, not if the process crashes - and its space returns to the file system when the last
// descriptor closes (the spool's, and the upload's body source, which holds its own).
//
// Its size is bounded by ImportLimits::max_file_bytes (the validator refuses the chunk that
// would cross it, before it is written). Memory: the validator's line buffer only.
//
// Blocking: Create, Append and Contents are file-system calls (open, write, dup) on a local
// disk, made by a worker thread (Importer::RunBlocking), never by a gRPC thread.
//
// Thread-safety: not thread-safe; one spool per upload, used by one thread at a time. The body
// source from Contents() is independent and thread-safe.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_SPOOL_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_SPOOL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/http/http_client.h"
#include "service/jobs/import/import_validator.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

class ImportSpool {
 public:
  // A new, empty, nameless file in `dir` ("" = $TMPDIR, else /tmp), for a file of `header`'s
  // target and format (which passed ValidateImportHeader). INTERNAL (naming the directory, for
  // operators) when the file cannot be created.
  static absl::StatusOr<std::unique_ptr<ImportSpool>> Create(const std::string& dir,
                                                             const v1::ImportHeader& header,
                                                             const ImportLimits& limits);

  // Closes the file; its space is freed once no body source reads it any more.
  ~ImportSpool();
  ImportSpool(const ImportSpool&) = delete;
  ImportSpool& operator=(const ImportSpool&) = delete;

  // Validates `chunk`, then writes it. The validator's INVALID_ARGUMENT, or INTERNAL when the
  // write fails (say, the disk is full).
  CallStatus Append(absl::string_view chunk);

  // The file is complete: the validator's end-of-file checks.
  CallStatus Finish();

  // A body source reading the file as written so far (call after Finish()).
  absl::StatusOr<std::shared_ptr<const HttpBodySource>> Contents() const;

  int64_t size() const { return size_; }
  int64_t rows() const { return validator_.rows(); }

 private:
  ImportSpool(int fd, const v1::ImportHeader& header, const ImportLimits& limits);

  const int fd_;
  int64_t size_ = 0;
  ImportFileValidator validator_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_SPOOL_H_
