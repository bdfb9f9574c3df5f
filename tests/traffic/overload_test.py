"""Issue 3's "Done when" on real processes: 5x overload, and one caller flooding beside another.

One userpilot-emulator (sliding-window limits scaled down to 400 requests per 20 s for identify
and for track, i.e. 20/s each) and one userpilot-gateway whose budgets match them
(--identify_rate=400/20s, --track_rate=400/20s) with the default spacing margin. Load comes from
Python grpcio futures, open loop (nobody waits for an answer before sending the next call), with
per-call deadlines.

A budget admits a burst that fits its window at once, and paces the calls that wait for it
(service/ratelimit/exact_window.h). Under overload from idle, the first window therefore goes
to the opening burst, and the window after it is a transition (the burst comes back at once,
the pace spends it evenly); from two windows after the load began, every window holds the whole
budget. Utilisation is measured exactly from the emulator's request record over that steady
span [t0, t1]: the accepted identify (or track) requests received in it, against what the
budget allows in it, (t1 - t0) * 20/s, give or take the one request a span can hold at its edge.
"""

import os
import sys
import unittest

import grpc

sys.path.insert(0, os.path.dirname(__file__))
import traffic_load as tl  # noqa: E402
import upgw_harness as harness  # noqa: E402

LIMIT = 400          # per WINDOW, identify and track each, in the emulator and the gateway
WINDOW = 20.0        # seconds
RATE = LIMIT / WINDOW  # 20 requests/s: the budget
# The gateway keeps this much slack per window (the default); it costs MARGIN / WINDOW (0.5%) of
# the budget. It absorbs jitter between the gateway's admissions and the emulator's receive
# times, which a burst and a loaded 2-core machine stretch past 50 ms (that let the emulator
# see a 429 now and then).
# Built with a sanitizer, the gateway and the emulator run several times slower and the jitter
# grows with them (nine 429s at 100 ms under ASan on a loaded machine): three times the margin.
MARGIN_S = 0.3 if harness.SANITIZER else 0.1
MARGIN = f"{int(MARGIN_S * 1000)}ms"
DEADLINES = [1.0, 2.0, 3.0]  # seconds, cycled over the calls of a stream
# How late after its deadline a caller may see its answer: gRPC's own deadline timer plus
# Python's callback thread on a loaded 2-core machine.
LATE_SLACK = 0.5
# Seconds after the load starts before the steady span: the opening burst's window and the
# transition window (each WINDOW plus the margin), and a little for the first calls to land.
WARMUP = 2 * (WINDOW + MARGIN_S) + 0.5
# Calls the gateway answered after their caller's deadline (or sent upstream for a caller that
# had given up): none expected; a couple allowed for a scheduler stall of > 100 ms on a loaded
# machine (ten with sanitizers, whose binaries stall longer).
MAX_ORPHANS = 10 if harness.SANITIZER else 3
# The share of the budget a steady span must use. With sanitizers 93%: the 300 ms margin leaves
# 98.5%, and the instrumented gateway kept up with 96% of what it was allowed on a loaded 2-core
# machine.
UTILISATION = 0.93 if harness.SANITIZER else 0.99
OK_CODES = {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.DEADLINE_EXCEEDED}


def gateway_budget_flags():
    return [f"--identify_rate={LIMIT}/{int(WINDOW)}s", f"--track_rate={LIMIT}/{int(WINDOW)}s",
            f"--ratelimit_spacing_margin={MARGIN}"]


def emulator_limit_flags():
    return [f"--identify_limit={LIMIT}", f"--track_limit={LIMIT}", f"--rate_window={int(WINDOW)}s"]


