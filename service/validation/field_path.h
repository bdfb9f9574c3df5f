// The path of a field inside a request (or an import row), as BadRequest names it.
//
// Paths use the contract's proto field names: `user_id`, `company.metadata.plan`,
// `users[3].company_id`; an import file's rows start from their line (`file line 12.user_id`,
// `file line 12.metadata.plan`). A metadata key that is a plain identifier (ASCII letters,
// digits and `_`, not starting with a digit) is joined with a dot; any other key is quoted in
// brackets with JSON-style escapes: `metadata["a.b"]`, `metadata["say \"hi\""]`,
// `metadata[""]`, `metadata["tab\u0009"]`; bytes that are not UTF-8 appear as `\xFF`, so a path
// is always valid UTF-8. A key longer than 64 bytes is shortened to its first 48 bytes with
// `...` after the closing quote (`metadata["aaaa"...]`) so that error details stay small.
//
// A FieldPath is a chain of links, each on the stack of the function that made it; nothing is
// allocated until ToString(). A child refers to its parent and to the name it was given, so both
// must outlive it; the rvalue overloads are deleted so that a chain cannot be built on a
// temporary that dies first.
//
// Thread-safety: immutable; safe to share while its parents live.
#ifndef USERPILOT_GATEWAY_SERVICE_VALIDATION_FIELD_PATH_H_
#define USERPILOT_GATEWAY_SERVICE_VALIDATION_FIELD_PATH_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace userpilot::gateway {

class FieldPath {
 public:
  // The request itself: the parent of its top-level fields. Renders as "".
  FieldPath() = default;

  // The field `name` of this message.
  FieldPath Field(absl::string_view name) const& { return {this, Kind::kField, name, 0}; }
  // Element `index` of this repeated field.
  FieldPath Index(size_t index) const& { return {this, Kind::kIndex, {}, index}; }
  // The entry `key` of this map or Struct.
  FieldPath Key(absl::string_view key) const& { return {this, Kind::kKey, key, 0}; }
  FieldPath Field(absl::string_view) const&& = delete;
  FieldPath Index(size_t) const&& = delete;
  FieldPath Key(absl::string_view) const&& = delete;

  // The path as text, for example `users[3].metadata["a.b"]`.
  std::string ToString() const;

  // The name of the request's field this path lies in (`users` for `users[3].user_id`); empty
  // for the request itself.
  absl::string_view TopLevelField() const;

 private:
  enum class Kind { kRoot, kField, kIndex, kKey };

  FieldPath(const FieldPath* parent, Kind kind, absl::string_view name, size_t index)
      : parent_(parent), kind_(kind), name_(name), index_(index) {}

  void AppendTo(std::string& out) const;

  const FieldPath* parent_ = nullptr;
  Kind kind_ = Kind::kRoot;
  absl::string_view name_;
  size_t index_ = 0;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_VALIDATION_FIELD_PATH_H_
