#include "service/common/trace_context.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace userpilot::gateway {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsLowerHex(absl::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return IsLowerHex(c); });
}

bool AllZeros(absl::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c == '0'; });
}

int HexValue(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

// `digits` random lower-case hex digits, not all zeros.
std::string RandomHex(size_t digits) {
  thread_local absl::BitGen gen;
  std::string id(digits, '0');
  do {
    for (char& c : id) c = kHexDigits[absl::Uniform<int>(gen, 0, 16)];
  } while (AllZeros(id));
  return id;
}

}  // namespace

std::optional<TraceParent> ParseTraceparent(absl::string_view value) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
  constexpr size_t kLength = 55;
  if (value.size() < kLength) return std::nullopt;
  const absl::string_view version = value.substr(0, 2);
  if (!IsLowerHex(version) || version == "ff") return std::nullopt;
  if (version == "00" ? value.size() != kLength : value.size() > kLength && value[kLength] != '-') {
    return std::nullopt;
  }
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') return std::nullopt;
  const absl::string_view trace_id = value.substr(3, 32);
  const absl::string_view parent_id = value.substr(36, 16);
  const absl::string_view flags = value.substr(53, 2);
  if (!IsLowerHex(trace_id) || AllZeros(trace_id)) return std::nullopt;
  if (!IsLowerHex(parent_id) || AllZeros(parent_id)) return std::nullopt;
  if (!IsLowerHex(flags)) return std::nullopt;
  TraceParent parsed;
  parsed.trace_id = std::string(trace_id);
  parsed.parent_id = std::string(parent_id);
  parsed.flags = static_cast<uint8_t>(HexValue(flags[0]) * 16 + HexValue(flags[1]));
  return parsed;
}

std::string FormatTraceparent(absl::string_view trace_id, absl::string_view span_id,
                              uint8_t flags) {
  const char flag_digits[2] = {kHexDigits[flags >> 4], kHexDigits[flags & 0xF]};
  return absl::StrCat("00-", trace_id, "-", span_id, "-", absl::string_view(flag_digits, 2));
}

bool AcceptableTracestate(absl::string_view value) {
  if (value.size() > kMaxTracestateBytes) return false;
  return std::all_of(value.begin(), value.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte == '\t' || (byte >= 0x20 && byte < 0x7F);
  });
}

std::string NewTraceId() { return RandomHex(32); }
std::string NewSpanId() { return RandomHex(16); }

TraceContext TraceContextForCall(absl::Span<const absl::string_view> traceparents,
                                 absl::Span<const absl::string_view> tracestates) {
  TraceContext context;
  context.span_id = NewSpanId();
  std::optional<TraceParent> parent;
  if (traceparents.size() == 1) parent = ParseTraceparent(traceparents[0]);
  if (!parent.has_value()) {
    context.trace_id = NewTraceId();
    return context;
  }
  context.trace_id = std::move(parent->trace_id);
  context.parent_span_id = std::move(parent->parent_id);
  context.flags = parent->flags;
  std::string state = absl::StrJoin(tracestates, ",");
  if (!state.empty() && AcceptableTracestate(state)) context.tracestate = std::move(state);
  return context;
}

}  // namespace userpilot::gateway
