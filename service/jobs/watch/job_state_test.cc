#include "service/jobs/watch/job_state.h"

#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

v1::Job Job(v1::JobStatus status) {
  v1::Job job;
  job.set_job_id("j");
  job.set_status(status);
  return job;
}

TEST(JobStateTest, OnlyCompletedAndFailedAreTerminal) {
  EXPECT_TRUE(IsTerminal(Job(v1::JOB_STATUS_COMPLETED)));
  EXPECT_TRUE(IsTerminal(Job(v1::JOB_STATUS_FAILED)));
  for (auto status : {v1::JOB_STATUS_UNSPECIFIED, v1::JOB_STATUS_QUEUED, v1::JOB_STATUS_VALIDATING,
                      v1::JOB_STATUS_PROCESSING, v1::JOB_STATUS_PENDING_REFRESH}) {
    EXPECT_FALSE(IsTerminal(Job(status))) << status;
  }
}

TEST(JobStateTest, ElapsedTimeAloneIsNotAChange) {
  v1::Job before = Job(v1::JOB_STATUS_PROCESSING);
  before.set_elapsed_time(3);
  v1::Job after = before;
  after.set_elapsed_time(4);
  EXPECT_FALSE(JobChanged(before, after));
  after.set_completed_rows(10);
  EXPECT_TRUE(JobChanged(before, after));
}

TEST(JobStateTest, EveryOtherFieldIsAChangeIncludingPresence) {
  const v1::Job base = Job(v1::JOB_STATUS_PROCESSING);
  v1::Job changed = base;
  changed.set_status(v1::JOB_STATUS_COMPLETED);
  EXPECT_TRUE(JobChanged(base, changed));
  changed = base;
  changed.set_raw_status("processing ");
  EXPECT_TRUE(JobChanged(base, changed));
  changed = base;
  changed.set_completed_rows(0);  // Present with value 0 differs from absent.
  EXPECT_TRUE(JobChanged(base, changed));
  changed = base;
  changed.set_end_time("2026-01-01");
  EXPECT_TRUE(JobChanged(base, changed));
  EXPECT_FALSE(JobChanged(base, base));
}

TEST(JobStateTest, PaceResetsOnChangeAndGrowsToItsCap) {
  PollPace pace{absl::Seconds(1), absl::Seconds(10), 2.0};
  EXPECT_EQ(pace.Next(absl::Seconds(8), /*changed=*/true), absl::Seconds(1));
  EXPECT_EQ(pace.Next(absl::Seconds(1), false), absl::Seconds(2));
  EXPECT_EQ(pace.Next(absl::Seconds(4), false), absl::Seconds(8));
  EXPECT_EQ(pace.Next(absl::Seconds(8), false), absl::Seconds(10));
  EXPECT_EQ(pace.Next(absl::Seconds(10), false), absl::Seconds(10));
  PollPace flat{absl::Seconds(2), absl::Seconds(2), 1.0};
  EXPECT_EQ(flat.Next(absl::Seconds(2), false), absl::Seconds(2));
}

}  // namespace
}  // namespace userpilot::gateway
