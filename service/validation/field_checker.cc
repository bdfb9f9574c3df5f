#include "service/validation/field_checker.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr absl::string_view kPrimitives = "must be a string, number, boolean or null";

// Keys of company.metadata that would collide with the company's id upstream.
constexpr absl::string_view kReservedCompanyKeys[] = {"company_id", "id"};

int64_t Size(size_t n) { return static_cast<int64_t>(n); }

}  // namespace

void FieldChecker::Id(absl::string_view value, const FieldPath& path) {
  Name(value, path, limits_.max_id_bytes);
}

void FieldChecker::Name(absl::string_view value, const FieldPath& path, int64_t max_bytes) {
  if (value.empty()) {
    out_.Add(path, "is required");
    return;
  }
  TooLong(value, path, max_bytes, "");
  const TextScan scan = ScanText(value);
  if (InvalidUtf8(scan, path, "")) return;
  if (scan.only_whitespace) {
    out_.Add(path, "must not be only whitespace");
    return;
  }
  if (scan.blank) {
    out_.Add(path, absl::StrCat("must not be blank: only invisible characters (",
                                CodePointName(*scan.invisible), ") and whitespace"));
    return;
  }
  Control(scan, path, "");
}

void FieldChecker::Count(size_t count, const FieldPath& path, int64_t max_count,
                         absl::string_view noun) {
  if (count == 0) {
    out_.Add(path, absl::StrCat("must have at least 1 ", noun));
  } else if (Size(count) > max_count) {
    out_.Add(path, absl::StrCat("must have at most ", max_count, " ", noun, "s (got ", count, ")"));
  }
}

void FieldChecker::RequestSize(const google::protobuf::Message& request, const FieldPath& path) {
  const size_t bytes = request.ByteSizeLong();
  if (Size(bytes) > limits_.max_bulk_request_bytes) {
    out_.Add(path, absl::StrCat("request must be at most ", limits_.max_bulk_request_bytes,
                                " bytes serialized (got ", bytes, "); send fewer rows"));
  }
}

void FieldChecker::Metadata(const Struct& metadata, const FieldPath& path, bool company) {
  const auto& fields = metadata.fields();
  MetadataKeyCount(fields.size(), path);
  // Map order is unspecified: sort so that errors are stable from one call to the next.
  std::vector<const google::protobuf::MapPair<std::string, Value>*> entries;
  entries.reserve(fields.size());
  for (const auto& entry : fields) entries.push_back(&entry);
  std::sort(entries.begin(), entries.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* entry : entries) {
    const FieldPath key_path = path.Key(entry->first);
    MetadataKey(entry->first, key_path, company);
    const Value& value = entry->second;
    switch (value.kind_case()) {
      case Value::kNullValue:
      case Value::kBoolValue:
        break;
      case Value::kNumberValue:
        NumberValue(value.number_value(), key_path);
        break;
      case Value::kStringValue:
        StringValue(value.string_value(), key_path);
        break;
      case Value::kStructValue:
        NotPrimitive(key_path, /*list=*/false);
        break;
      case Value::kListValue:
        NotPrimitive(key_path, /*list=*/true);
        break;
      case Value::KIND_NOT_SET:
        out_.Add(key_path, absl::StrCat(kPrimitives, "; no value is set"));
        break;
    }
  }
}

void FieldChecker::MetadataKeyCount(size_t count, const FieldPath& path) {
  if (Size(count) > limits_.max_metadata_keys) {
    out_.Add(path, absl::StrCat("must have at most ", limits_.max_metadata_keys, " keys (got ",
                                count, ")"));
  }
}

void FieldChecker::MetadataKey(absl::string_view key, const FieldPath& key_path, bool company) {
  if (key.empty()) {
    out_.Add(key_path, "key must not be empty");
    return;
  }
  TooLong(key, key_path, limits_.max_metadata_key_bytes, "key ");
  const TextScan scan = ScanText(key);
  if (InvalidUtf8(scan, key_path, "key ")) return;
  Control(scan, key_path, "key ");
  if (company && std::find(std::begin(kReservedCompanyKeys), std::end(kReservedCompanyKeys), key) !=
                     std::end(kReservedCompanyKeys)) {
    out_.Add(key_path,
             "is a reserved key: upstream, company properties sit beside the company's id; "
             "set company.company_id instead");
  }
}

void FieldChecker::StringValue(absl::string_view text, const FieldPath& key_path) {
  TooLong(text, key_path, limits_.max_string_value_bytes, "");
  const TextScan scan = ScanText(text);
  if (InvalidUtf8(scan, key_path, "")) return;
  if (scan.has_nul) out_.Add(key_path, "must not contain U+0000 (NUL)");
}

void FieldChecker::NumberValue(double value, const FieldPath& key_path) {
  if (std::isfinite(value)) return;
  out_.Add(key_path,
           absl::StrCat("must be a finite number (got ",
                        std::isnan(value) ? "NaN" : (value > 0 ? "Infinity" : "-Infinity"), ")"));
}

void FieldChecker::NotPrimitive(const FieldPath& key_path, bool list) {
  out_.Add(key_path, absl::StrCat(kPrimitives, list ? ", not a list" : ", not an object"));
}

void FieldChecker::TooLong(absl::string_view text, const FieldPath& path, int64_t max_bytes,
                           absl::string_view subject) {
  if (Size(text.size()) > max_bytes) {
    out_.Add(path, absl::StrCat(subject, "must be at most ", max_bytes, " bytes (got ", text.size(),
                                ")"));
  }
}

bool FieldChecker::InvalidUtf8(const TextScan& scan, const FieldPath& path,
                               absl::string_view subject) {
  if (!scan.invalid_utf8_at.has_value()) return false;
  out_.Add(path, absl::StrCat(subject, "must be valid UTF-8 (bad byte at offset ",
                              *scan.invalid_utf8_at, ")"));
  return true;
}

void FieldChecker::Control(const TextScan& scan, const FieldPath& path, absl::string_view subject) {
  if (!scan.control.has_value()) return;
  out_.Add(path, absl::StrCat(subject, "must not contain control characters (",
                              CodePointName(*scan.control), " at byte ", scan.control_at, ")"));
}

}  // namespace userpilot::gateway
