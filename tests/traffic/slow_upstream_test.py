"""Issue 13 item 10 on real processes: a slow upstream must not collapse the gateway's HTTP queue.

The emulator answers every request LATENCY s late, and the gateway may hold MAX_INFLIGHT
requests in flight (--max_inflight_upstream), so it can complete at most MAX_INFLIGHT / LATENCY
calls a second: its capacity. Callers offer more than that (OFFERED IdentifyUser calls/s, each
with a DEADLINE s deadline), so requests queue in the gateway's HTTP client. A queued request
that can no longer be answered before its deadline must be answered DEADLINE_EXCEEDED without
being sent, so that the slots go to requests that can still make it. Asserted:
  - goodput (OK calls a second) is at least GOODPUT_SHARE of the capacity;
  - requests sent upstream that still ended in an error (each wasted a slot for the rest of its
    deadline) are at most WASTE_SHARE of those sent;
  - every call is answered within its deadline + LATE_SLACK.

UPGW_SLOW_UPSTREAM_SCENARIO=issue runs the issue's own numbers (200 calls/s, 1.5 s answers,
--max_inflight_upstream=256; about 30 s of heavy load) instead of the scaled-down default.
Budgets are far above the load, the emulator's limits and the gateway's circuit breaker are off:
the HTTP client is what is measured.
"""

import collections
import os
import sys
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(__file__))
import traffic_load as tl  # noqa: E402
import upgw_harness as harness  # noqa: E402
from userpilot.gateway.v1 import gateway_pb2  # noqa: E402

SCENARIOS = {
    # name: (offered calls/s, upstream latency s, --max_inflight_upstream, deadline s, duration s)
    "scaled": (48.0, 1.0, 24, 2.0, 10.0),
    "issue": (200.0, 1.5, 256, 2.0, 10.0),
}
SCENARIO = os.environ.get("UPGW_SLOW_UPSTREAM_SCENARIO", "scaled")
OFFERED, LATENCY, MAX_INFLIGHT, DEADLINE, DURATION = SCENARIOS[SCENARIO]
GOODPUT_SHARE = 0.8  # of the capacity, MAX_INFLIGHT / LATENCY
# Of the requests sent. A request is sent when its deadline still leaves room for a typical
# answer; on a loaded 2-core machine scheduling delays turn some of those into late answers
# (12% seen beside a parallel build), while a queue that sends everything wastes most slots.
WASTE_SHARE = 0.2
LATE_SLACK = 0.5     # how late an answer may come on a loaded 2-core machine
# The circuit breaker counts the gateway's own refusals (DEADLINE_EXCEEDED from the HTTP queue,
# nothing sent) as upstream failures and opens under this load (issue 13 item 4): off, so that
# this test measures the HTTP client's queue alone.
GATEWAY_ARGS = [f"--max_inflight_upstream={MAX_INFLIGHT}", "--identify_rate=1000000/1m",
                "--circuit_breaker=false"]


class SlowUpstreamTest(unittest.TestCase):
    def test_queued_requests_that_cannot_make_their_deadline_are_not_sent(self):
        emulator = harness.Emulator(["--rate_limits=false", f"--threads={MAX_INFLIGHT + 64}",
                                     "--request_log_capacity=100000"])
        try:
            gateway = harness.Gateway(emulator.url, GATEWAY_ARGS)
            try:
                stub = gateway.stub()
                for _ in range(3):  # Warm: the first connection and first-call costs paid.
                    code, answer = harness.call_code(
                        stub.IdentifyUser, gateway_pb2.IdentifyUserRequest(user_id="warm"),
                        timeout=5)
                    self.assertEqual(code, grpc.StatusCode.OK, answer)
                emulator.reset()
                emulator.set_faults(latency_ms=int(LATENCY * 1000))
                load = tl.Load(gateway.target)
                try:
                    load.run([tl.Stream("IdentifyUser", rate=OFFERED, caller="slow", callers=4)],
                             DURATION, [DEADLINE])
                finally:
                    load.close()
                records = emulator.requests_to("/v1/identify")
                emulator.clear_faults()
                metrics = gateway.metrics()
            finally:
                status = gateway.stop()
        finally:
            emulator.cleanup()

        outcomes = load.outcomes
        ok = sum(1 for o in outcomes if o.code == grpc.StatusCode.OK)
        late = [o for o in outcomes if o.end - o.start > o.deadline + LATE_SLACK]
        sent = len(records)
        # Not sent: the gateway says so in ErrorInfo (request_may_have_been_sent "false").
        unsent = sum(1 for o in outcomes if o.code != grpc.StatusCode.OK
                     and o.details.metadata.get("request_may_have_been_sent") == "false")
        reasons = dict(collections.Counter(o.details.reason for o in outcomes
                                           if o.code != grpc.StatusCode.OK))
        capacity = min(OFFERED, MAX_INFLIGHT / LATENCY)
        goodput = ok / DURATION
        wasted = sent - ok
        print(f"\nslow upstream ({SCENARIO}): {OFFERED:g} IdentifyUser calls/s for {DURATION:g} s, "
              f"answers {LATENCY:g} s late, --max_inflight_upstream={MAX_INFLIGHT}, "
              f"{DEADLINE:g} s deadlines\n"
              f"  capacity {capacity:.1f}/s ({capacity / OFFERED:.0%} of offered); goodput "
              f"{goodput:.1f}/s ({ok / len(outcomes):.0%} of calls, {goodput / capacity:.0%} of "
              f"capacity); sent {sent}, of which ended in an error {wasted}; refused unsent "
              f"{unsent}; late {len(late)}; codes {tl.summarize(outcomes)}; reasons {reasons}")
        for line in metrics.splitlines():
            if line.startswith("userpilot_gateway_upstream_http_"):
                print(f"  {line}")

        self.assertEqual(len(outcomes), round(OFFERED * DURATION), "every call is answered")
        self.assertEqual(late, [], f"answered after deadline + {LATE_SLACK} s")
        self.assertGreaterEqual(goodput, GOODPUT_SHARE * capacity,
                                f"goodput {goodput:.1f}/s, capacity {capacity:.1f}/s")
        self.assertLessEqual(wasted, WASTE_SHARE * sent,
                             f"{wasted} of {sent} requests sent upstream ended in an error")
        self.assertEqual(status, 0, f"the gateway's drain:\n{gateway.log_tail()}")


if __name__ == "__main__":
    unittest.main()
