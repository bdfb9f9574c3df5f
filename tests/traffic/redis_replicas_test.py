"""Issue 3's "Several replicas, one key" on real processes: two userpilot-gateway replicas sharing
a real Debian redis-server stay within ONE budget under 5x overload, and use it fully; and what
a replica does when Redis is unreachable (fall back to 1/N of the budget, or refuse).

The emulator enforces 400 identify and 400 track requests per 20 s (20/s each); each replica is
configured with that same budget and --ratelimit_replicas=2, so without Redis they would send
twice the limit. Load is split evenly over both replicas. As in overload_test.py, the steady span
starts two windows after the load (the opening burst's window, then the transition).
"""

import os
import sys
import unittest

import grpc

sys.path.insert(0, os.path.dirname(__file__))
import traffic_load as tl  # noqa: E402
import upgw_harness as harness  # noqa: E402
from overload_test import (DEADLINES, LIMIT, MAX_ORPHANS, RATE, UTILISATION,  # noqa: E402
                           WARMUP, WINDOW, TrafficTestCase, caller_side_expiries,
                           emulator_limit_flags, gateway_budget_flags, report)


class TwoReplicasShareRedisTest(TrafficTestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = harness.RedisServer()
        cls.emulator = None
        cls.gateways = []
        try:
            cls.emulator = harness.Emulator(emulator_limit_flags())
            for _ in range(2):
                cls.gateways.append(harness.Gateway(
                    cls.emulator.url,
                    gateway_budget_flags() + [f"--ratelimit_redis={cls.redis.url}",
                                              "--ratelimit_replicas=2"]))
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        statuses = [gateway.stop() for gateway in cls.gateways]
        if cls.emulator is not None:
            cls.emulator.stop()
        cls.redis.stop()
        assert all(s == 0 for s in statuses), f"gateway exit statuses {statuses}"

    def test_two_replicas_under_five_times_overload_stay_within_one_budget(self):
        duration = WARMUP + 10.0
        streams = [tl.Stream("IdentifyUser", rate=5 * RATE, caller="svc-identify", callers=8),
                   tl.Stream("TrackEvent", rate=5 * RATE, caller="svc-track", callers=8)]
        load = tl.Load([g.target for g in self.gateways])  # Call i goes to replica i % 2.
        try:
            start, end = load.run(streams, duration, DEADLINES)
        finally:
            load.close()
        outcomes = load.outcomes
        for method in ("IdentifyUser", "TrackEvent"):
            report(method, [o for o in outcomes if o.stream == method])
        records = self.emulator.requests()
        stats = self.emulator.admin("GET", "stats")
        # Within ONE budget: no 429, no window of the emulator's over the limit ...
        self.assertEqual(stats["rate_limited"], 0, stats)
        for path in ("/v1/identify", "/v1/track"):
            self.assertLessEqual(harness.max_in_any_window(harness.accepted_upstream(records, path), WINDOW),
                                 LIMIT)
        # ... and the one budget used fully, by both replicas together.
        for path in ("/v1/identify", "/v1/track"):
            self.assertUtilisation(records, path, start + WARMUP, end, RATE)
        self.assertEqual(len(outcomes), 2 * round(5 * RATE * duration))
        self.assertEveryCallerAnsweredInTime(outcomes)
        self.assertRefusalsExplainThemselves(outcomes)
        self.assertLessEqual(caller_side_expiries(outcomes), MAX_ORPHANS)
        # Both replicas got a fair part of the admissions (each holds half the callers' calls).
        ok = [o.target for o in outcomes if o.code == grpc.StatusCode.OK]
        for target in (0, 1):
            self.assertGreater(ok.count(target), 0.3 * len(ok), f"replica {target}")
        for gateway in self.gateways:
            self.assertIsNone(gateway.poll(), gateway.log())


class RedisUnreachableTest(TrafficTestCase):
    """A replica whose Redis is down: --ratelimit_redis_fallback=local (the default) spends 1/N of
    the budget on its own; refuse answers UNAVAILABLE and sends nothing."""

    @classmethod
    def setUpClass(cls):
        cls.emulator = harness.Emulator(emulator_limit_flags())
        # A port where nothing listens: Redis is "down" from the start.
        cls.dead_redis = f"redis://127.0.0.1:{harness.free_port()}"

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()

    def setUp(self):
        self.emulator.admin("POST", "reset")

    def test_local_fallback_spends_one_nth_of_the_budget(self):
        gateway = harness.Gateway(self.emulator.url, gateway_budget_flags() + [
            f"--ratelimit_redis={self.dead_redis}", "--ratelimit_replicas=2"])
        try:
            load = tl.Load(gateway.target)
            try:
                start, end = load.run([tl.Stream("IdentifyUser", rate=5 * RATE, caller="svc")],
                                      WARMUP + 6.0, [2.0])
            finally:
                load.close()
        finally:
            gateway.stop()
        report("IdentifyUser (Redis down, local fallback)", load.outcomes)
        records = self.emulator.requests()
        self.assertEqual(self.emulator.admin("GET", "stats")["rate_limited"], 0)
        self.assertEveryCallerAnsweredInTime(load.outcomes)
        self.assertRefusalsExplainThemselves(load.outcomes)
        # Half the budget (two replicas), used fully: 10/s.
        self.assertUtilisation(records, "/v1/identify", start + WARMUP, end, RATE, share=0.5,
                               at_least=min(0.97, UTILISATION))

    def test_refuse_mode_answers_unavailable_and_sends_nothing(self):
        gateway = harness.Gateway(self.emulator.url, gateway_budget_flags() + [
            f"--ratelimit_redis={self.dead_redis}", "--ratelimit_replicas=2",
            "--ratelimit_redis_fallback=refuse"])
        try:
            load = tl.Load(gateway.target)
            try:
                load.run([tl.Stream("IdentifyUser", rate=RATE, caller="svc")], 3.0, [2.0])
            finally:
                load.close()
        finally:
            gateway.stop()
        report("IdentifyUser (Redis down, refuse)", load.outcomes)
        self.assertEqual(tl.summarize(load.outcomes), {"UNAVAILABLE": len(load.outcomes)})
        for o in load.outcomes:
            self.assertLess(o.end - o.start, 1.0, o)  # Refused promptly, not at the deadline.
        self.assertEqual(self.emulator.admin("GET", "stats")["requests"], 0)


if __name__ == "__main__":
    unittest.main()
