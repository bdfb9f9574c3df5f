#include "service/jobs/import/import_header.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/common/call_result.h"
#include "service/common/text_scan.h"

namespace userpilot::gateway {
namespace {

constexpr size_t kMaxFilenameBytes = 255;

}  // namespace

CallStatus ValidateImportHeader(const v1::ImportHeader& header, const ImportLimits& limits) {
  std::vector<FieldViolation> violations;
  const bool bulk = header.target() == v1::IMPORT_TARGET_USERS_BULK ||
                    header.target() == v1::IMPORT_TARGET_COMPANIES_BULK;
  if (!v1::ImportTarget_IsValid(header.target()) ||
      header.target() == v1::IMPORT_TARGET_UNSPECIFIED) {
    violations.push_back({"header.target",
                          "required: IMPORT_TARGET_HISTORICAL_IMPORT, IMPORT_TARGET_USERS_BULK "
                          "or IMPORT_TARGET_COMPANIES_BULK"});
  }
  if (!v1::ImportFormat_IsValid(header.format()) ||
      header.format() == v1::IMPORT_FORMAT_UNSPECIFIED) {
    violations.push_back({"header.format", "required: IMPORT_FORMAT_CSV or IMPORT_FORMAT_NDJSON"});
  } else if (bulk && header.format() == v1::IMPORT_FORMAT_CSV) {
    violations.push_back(
        {"header.format", "bulk identify files must be NDJSON; CSV is for historical imports"});
  }
  const std::string& name = header.filename();
  const TextScan scan = ScanText(name);
  if (name.size() > kMaxFilenameBytes) {
    violations.push_back({"header.filename", absl::StrCat("at most ", kMaxFilenameBytes,
                                                          " bytes, not ", name.size())});
  } else if (scan.invalid_utf8_at.has_value() || scan.control.has_value() ||
             absl::StrContains(name, "\"") || absl::StrContains(name, "\\") ||
             absl::StrContains(name, "/")) {
    violations.push_back(
        {"header.filename", "must be valid UTF-8 without control characters, '\"', '\\' or '/'"});
  } else if (!name.empty() && absl::StripAsciiWhitespace(name).empty()) {
    violations.push_back({"header.filename", "must not be only whitespace"});
  }
  if (header.has_size_bytes() && header.size_bytes() < 0) {
    violations.push_back({"header.size_bytes", "must not be negative"});
  } else if (header.has_size_bytes() && header.size_bytes() > limits.max_file_bytes) {
    violations.push_back({"header.size_bytes",
                          absl::StrCat("the file is larger than the gateway accepts: the limit is ",
                                       limits.max_file_bytes, " bytes")});
  }
  if (violations.empty()) return absl::OkStatus();
  return InvalidArgumentError(violations);
}

std::string ImportFilename(const v1::ImportHeader& header) {
  if (!header.filename().empty()) return header.filename();
  return header.format() == v1::IMPORT_FORMAT_CSV ? "import.csv" : "import.ndjson";
}

}  // namespace userpilot::gateway