class TrafficTestCase(unittest.TestCase):
    def assertEveryCallerAnsweredInTime(self, outcomes):
        bad = [o for o in outcomes if o.code not in OK_CODES]
        self.assertFalse(bad, f"{len(bad)} calls ended otherwise, e.g. {bad[:3]}")
        late = [o for o in outcomes if o.end - o.start > o.deadline + LATE_SLACK]
        self.assertFalse(late, f"{len(late)} answers came after deadline + {LATE_SLACK}s, "
                               f"e.g. {late[:3]}")

    def assertRefusalsExplainThemselves(self, outcomes):
        refused = [o for o in outcomes if o.code == grpc.StatusCode.RESOURCE_EXHAUSTED]
        for o in refused:
            self.assertIsNotNone(o.details.retry_info, o)
            self.assertIsNotNone(o.details.quota_failure, o)
            self.assertEqual(o.details.reason, "BUDGET_EXHAUSTED", o)
            self.assertTrue(o.details.quota_failure.violations[0].subject, o)

    def assertUtilisation(self, emulator_records, path, t0, t1, rate, share=1.0,
                          at_least=UTILISATION):
        """Accepted requests to `path` received in [t0, t1] are >= at_least of the budget's
        allowance for the span (rate * share * (t1 - t0)), less the one request an edge of the
        span may cut off, and never more than the allowance plus that one."""
        times = harness.accepted_upstream(emulator_records, path)
        in_span = [t for t in times if t0 <= t <= t1]
        allowance = rate * share * (t1 - t0)
        utilisation = len(in_span) / allowance
        gaps = sorted((b - a for a, b in zip(in_span, in_span[1:])), reverse=True)
        print(f"{path}: {len(in_span)} accepted in a steady span of {t1 - t0:.2f} s, "
              f"allowance {allowance:.1f}: utilisation {100 * utilisation:.2f}%; largest gaps "
              f"(ms) {[round(1000 * g, 1) for g in gaps[:5]]}, smallest "
              f"{[round(1000 * g, 1) for g in gaps[-3:]]}")
        self.assertGreaterEqual(len(in_span), at_least * allowance - 1)
        self.assertLessEqual(len(in_span), allowance + 1)
        return utilisation


def caller_side_expiries(outcomes):
    """DEADLINE_EXCEEDED from the caller's own timer (no gateway details): the gateway was late."""
    return sum(1 for o in outcomes if o.code == grpc.StatusCode.DEADLINE_EXCEEDED
               and o.details.error_info is None)


def report(name, outcomes):
    counts = tl.summarize(outcomes)
    client_side = caller_side_expiries(outcomes)
    ok = sorted(o.end - o.start for o in outcomes if o.code == grpc.StatusCode.OK)
    pct = (lambda q: ok[min(len(ok) - 1, int(q * len(ok)))] if ok else float("nan"))
    print(f"{name}: {len(outcomes)} calls {counts}; DEADLINE_EXCEEDED without gateway details "
          f"(the caller's own timer fired first): {client_side}; OK latency p50 {pct(0.5):.3f}s "
          f"p99 {pct(0.99):.3f}s max {ok[-1] if ok else float('nan'):.3f}s")


