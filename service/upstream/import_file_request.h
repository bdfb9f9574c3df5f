// ImportFileRequest: the request of the upstream file upload (its row in upstream_rpcs.h), which
// sends a file to Userpilot as multipart/form-data (field `file`), read while it is sent, so the
// upload never needs the file in memory.
//
// Not a proto message because the bytes live on the gateway's local disk (the import stream
// spools them there), not in the request.
//
// Thread-safety: a value; the file source is immutable and safe to read from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_IMPORT_FILE_REQUEST_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_IMPORT_FILE_REQUEST_H_

#include <memory>
#include <string>

#include "service/http/http_client.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

struct ImportFileRequest {
  // Where it goes: HISTORICAL_IMPORT -> POST /v1/imports, USERS_BULK ->
  // POST /v1/users/bulk_identify, COMPANIES_BULK -> POST /v1/companies/bulk_identify.
  v1::ImportTarget target = v1::IMPORT_TARGET_UNSPECIFIED;
  // CSV (text/csv) or NDJSON (application/x-ndjson): the file part's Content-Type.
  v1::ImportFormat format = v1::IMPORT_FORMAT_UNSPECIFIED;
  // The multipart `filename` (what Userpilot shows as Job.filename). Non-empty.
  std::string filename;
  // The file's bytes, already validated. Every attempt reads it again from offset 0, so a
  // decorator may retry by passing the same request on; it stays readable while shared.
  std::shared_ptr<const HttpBodySource> file;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_IMPORT_FILE_REQUEST_H_
