#include "tests/emulator/budget_windows.h"

#include <algorithm>

#include "tests/emulator/json.h"
#include "tests/emulator/userpilot_api.h"

namespace userpilot::gateway::testing {
namespace {

// The most of `times` (sorted) within any half-open window [t, t + window).
int64_t MaxInWindow(const std::vector<absl::Time>& times, absl::Duration window) {
  int64_t best = 0;
  size_t first = 0;
  for (size_t last = 0; last < times.size(); ++last) {
    while (times[last] - times[first] >= window) ++first;
    best = std::max<int64_t>(best, static_cast<int64_t>(last - first + 1));
  }
  return best;
}

}  // namespace

absl::string_view BudgetGroupName(BudgetGroup group) {
  switch (group) {
    case BudgetGroup::kTrack:
      return "track";
    case BudgetGroup::kDelete:
      return "delete";
    case BudgetGroup::kJobReads:
      return "job_reads";
    case BudgetGroup::kIdentify:
    default:
      return "identify";
  }
}

std::optional<BudgetGroup> BudgetGroupOf(absl::string_view method, absl::string_view raw_path) {
  switch (Classify(method, raw_path).endpoint) {
    case Endpoint::kIdentify:
    case Endpoint::kCompanyIdentify:
      return BudgetGroup::kIdentify;
    case Endpoint::kTrack:
      return BudgetGroup::kTrack;
    case Endpoint::kDeleteUsers:
    case Endpoint::kDeleteCompanies:
      return BudgetGroup::kDelete;
    case Endpoint::kListJobs:
    case Endpoint::kGetJob:
      return BudgetGroup::kJobReads;
    default:
      return std::nullopt;
  }
}

BudgetWindows AccountWindows(const std::vector<RecordedRequest>& requests, absl::Duration window) {
  BudgetWindows out;
  out.window = window;
  std::vector<absl::Time> all[kBudgetGroups];
  std::vector<absl::Time> accepted[kBudgetGroups];
  for (const RecordedRequest& r : requests) {
    const std::optional<BudgetGroup> group = BudgetGroupOf(r.method, r.raw_path);
    if (!group) continue;
    const int g = static_cast<int>(*group);
    GroupWindow& w = out.groups[g];
    ++w.requests;
    all[g].push_back(r.received_at);
    if (r.response_status >= 200 && r.response_status < 300) {
      accepted[g].push_back(r.received_at);
    }
    if (r.response_status == 429) {
      ++(r.outcome == Outcome::kInjectedError ? w.injected_429 : w.rate_limited);
    }
  }
  for (int g = 0; g < kBudgetGroups; ++g) {
    std::sort(all[g].begin(), all[g].end());
    std::sort(accepted[g].begin(), accepted[g].end());
    out.groups[g].max_in_window = MaxInWindow(all[g], window);
    out.groups[g].max_accepted_in_window = MaxInWindow(accepted[g], window);
  }
  return out;
}

std::string BudgetWindowsToJson(const BudgetWindows& windows) {
  JsonWriter w;
  w.BeginObject()
      .Field("window_ms", absl::ToDoubleMilliseconds(windows.window))
      .Field("evicted", windows.evicted)
      .Key("groups")
      .BeginObject();
  for (int g = 0; g < kBudgetGroups; ++g) {
    const GroupWindow& group = windows.groups[g];
    w.Key(BudgetGroupName(static_cast<BudgetGroup>(g)))
        .BeginObject()
        .Field("requests", group.requests)
        .Field("max_in_window", group.max_in_window)
        .Field("max_accepted_in_window", group.max_accepted_in_window)
        .Field("rate_limited", group.rate_limited)
        .Field("injected_429", group.injected_429)
        .EndObject();
  }
  w.EndObject().EndObject();
  return w.Release();
}

}  // namespace userpilot::gateway::testing
