"""End-to-end (issue 17): trace context and the upstream key check, on the real gateway and
emulator binaries through the shared harness (tests/harness).

Trace context: a call's W3C `traceparent` reaches the emulator with the same trace id and flags,
a new span id for every upstream attempt, and `tracestate` verbatim; the access-log line carries
the trace id, the gateway's span id and the caller's span id; an invalid traceparent is ignored
and the gateway starts a trace of its own, which the log line and the upstream request share.

Key check: the gateway asks `GET /v1/validate` (what Segment's Userpilot destination tests a key
with), with the key and the API version, spending no budget; a gateway whose key the emulator
rejects reports NOT_SERVING (overall and for the service) within seconds of start-up, with
userpilot_gateway_upstream_key_valid 0 and one log line that never holds the key; a good key
reports SERVING; the periodic check follows Userpilot's answers both ways, and transient
failures (503) change nothing.
"""

import os
import re
import time
import unittest

import grpc
from health_proto import health_pb2, health_pb2_grpc
from userpilot.gateway.v1 import gateway_pb2

import upgw_harness as harness

GOOD_KEY = "trace-e2e-good-key-71c2"
BAD_KEY = "trace-e2e-revoked-key-9d04"
SERVICE = "userpilot.gateway.v1.UserpilotGateway"
TIMEOUT = 5  # seconds, every call
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def call_log_lines(gateway, method):
    records, _ = gateway.json_log()
    return [r for r in records if r.get("msg") == "call" and r.get("method") == method]


def health_status(channel, service):
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT).status


