"""End-to-end (issue 16, coalescing): a backlog of queued identifies delivered through bulk jobs,
on the embedded queue and on the shared one (Redis, with a lease timeout shorter than a job).

3,000 identifies are enqueued (2,500 users, 500 of them identified twice) behind a small
per-call identify budget (120 a minute: singly, the backlog would take about half an hour). The
gateway's dispatcher coalesces them into bulk identify jobs on the emulator; the test checks,
from the emulator's own record, that
  - every call was delivered (GetDelivery DELIVERED, the backlog empty) well within that time,
    mostly as bulk rows, with the coalescing metrics saying so;
  - every user is present upstream with its LAST properties (replaying the accepted single
    identifies and bulk rows in the order the emulator applied them);
  - a user's later call never overtook its job row: a single identify (or a later job's row)
    of a user reached the emulator only after the job holding that user's earlier row ended.
Then a gateway killed (SIGKILL) while its job still runs: the job's rows and a later call of one
of its users wait, after the restart, for the job to end (CoalescedJobOutlivesAKillTest).
"""

import json
import re
import shutil
import tempfile
import time
import unittest
import urllib.parse

from userpilot.gateway.v1 import gateway_pb2

import upgw_harness as harness

TIMEOUT = 10  # seconds, every call
USERS = 2500
TWICE = 500  # users identified a second time, after everyone's first call
DELIVERY_WAIT = 150  # seconds
LEASE_TIMEOUT = 6  # seconds, --queue_redis_lease_timeout of the Redis variant: shorter than a job


def identify(user, plan):
    request = gateway_pb2.EnqueueRequest(identify_user=gateway_pb2.IdentifyUserRequest(user_id=user))
    request.identify_user.metadata.update({"plan": plan})
    return request


def metric(text, name, labels=""):
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else None


