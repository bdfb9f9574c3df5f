// Fuzz target: the parsers of who may call (service/auth): the caller token file
// (`--caller_tokens_file`, caller_tokens.h) and the allow-list (`--caller_allow`,
// caller_allow_list.h). Both files are re-read while the gateway runs, so a broken one must be
// refused cleanly, never crash it.
//
// Input: the first byte picks the parser (even: the token file, odd: the allow-list); the rest
// is the file's contents or the flag's value.
//
// Properties, besides the sanitizers':
//  - a token file that parses has 1 to kMaxEntries entries, each with a valid caller name and
//    a digest no other entry has; written back as `NAME HEX` lines it parses to the same
//    entries; a token matches exactly when its SHA-256 is an entry's digest;
//  - a refused token file is INVALID_ARGUMENT naming the file (and the line), and its message
//    never quotes a line's second field (where a token pasted by mistake would be);
//  - an allow-list that parses, written back as its DebugString, parses to the same list, and
//    both allow the same RPCs to the same callers.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "google/protobuf/descriptor.h"
#include "service/auth/caller_allow_list.h"
#include "service/auth/caller_name.h"
#include "service/auth/caller_tokens.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {
namespace {

std::string Hex(const TokenDigest& digest) {
  std::string hex;
  for (unsigned char byte : digest) absl::StrAppend(&hex, absl::Hex(byte, absl::kZeroPad2));
  return hex;
}

// The fields of each line that is not a comment, split as the parser splits them.
std::vector<std::vector<absl::string_view>> LineFields(absl::string_view contents) {
  std::vector<std::vector<absl::string_view>> lines;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    const absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (absl::StartsWith(trimmed, "#")) continue;  // A comment has no fields.
    lines.push_back(absl::StrSplit(trimmed, absl::ByAnyChar(" \t"), absl::SkipEmpty()));
  }
  return lines;
}

void CheckTokenFile(absl::string_view contents) {
  absl::StatusOr<CallerTokens> tokens = CallerTokens::Parse(contents, "tokens.txt");
  if (!tokens.ok()) {
    const absl::string_view message = tokens.status().message();
    FUZZ_CHECK(tokens.status().code() == absl::StatusCode::kInvalidArgument,
               tokens.status().ToString());
    FUZZ_CHECK(absl::StartsWith(message, "tokens.txt "), tokens.status().ToString());
    const auto lines = LineFields(contents);
    std::set<absl::string_view> first_fields;
    for (const auto& fields : lines) {
      if (!fields.empty()) first_fields.insert(fields[0]);
    }
    for (const auto& fields : lines) {
      for (size_t i = 1; i < fields.size(); ++i) {
        if (fields[i].size() < 16) continue;
        // Messages quote names as 'NAME': a second field may be part of a quoted name (say
        // "'billing-2'", a whole word of a file whose first line is prose).
        bool inside_a_name = false;
        for (absl::string_view name : first_fields) {
          inside_a_name =
              inside_a_name || absl::StrContains(absl::StrCat("'", name, "'"), fields[i]);
        }
        FUZZ_CHECK(inside_a_name || !absl::StrContains(message, fields[i]),
                   "the message quotes a second field: " + std::string(message));
      }
    }
    return;
  }
  const std::vector<CallerTokens::Entry>& entries = tokens->entries();
  FUZZ_CHECK(!entries.empty() && entries.size() <= CallerTokens::kMaxEntries, "entry count");
  std::set<TokenDigest> digests;
  std::string rewritten;
  for (const CallerTokens::Entry& entry : entries) {
    FUZZ_CHECK(IsValidCallerName(entry.caller), "an invalid caller name taken");
    FUZZ_CHECK(digests.insert(entry.digest).second, "a digest taken twice");
    absl::StrAppend(&rewritten, entry.caller, " ", Hex(entry.digest), "\n");
  }
  absl::StatusOr<CallerTokens> again = CallerTokens::Parse(rewritten, "rewritten");
  FUZZ_CHECK(again.ok(), "the entries written back do not parse: " + again.status().ToString());
  FUZZ_CHECK(again->entries().size() == entries.size(), "entries written back");
  for (size_t i = 0; i < entries.size(); ++i) {
    FUZZ_CHECK(again->entries()[i].caller == entries[i].caller &&
                   again->entries()[i].digest == entries[i].digest,
               "entry written back differs");
  }
  // The contents themselves as a token: a match exactly when its digest is an entry's.
  const std::string* match = tokens->Match(contents);
  FUZZ_CHECK((match != nullptr) == (digests.count(Sha256(contents)) > 0), "Match");
}

void CheckAllowList(absl::string_view spec) {
  static const google::protobuf::ServiceDescriptor& service =
      *v1::IdentifyUserRequest::descriptor()->file()->FindServiceByName("UserpilotGateway");
  absl::StatusOr<CallerAllowList> list = CallerAllowList::Parse(spec, service);
  if (!list.ok()) {
    FUZZ_CHECK(list.status().code() == absl::StatusCode::kInvalidArgument,
               list.status().ToString());
    return;
  }
  std::vector<std::string> callers = list->Callers();
  for (const std::string& caller : callers) {
    FUZZ_CHECK(IsValidCallerName(caller), "an invalid caller name taken: " + caller);
  }
  callers.push_back("someone-else");
  const std::string normalized = list->DebugString();
  if (list->allows_everything() || absl::StartsWith(normalized, "(")) return;
  absl::StatusOr<CallerAllowList> again = CallerAllowList::Parse(normalized, service);
  FUZZ_CHECK(again.ok(), "DebugString does not parse: " + normalized);
  FUZZ_CHECK(again->DebugString() == normalized, "DebugString changes when parsed again");
  for (const std::string& caller : callers) {
    for (int m = 0; m < service.method_count(); ++m) {
      const std::string& rpc = service.method(m)->name();
      FUZZ_CHECK(list->Allows(caller, rpc) == again->Allows(caller, rpc),
                 caller + " " + rpc + " differs in " + normalized);
    }
  }
}

}  // namespace
}  // namespace userpilot::gateway

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    userpilot::gateway::CheckTokenFile(rest);
  } else {
    userpilot::gateway::CheckAllowList(rest);
  }
  return 0;
}
