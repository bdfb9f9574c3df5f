#include "service/jobs/import/import_validator.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "service/common/call_result.h"
#include "service/common/text_scan.h"

namespace userpilot::gateway {
namespace {

constexpr size_t kMaxFilenameBytes = 255;
constexpr char kBom[] = "\xEF\xBB\xBF";

CallStatus LineError(int64_t line, std::string description) {
  return InvalidArgumentError({{absl::StrCat("file line ", line), std::move(description)}});
}

CallStatus FileError(std::string description) {
  return InvalidArgumentError({{"file", std::move(description)}});
}

std::string Size(int64_t bytes) {
  if (bytes % (1024 * 1024) == 0) return absl::StrCat(bytes, " bytes (", bytes >> 20, " MiB)");
  return absl::StrCat(bytes, " bytes");
}

bool IsBlank(absl::string_view s) { return absl::StripAsciiWhitespace(s).empty(); }

// Valid UTF-8 without control characters (C0, DEL, C1).
bool IsCleanText(absl::string_view s) {
  const TextScan scan = ScanText(s);
  return !scan.invalid_utf8_at.has_value() && !scan.control.has_value();
}

// A required id: a non-empty string.
CallStatus RequireId(const ScannedObject& row, absl::string_view key, int64_t line, bool required) {
  const ScannedMember* v = row.Find(key);
  if (v == nullptr || v->kind == JsonKind::kNull) {
    if (!required) return absl::OkStatus();
    return LineError(line, absl::StrCat("'", key, "' is required (a non-empty string)"));
  }
  if (v->kind != JsonKind::kString) {
    return LineError(line,
                     absl::StrCat("'", key, "' must be a string, not ", JsonKindName(v->kind)));
  }
  if (IsBlank(v->text)) return LineError(line, absl::StrCat("'", key, "' must not be empty"));
  return absl::OkStatus();
}

CallStatus OptionalString(const ScannedObject& row, absl::string_view key, int64_t line) {
  const ScannedMember* v = row.Find(key);
  if (v == nullptr || v->kind == JsonKind::kNull || v->kind == JsonKind::kString) {
    return absl::OkStatus();
  }
  return LineError(line, absl::StrCat("'", key, "' must be a string, not ", JsonKindName(v->kind)));
}

CallStatus CheckMetadata(const ScannedObject& row, int64_t line) {
  const ScannedMember* metadata = row.Find("metadata");
  if (metadata == nullptr || metadata->kind == JsonKind::kNull) return absl::OkStatus();
  if (metadata->kind != JsonKind::kObject) {
    return LineError(
        line, absl::StrCat("'metadata' must be an object, not ", JsonKindName(metadata->kind)));
  }
  for (const ScannedMember& value : row.metadata) {
    if (value.kind == JsonKind::kObject || value.kind == JsonKind::kArray) {
      return LineError(line,
                       absl::StrCat("'metadata.", value.key, "' is ", JsonKindName(value.kind),
                                    "; values must be strings, numbers, booleans or null"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

CallStatus ValidateImportHeader(const v1::ImportHeader& header) {
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
  if (name.size() > kMaxFilenameBytes) {
    violations.push_back({"header.filename", absl::StrCat("at most ", kMaxFilenameBytes,
                                                          " bytes, not ", name.size())});
  } else if (!IsCleanText(name) || absl::StrContains(name, "\"") || absl::StrContains(name, "\\") ||
             absl::StrContains(name, "/")) {
    violations.push_back(
        {"header.filename", "must be valid UTF-8 without control characters, '\"', '\\' or '/'"});
  } else if (!name.empty() && IsBlank(name)) {
    violations.push_back({"header.filename", "must not be only whitespace"});
  }
  if (violations.empty()) return absl::OkStatus();
  return InvalidArgumentError(violations);
}

std::string ImportFilename(const v1::ImportHeader& header) {
  if (!header.filename().empty()) return header.filename();
  return header.format() == v1::IMPORT_FORMAT_CSV ? "import.csv" : "import.ndjson";
}

ImportFileValidator::ImportFileValidator(v1::ImportTarget target, v1::ImportFormat format,
                                         ImportLimits limits)
    : target_(target), format_(format), limits_(limits) {}

CallStatus ImportFileValidator::Fail(CallStatus status) {
  error_ = status;
  partial_.clear();
  partial_.shrink_to_fit();
  return status;
}

CallStatus ImportFileValidator::Feed(absl::string_view bytes) {
  if (!error_.ok()) return error_;
  if (static_cast<int64_t>(bytes.size()) > limits_.max_file_bytes - bytes_) {
    return Fail(FileError(absl::StrCat("the file is larger than the gateway accepts: the limit is ",
                                       Size(limits_.max_file_bytes))));
  }
  bytes_ += static_cast<int64_t>(bytes.size());
  // A byte order mark at the very start is not part of the first line.
  while (!bom_done_ && !bytes.empty()) {
    if (bytes.front() == kBom[bom_matched_]) {
      bytes.remove_prefix(1);
      if (++bom_matched_ == 3) bom_done_ = true;
      continue;
    }
    bom_done_ = true;
    // Not a BOM after all: what matched so far is content.
    const std::string held(kBom, bom_matched_);
    if (CallStatus s = format_ == v1::IMPORT_FORMAT_CSV ? FeedCsv(held) : FeedNdjson(held);
        !s.ok()) {
      return Fail(s);
    }
  }
  if (bytes.empty()) return absl::OkStatus();
  CallStatus status = format_ == v1::IMPORT_FORMAT_CSV ? FeedCsv(bytes) : FeedNdjson(bytes);
  if (!status.ok()) return Fail(status);
  return absl::OkStatus();
}

CallStatus ImportFileValidator::Finish() {
  if (!error_.ok()) return error_;
  if (!bom_done_ && bom_matched_ > 0) {
    bom_done_ = true;
    const std::string held(kBom, bom_matched_);
    CallStatus s = format_ == v1::IMPORT_FORMAT_CSV ? FeedCsv(held) : FeedNdjson(held);
    if (!s.ok()) return Fail(s);
  }
  if (format_ == v1::IMPORT_FORMAT_CSV) {
    if (csv_state_ == CsvState::kQuoted) {
      return Fail(
          LineError(record_line_, "a quoted field is not closed before the end of the file"));
    }
    if (!record_blank_ || record_fields_ > 0) {
      if (CallStatus s = EndCsvRecord(); !s.ok()) return Fail(s);
    }
    if (header_columns_ == 0) return Fail(FileError("the file is empty: no header row"));
  } else if (!partial_.empty()) {
    std::string last = std::move(partial_);
    partial_.clear();
    if (CallStatus s = NdjsonLine(last, line_); !s.ok()) return Fail(s);
  }
  if (rows_ == 0) {
    return Fail(FileError(format_ == v1::IMPORT_FORMAT_CSV
                              ? "the file holds a header row but no data rows"
                              : "the file holds no rows"));
  }
  return absl::OkStatus();
}

CallStatus ImportFileValidator::CountRow(int64_t line_number) {
  ++rows_;
  const bool bulk = target_ != v1::IMPORT_TARGET_HISTORICAL_IMPORT;
  if (bulk && rows_ > limits_.max_bulk_rows) {
    return LineError(line_number, absl::StrCat("the file holds more than ", limits_.max_bulk_rows,
                                               " rows, the most a bulk identify accepts"));
  }
  return absl::OkStatus();
}

// ----- NDJSON -----

CallStatus ImportFileValidator::FeedNdjson(absl::string_view bytes) {
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const absl::string_view piece =
        newline == absl::string_view::npos ? bytes : bytes.substr(0, newline);
    if (partial_.size() + piece.size() > limits_.max_line_bytes) {
      return LineError(line_, absl::StrCat("the line is longer than the gateway accepts (",
                                           limits_.max_line_bytes, " bytes)"));
    }
    if (newline == absl::string_view::npos) {
      partial_.append(piece.data(), piece.size());
      return absl::OkStatus();
    }
    CallStatus status;
    if (partial_.empty()) {
      status = NdjsonLine(piece, line_);
    } else {
      partial_.append(piece.data(), piece.size());
      status = NdjsonLine(partial_, line_);
      partial_.clear();
    }
    if (!status.ok()) return status;
    ++line_;
    bytes.remove_prefix(newline + 1);
  }
  return absl::OkStatus();
}

CallStatus ImportFileValidator::NdjsonLine(absl::string_view line, int64_t line_number) {
  absl::ConsumeSuffix(&line, "\r");
  if (IsBlank(line)) return absl::OkStatus();
  if (CallStatus s = CountRow(line_number); !s.ok()) return s;
  const absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(line);
  if (trimmed.front() != '{') {
    return LineError(line_number, "must be one JSON object (NDJSON: one object a line)");
  }
  std::string why;
  if (!ScanJsonObject(line, &row_, &why)) {
    return LineError(line_number, absl::StrCat("is not a valid JSON object: ", why));
  }
  const ScannedObject& row = row_;
  CallStatus status;
  switch (target_) {
    case v1::IMPORT_TARGET_USERS_BULK:
      status = RequireId(row, "user_id", line_number, true);
      if (status.ok()) status = RequireId(row, "company_id", line_number, false);
      break;
    case v1::IMPORT_TARGET_COMPANIES_BULK:
      status = RequireId(row, "company_id", line_number, true);
      break;
    default: {
      const ScannedMember* type = row.Find("event_type");
      if (type == nullptr || type->kind != JsonKind::kString) {
        return LineError(line_number,
                         "'event_type' is required: identify_user, identify_company, page_view "
                         "or track");
      }
      const std::string& t = type->text;
      if (t != "identify_user" && t != "identify_company" && t != "page_view" && t != "track") {
        return LineError(line_number,
                         "'event_type' must be identify_user, identify_company, page_view or "
                         "track");
      }
      status =
          RequireId(row, t == "identify_company" ? "company_id" : "user_id", line_number, true);
      for (absl::string_view key : {"source", "event_name", "inserted_at"}) {
        if (status.ok()) status = OptionalString(row, key, line_number);
      }
      break;
    }
  }
  if (!status.ok()) return status;
  return CheckMetadata(row, line_number);
}

// ----- CSV -----

CallStatus ImportFileValidator::EndCsvRecord() {
  const size_t columns = record_fields_ + 1;
  const int64_t line = record_line_;
  const bool blank = record_blank_ && record_fields_ == 0;
  const bool last_field_empty = field_empty_;
  record_fields_ = 0;
  record_bytes_ = 0;
  record_blank_ = true;
  field_empty_ = true;
  csv_state_ = CsvState::kFieldStart;
  if (blank) return absl::OkStatus();
  if (header_columns_ == 0) {
    if (header_empty_field_ || last_field_empty) {
      header_empty_field_ = false;
      return LineError(line, "the header row has an empty column name");
    }
    header_columns_ = columns;
    return absl::OkStatus();
  }
  if (columns != header_columns_) {
    return LineError(
        line, absl::StrCat("has ", columns, " columns, but the header row has ", header_columns_));
  }
  return CountRow(line);
}

CallStatus ImportFileValidator::FeedCsv(absl::string_view bytes) {
  for (const char c : bytes) {
    if (record_blank_ && record_fields_ == 0 && csv_state_ == CsvState::kFieldStart &&
        record_bytes_ == 0) {
      record_line_ = line_;
    }
    if (++record_bytes_ > limits_.max_line_bytes) {
      return LineError(record_line_, absl::StrCat("the record is longer than the gateway accepts (",
                                                  limits_.max_line_bytes, " bytes)"));
    }
    switch (csv_state_) {
      case CsvState::kQuoted:
        if (c == '"') {
          csv_state_ = CsvState::kQuoteInQuoted;
        } else if (c == '\n') {
          ++line_;
        }
        continue;
      case CsvState::kQuoteInQuoted:
        if (c == '"') {  // An escaped quote.
          csv_state_ = CsvState::kQuoted;
          continue;
        }
        csv_state_ = CsvState::kAfterQuote;
        break;  // Handle `c` below, after the closing quote.
      default:
        break;
    }
    if (c == '\n') {
      ++line_;
      if (CallStatus s = EndCsvRecord(); !s.ok()) return s;
      continue;
    }
    if (c == '\r') continue;  // Part of a line ending (or stray: ignored).
    if (c == ',') {
      if (header_columns_ == 0 && field_empty_) header_empty_field_ = true;
      ++record_fields_;
      record_blank_ = false;
      field_empty_ = true;
      csv_state_ = CsvState::kFieldStart;
      continue;
    }
    if (csv_state_ == CsvState::kAfterQuote) {
      return LineError(record_line_, "a quoted field must end at a comma or the end of the line");
    }
    if (c == '"' && csv_state_ == CsvState::kFieldStart) {
      csv_state_ = CsvState::kQuoted;
      record_blank_ = false;
      field_empty_ = false;
      continue;
    }
    // Plain content (a quote inside an unquoted field is taken literally).
    csv_state_ = CsvState::kUnquoted;
    if (c != ' ' && c != '\t') {
      record_blank_ = false;
      field_empty_ = false;
    }
  }
  return absl::OkStatus();
}

}  // namespace userpilot::gateway
