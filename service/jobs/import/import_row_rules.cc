#include "service/jobs/import/import_row_rules.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/validation/field_checker.h"
#include "service/validation/field_path.h"
#include "service/validation/violation_collector.h"

namespace userpilot::gateway {
namespace {

constexpr absl::string_view kEventTypes[] = {"identify_user", "identify_company", "page_view",
                                             "track"};

// One value as the rules see it, whichever format it came from. Absent: not in the row, JSON
// null, or an empty CSV cell.
struct Field {
  bool present = false;
  JsonKind kind = JsonKind::kNull;
  absl::string_view text;  // Strings only.

  static Field Of(const JsonRow& row, absl::string_view key) {
    const JsonMember* member = row.Find(key);
    if (member == nullptr || member->kind == JsonKind::kNull) return {};
    return {true, member->kind, member->text};
  }
  static Field Cell(const std::vector<absl::string_view>& cells, std::optional<size_t> column) {
    if (!column.has_value() || cells[*column].empty()) return {};
    return {true, JsonKind::kString, cells[*column]};
  }
};

// The rules of one row, with its violations.
class RowCheck {
 public:
  RowCheck(const ValidationLimits& limits, int64_t line)
      : limits_(limits),
        out_(static_cast<size_t>(limits.max_violations)),
        check_(limits, out_),
        line_name_(absl::StrCat("file line ", line)),
        at_(root_.Field(line_name_)) {}

  const FieldPath& at() const { return at_; }
  ViolationCollector& out() { return out_; }
  FieldChecker& check() { return check_; }
  CallStatus ToStatus() const { return out_.ToStatus(); }

  // False (after saying so) unless `field` is a string.
  bool IsString(const Field& field, absl::string_view key) {
    if (field.kind == JsonKind::kString) return true;
    out_.Add(at_.Key(key), absl::StrCat("must be a string, not ", JsonKindName(field.kind)));
    return false;
  }

  void RequiredId(const Field& field, absl::string_view key) {
    if (!field.present) {
      out_.Add(at_.Key(key), "is required");
    } else if (IsString(field, key)) {
      check_.Id(field.text, at_.Key(key));
    }
  }

  void OptionalId(const Field& field, absl::string_view key) {
    if (!field.present || !IsString(field, key)) return;
    if (field.text.empty()) {
      out_.Add(at_.Key(key), "must not be empty (leave it out, or null, for none)");
      return;
    }
    check_.Id(field.text, at_.Key(key));
  }

  void OptionalString(const Field& field, absl::string_view key) {
    if (field.present && IsString(field, key)) check_.StringValue(field.text, at_.Key(key));
  }

  // The historical-import rules on event_type, the ids and event_name.
  void Event(const Field& type, const Field& user_id, const Field& company_id,
             const Field& event_name) {
    const FieldPath type_path = at_.Field("event_type");
    if (!type.present) {
      out_.Add(type_path, "is required: identify_user, identify_company, page_view or track");
      return;
    }
    if (!IsString(type, "event_type")) return;
    if (std::find(std::begin(kEventTypes), std::end(kEventTypes), type.text) ==
        std::end(kEventTypes)) {
      out_.Add(type_path, "must be identify_user, identify_company, page_view or track");
      return;
    }
    if (type.text == "identify_company") {
      RequiredId(company_id, "company_id");
      OptionalId(user_id, "user_id");
    } else {
      RequiredId(user_id, "user_id");
      OptionalId(company_id, "company_id");
    }
    const FieldPath name_path = at_.Field("event_name");
    if (type.text == "track") {
      if (!event_name.present) {
        out_.Add(name_path, "is required for track events");
      } else if (IsString(event_name, "event_name")) {
        check_.Name(event_name.text, name_path, limits_.max_event_name_bytes);
      }
    } else if (event_name.present && IsString(event_name, "event_name") &&
               !event_name.text.empty()) {
      check_.Name(event_name.text, name_path, limits_.max_event_name_bytes);
    }
  }

  // Says so for every key of `members` that appears more than once, under `parent`.
  void Duplicates(const std::vector<JsonMember>& members, const FieldPath& parent,
                  absl::string_view what) {
    const size_t n = members.size();
    if (n < 2) return;
    auto say = [&](absl::string_view key) {
      out_.Add(parent.Key(key), absl::StrCat("appears more than once in ", what));
    };
    if (n <= 16) {  // Typical rows: compare pairs, no allocation; said at the second occurrence.
      for (size_t i = 1; i < n; ++i) {
        size_t before = 0;
        for (size_t j = 0; j < i; ++j) before += members[j].key == members[i].key;
        if (before == 1) say(members[i].key);
      }
      return;
    }
    std::vector<absl::string_view> keys;
    keys.reserve(n);
    for (const JsonMember& m : members) keys.push_back(m.key);
    std::sort(keys.begin(), keys.end());
    for (size_t i = 1; i < n; ++i) {
      if (keys[i] == keys[i - 1] && (i < 2 || keys[i] != keys[i - 2])) say(keys[i]);
    }
  }

