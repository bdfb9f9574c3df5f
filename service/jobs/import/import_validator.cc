#include "service/jobs/import/import_validator.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "service/common/call_result.h"

namespace userpilot::gateway {
namespace {

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

}  // namespace

ImportFileValidator::ImportFileValidator(v1::ImportTarget target, v1::ImportFormat format,
                                         ImportLimits limits)
    : target_(target), format_(format), limits_(limits), rules_(target, limits_.rows) {}

CallStatus ImportFileValidator::Fail(CallStatus status) {
  error_ = status;
  partial_.clear();
  partial_.shrink_to_fit();
  record_.clear();
  record_.shrink_to_fit();
  return status;
}

CallStatus ImportFileValidator::Feed(absl::string_view bytes) {
  if (!error_.ok()) return error_;
  if (static_cast<int64_t>(bytes.size()) > limits_.max_file_bytes - bytes_) {
    return Fail(FileError(absl::StrCat("the file is larger than the gateway accepts: the limit is ",
                                       Size(limits_.max_file_bytes))));
  }
  bytes_ += static_cast<int64_t>(bytes.size());
  // A byte order mark at the very start is refused: Userpilot takes it for part of the first
  // column name or key.
  while (!bom_done_ && !bytes.empty()) {
    if (bytes.front() == kBom[bom_matched_]) {
      bytes.remove_prefix(1);
      if (++bom_matched_ == 3) {
        return Fail(LineError(1,
                              "the file starts with a UTF-8 byte order mark (EF BB BF), which "
                              "Userpilot does not accept: save the file without it"));
      }
      continue;
    }
    bom_done_ = true;
    // Not a BOM after all: what matched so far is content.
    if (CallStatus s = FeedBytes(absl::string_view(kBom, bom_matched_)); !s.ok()) return Fail(s);
  }
  if (bytes.empty()) return absl::OkStatus();
  if (CallStatus s = FeedBytes(bytes); !s.ok()) return Fail(s);
  return absl::OkStatus();
}

CallStatus ImportFileValidator::FeedBytes(absl::string_view bytes) {
  return format_ == v1::IMPORT_FORMAT_CSV ? FeedCsv(bytes) : FeedNdjson(bytes);
}

CallStatus ImportFileValidator::Finish() {
  if (!error_.ok()) return error_;
  if (!bom_done_ && bom_matched_ > 0) {
    bom_done_ = true;
    if (CallStatus s = FeedBytes(absl::string_view(kBom, bom_matched_)); !s.ok()) return Fail(s);
  }
  if (format_ == v1::IMPORT_FORMAT_CSV) {
    if (csv_state_ == CsvState::kQuoted) {
      return Fail(
          LineError(record_line_, "a quoted field is not closed before the end of the file"));
    }
    if (!record_blank_) {
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
  if (bulk && rows_ > limits_.rows.max_bulk_rows) {
    return LineError(line_number,
                     absl::StrCat("the file holds more than ", limits_.rows.max_bulk_rows,
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
  if (absl::StripLeadingAsciiWhitespace(line).front() != '{') {
    return LineError(line_number, "must be one JSON object (NDJSON: one object a line)");
  }
  std::string why;
  if (!reader_.Read(line, &row_, &why)) {
    return LineError(line_number, absl::StrCat("is not a valid JSON object: ", why));
  }
  return rules_.CheckJsonRow(row_, line_number);
}

// ----- CSV -----

void ImportFileValidator::EndCsvField() { cell_ends_.push_back(record_.size()); }

CallStatus ImportFileValidator::EndCsvRecord() {
  const int64_t line = record_line_;
  CallStatus status;
  if (!record_blank_) {
    EndCsvField();
    cells_.clear();
    size_t start = 0;
    for (const size_t end : cell_ends_) {
      cells_.push_back(absl::string_view(record_).substr(start, end - start));
      start = end;
    }
    if (header_columns_ == 0) {
      status = rules_.SetCsvHeader(cells_, line);
      header_columns_ = cells_.size();
    } else if (cells_.size() != header_columns_) {
      status = LineError(line, absl::StrCat("has ", cells_.size(),
                                            " columns, but the header row has ", header_columns_));
    } else {
      status = CountRow(line);
      if (status.ok()) status = rules_.CheckCsvRecord(cells_, line);
    }
  }
  cells_.clear();
  cell_ends_.clear();
  record_.clear();
  record_bytes_ = 0;
  record_blank_ = true;
  csv_state_ = CsvState::kFieldStart;
  return status;
}

CallStatus ImportFileValidator::FeedCsv(absl::string_view bytes) {
  for (const char c : bytes) {
    if (record_blank_ && csv_state_ == CsvState::kFieldStart && record_bytes_ == 0) {
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
          continue;
        }
        if (c == '\n') ++line_;
        record_.push_back(c);
        continue;
      case CsvState::kQuoteInQuoted:
        if (c == '"') {  // An escaped quote.
          record_.push_back('"');
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
      EndCsvField();
      record_blank_ = false;
      csv_state_ = CsvState::kFieldStart;
      continue;
    }
    if (csv_state_ == CsvState::kAfterQuote) {
      return LineError(record_line_, "a quoted field must end at a comma or the end of the line");
    }
    if (c == '"' && csv_state_ == CsvState::kFieldStart) {
      csv_state_ = CsvState::kQuoted;
      record_blank_ = false;
      continue;
    }
    // Plain content (a quote inside an unquoted field is taken literally).
    csv_state_ = CsvState::kUnquoted;
    record_.push_back(c);
    if (c != ' ' && c != '\t') record_blank_ = false;
  }
  return absl::OkStatus();
}

}  // namespace userpilot::gateway
