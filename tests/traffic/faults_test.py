"""Upstream faults on real processes: the emulator's fault injection (dropped connections, hangs,
5xx bursts, 429 with and without Retry-After) in front of a userpilot-gateway binary, showing
what a caller and Userpilot each see.

The exact timing of retries, backoff, budget pauses and the circuit breaker is proven on a fake
clock in traffic_stack_test.cc; here real time runs, so time bounds have generous tolerances and
the checks are on what the emulator recorded (how many requests, which outcome, how far apart).
"""

import os
import sys
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(__file__))
import traffic_load as tl  # noqa: E402
import upgw_harness as harness  # noqa: E402
from userpilot.gateway.v1 import gateway_pb2, gateway_pb2_grpc  # noqa: E402

ATTEMPT_TIMEOUT = 0.5  # --upstream_timeout: a hung attempt is cut after this long
DEADLINE = 5.0         # every call's deadline, seconds


class FaultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = harness.Emulator(["--max_hang=10s"])
        try:
            cls.gateway = harness.Gateway(cls.emulator.url,
                                    [f"--upstream_timeout={int(ATTEMPT_TIMEOUT * 1000)}ms",
                                     "--connect_timeout=250ms"])
        except BaseException:
            cls.emulator.stop()
            raise
        cls.channel = grpc.insecure_channel(cls.gateway.target)
        cls.stub = gateway_pb2_grpc.UserpilotGatewayStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.gateway.stop()
        cls.emulator.stop()

    def setUp(self):
        self.emulator.admin("POST", "reset")

    def fault(self, action, path, count=1, status=None, retry_after=None):
        rule = {"action": action, "path_prefix": path, "count": count}
        if status is not None:
            rule["status"] = status
        if retry_after is not None:
            rule["retry_after"] = retry_after
        self.emulator.admin("POST", "faults/script", rule)

    def identify(self, user="u1"):
        return self.identify_future(user).result()

    def identify_future(self, user):
        return self.stub.IdentifyUser.future(gateway_pb2.IdentifyUserRequest(user_id=user),
                                             timeout=DEADLINE, metadata=[("x-caller", "faults")])

    def track(self):
        return self.stub.TrackEvent(gateway_pb2.TrackEventRequest(user_id="u1", event_name="e"),
                                    timeout=DEADLINE, metadata=[("x-caller", "faults")])

    def upstream(self, path):
        return [r for r in self.emulator.requests() if r["path"] == path]

    def test_a_5xx_burst_is_retried_until_userpilot_answers(self):
        self.fault("status", "/v1/identify", count=2, status=503)
        self.identify()
        seen = self.upstream("/v1/identify")
        self.assertEqual([r["response_status"] for r in seen], [503, 503, 202])

    def test_a_dropped_connection_is_retried_for_identify(self):
        self.fault("drop", "/v1/identify")
        self.identify()
        seen = self.upstream("/v1/identify")
        self.assertEqual([r["outcome"] for r in seen], ["dropped", "answered"])

    def test_a_hang_is_cut_by_the_attempt_timeout_and_identify_is_retried(self):
        self.fault("hang", "/v1/identify")
        started = time.monotonic()
        self.identify()
        took = time.monotonic() - started
        seen = self.upstream("/v1/identify")
        self.assertEqual([r["outcome"] for r in seen], ["hung", "answered"])
        self.assertGreaterEqual(took, ATTEMPT_TIMEOUT - 0.05)
        self.assertLess(took, DEADLINE - 1)  # Not at the caller's deadline: cut at 0.5 s.
        self.assertGreaterEqual(seen[1]["received"] - seen[0]["received"], ATTEMPT_TIMEOUT - 0.05)

    def test_a_hung_track_is_not_repeated(self):
        self.fault("hang", "/v1/track")
        with self.assertRaises(grpc.RpcError) as caught:
            self.track()
        error = caught.exception
        self.assertEqual(error.code(), grpc.StatusCode.UNAVAILABLE, error.details())
        info = harness.error_details(error)
        self.assertEqual(info.metadata["attempts"], "1")
        self.assertEqual(info.metadata["retry_stopped_because"], "not_idempotent")
        self.assertEqual(info.metadata["request_may_have_been_sent"], "true")
        self.assertEqual(len(self.upstream("/v1/track")), 1)  # Never recorded twice.

    def test_429_with_retry_after_pauses_the_budget_for_it(self):
        self.fault("status", "/v1/identify", status=429, retry_after=1)
        first = self.identify_future("u1")
        # A call that comes once the 429 has paused the budget (a call sent together with the
        # first would go at once: the budget's window has room) waits out the pause too.
        harness.wait_for(
            lambda: 'userpilot_gateway_budget_paused{budget="identify"} 1' in self.gateway.metrics(),
            timeout=DEADLINE, what="the identify budget to pause")
        second = self.identify_future("u2")
        first.result()
        second.result()
        seen = self.upstream("/v1/identify")
        self.assertEqual([r["response_status"] for r in seen], [429, 202, 202])
        self.assertGreaterEqual(seen[1]["received"] - seen[0]["received"], 0.95)
        self.assertGreaterEqual(seen[2]["received"] - seen[0]["received"], 0.95)

    def test_429_without_retry_after_backs_off_exponentially(self):
        self.fault("status", "/v1/identify", count=2, status=429)
        self.identify()
        seen = self.upstream("/v1/identify")
        self.assertEqual([r["response_status"] for r in seen], [429, 429, 202])
        gaps = [b["received"] - a["received"] for a, b in zip(seen, seen[1:])]
        # The budget pauses 1 s, then 2 s (the retry alone would wait only the 1 s RetryInfo).
        self.assertGreaterEqual(gaps[0], 0.95)
        self.assertGreaterEqual(gaps[1], 1.95)
        self.assertLess(sum(gaps), DEADLINE - 0.5)


if __name__ == "__main__":
    unittest.main()
