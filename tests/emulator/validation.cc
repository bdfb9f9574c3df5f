#include "tests/emulator/validation.h"

#include "absl/strings/str_cat.h"
#include "tests/emulator/json.h"

namespace userpilot::gateway::testing {

using google::protobuf::Value;

namespace {

void Add(Violations* out, std::string field, absl::string_view code, std::string message) {
  if (out->size() >= kMaxViolations) return;
  out->push_back(Violation{std::move(field), std::string(code), std::move(message)});
}

std::string Join(absl::string_view where, absl::string_view field) {
  if (where.empty()) return std::string(field);
  return absl::StrCat(where, ".", field);
}

// A required (or, with `required` false, optional) non-empty string field.
void CheckId(const Value& object, absl::string_view key, absl::string_view where, bool required,
             Violations* out) {
  const std::string path = Join(where, key);
  const Value* v = FindField(object, key);
  if (v == nullptr || v->kind_case() == Value::kNullValue) {
    if (required) Add(out, path, "missing_field", absl::StrCat("'", path, "' is required"));
    return;
  }
  if (v->kind_case() != Value::kStringValue) {
    Add(out, path, "invalid_type",
        absl::StrCat("'", path, "' must be a string, not ", JsonTypeName(*v)));
    return;
  }
  if (v->string_value().empty()) {
    Add(out, path, "empty_field", absl::StrCat("'", path, "' must not be empty"));
  }
}

// Every value of `object` except those under `skip_key` must be a primitive.
void CheckPrimitiveValues(const Value& object, absl::string_view path, absl::string_view skip_a,
                          absl::string_view skip_b, Violations* out) {
  for (const auto& [key, value] : object.struct_value().fields()) {
    if (key == skip_a || key == skip_b) continue;
    if (!IsPrimitive(value)) {
      const std::string field = Join(path, key);
      Add(out, field, "invalid_metadata",
          absl::StrCat("'", field, "' must be a string, number, boolean or null, not ",
                       JsonTypeName(value)));
    }
  }
}

void CheckMetadata(const Value& object, absl::string_view where, Violations* out) {
  const std::string path = Join(where, "metadata");
  const Value* v = FindField(object, "metadata");
  if (v == nullptr || v->kind_case() == Value::kNullValue) return;
  if (v->kind_case() != Value::kStructValue) {
    Add(out, path, "invalid_metadata",
        absl::StrCat("'", path, "' must be an object, not ", JsonTypeName(*v)));
    return;
  }
  CheckPrimitiveValues(*v, path, "", "", out);
}

bool CheckObject(const Value& body, absl::string_view where, Violations* out) {
  if (body.kind_case() == Value::kStructValue) return true;
  Add(out, std::string(where), "invalid_body",
      absl::StrCat(where.empty() ? "the request body" : where, " must be a JSON object, not ",
                   JsonTypeName(body)));
  return false;
}

}  // namespace

Violations ValidateIdentifyUser(const Value& body) {
  Violations out;
  if (!CheckObject(body, "", &out)) return out;
  CheckId(body, "user_id", "", true, &out);
  CheckMetadata(body, "", &out);
  const Value* company = FindField(body, "company");
  if (company != nullptr && company->kind_case() != Value::kNullValue) {
    if (company->kind_case() != Value::kStructValue) {
      Add(&out, "company", "invalid_type",
          absl::StrCat("'company' must be an object, not ", JsonTypeName(*company)));
    } else {
      // Newer guides name the id `company_id`, older ones `id`: either is accepted.
      const Value* id = FindField(*company, "company_id");
      const bool has_new = id != nullptr && id->kind_case() != Value::kNullValue;
      const Value* old_id = FindField(*company, "id");
      const bool has_old = old_id != nullptr && old_id->kind_case() != Value::kNullValue;
      if (has_new || !has_old) {
        CheckId(*company, "company_id", "company", true, &out);
      } else {
        CheckId(*company, "id", "company", true, &out);
      }
      // The company's other keys are its properties: primitives only.
      CheckPrimitiveValues(*company, "company", "company_id", "id", &out);
    }
  }
  return out;
}

Violations ValidateIdentifyCompany(const Value& body) {
  Violations out;
  if (!CheckObject(body, "", &out)) return out;
  CheckId(body, "company_id", "", true, &out);
  CheckMetadata(body, "", &out);
  return out;
}

Violations ValidateTrack(const Value& body) {
  Violations out;
  if (!CheckObject(body, "", &out)) return out;
  CheckId(body, "user_id", "", true, &out);
  CheckId(body, "event_name", "", true, &out);
  CheckMetadata(body, "", &out);
  return out;
}

void ValidateBulkRow(const Value& row, bool users, absl::string_view where, Violations* out) {
  if (!CheckObject(row, where, out)) return;
  if (users) {
    CheckId(row, "user_id", where, true, out);
    CheckId(row, "company_id", where, false, out);
  } else {
    CheckId(row, "company_id", where, true, out);
  }
  CheckMetadata(row, where, out);
}

Violations ValidateBulkBody(const Value& body, bool users) {
  Violations out;
  if (!CheckObject(body, "", &out)) return out;
  const absl::string_view key = users ? "users" : "companies";
  const Value* rows = FindField(body, key);
  if (rows == nullptr || rows->kind_case() == Value::kNullValue) {
    Add(&out, std::string(key), "missing_field", absl::StrCat("'", key, "' is required"));
    return out;
  }
  if (rows->kind_case() != Value::kListValue) {
    Add(&out, std::string(key), "invalid_type",
        absl::StrCat("'", key, "' must be an array, not ", JsonTypeName(*rows)));
    return out;
  }
  const int n = rows->list_value().values_size();
  if (n == 0) {
    Add(&out, std::string(key), "no_rows", absl::StrCat("'", key, "' must hold at least 1 row"));
    return out;
  }
  if (n > kMaxBulkRows) {
    Add(&out, std::string(key), "too_many_rows",
        absl::StrCat("'", key, "' holds ", n, " rows; at most ", kMaxBulkRows, " are accepted"));
    return out;
  }
  for (int i = 0; i < n && out.size() < kMaxViolations; ++i) {
    ValidateBulkRow(rows->list_value().values(i), users, absl::StrCat(key, "[", i, "]"), &out);
  }
  return out;
}

Violations ValidateDeleteBody(const Value& body, bool users) {
  Violations out;
  if (!CheckObject(body, "", &out)) return out;
  const absl::string_view key = users ? "users" : "companies";
  const Value* ids = FindField(body, key);
  if (ids == nullptr || ids->kind_case() == Value::kNullValue) {
    Add(&out, std::string(key), "missing_field", absl::StrCat("'", key, "' is required"));
    return out;
  }
  if (ids->kind_case() != Value::kListValue) {
    Add(&out, std::string(key), "invalid_type",
        absl::StrCat("'", key, "' must be an array of ids, not ", JsonTypeName(*ids)));
    return out;
  }
  if (ids->list_value().values_size() == 0) {
    Add(&out, std::string(key), "no_rows", absl::StrCat("'", key, "' must hold at least 1 id"));
    return out;
  }
  for (int i = 0; i < ids->list_value().values_size(); ++i) {
    const Value& id = ids->list_value().values(i);
    const std::string path = absl::StrCat(key, "[", i, "]");
    if (id.kind_case() != Value::kStringValue) {
      Add(&out, path, "invalid_type",
          absl::StrCat("'", path, "' must be a string, not ", JsonTypeName(id)));
    } else if (id.string_value().empty()) {
      Add(&out, path, "empty_field", absl::StrCat("'", path, "' must not be empty"));
    }
  }
  return out;
}

}  // namespace userpilot::gateway::testing
