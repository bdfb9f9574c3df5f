#include "service/auth/caller_allow_list.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "service/auth/caller_name.h"

namespace userpilot::gateway {
namespace {

constexpr absl::string_view kAnyCaller = "*";

}  // namespace

absl::StatusOr<CallerAllowList> CallerAllowList::Parse(
    absl::string_view spec, const google::protobuf::ServiceDescriptor& service) {
  CallerAllowList list;
  if (absl::StripAsciiWhitespace(spec).empty()) return list;
  list.everything_ = false;

  std::set<std::string, std::less<>> methods;
  for (int i = 0; i < service.method_count(); ++i) methods.insert(service.method(i)->name());
  const std::string method_names = absl::StrJoin(methods, ", ");

  std::vector<std::string> problems;
  std::map<std::string, int> entry_of_caller;
  int position = 0;
  for (absl::string_view raw : absl::StrSplit(spec, ',')) {
    ++position;
    absl::string_view entry = absl::StripAsciiWhitespace(raw);
    auto problem = [&](absl::string_view message) {
      problems.push_back(absl::StrCat("entry ", position, " '", entry, "': ", message));
    };
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      problem("expected CALLER=RPC|RPC|... (CALLER a caller name or *)");
      continue;
    }
    const std::string caller(absl::StripAsciiWhitespace(entry.substr(0, eq)));
    if (caller != kAnyCaller && !IsValidCallerName(caller)) {
      problem(absl::StrCat("the caller must be * or a caller name (", kCallerNameRule, ")"));
      continue;
    }
    auto [previous, first] = entry_of_caller.emplace(caller, position);
    if (!first) {
      problem(absl::StrCat("caller '", caller, "' already has entry ", previous->second,
                           ": list all its RPCs in one entry"));
      continue;
    }
    std::set<std::string, std::less<>> rpcs;
    bool entry_ok = true;
    for (absl::string_view raw_rpc : absl::StrSplit(entry.substr(eq + 1), '|')) {
      absl::string_view rpc = absl::StripAsciiWhitespace(raw_rpc);
      if (rpc.empty()) {
        problem("an empty RPC name (write RPC|RPC, with no empty item)");
        entry_ok = false;
      } else if (methods.find(rpc) == methods.end()) {
        problem(absl::StrCat("'", rpc, "' is not an RPC of ", service.full_name(), " (",
                             method_names, ")"));
        entry_ok = false;
      } else if (!rpcs.emplace(rpc).second) {
        problem(absl::StrCat("'", rpc, "' is listed twice"));
        entry_ok = false;
      }
    }
    if (!entry_ok) continue;
    if (caller == kAnyCaller) {
      list.any_caller_ = std::move(rpcs);
    } else {
      list.by_caller_.emplace(caller, std::move(rpcs));
    }
  }
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "; "));
  return list;
}

bool CallerAllowList::Allows(absl::string_view caller, absl::string_view rpc) const {
  if (everything_) return true;
  if (any_caller_.find(rpc) != any_caller_.end()) return true;
  auto it = by_caller_.find(caller);
  return it != by_caller_.end() && it->second.find(rpc) != it->second.end();
}

std::vector<std::string> CallerAllowList::Callers() const {
  std::vector<std::string> names;
  for (const auto& [caller, rpcs] : by_caller_) names.push_back(caller);
  return names;
}

std::string CallerAllowList::DebugString() const {
  if (everything_) return "(all RPCs for every caller)";
  std::vector<std::string> entries;
  for (const auto& [caller, rpcs] : by_caller_) {
    entries.push_back(absl::StrCat(caller, "=", absl::StrJoin(rpcs, "|")));
  }
  if (!any_caller_.empty()) {
    entries.push_back(absl::StrCat(kAnyCaller, "=", absl::StrJoin(any_caller_, "|")));
  }
  return entries.empty() ? "(no RPC for any caller)" : absl::StrJoin(entries, ",");
}

}  // namespace userpilot::gateway