class CoalesceTest(unittest.TestCase):
    """On the embedded queue (--queue_dir)."""

    JOB_STEP = "200ms"  # the emulator's: a job takes a few steps

    @classmethod
    def queue_flags(cls):
        cls.queue_dir = tempfile.mkdtemp(prefix="upgw-e2e-coalesce-")
        return [f"--queue_dir={cls.queue_dir}"]

    @classmethod
    def cleanup_queue(cls):
        shutil.rmtree(cls.queue_dir, ignore_errors=True)

    @classmethod
    def setUpClass(cls):
        queue = cls.queue_flags()
        cls.emulator = harness.Emulator([f"--job_step={cls.JOB_STEP}"])
        try:
            cls.gateway = harness.Gateway(cls.emulator.url, queue + [
                "--identify_rate=120/1m",
                "--queue_coalesce_threshold=50",
                "--watch_min_poll_interval=200ms",
                "--watch_max_poll_interval=1s",
                "--job_lane_poll_interval=200ms",
                "--job_read_rate=1200/1m",
            ])
        except BaseException:
            cls.emulator.cleanup()
            cls.cleanup_queue()
            raise

    @classmethod
    def tearDownClass(cls):
        status = cls.gateway.stop()
        cls.emulator.cleanup()
        cls.cleanup_queue()
        assert status == 0, f"the gateway exited {status}"

    def test_a_backlog_goes_through_bulk_jobs_each_user_ending_with_its_last_properties(self):
        stub = self.gateway.stub()
        calls = [identify(f"co-user-{u}", "v1") for u in range(USERS)]
        calls += [identify(f"co-user-{u}", "v2") for u in range(TWICE)]
        ids = []
        started = time.monotonic()
        for i in range(0, len(calls), 1000):
            answer = stub.EnqueueBatch(gateway_pb2.EnqueueBatchRequest(calls=calls[i:i + 1000]),
                                       timeout=TIMEOUT)
            for outcome in answer.outcomes:
                self.assertEqual(outcome.code, 0, outcome.message)
                ids.append(outcome.delivery_id)

        harness.wait_for(
            lambda: metric(self.gateway.metrics(), "userpilot_gateway_delivery_backlog_calls") == 0,
            DELIVERY_WAIT, "the backlog delivered", interval=0.5)
        elapsed = time.monotonic() - started
        for delivery_id in ids[:50] + ids[-50:]:
            state = stub.GetDelivery(gateway_pb2.GetDeliveryRequest(delivery_id=delivery_id),
                                     timeout=TIMEOUT).delivery.state
            self.assertEqual(state, gateway_pb2.DELIVERY_STATE_DELIVERED)

        # Replay what the emulator accepted, in the order it applied it: a single identify when
        # it arrived, a bulk job's rows when the job ended.
        jobs = sorted((j for j in self.emulator.admin("GET", "jobs")["jobs"]
                       if j["type"] == "users_bulk_identify"),
                      key=lambda j: harness.parse_time(j["start_time"]))
        self.assertTrue(all(j["status"] == "completed" for j in jobs), jobs)
        bulk_requests = [r for r in self.emulator.requests_to("/v1/users/bulk_identify")
                         if 200 <= r["response_status"] < 300]
        self.assertEqual(len(bulk_requests), len(jobs))
        events = []  # (applied at, order, user, plan, received at)
        rows = 0
        for request, job in zip(bulk_requests, jobs):
            end = harness.parse_time(job["end_time"])
            for row in json.loads(request["body"])["users"]:
                events.append((end, len(events), row["user_id"], row["metadata"]["plan"],
                               request["received"]))
                rows += 1
        singles = 0
        for request in self.emulator.requests_to("/v1/identify"):
            if 200 <= request["response_status"] < 300:
                body = json.loads(request["body"])
                events.append((request["received"], len(events), body["user_id"],
                               body["metadata"]["plan"], request["received"]))
                singles += 1
        events.sort()
        final, applied_at = {}, {}
        for at, _, user, plan, received in events:
            # Sent only after the user's previous call had been applied (its job ended).
            if user in applied_at:
                self.assertGreaterEqual(received, applied_at[user] - 0.001,
                                        f"{user}'s {plan} overtook its earlier call")
            final[user] = plan
            applied_at[user] = at
        expected = {f"co-user-{u}": ("v2" if u < TWICE else "v1") for u in range(USERS)}
        self.assertEqual(final, expected)
        self.assertEqual(rows + singles, len(calls))
        self.assertGreater(rows, 0.9 * len(calls), f"{rows} rows, {singles} single calls")

        metrics = self.gateway.metrics()
        self.assertEqual(metric(metrics, "userpilot_gateway_delivery_coalesced_rows_total",
                                '{outcome="delivered"}'), rows)
        self.assertEqual(metric(metrics, "userpilot_gateway_delivery_coalesced_jobs_total",
                                '{outcome="completed"}'), len(jobs))
        longest = max(harness.parse_time(j["end_time"]) - harness.parse_time(j["start_time"])
                      for j in jobs)
        self.check_leases(metrics, longest)
        print(f"\n{len(calls)} identifies delivered in {elapsed:.1f} s: {rows} rows in "
              f"{len(jobs)} bulk jobs (the longest {longest:.1f} s), {singles} single calls "
              f"(per-call budget 120/1m)")

    def check_leases(self, metrics, longest_job):
        """Nothing to check: the embedded queue's leases last while the process lives."""


class CoalesceRedisTest(CoalesceTest):
    """The same on the shared queue (--queue_redis), with jobs that run longer than the lease
    timeout: the rows' leases are renewed while the job runs, so none lapses (the only replica
    would lease it again, in doubt) and none is lost."""

    JOB_STEP = "5s"

    @classmethod
    def queue_flags(cls):
        cls.redis = harness.RedisServer(["--appendonly", "yes", "--appendfsync", "always"])
        return [f"--queue_redis={cls.redis.url}", f"--queue_redis_lease_timeout={LEASE_TIMEOUT}s",
                # Shorter than the lease timeout, as docs/configuration.md asks.
                f"--default_deadline={LEASE_TIMEOUT - 1}s"]

    @classmethod
    def cleanup_queue(cls):
        cls.redis.stop()

    def check_leases(self, metrics, longest_job):
        self.assertGreater(longest_job, LEASE_TIMEOUT,
                           "no job outlived a lease: renewal was not exercised")
        self.assertEqual(metric(metrics, "userpilot_gateway_delivery_in_doubt_total"), 0)
        self.assertEqual(metric(metrics, "userpilot_gateway_delivery_leases_lost_total"), 0)


