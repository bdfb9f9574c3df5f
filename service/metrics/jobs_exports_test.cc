#include "gtest/gtest.h"
#include "service/jobs/import/importer.h"
#include "service/jobs/watch/job_watch_registry.h"
#include "service/metrics/component_exports.h"

namespace userpilot::gateway {
namespace {

TEST(ToJobSnapshotTest, MapsWatchesAndImports) {
  JobWatchStats watches;
  watches.subscribers = 7;
  watches.watched_jobs = 2;
  watches.list_watched = true;
  watches.polls = 50;
  watches.poll_errors = 5;
  watches.changes = 12;
  watches.refused = 3;
  ImportStats imports;
  imports.running = 1;
  imports.bytes_received = 4096;
  imports.refused = 2;
  imports.idle_timeouts = 4;
  imports.deadline_timeouts = 1;
  JobSnapshot s = ToJobSnapshot(watches, &imports);
  EXPECT_EQ(s.watchers, 7u);
  EXPECT_EQ(s.pollers, 3u);  // Two job pollers and the list poller.
  EXPECT_EQ(s.polls_ok, 45u);
  EXPECT_EQ(s.polls_failed, 5u);
  EXPECT_EQ(s.updates_fanned_out, 12u);
  EXPECT_EQ(s.imports_in_flight, 1u);
  EXPECT_EQ(s.import_bytes, 4096);
  EXPECT_EQ(s.watches_refused, 3u);
  EXPECT_EQ(s.imports_refused, 2u);
  EXPECT_EQ(s.import_idle_timeouts, 4u);
  EXPECT_EQ(s.import_deadline_timeouts, 1u);
  s = ToJobSnapshot(watches, nullptr);
  EXPECT_EQ(s.imports_in_flight, 0u);
  EXPECT_LT(s.import_bytes, 0);  // No importer: no series rather than a false zero.
}

}  // namespace
}  // namespace userpilot::gateway
