// Fuzz target: the checks an ImportData file goes through while it streams in
// (jobs/import/import_validator.h: NDJSON and CSV framing, and each row under the row rules of
// import_row_rules.h), and the NDJSON line reader under them (json_row_reader.h).
//
// Input: the first byte picks what is fuzzed (its value mod 5: a bulk-users NDJSON file, a
// bulk-companies NDJSON file, a historical NDJSON file, a historical CSV file, or one line for
// JsonRowReader alone) and the limits (the gateway's defaults, or small ones that the input can
// reach when (byte / 5) is odd); for a file, the second byte picks the size of the chunks it
// arrives in (1 to 16 bytes); the rest is the file.
//
// Properties, besides the sanitizers':
//  - the verdict does not depend on how the file is cut into chunks: fed whole and fed in small
//    chunks, the file gets the same code, message and BadRequest fields (and, when accepted,
//    the same row count);
//  - a refusal is INVALID_ARGUMENT with at least one violation, each naming a field (`file` or
//    `file line N...`), in valid UTF-8;
//  - a line JsonRowReader takes yields keys and texts in valid UTF-8; a line it refuses has an
//    error saying so.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "service/jobs/import/import_validator.h"
#include "service/jobs/import/json_row_reader.h"

namespace userpilot::gateway {
namespace {

ImportLimits SmallLimits() {
  ImportLimits limits;
  limits.max_file_bytes = 4096;
  limits.max_line_bytes = 256;
  limits.rows.max_id_bytes = 8;
  limits.rows.max_event_name_bytes = 10;
  limits.rows.max_metadata_keys = 4;
  limits.rows.max_metadata_key_bytes = 10;
  limits.rows.max_string_value_bytes = 5;
  limits.rows.max_bulk_rows = 3;
  limits.rows.max_violations = 3;
  return limits;
}

struct Verdict {
  CallStatus status;
  int64_t rows = 0;
  int64_t bytes = 0;
};

Verdict Validate(v1::ImportTarget target, v1::ImportFormat format, const ImportLimits& limits,
                 absl::string_view file, size_t piece) {
  ImportFileValidator validator(target, format, limits);
  Verdict verdict;
  for (size_t at = 0; at < file.size() && verdict.status.ok(); at += piece) {
    verdict.status = validator.Feed(file.substr(at, piece));
  }
  if (verdict.status.ok()) verdict.status = validator.Finish();
  verdict.rows = validator.rows();
  verdict.bytes = validator.bytes();
  return verdict;
}

std::vector<std::string> Fields(const CallStatus& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : status.facts().violations) fields.push_back(v.field);
  return fields;
}

void CheckFile(v1::ImportTarget target, v1::ImportFormat format, const ImportLimits& limits,
               size_t piece, absl::string_view file) {
  const Verdict whole = Validate(target, format, limits, file, file.size() + 1);
  const Verdict pieces = Validate(target, format, limits, file, piece);
  FUZZ_CHECK(whole.status.code() == pieces.status.code() &&
                 whole.status.message() == pieces.status.message(),
             "whole: " + whole.status.ToString() + " / in pieces of " + std::to_string(piece) +
                 ": " + pieces.status.ToString());
  FUZZ_CHECK(Fields(whole.status) == Fields(pieces.status), "fields differ with the chunking");
  if (whole.status.ok()) {
    // (A refused file's count may differ: a chunk over the size limit is refused whole.)
    FUZZ_CHECK(whole.rows == pieces.rows, "row count differs with the chunking");
    FUZZ_CHECK(whole.bytes == static_cast<int64_t>(file.size()), "bytes counted");
    FUZZ_CHECK(whole.rows >= 1, "a file without rows accepted");
    return;
  }
  FUZZ_CHECK(whole.status.code() == absl::StatusCode::kInvalidArgument, whole.status.ToString());
  const auto& violations = whole.status.facts().violations;
  FUZZ_CHECK(!violations.empty(), "a refusal without a violation: " + whole.status.ToString());
  for (const FieldViolation& v : violations) {
    FUZZ_CHECK(v.field == "file" || absl::StartsWith(v.field, "file line "), v.field);
    FUZZ_CHECK(!v.description.empty(), v.field);
    FUZZ_CHECK(fuzz::IsUtf8(v.field) && fuzz::IsUtf8(v.description), "violation not UTF-8");
  }
}

void CheckLine(absl::string_view line) {
  static JsonRowReader* reader = new JsonRowReader();
  JsonRow row;
  std::string error;
  if (!reader->Read(line, &row, &error)) {
    FUZZ_CHECK(!error.empty(), "refused without an error");
    return;
  }
  for (const std::vector<JsonMember>* members : {&row.members, &row.metadata}) {
    for (const JsonMember& m : *members) {
      FUZZ_CHECK(fuzz::IsUtf8(m.key) && fuzz::IsUtf8(m.text), "a key or text is not UTF-8");
    }
  }
}

}  // namespace
}  // namespace userpilot::gateway

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace userpilot::gateway;  // NOLINT(build/namespaces): one entry point.
  static const ImportLimits kDefault;
  static const ImportLimits kSmall = SmallLimits();
  if (size < 2) return 0;
  const ImportLimits& limits = (data[0] / 5) % 2 == 0 ? kDefault : kSmall;
  const size_t piece = data[1] % 16 + 1;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  switch (data[0] % 5) {
    case 0:
      CheckFile(v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON, limits, piece, rest);
      break;
    case 1:
      CheckFile(v1::IMPORT_TARGET_COMPANIES_BULK, v1::IMPORT_FORMAT_NDJSON, limits, piece, rest);
      break;
    case 2:
      CheckFile(v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_NDJSON, limits, piece, rest);
      break;
    case 3:
      CheckFile(v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV, limits, piece, rest);
      break;
    default:
      CheckLine(absl::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
      break;
  }
  return 0;
}