class CoalescedJobOutlivesAKillTest(unittest.TestCase):
    """The gateway is killed (SIGKILL) while its coalesced job still runs at the emulator (pinned
    `processing`), restarted on the same --queue_dir, and a later call for one of the job's users
    is enqueued. The job's rows come back in doubt: neither they nor that later call may go while
    the job runs, or the job would apply its old row over the newer call (the emulator applies a
    bulk job's rows when the job completes). Once the job is let finish, every row is sent again
    and the later call after it: the emulator's profiles show each user's properties applied in
    acknowledged order, the later call's final."""

    USERS = 20
    # A small in-flight bound: with --queue_redis the threshold counts the calls seen ready after
    # a lease, so the first lease (of single calls) must leave enough behind to start a job.
    FLAGS = ["--queue_max_in_flight=4",
             "--identify_rate=6000/1m",
             "--watch_min_poll_interval=200ms",
             "--watch_max_poll_interval=1s",
             "--job_lane_poll_interval=200ms",
             "--job_read_rate=1200/1m"]

    TAKEOVER_WAIT = 10  # seconds, for the restarted gateway to hold the job's rows again

    def setUp(self):
        self.queue_dir = tempfile.mkdtemp(prefix="upgw-e2e-coalesce-kill-")
        self.emulator = harness.Emulator(["--job_step=30s"])  # pinned below long before
        self.gateway = None

    def tearDown(self):
        if self.gateway is not None:
            self.gateway.stop()
        self.emulator.cleanup()
        shutil.rmtree(self.queue_dir, ignore_errors=True)

    def queue_flags(self):
        return [f"--queue_dir={self.queue_dir}"]

    def start_gateway(self, threshold):
        self.gateway = harness.Gateway(self.emulator.url,
                                       self.queue_flags() +
                                       [f"--queue_coalesce_threshold={threshold}"] + self.FLAGS)
        return self.gateway.stub()

    def bulk_jobs(self):
        return [j for j in self.emulator.admin("GET", "jobs")["jobs"]
                if j["type"] == "users_bulk_identify"]

    def pin(self, job_id, status):
        self.emulator.admin("POST", f"jobs/{urllib.parse.quote(job_id, safe='')}/status",
                            {"status": status})

    def test_rows_of_a_job_running_at_a_kill_wait_for_its_end_and_later_calls_wait_behind(self):
        stub = self.start_gateway(threshold=5)
        calls = [identify(f"kill-user-{u}", "v1") for u in range(self.USERS)]
        answer = stub.EnqueueBatch(gateway_pb2.EnqueueBatchRequest(calls=calls), timeout=TIMEOUT)
        self.assertTrue(all(o.code == 0 for o in answer.outcomes), answer)
        harness.wait_for(lambda: len(self.bulk_jobs()) == 1, 20, "the coalesced job started")
        job = self.bulk_jobs()[0]
        self.pin(job["job_id"], "processing")
        bulk = [r for r in self.emulator.requests_to("/v1/users/bulk_identify")
                if 200 <= r["response_status"] < 300]
        self.assertEqual(len(bulk), 1)
        in_job = [row["user_id"] for row in json.loads(bulk[0]["body"])["users"]]
        self.assertGreaterEqual(len(in_job), 2)
        self.assertLess(self.gateway.kill(), 0)  # SIGKILL: ended by the signal

        # Coalescing off after the restart: the old rows go singly, at once unless held (a new
        # job of theirs would wait for the old one anyway, by Userpilot's one-job rule).
        stub = self.start_gateway(threshold=0)
        user = in_job[0]
        later = stub.Enqueue(identify(user, "v2"), timeout=TIMEOUT)
        harness.wait_for(
            lambda: metric(self.gateway.metrics(),
                           "userpilot_gateway_delivery_bulk_gate_calls") == len(in_job),
            self.TAKEOVER_WAIT, "the job's rows leased again, in doubt, waiting", interval=0.2)
        # While the job runs (2 s: ten bulk checks): nothing of the job's users is sent again,
        # the later call waits.
        time.sleep(2)
        sent_again = [json.loads(r["body"])["user_id"]
                      for r in self.emulator.requests_to("/v1/identify")]
        self.assertFalse(set(sent_again) & set(in_job),
                         f"sent again while their job still ran: {sent_again}")
        self.assertEqual(len(self.bulk_jobs()), 1)
        metrics = self.gateway.metrics()
        self.assertEqual(metric(metrics, "userpilot_gateway_delivery_bulk_gate_calls"), len(in_job))
        self.assertGreaterEqual(metric(metrics, "userpilot_gateway_delivery_bulk_checks_total",
                                       '{result="job_running"}'), 3)

        self.pin(job["job_id"], "completed")
        harness.wait_for(
            lambda: metric(self.gateway.metrics(), "userpilot_gateway_delivery_backlog_calls") == 0,
            30, "the backlog delivered", interval=0.2)
        self.assertEqual(stub.GetDelivery(gateway_pb2.GetDeliveryRequest(
            delivery_id=later.delivery_id), timeout=TIMEOUT).delivery.state,
            gateway_pb2.DELIVERY_STATE_DELIVERED)

        # Nothing was sent again before the job ended.
        end = harness.parse_time(self.bulk_jobs()[0]["end_time"])
        for request in self.emulator.requests_to("/v1/identify"):
            if json.loads(request["body"])["user_id"] in in_job:
                self.assertGreaterEqual(request["received"], end - 0.001,
                                        f"{request['body']} was sent while its job still ran")
        # What the emulator applied, in order (a bulk job's rows when the job completed): the
        # old row, its re-send, then (for `user`) the later call, whose value is final.
        for who in in_job:
            profile = self.emulator.admin("GET", f"users/{urllib.parse.quote(who, safe='')}")
            applied = [(a["source"], a["metadata"]["plan"]) for a in profile["history"]]
            expected = [(job["job_id"], "v1"), ("identify", "v1")]
            if who == user:
                expected.append(("identify", "v2"))
            self.assertEqual(applied, expected, who)
            self.assertEqual(profile["metadata"]["plan"], "v2" if who == user else "v1", who)
        metrics = self.gateway.metrics()
        self.assertGreaterEqual(metric(metrics, "userpilot_gateway_delivery_in_doubt_total"),
                                len(in_job))
        self.assertEqual(metric(metrics, "userpilot_gateway_delivery_bulk_gate_released_total",
                                '{why="no_job"}'), len(in_job))
        self.assertEqual(metric(metrics, "userpilot_gateway_delivery_bulk_gate_released_total",
                                '{why="deadline"}'), 0)


class CoalescedJobOutlivesAKillRedisTest(CoalescedJobOutlivesAKillTest):
    """The same on the shared queue (--queue_redis): the killed replica's leases lapse after the
    lease timeout and the restarted one takes the job's rows over, in doubt."""

    TAKEOVER_WAIT = LEASE_TIMEOUT + 10

    def setUp(self):
        super().setUp()
        self.redis = harness.RedisServer(["--appendonly", "yes", "--appendfsync", "always"])

    def tearDown(self):
        super().tearDown()
        self.redis.stop()

    def queue_flags(self):
        return [f"--queue_redis={self.redis.url}", f"--queue_redis_lease_timeout={LEASE_TIMEOUT}s",
                f"--default_deadline={LEASE_TIMEOUT - 1}s"]


if __name__ == "__main__":
    unittest.main()
