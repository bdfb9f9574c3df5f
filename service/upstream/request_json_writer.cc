#include "service/upstream/request_json_writer.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/container/inlined_vector.h"
#include "rapidjson/writer.h"

namespace userpilot::gateway {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// ----- protobuf's escaping (util/internal/json_escaping.cc) -----

// The escape of every code point below U+00A0 that protobuf escapes; "" for the rest.
constexpr char kCommonEscapes[0xa0][7] = {
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007", "\\b",
    "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012",
    "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a",
    "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    // 0x20-0x7f: `"`, `<`, `>`, `\` and DEL.
    "", "", "\\\"", "", "", "", "", "", "", "", "", "", "", "", "", "",            //
    "", "", "", "", "", "", "", "", "", "", "", "", "\\u003c", "", "\\u003e", "",  //
    "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "",                //
    "", "", "", "", "", "", "", "", "", "", "", "", "\\\\", "", "", "",            //
    "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "",                //
    "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "\\u007f",         //
    // C1 controls.
    "\\u0080", "\\u0081", "\\u0082", "\\u0083", "\\u0084", "\\u0085", "\\u0086", "\\u0087",
    "\\u0088", "\\u0089", "\\u008a", "\\u008b", "\\u008c", "\\u008d", "\\u008e", "\\u008f",
    "\\u0090", "\\u0091", "\\u0092", "\\u0093", "\\u0094", "\\u0095", "\\u0096", "\\u0097",
    "\\u0098", "\\u0099", "\\u009a", "\\u009b", "\\u009c", "\\u009d", "\\u009e", "\\u009f"};

constexpr char kHex[] = "0123456789abcdef";

void AppendU16(uint32_t unit, std::string& out) {
  const char escaped[6] = {'\\',
                           'u',
                           kHex[(unit >> 12) & 0xf],
                           kHex[(unit >> 8) & 0xf],
                           kHex[(unit >> 4) & 0xf],
                           kHex[unit & 0xf]};
  out.append(escaped, sizeof(escaped));
}

// Appends the escape of code point `cp` (at or above U+00A0) and returns true when protobuf
// escapes it.
bool AppendEscapeOfNonCommon(uint32_t cp, std::string& out) {
  const bool bmp_escaped = cp == 0x00ad || cp == 0x06dd || cp == 0x070f || cp == 0x17b4 ||
                           cp == 0x17b5 || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) ||
                           (cp >= 0x0600 && cp <= 0x0603) || (cp >= 0x200b && cp <= 0x200f) ||
                           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) ||
                           (cp >= 0x206a && cp <= 0x206f);
  if (bmp_escaped) {
    AppendU16(cp, out);
    return true;
  }
  if (cp == 0xe0001 || (cp >= 0x1d173 && cp <= 0x1d17a) || (cp >= 0xe0020 && cp <= 0xe007f)) {
    AppendU16(0xd800 + ((cp - 0x10000) >> 10), out);
    AppendU16(0xdc00 + (cp & 0x3ff), out);
    return true;
  }
  return false;
}

bool NeedsEscapingScan(absl::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\') return true;
  }
  return false;
}

// ----- RapidJSON's Writer with protobuf's strings and numbers -----

// Appends to a std::string: RapidJSON's output stream concept.
class StringOutput {
 public:
  using Ch = char;
  explicit StringOutput(std::string& out) : out_(out) {}
  void Put(char c) { out_.push_back(c); }
  void Flush() {}
  std::string& out() { return out_; }

 private:
  std::string& out_;
};

// The Writer's nesting stack lives in a buffer inside the writer (kLevels levels of 16 bytes
// before RapidJSON's pool falls back to the heap), so writing a body allocates nothing but its
// output. A base class, so that it is built before the Writer that uses it.
class StackPool {
 protected:
  static constexpr size_t kLevels = 32;
  StackPool() : pool_(buffer_, sizeof(buffer_), sizeof(buffer_), &heap_) {}

  rapidjson::CrtAllocator heap_;
  alignas(16) char buffer_[1024];
  rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator> pool_;
};

using BaseWriter = rapidjson::Writer<StringOutput, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                     rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>>;

class Writer : private StackPool, private BaseWriter {
 public:
  explicit Writer(StringOutput& stream) : StackPool(), BaseWriter(stream, &pool_, kLevels) {}

  void StartObject() { BaseWriter::StartObject(); }
  void EndObject() { BaseWriter::EndObject(); }
  void StartArray() { BaseWriter::StartArray(); }
  void EndArray() { BaseWriter::EndArray(); }
  void Null() { BaseWriter::Null(); }
  void Bool(bool b) { BaseWriter::Bool(b); }

  // Keys are strings to RapidJSON's bookkeeping too (it alternates key and value in objects).
  void Key(absl::string_view key) { String(key); }
  void String(absl::string_view text) {
    Prefix(rapidjson::kStringType);
    std::string& out = os_->out();
    out.push_back('"');
    AppendProtobufJsonEscaped(text, out);
    out.push_back('"');
    EndValue(true);
  }
  void Double(double value) {
    Prefix(std::isfinite(value) ? rapidjson::kNumberType : rapidjson::kStringType);
    AppendProtobufJsonDouble(value, os_->out());
    EndValue(true);
  }

  void NonEmptyMember(absl::string_view key, const std::string& text) {
    if (text.empty()) return;
    Key(key);
    String(text);
  }

  void WriteStruct(const Struct& metadata) {
    StartObject();
    WriteStructMembers(metadata);
    EndObject();
  }

  // Members in bytewise key order, as protobuf's deterministic serialization orders them.
  void WriteStructMembers(const Struct& metadata, absl::string_view skip_a = {},
                          absl::string_view skip_b = {}) {
    using Entry = google::protobuf::Map<std::string, Value>::value_type;
    absl::InlinedVector<const Entry*, 16> entries;
    for (const Entry& entry : metadata.fields()) {
      if (!skip_a.empty() && entry.first == skip_a) continue;
      if (!skip_b.empty() && entry.first == skip_b) continue;
      // A Value with no kind prints nothing, not even its key.
      if (entry.second.kind_case() == Value::KIND_NOT_SET) continue;
      entries.push_back(&entry);
    }
    std::sort(entries.begin(), entries.end(),
              [](const Entry* a, const Entry* b) { return a->first < b->first; });
    for (const Entry* entry : entries) {
      Key(entry->first);
      WriteValue(entry->second);
    }
  }

  void WriteValue(const Value& value) {
    switch (value.kind_case()) {
      case Value::kNullValue:
        Null();
        return;
      case Value::kNumberValue:
        Double(value.number_value());
        return;
      case Value::kStringValue:
        String(value.string_value());
        return;
      case Value::kBoolValue:
        Bool(value.bool_value());
        return;
      case Value::kStructValue:
        WriteStruct(value.struct_value());
        return;
      case Value::kListValue:
        StartArray();
        for (const Value& element : value.list_value().values()) {
          if (element.kind_case() != Value::KIND_NOT_SET) WriteValue(element);
        }
        EndArray();
        return;
      case Value::KIND_NOT_SET:
        return;
    }
  }
};

bool HasProperties(const Struct& metadata) { return !metadata.fields().empty(); }

}  // namespace

void AppendProtobufJsonEscaped(absl::string_view text, std::string& out) {
  if (!NeedsEscapingScan(text)) {
    out.append(text.data(), text.size());
    return;
  }
  const auto byte_at = [&text](size_t i) { return static_cast<unsigned char>(text[i]); };
  const size_t size = text.size();
  size_t i = 0;
  while (i < size) {
    const unsigned char lead = byte_at(i);
    if (lead < 0x80) {
      const char* escape = kCommonEscapes[lead];
      if (escape[0] != '\0') {
        out.append(escape);
      } else {
        out.push_back(static_cast<char>(lead));
      }
      ++i;
      continue;
    }
    uint32_t cp = 0;
    int continuation = 0;
    if (lead <= 0xbf || lead > 0xf7) {  // Not a lead byte: dropped.
      ++i;
      continue;
    }
    if (lead <= 0xdf) {
      cp = lead & 0x1f;
      continuation = 1;
    } else if (lead <= 0xef) {
      cp = lead & 0x0f;
      continuation = 2;
    } else {
      cp = lead & 0x07;
      continuation = 3;
    }
    size_t next = i + 1;
    bool valid = true;
    while (continuation > 0 && next < size) {
      const unsigned char byte = byte_at(next++);
      --continuation;
      cp = (cp << 6) | (byte & 0x3f);
      if (byte < 0x80 || byte > 0xbf) {
        valid = false;  // Dropped with the byte that broke the sequence.
        break;
      }
    }
    if (continuation > 0 && valid) return;  // Truncated at the end: dropped.
    const bool surrogate = (cp & 0xfffff800) == 0xd800;
    if (!valid || surrogate || cp > 0x10ffff) {
      i = next;
      continue;
    }
    if (cp < 0xa0) {
      // Overlong forms of ASCII come out as the bytes sent, unless protobuf escapes the code
      // point (then as its escape); C1 controls are always escaped.
      const char* escape = kCommonEscapes[cp];
      if (escape[0] != '\0') {
        out.append(escape);
      } else {
        out.append(text.data() + i, next - i);
      }
    } else if (!AppendEscapeOfNonCommon(cp, out)) {
      out.append(text.data() + i, next - i);
    }
    i = next;
  }
}

void AppendProtobufJsonDouble(double value, std::string& out) {
  if (std::isnan(value)) {
    out.append("\"NaN\"");
    return;
  }
  if (std::isinf(value)) {
    out.append(value > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  // protobuf's SimpleDtoa: the shortest of %.15g and %.17g that reads back as `value`.
  char buffer[32];
  int length = std::snprintf(buffer, sizeof(buffer), "%.*g", DBL_DIG, value);
  if (std::strtod(buffer, nullptr) != value) {
    length = std::snprintf(buffer, sizeof(buffer), "%.*g", DBL_DIG + 2, value);
  }
  out.append(buffer, static_cast<size_t>(length));
}

void AppendRequestBody(const v1::IdentifyUserRequest& request, std::string& out) {
  StringOutput stream(out);
  Writer writer(stream);
  writer.StartObject();
  writer.NonEmptyMember("user_id", request.user_id());
  if (HasProperties(request.metadata())) {
    writer.Key("metadata");
    writer.WriteStruct(request.metadata());
  }
  if (request.has_company()) {
    // The company's properties sit beside its id; reserved keys never override or shadow it.
    const v1::Company& company = request.company();
    writer.Key("company");
    writer.StartObject();
    writer.NonEmptyMember("company_id", company.company_id());
    writer.WriteStructMembers(company.metadata(), "company_id", "id");
    writer.EndObject();
  }
  writer.EndObject();
}

void AppendRequestBody(const v1::IdentifyCompanyRequest& request, std::string& out) {
  StringOutput stream(out);
  Writer writer(stream);
  writer.StartObject();
  writer.NonEmptyMember("company_id", request.company_id());
  if (HasProperties(request.metadata())) {
    writer.Key("metadata");
    writer.WriteStruct(request.metadata());
  }
  writer.EndObject();
}

void AppendRequestBody(const v1::TrackEventRequest& request, std::string& out) {
  StringOutput stream(out);
  Writer writer(stream);
  writer.StartObject();
  writer.NonEmptyMember("user_id", request.user_id());
  writer.NonEmptyMember("event_name", request.event_name());
  if (HasProperties(request.metadata())) {
    writer.Key("metadata");
    writer.WriteStruct(request.metadata());
  }
  writer.EndObject();
}

}  // namespace userpilot::gateway
