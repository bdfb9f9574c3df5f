// Window accounting over the emulator's request record: for each of Userpilot's rate budgets
// (identify + company identify, track, deletes, job reads), how many requests arrived, the
// largest number that arrived within any sliding window of a given length, and how many were
// answered 429. This is what a test of a rate-limiting client checks: "Userpilot never saw more
// than N in any W seconds, and never had to refuse one".
//
// A window is half-open, [t, t + W): two requests exactly W apart never share one, as in the
// emulator's own limiter (a request admitted at t counts until t + W).
//
// Thread-safety: stateless free functions over a copy of the record, safe from any thread.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_BUDGET_WINDOWS_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_BUDGET_WINDOWS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/emulator/request_log.h"

namespace userpilot::gateway::testing {

// The budget groups, as Userpilot counts them.
enum class BudgetGroup {
  kIdentify = 0,  // POST /v1/identify and POST /v1/companies/identify, one budget.
  kTrack = 1,     // POST /v1/track.
  kDelete = 2,    // DELETE /v1/users and DELETE /v1/companies, one budget.
  kJobReads = 3,  // GET /v1/background_jobs and GET /v1/background_jobs/{id}.
};
inline constexpr int kBudgetGroups = 4;

// "identify", "track", "delete", "job_reads".
absl::string_view BudgetGroupName(BudgetGroup group);
// The group of a request, or nullopt for requests outside every budget (bulk, imports, ...).
std::optional<BudgetGroup> BudgetGroupOf(absl::string_view method, absl::string_view raw_path);

struct GroupWindow {
  int64_t requests = 0;       // Requests received (every outcome).
  int64_t max_in_window = 0;  // Most requests received within one window.
  // Most requests answered 2xx within one window (by receive time).
  int64_t max_accepted_in_window = 0;
  int64_t rate_limited = 0;  // 429s from the emulator's limiter.
  int64_t injected_429 = 0;  // 429s chosen by fault injection.
};

struct BudgetWindows {
  absl::Duration window;
  GroupWindow groups[kBudgetGroups];
  // Requests the bounded record no longer holds (RequestLog::Evicted()): when not 0, the counts
  // above miss them.
  int64_t evicted = 0;
};

// Accounts `requests` (any order) over sliding windows of `window` (> 0).
BudgetWindows AccountWindows(const std::vector<RecordedRequest>& requests, absl::Duration window);

// {"window_ms":..,"evicted":..,"groups":{"identify":{"requests":..,"max_in_window":..,
//  "max_accepted_in_window":..,"rate_limited":..,"injected_429":..},"track":..,...}}
std::string BudgetWindowsToJson(const BudgetWindows& windows);

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_BUDGET_WINDOWS_H_