 private:
  const ValidationLimits& limits_;
  ViolationCollector out_;
  FieldChecker check_;
  const std::string line_name_;
  const FieldPath root_;
  const FieldPath at_;
};

}  // namespace

ImportRowRules::ImportRowRules(v1::ImportTarget target, const ValidationLimits& limits)
    : target_(target), limits_(limits) {}

CallStatus ImportRowRules::CheckJsonRow(const JsonRow& row, int64_t line) const {
  RowCheck rules(limits_, line);
  rules.Duplicates(row.members, rules.at(), "the row");
  switch (target_) {
    case v1::IMPORT_TARGET_USERS_BULK:
      rules.RequiredId(Field::Of(row, "user_id"), "user_id");
      rules.OptionalId(Field::Of(row, "company_id"), "company_id");
      break;
    case v1::IMPORT_TARGET_COMPANIES_BULK:
      rules.RequiredId(Field::Of(row, "company_id"), "company_id");
      break;
    default:
      rules.Event(Field::Of(row, "event_type"), Field::Of(row, "user_id"),
                  Field::Of(row, "company_id"), Field::Of(row, "event_name"));
      rules.OptionalString(Field::Of(row, "source"), "source");
      rules.OptionalString(Field::Of(row, "inserted_at"), "inserted_at");
      break;
  }
  const Field metadata = Field::Of(row, "metadata");
  const FieldPath metadata_path = rules.at().Field("metadata");
  if (metadata.present && metadata.kind != JsonKind::kObject) {
    rules.out().Add(metadata_path,
                    absl::StrCat("must be an object, not ", JsonKindName(metadata.kind)));
  } else if (metadata.present) {
    FieldChecker& check = rules.check();
    check.MetadataKeyCount(row.metadata.size(), metadata_path);
    rules.Duplicates(row.metadata, metadata_path, "metadata");
    for (const JsonMember& member : row.metadata) {
      const FieldPath key_path = metadata_path.Key(member.key);
      check.MetadataKey(member.key, key_path, /*company=*/false);
      switch (member.kind) {
        case JsonKind::kString:
          check.StringValue(member.text, key_path);
          break;
        case JsonKind::kObject:
        case JsonKind::kArray:
          check.NotPrimitive(key_path, /*list=*/member.kind == JsonKind::kArray);
          break;
        default:  // Null, booleans, and numbers (RapidJSON refuses those a double cannot hold).
          break;
      }
    }
  }
  return rules.ToStatus();
}

CallStatus ImportRowRules::SetCsvHeader(const std::vector<absl::string_view>& names, int64_t line) {
  RowCheck rules(limits_, line);
  columns_.clear();
  for (absl::string_view name : names) columns_.emplace_back(name);
  event_type_column_.reset();
  user_id_column_.reset();
  company_id_column_.reset();
  event_name_column_.reset();
  std::vector<JsonMember> as_members;
  as_members.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const absl::string_view name = names[i];
    if (name.empty()) {
      rules.out().Add(rules.at(),
                      absl::StrCat("the header row has an empty column name (column ", i + 1, ")"));
      continue;
    }
    rules.check().MetadataKey(name, rules.at().Key(name), /*company=*/false);
    as_members.push_back({name, JsonKind::kString, {}});
    std::optional<size_t>* role = name == "event_type"   ? &event_type_column_
                                  : name == "user_id"    ? &user_id_column_
                                  : name == "company_id" ? &company_id_column_
                                  : name == "event_name" ? &event_name_column_
                                                         : nullptr;
    if (role != nullptr && !role->has_value()) *role = i;
  }
  rules.Duplicates(as_members, rules.at(), "the header row");
  if (!event_type_column_.has_value()) {
    rules.out().Add(rules.at(), "the header row has no event_type column");
  }
  if (!user_id_column_.has_value() && !company_id_column_.has_value()) {
    rules.out().Add(rules.at(), "the header row has no user_id or company_id column");
  }
  return rules.ToStatus();
}

CallStatus ImportRowRules::CheckCsvRecord(const std::vector<absl::string_view>& cells,
                                          int64_t line) const {
  RowCheck rules(limits_, line);
  rules.Event(Field::Cell(cells, event_type_column_), Field::Cell(cells, user_id_column_),
              Field::Cell(cells, company_id_column_), Field::Cell(cells, event_name_column_));
  for (size_t i = 0; i < cells.size() && i < columns_.size(); ++i) {
    if (i == event_type_column_ || i == user_id_column_ || i == company_id_column_ ||
        i == event_name_column_ || cells[i].empty()) {
      continue;
    }
    rules.check().StringValue(cells[i], rules.at().Key(columns_[i]));
  }
  return rules.ToStatus();
}

}  // namespace userpilot::gateway
