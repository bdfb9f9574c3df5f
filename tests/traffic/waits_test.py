"""Budget waits are visible where operators look (issue 12), on the real binaries.

One userpilot-emulator and one userpilot-gateway whose identify budget is 5 per second. Twelve
IdentifyUser calls at once: 5 go at once, the other 7 wait for the window, then its pace. Then:
  - each call's access-log line has queue_wait_ms, its budget wait: 0 for the 5, at least the
    time the window took to free (most of a second) for the 7 - a gateway that logs 0 for a
    call that waited fails here;
  - the budget's wait histogram (userpilot_gateway_budget_wait_seconds) counts the 12 and sums
    what the log lines say, to the microsecond each, and the admissions counter's queued="true"
    count is the number of lines that waited;
  - latencies are rounded to microseconds (no more than 3 decimals of a millisecond).
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import upgw_harness as harness  # noqa: E402
from userpilot.gateway.v1 import gateway_pb2  # noqa: E402

CALLS = 12
LIMIT = 5
DEADLINE = 20.0  # seconds: room for every wait on a loaded machine


def metric(text, name, labels):
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class WaitsTest(harness.GatewayBehindEmulator):
    GATEWAY_ARGS = [f"--identify_rate={LIMIT}/1s", "--ratelimit_spacing_margin=10ms",
                    "--access_log"]

    def test_access_log_metrics_and_waits_agree(self):
        calls = [self.stub.IdentifyUser.future(gateway_pb2.IdentifyUserRequest(user_id=f"w-{i}"),
                                               timeout=DEADLINE,
                                               metadata=[("x-caller", "waits")])
                 for i in range(CALLS)]
        for call in calls:
            call.result()  # Every call succeeds (raises otherwise).

        # The access log is written as each call finishes: wait for all twelve lines.
        def lines():
            records, _ = self.gateway.json_log()
            return [r for r in records
                    if r.get("msg") == "call" and r.get("caller") == "waits"]
        harness.wait_for(lambda: len(lines()) == CALLS, 10, "twelve access-log lines")
        records = lines()
        waits = sorted(r["queue_wait_ms"] for r in records)
        print("queue_wait_ms:", waits)

        # Five went at once; seven waited for the window (about a second) and its pace.
        self.assertEqual(waits[:LIMIT], [0] * LIMIT)
        for wait in waits[LIMIT:]:
            self.assertGreater(wait, 500, waits)
        for r in records:
            for key in ("queue_wait_ms", "latency_ms"):
                self.assertEqual(round(r[key], 3), r[key], r)  # Microseconds, no finer.
            self.assertGreaterEqual(r["latency_ms"], r["queue_wait_ms"], r)

        text = self.gateway.metrics()
        identify = {"budget": "identify"}
        count = metric(text, "userpilot_gateway_budget_wait_seconds_count", identify)
        total = metric(text, "userpilot_gateway_budget_wait_seconds_sum", identify)
        self.assertEqual(count, CALLS)
        # The log rounds each wait to the microsecond: 0.5 us each at most.
        self.assertAlmostEqual(total * 1000, sum(waits), delta=CALLS * 0.0005 + 1e-6)
        queued = metric(text, "userpilot_gateway_budget_admissions_total",
                        dict(identify, queued="true"))
        at_once = metric(text, "userpilot_gateway_budget_admissions_total",
                         dict(identify, queued="false"))
        self.assertEqual(queued, CALLS - LIMIT)
        self.assertEqual(at_once, LIMIT)


if __name__ == "__main__":
    unittest.main()