def metric_value(text, name, labels=""):
    """The value of series `name{labels}` in /metrics text; None when absent."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return None if match is None else float(match.group(1))


class TraceContextTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = harness.Emulator(api_key=GOOD_KEY)
        try:
            cls.gateway = harness.Gateway(
                cls.emulator.url, api_key=GOOD_KEY,
                log_path=os.path.join(harness.BUILD, "tests/e2e/trace_gateway.log"))
        except BaseException:
            cls.emulator.cleanup()
            raise
        cls.stub = cls.gateway.stub()

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()
        cls.emulator.cleanup()

    def setUp(self):
        self.emulator.reset()

    def identify(self, user_id, metadata):
        return self.stub.IdentifyUser(gateway_pb2.IdentifyUserRequest(user_id=user_id),
                                      timeout=TIMEOUT, metadata=metadata)

    def upstream_traceparents(self):
        sent = self.emulator.requests_to("/v1/identify")
        self.assertTrue(sent)
        parsed = []
        for request in sent:
            match = TRACEPARENT.match(request["headers"].get("traceparent", ""))
            self.assertIsNotNone(match, request["headers"])
            parsed.append((match.groups(), request["headers"]))
        return parsed

    def log_line_for(self, request_id):
        return harness.wait_for(
            lambda: [r for r in call_log_lines(self.gateway, "IdentifyUser")
                     if r.get("upstream_request_id") == request_id],
            5, f"the access-log line of the call answered by {request_id}")[0]

    def test_callers_trace_reaches_userpilot_and_the_log(self):
        response = self.identify("trace-u1", [
            ("x-caller", "e2e-trace"),
            ("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01"),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")])
        [((trace_id, span_id, flags), headers)] = self.upstream_traceparents()
        self.assertEqual(trace_id, TRACE_ID)
        self.assertEqual(flags, "01")
        self.assertNotEqual(span_id, CALLER_SPAN)
        self.assertEqual(headers.get("tracestate"), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")

        line = self.log_line_for(response.upstream_request_id)
        self.assertEqual(line["trace_id"], TRACE_ID)
        self.assertEqual(line["parent_span_id"], CALLER_SPAN)
        self.assertRegex(line["span_id"], r"^[0-9a-f]{16}$")
        self.assertNotIn(line["span_id"], (CALLER_SPAN, "0" * 16))
        self.assertEqual(line["caller"], "e2e-trace")

    def test_every_attempt_is_a_span_of_its_own(self):
        self.emulator.script("status", status=503, path_prefix="/v1/identify", count=1)
        response = self.identify("trace-u2", [("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-00")])
        sent = self.upstream_traceparents()
        self.assertEqual(len(sent), 2)
        self.assertEqual({trace for (trace, _, _), _ in sent}, {TRACE_ID})
        self.assertEqual({flags for (_, _, flags), _ in sent}, {"00"})
        spans = [span for (_, span, _), _ in sent]
        self.assertEqual(len(set(spans)), 2, spans)
        self.assertNotIn(CALLER_SPAN, spans)
        line = self.log_line_for(response.upstream_request_id)
        self.assertEqual(line["trace_id"], TRACE_ID)
        self.assertEqual(line["attempts"], 2)

    def test_invalid_traceparent_is_ignored_and_a_trace_started(self):
        for invalid in (f"00-{'0' * 32}-{CALLER_SPAN}-01",          # all-zero trace id
                        f"ff-{TRACE_ID}-{CALLER_SPAN}-01",          # version ff
                        f"00-{TRACE_ID.upper()}-{CALLER_SPAN}-01",  # upper-case hex
                        None):                                      # none at all
            with self.subTest(traceparent=invalid):
                self.emulator.reset()
                metadata = [("tracestate", "congo=t61rcWkgMzE")]
                if invalid is not None:
                    metadata.append(("traceparent", invalid))
                response = self.identify("trace-u3", metadata)
                [((trace_id, _, flags), headers)] = self.upstream_traceparents()
                self.assertNotIn(trace_id, (TRACE_ID, TRACE_ID.lower(), "0" * 32))
                self.assertEqual(flags, "00")
                self.assertNotIn("tracestate", headers)  # discarded with its traceparent
                line = self.log_line_for(response.upstream_request_id)
                self.assertEqual(line["trace_id"], trace_id)
                self.assertNotIn("parent_span_id", line)


class KeyCheckTest(unittest.TestCase):
    def setUp(self):
        self.emulator = harness.Emulator(api_key=GOOD_KEY)
        self.addCleanup(self.emulator.cleanup)

    def start_gateway(self, key, interval, *args):
        gateway = harness.Gateway(self.emulator.url, [f"--key_check_interval={interval}", *args],
                                  api_key=key)
        self.addCleanup(gateway.cleanup)
        return gateway

    def wait_for_health(self, gateway, status, within):
        channel = gateway.channel()
        harness.wait_for(
            lambda: all(health_status(channel, s) == status for s in ("", SERVICE)),
            within, f"health {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")

    def log_lines(self, gateway, pattern):
        records, _ = gateway.json_log()
        return [r for r in records if re.search(pattern, r.get("msg", ""))]

    def test_rejected_key_reports_not_serving_within_seconds(self):
        started = time.monotonic()
        gateway = self.start_gateway(BAD_KEY, "5m")  # only the start-up check can act
        self.wait_for_health(gateway, health_pb2.HealthCheckResponse.NOT_SERVING, 5)
        self.assertLess(time.monotonic() - started, 10)
        metrics = gateway.metrics()
        self.assertEqual(metric_value(metrics, "userpilot_gateway_upstream_key_valid"), 0)
        self.assertEqual(metric_value(metrics, "userpilot_gateway_upstream_key_checks_total",
                                      'result="rejected"'), 1)
        # The check asked GET /v1/validate with the key and the API version, and nothing else;
        # it spent no budget and is counted under its endpoint like any upstream attempt.
        checks = self.emulator.requests_to("/v1/validate")
        self.assertEqual([(r["method"], r["response_status"]) for r in checks], [("GET", 401)])
        self.assertEqual(checks[0]["headers"]["authorization"], "Token " + BAD_KEY)
        self.assertEqual(checks[0]["headers"]["x-api-version"], "2020-09-22")
        self.assertEqual([r["path"] for r in self.emulator.requests()], ["/v1/validate"])
        self.assertEqual(metric_value(metrics, "userpilot_gateway_upstream_requests_total",
                                      'endpoint="GET /v1/validate",status_class="4xx"'), 1)
        self.assertIsNone(re.search(r'^userpilot_gateway_budget_admissions_total\{[^}]*\} [1-9]',
                                    metrics, re.MULTILINE))
        rejected = self.log_lines(gateway, "rejects the API key")
        self.assertEqual(len(rejected), 1, rejected)
        self.assertEqual(rejected[0]["level"], "warning")
        self.assertEqual(rejected[0]["upstream_status"], 401)
        self.assertNotIn(BAD_KEY, gateway.log())
        # Calls still go through (and fail as before): health tells load balancers, the calls
        # tell callers.
        with self.assertRaises(grpc.RpcError) as failed:
            gateway.stub().IdentifyUser(gateway_pb2.IdentifyUserRequest(user_id="u"),
                                        timeout=TIMEOUT)
        self.assertEqual(failed.exception.code(), grpc.StatusCode.INTERNAL)

    def test_good_key_serving_and_the_periodic_check_follows_userpilot(self):
        # With the circuit breaker on (the default): the key check passes no breaker, so the 503
        # phase below cannot hold back the 401 this test waits for.
        gateway = self.start_gateway(GOOD_KEY, "200ms")

        def checks(result):
            return metric_value(gateway.metrics(), "userpilot_gateway_upstream_key_checks_total",
                                f'result="{result}"') or 0

        harness.wait_for(lambda: checks("accepted") >= 1, 5, "an accepted key check")
        self.wait_for_health(gateway, health_pb2.HealthCheckResponse.SERVING, 1)
        self.assertEqual(metric_value(gateway.metrics(), "userpilot_gateway_upstream_key_valid"), 1)

        # Userpilot fails for a while: no verdict, health stays SERVING.
        self.emulator.script("status", status=503, path_prefix="/v1/validate", count=100000)
        before = checks("inconclusive")
        harness.wait_for(lambda: checks("inconclusive") >= before + 2, 20,
                         "two inconclusive key checks")
        self.assertEqual(health_status(gateway.channel(), ""),
                         health_pb2.HealthCheckResponse.SERVING)
        self.emulator.clear_faults()

        # The key is revoked: NOT_SERVING at the next check; restored: SERVING again.
        self.emulator.script("status", status=401, path_prefix="/v1/validate", count=100000)
        self.wait_for_health(gateway, health_pb2.HealthCheckResponse.NOT_SERVING, 5)
        self.assertEqual(metric_value(gateway.metrics(), "userpilot_gateway_upstream_key_valid"), 0)
        self.emulator.clear_faults()
        self.wait_for_health(gateway, health_pb2.HealthCheckResponse.SERVING, 5)
        self.assertEqual(metric_value(gateway.metrics(), "userpilot_gateway_upstream_key_valid"), 1)

        # One line per change, however many checks: accepted, rejected, accepted. The last is an
        # info line: it may still be queued for the log writer (docs/operating.md#logs).
        def key_lines():
            return [r["msg"] for r in self.log_lines(gateway, "the API key")]
        harness.wait_for(lambda: len(key_lines()) >= 3, 5, "three key-check log lines")
        changes = key_lines()
        self.assertEqual(len(changes), 3, changes)
        self.assertIn("accepts", changes[0])
        self.assertIn("rejects", changes[1])
        self.assertIn("accepts", changes[2])
        self.assertNotIn(GOOD_KEY, gateway.log())

        # A drain turns health NOT_SERVING for good: no later check turns it back.
        self.assertEqual(gateway.stop(), 0)

    def test_zero_interval_turns_the_check_off(self):
        gateway = self.start_gateway(BAD_KEY, "0")
        self.wait_for_health(gateway, health_pb2.HealthCheckResponse.SERVING, 1)
        time.sleep(0.5)  # what a check would need to arrive; none may
        self.assertEqual(self.emulator.requests_to("/v1/validate"), [])
        self.assertIsNone(metric_value(gateway.metrics(), "userpilot_gateway_upstream_key_valid"))


if __name__ == "__main__":
    unittest.main()
