// JSON helpers for the Userpilot emulator: parsing through protobuf's JSON utilities into
// google.protobuf.Value, and a small ordered writer for answers.
//
// Parsing goes through `google::protobuf::util::JsonStringToMessage` (the project's only JSON
// parser). Answers are written with `JsonWriter`, a string builder rather than a parser, so the
// emulator's output keeps its keys in the documented order, prints integers exactly and
// escapes arbitrary request bytes faithfully (protobuf's printer orders map keys by hash and
// drops invalid UTF-8).
//
// Thread-safety: free functions are thread-safe; a JsonWriter is used by one thread at a time.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_JSON_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_JSON_H_

#include <google/protobuf/struct.pb.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace userpilot::gateway::testing {

// Parses `text` as one JSON value. INVALID_ARGUMENT, with protobuf's description of the
// problem, when it is not valid JSON.
absl::StatusOr<google::protobuf::Value> ParseJson(absl::string_view text);

// The field `key` of `object` when `object` is a JSON object that has it, else nullptr.
const google::protobuf::Value* FindField(const google::protobuf::Value& object,
                                         absl::string_view key);

// True when `value` is a string, number, bool or null.
bool IsPrimitive(const google::protobuf::Value& value);

// "string", "number", "boolean", "null", "object" or "array".
absl::string_view JsonTypeName(const google::protobuf::Value& value);

// True when `bytes` is well-formed UTF-8.
bool IsValidUtf8(absl::string_view bytes);

// Appends `text` to `out` as a quoted JSON string. Bytes that are not valid UTF-8 are written as
// \u00XX escapes of the byte value, so nothing is silently lost.
void AppendJsonString(absl::string_view text, std::string* out);

// Builds one JSON document in order. Callers keep the structure well-formed; the writer only
// inserts commas and colons.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Starts a member of the current object; follow with exactly one value.
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Writes an already-serialized JSON value as is.
  JsonWriter& Raw(absl::string_view json);

  // Shorthands for Key(key) followed by the value.
  JsonWriter& Field(absl::string_view key, absl::string_view value) {
    return Key(key).String(value);
  }
  JsonWriter& Field(absl::string_view key, const char* value) { return Key(key).String(value); }
  JsonWriter& Field(absl::string_view key, int64_t value) { return Key(key).Int(value); }
  JsonWriter& Field(absl::string_view key, int value) { return Key(key).Int(value); }
  JsonWriter& Field(absl::string_view key, bool value) { return Key(key).Bool(value); }
  JsonWriter& Field(absl::string_view key, double value) { return Key(key).Double(value); }

  const std::string& str() const { return out_; }
  std::string Release() { return std::move(out_); }

 private:
  void BeforeValue();

  std::string out_;
  bool need_comma_ = false;
  bool after_key_ = false;
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_JSON_H_
