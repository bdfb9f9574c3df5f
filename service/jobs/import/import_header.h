// The first message of an ImportData stream, the header: its checks and the filename sent
// upstream.
//
// Thread-safety: pure functions; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_HEADER_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_HEADER_H_

#include <string>

#include "absl/status/status.h"
#include "service/common/call_result.h"
#include "service/jobs/import/import_options.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// Checks an ImportData header: target and format set, CSV only for historical imports, the
// filename rules of ImportHeader.filename (at most 255 bytes of UTF-8 without control
// characters, '"', '\' or '/', not only whitespace), and size_bytes, when set, between 0 and
// limits.max_file_bytes. INVALID_ARGUMENT naming every bad `header.<field>`.
CallStatus ValidateImportHeader(const v1::ImportHeader& header, const ImportLimits& limits);

// The filename sent for `header`: its own, or `import.csv` / `import.ndjson`.
std::string ImportFilename(const v1::ImportHeader& header);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_HEADER_H_
