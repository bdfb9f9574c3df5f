#include "service/validation/validation_limits.h"

#include <cstdint>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Every limit, by name, with the largest value Validate() accepts.
struct Field {
  const char* name;
  int64_t ValidationLimits::*member;
  int64_t ceiling;
};

constexpr Field kFields[] = {
    {"max_id_bytes", &ValidationLimits::max_id_bytes, 4096},
    {"max_event_name_bytes", &ValidationLimits::max_event_name_bytes, 4096},
    {"max_metadata_keys", &ValidationLimits::max_metadata_keys, 10000},
    {"max_metadata_key_bytes", &ValidationLimits::max_metadata_key_bytes, 4096},
    {"max_string_value_bytes", &ValidationLimits::max_string_value_bytes, 1024 * 1024},
    {"max_bulk_rows", &ValidationLimits::max_bulk_rows, 10000},
    {"max_bulk_request_bytes", &ValidationLimits::max_bulk_request_bytes, 50000000},
    {"max_delete_ids", &ValidationLimits::max_delete_ids, 10000},
    {"max_job_id_bytes", &ValidationLimits::max_job_id_bytes, 4096},
    {"max_violations", &ValidationLimits::max_violations, 1000},
};

TEST(ValidationLimitsTest, DefaultsAreValid) { EXPECT_TRUE(ValidationLimits().Validate().ok()); }

TEST(ValidationLimitsTest, EachLimitAtItsBounds) {
  for (const Field& f : kFields) {
    SCOPED_TRACE(f.name);
    for (int64_t ok : {int64_t{1}, f.ceiling}) {
      ValidationLimits limits;
      limits.*f.member = ok;
      EXPECT_TRUE(limits.Validate().ok()) << ok << ": " << limits.Validate();
    }
    for (int64_t bad : {int64_t{0}, int64_t{-1}, f.ceiling + 1}) {
      ValidationLimits limits;
      limits.*f.member = bad;
      const absl::Status status = limits.Validate();
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
      EXPECT_THAT(
          std::string(status.message()),
          HasSubstr(std::string(f.name) + " must be between 1 and " + std::to_string(f.ceiling)));
      EXPECT_THAT(std::string(status.message()), HasSubstr("got " + std::to_string(bad)));
    }
  }
}

TEST(ValidationLimitsTest, BulkRowsAboveUserpilotsLimitNamesTheField) {
  ValidationLimits limits;
  limits.max_bulk_rows = 10001;
  EXPECT_EQ(limits.Validate().message(),
            "invalid validation limits: max_bulk_rows must be between 1 and 10000 (Userpilot's "
            "limit for one bulk identify request), got 10001");
}

TEST(ValidationLimitsTest, EveryBadLimitIsNamed) {
  ValidationLimits limits;
  limits.max_id_bytes = 0;
  limits.max_violations = -5;
  const std::string message(limits.Validate().message());
  EXPECT_THAT(message, HasSubstr("max_id_bytes must be"));
  EXPECT_THAT(message, HasSubstr("max_violations must be"));
  EXPECT_THAT(message, Not(HasSubstr("max_bulk_rows")));
}

}  // namespace
}  // namespace userpilot::gateway