class OverloadTest(TrafficTestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = harness.Emulator(emulator_limit_flags())
        try:
            cls.gateway = harness.Gateway(cls.emulator.url, gateway_budget_flags())
        except BaseException:
            cls.emulator.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        status = cls.gateway.stop()
        cls.emulator.stop()
        # A clean drain after all that load (under ASan: and no leak at exit).
        assert status == 0, f"the gateway exited with {status}:\n{cls.gateway.log()[-4000:]}"

    def setUp(self):
        self.emulator.admin("POST", "reset")  # Empty record, counters and rate windows.

    def test_five_times_overload_on_identify_and_track(self):
        duration = WARMUP + 10.0
        streams = [tl.Stream("IdentifyUser", rate=5 * RATE, caller="svc-identify", callers=8),
                   tl.Stream("TrackEvent", rate=5 * RATE, caller="svc-track", callers=8)]
        rss = {}

        def sample(elapsed):
            rss[elapsed] = self.gateway.rss_kib()

        load = tl.Load(self.gateway.target)
        try:
            start, end = load.run(streams, duration, DEADLINES, on_tick=sample)
        finally:
            load.close()
        outcomes = load.outcomes
        records = self.emulator.requests()
        stats = self.emulator.admin("GET", "stats")
        for method in ("IdentifyUser", "TrackEvent"):
            report(method, [o for o in outcomes if o.stream == method])

        # Userpilot never saw more than its limit: no 429, no window over the limit.
        self.assertEqual(stats["rate_limited"], 0, stats)
        for path in ("/v1/identify", "/v1/track"):
            times = harness.accepted_upstream(records, path)
            self.assertLessEqual(harness.max_in_any_window(times, WINDOW), LIMIT)
        # ... and got at least 99% of it, over the span where callers kept the queue full.
        t0, t1 = start + WARMUP, end
        for path in ("/v1/identify", "/v1/track"):
            self.assertUtilisation(records, path, t0, t1, RATE)

        # Every caller: OK, or refused at once with the budget's details, or out of time; never
        # later than its deadline.
        self.assertEqual(len(outcomes), 2 * round(5 * RATE * duration), tl.summarize(outcomes))
        self.assertEveryCallerAnsweredInTime(outcomes)
        self.assertRefusalsExplainThemselves(outcomes)
        # Nothing is sent upstream for a caller who will have given up by the time it is
        # answered: the gateway admits a call at least --admission headroom (100 ms) before its
        # deadline, and answers DEADLINE_EXCEEDED itself, while the caller still listens.
        accepted = sum(1 for o in outcomes if o.code == grpc.StatusCode.OK)
        self.assertLessEqual(stats["by_status"].get("202", 0) - accepted, MAX_ORPHANS)
        self.assertLessEqual(caller_side_expiries(outcomes), MAX_ORPHANS)

        # Memory stays bounded: no growth to speak of between the middle and the end.
        samples = [rss[k] for k in sorted(rss)]
        middle, last = samples[len(samples) // 2], samples[-1]
        print(f"gateway RSS (KiB) per second: {samples}")
        if self.gateway.sanitized():
            print("AddressSanitizer build: RSS grows with its quarantine; leaks are checked at exit")
        else:
            self.assertLess(last - middle, 16 * 1024, samples)

    def test_a_flooding_caller_does_not_push_a_modest_one_into_rejection(self):
        # The flooder sends 5x the whole identify budget; the modest caller 2 calls/s, a fifth
        # of its fair share (half the budget with two callers waiting). The flooder's opening
        # burst spends the first window; from when it frees, modest calls are served.
        duration = WARMUP + 10.0
        streams = [tl.Stream("IdentifyUser", rate=5 * RATE, caller="flooder"),
                   tl.Stream("IdentifyUser", rate=2, caller="modest")]
        load = tl.Load(self.gateway.target)
        try:
            start, end = load.run(streams, duration, [2.0])
        finally:
            load.close()
        modest = [o for o in load.outcomes if o.caller == "modest"]
        flooder = [o for o in load.outcomes if o.caller == "flooder"]
        report("modest", modest)
        report("flooder", flooder)
        self.assertEveryCallerAnsweredInTime(load.outcomes)
        self.assertRefusalsExplainThemselves(load.outcomes)
        self.assertLessEqual(caller_side_expiries(load.outcomes), MAX_ORPHANS)
        self.assertEqual(len(modest), round(2 * duration))
        # While the flooder's burst holds the window (its first WINDOW + margin, measured on the
        # monotonic clock from the first call), nobody can be admitted: a modest call is refused
        # at once with the budget's details, or admitted. From then on, the criterion: every
        # modest call succeeds. Weighted fair queueing puts each of its calls at most one flooder
        # call behind (one pace, 50 ms), far inside its 2 s deadline.
        began = min(o.start for o in load.outcomes)
        opening = [o for o in modest if o.start < began + WINDOW + 0.2]
        later = [o for o in modest if o.start >= began + WINDOW + 0.2]
        for o in opening:
            if o.code != grpc.StatusCode.OK:
                self.assertEqual(o.code, grpc.StatusCode.RESOURCE_EXHAUSTED, o)
                self.assertLess(o.end - o.start, 0.5, o)  # Refused at once.
        self.assertEqual(tl.summarize(later), {"OK": len(later)})
        # The flooder gets the rest of the budget and the refusals.
        records = self.emulator.requests()
        self.assertEqual(self.emulator.admin("GET", "stats")["rate_limited"], 0)
        self.assertLessEqual(
            harness.max_in_any_window(harness.accepted_upstream(records, "/v1/identify"), WINDOW),
            LIMIT)
        self.assertUtilisation(records, "/v1/identify", start + WARMUP, end, RATE)
        flooder_counts = tl.summarize(flooder)
        # 5x the budget: all but about a fifth refused.
        self.assertGreater(flooder_counts.get("RESOURCE_EXHAUSTED", 0), 0.75 * len(flooder))
        self.assertGreater(flooder_counts.get("OK", 0),
                           (RATE - 2) * (duration - WARMUP) * min(0.98, UTILISATION))


if __name__ == "__main__":
    unittest.main()
