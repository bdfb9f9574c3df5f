// Tests of the window accounting over a synthetic request record.
#include "tests/emulator/budget_windows.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/emulator/json.h"

namespace userpilot::gateway::testing {
namespace {

using ::google::protobuf::Value;

const absl::Time kT0 = absl::FromUnixSeconds(1747639752);

RecordedRequest At(double seconds, std::string method, std::string raw_path, int status,
                   Outcome outcome = Outcome::kAnswered) {
  RecordedRequest r;
  r.method = std::move(method);
  r.raw_path = std::move(raw_path);
  r.received_at = kT0 + absl::Seconds(seconds);
  r.response_status = status;
  r.outcome = outcome;
  return r;
}

const GroupWindow& Group(const BudgetWindows& w, BudgetGroup g) {
  return w.groups[static_cast<int>(g)];
}

TEST(BudgetWindowsTest, GroupsFollowUserpilotsBudgets) {
  EXPECT_EQ(BudgetGroupOf("POST", "/v1/identify"), BudgetGroup::kIdentify);
  EXPECT_EQ(BudgetGroupOf("POST", "/v1/companies/identify"), BudgetGroup::kIdentify);
  EXPECT_EQ(BudgetGroupOf("POST", "/v1/track"), BudgetGroup::kTrack);
  EXPECT_EQ(BudgetGroupOf("DELETE", "/v1/users"), BudgetGroup::kDelete);
  EXPECT_EQ(BudgetGroupOf("DELETE", "/v1/companies"), BudgetGroup::kDelete);
  EXPECT_EQ(BudgetGroupOf("GET", "/v1/background_jobs"), BudgetGroup::kJobReads);
  EXPECT_EQ(BudgetGroupOf("GET", "/v1/background_jobs/bulk%3Ajobs%3Ax"), BudgetGroup::kJobReads);
  EXPECT_EQ(BudgetGroupOf("POST", "/v1/users/bulk_identify"), std::nullopt);
  EXPECT_EQ(BudgetGroupOf("POST", "/v1/imports"), std::nullopt);
  EXPECT_EQ(BudgetGroupOf("GET", "/v1/identify"), std::nullopt);
}

TEST(BudgetWindowsTest, MaxInAnyHalfOpenWindow) {
  // Identify at 0, 0.5, 1.0, 1.9 and 2.0. With 1 s windows no window holds more than 2 (the
  // request at 1.0 is outside [0, 1)); with 2 s windows, [0, 2) holds 4.
  const std::vector<RecordedRequest> record = {
      At(2.0, "POST", "/v1/identify", 202),           At(0, "POST", "/v1/identify", 202),
      At(0.5, "POST", "/v1/companies/identify", 202), At(1.0, "POST", "/v1/identify", 202),
      At(1.9, "POST", "/v1/identify", 202),
  };
  BudgetWindows w = AccountWindows(record, absl::Seconds(1));
  EXPECT_EQ(Group(w, BudgetGroup::kIdentify).requests, 5);
  EXPECT_EQ(Group(w, BudgetGroup::kIdentify).max_in_window, 2);
  w = AccountWindows(record, absl::Seconds(2));
  EXPECT_EQ(Group(w, BudgetGroup::kIdentify).max_in_window, 4);
  EXPECT_EQ(Group(w, BudgetGroup::kTrack).requests, 0);
  EXPECT_EQ(Group(w, BudgetGroup::kTrack).max_in_window, 0);
}

TEST(BudgetWindowsTest, CountsAcceptedAndBothKindsOf429Apart) {
  const std::vector<RecordedRequest> record = {
      At(0, "POST", "/v1/track", 202),
      At(0.1, "POST", "/v1/track", 429),
      At(0.2, "POST", "/v1/track", 429, Outcome::kInjectedError),
      At(0.3, "POST", "/v1/track", 0, Outcome::kDropped),
      At(0.4, "POST", "/v1/track", 202),
      At(0.5, "GET", "/v1/background_jobs", 200),
      At(0.6, "POST", "/v1/users/bulk_identify", 202),
  };
  const BudgetWindows w = AccountWindows(record, absl::Seconds(60));
  const GroupWindow& track = Group(w, BudgetGroup::kTrack);
  EXPECT_EQ(track.requests, 5);
  EXPECT_EQ(track.max_in_window, 5);
  EXPECT_EQ(track.max_accepted_in_window, 2);
  EXPECT_EQ(track.rate_limited, 1);
  EXPECT_EQ(track.injected_429, 1);
  EXPECT_EQ(Group(w, BudgetGroup::kJobReads).requests, 1);

  absl::StatusOr<Value> json = ParseJson(BudgetWindowsToJson(w));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(FindField(*json, "window_ms")->number_value(), 60000);
  const Value* groups = FindField(*json, "groups");
  ASSERT_NE(groups, nullptr);
  for (const char* name : {"identify", "track", "delete", "job_reads"}) {
    EXPECT_NE(FindField(*groups, name), nullptr) << name;
  }
  EXPECT_EQ(FindField(*FindField(*groups, "track"), "rate_limited")->number_value(), 1);
}

}  // namespace
}  // namespace userpilot::gateway::testing
