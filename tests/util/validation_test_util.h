// Test helpers shared by the request validator's tests (test-only; not linked into the gateway).
#ifndef USERPILOT_GATEWAY_TESTS_UTIL_VALIDATION_TEST_UTIL_H_
#define USERPILOT_GATEWAY_TESTS_UTIL_VALIDATION_TEST_UTIL_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "service/validation/request_validator.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway::validation_testing {

// One expected violation: the exact field path and a substring of its description.
struct Expected {
  std::string field;
  std::string description;
};

// One row of a table: a request written as JSON (proto field names), an optional change for
// what JSON cannot express (NaN, bytes that are not UTF-8, a Value with no kind), and the
// violations expected, in order. No violations means the request is valid.
template <typename Request>
struct Case {
  std::string name;
  std::string json;
  std::vector<Expected> violations;
  std::function<void(Request&)> mutate = nullptr;
};

inline std::string Describe(const google::rpc::BadRequest& bad_request) {
  std::vector<std::string> lines;
  for (const auto& v : bad_request.field_violations()) {
    lines.push_back(absl::StrCat("  ", v.field(), ": ", v.description()));
  }
  return absl::StrJoin(lines, "\n");
}

inline void ExpectViolations(const CallStatus& status, const std::vector<Expected>& expected) {
  if (expected.empty()) {
    EXPECT_TRUE(status.ok()) << status;
    return;
  }
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  auto bad_request = wire::Detail<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad_request.has_value()) << status;
  ASSERT_EQ(bad_request->field_violations_size(), static_cast<int>(expected.size()))
      << "got:\n"
      << Describe(*bad_request);
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& actual = bad_request->field_violations(static_cast<int>(i));
    EXPECT_EQ(actual.field(), expected[i].field) << "violation " << i;
    EXPECT_THAT(actual.description(), ::testing::HasSubstr(expected[i].description))
        << "violation " << i << " of " << actual.field();
  }
}

template <typename Request>
Request Parse(const std::string& json) {
  Request request;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &request);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << json;
  return request;
}

template <typename Request>
void RunTable(const RequestValidator& validator, const std::vector<Case<Request>>& table) {
  for (const Case<Request>& c : table) {
    SCOPED_TRACE(c.name);
    Request request = Parse<Request>(c.json);
    if (c.mutate) c.mutate(request);
    ExpectViolations(validator.Validate(request), c.violations);
  }
}

// Small limits keep the tables readable: boundaries are a few characters long.
inline ValidationLimits TestLimits() {
  ValidationLimits limits;
  limits.max_id_bytes = 8;
  limits.max_event_name_bytes = 10;
  limits.max_metadata_keys = 4;
  limits.max_metadata_key_bytes = 10;
  limits.max_string_value_bytes = 5;
  limits.max_bulk_rows = 3;
  limits.max_delete_ids = 3;
  limits.max_job_id_bytes = 16;
  limits.max_violations = 100;
  return limits;
}

inline void SetValue(google::protobuf::Struct* s, const std::string& key, double number) {
  (*s->mutable_fields())[key].set_number_value(number);
}

}  // namespace userpilot::gateway::validation_testing

#endif  // USERPILOT_GATEWAY_TESTS_UTIL_VALIDATION_TEST_UTIL_H_
