"""The dashboard and the alerts against a real Prometheus scraping a real gateway under traffic.

Starts the emulator and the gateway binaries (like tests/e2e), and Debian's Prometheus server on
loopback (scrape and rule evaluation every second, the repo's rules loaded), sends calls that
succeed and calls that fail (validation, 401, 404, 429, 503), waits for the scrapes, then:

  - evaluates every expression of deploy/grafana/userpilot-gateway.json through
    /api/v1/query: each must be valid and return at least one series (see "Which expressions
    must return series" below);
  - evaluates every rule of deploy/prometheus/ the same way (valid; alerts need not fire) and
    checks that Prometheus evaluated each loaded rule without error;
  - checks that every metric name an expression reads is declared by the gateway
    (upgw_metrics_catalog): a typo or a renamed metric fails, so the dashboard cannot drift;
  - checks that every declared metric is exposed by the running gateway, except NOT_YET_WIRED;
  - runs `promtool check metrics` on the live /metrics output;
  - checks that no user id, event name, job id, caller name or the API key became a label.

Which expressions must return series: all of them, as long as every metric they read is
exposed by the gateway under test. The traffic makes every exposed family carry samples (error
codes, upstream status classes and reasons included), so an empty answer means a wrong
selector or label. An expression reading a metric in NOT_YET_WIRED that the gateway does not
expose yet is only evaluated for validity, and reported as skipped. Expressions whose value
needs a rare event (circuit open: `== 2`; alert conditions) are rules, which must be valid but
need not return anything.

Environment: UPGW_BUILD (build folder), UPGW_SOURCE (repository), UPGW_GATEWAY (gateway binary,
default: the harness's), and the shared Python harness's (tests/harness/CMakeLists.txt).
"""

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.error
import urllib.parse
import urllib.request

import grpc
from userpilot.gateway.v1 import gateway_pb2

import expressions
import upgw_harness as harness

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("UPGW_BUILD", os.path.join(HERE, "../../build"))
SOURCE = os.environ.get("UPGW_SOURCE", os.path.join(HERE, "../.."))
GATEWAY = os.environ.get("UPGW_GATEWAY") or harness.GATEWAY_BIN
CATALOG = os.path.join(BUILD, "service/metrics/upgw_metrics_catalog")
DASHBOARD = os.path.join(SOURCE, "deploy/grafana/userpilot-gateway.json")
RULES = os.path.join(SOURCE, "deploy/prometheus/userpilot-gateway.rules.yml")
PROMTOOL = "/usr/bin/promtool"

API_KEY = "prom-secret-key-7d1e4"
# Values sent in requests that must never appear in /metrics.
PRIVATE = ["u-private-4711", "c-private-4711", "evt-private-4711", "prom-test-caller", API_KEY]
TIMEOUT = 5  # seconds, every call

# Declared metrics a gateway may not expose yet, and why. Expressions reading them are only
# checked for validity while they are absent; once one is exposed, remove it from here (the
# test says so).
NOT_YET_WIRED = {
}
# Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                  "scrape_samples_post_metric_relabeling", "scrape_series_added"}


def wait_for(predicate, timeout, what):
    return harness.wait_for(predicate, timeout, what, interval=0.2)


def http_get(url, timeout=TIMEOUT):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def base_family(name, declared):
    """The family a sample name belongs to (histogram suffixes removed)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in declared:
            return name[: -len(suffix)]
    return name


class LivePrometheusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = cls.gateway = cls.prometheus = cls.channel = None
        cls.stop_traffic = threading.Event()
        try:
            cls.start_servers()
            cls.send_traffic()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_servers(cls):
        cls.emulator = harness.Emulator(["--job_step=100ms"], api_key=API_KEY)
        # The key check on (the harness turns it off), and a durable queue (Enqueue), so their
        # metrics are exposed too; --max_connections: the gateway's own listener, whose
        # open-connection gauge is exposed.
        cls.queue_dir = tempfile.mkdtemp(prefix="upgw-prometheus-queue-")
        cls.gateway = harness.Gateway(cls.emulator.url,
                                      ["--key_check_interval=5m", "--max_connections=1000",
                                       f"--queue_dir={cls.queue_dir}"],
                                      api_key=API_KEY, binary=GATEWAY)
        cls.channel = cls.gateway.channel()
        cls.stub = cls.gateway.stub(cls.channel)
        cls.metrics_url = cls.gateway.metrics_url
        try:
            wait_for(lambda: "grpc_server_started_total" in http_get(cls.metrics_url), 10,
                     "the gateway's /metrics")
        except AssertionError as e:
            raise AssertionError(
                f"{GATEWAY} does not serve Prometheus metrics on --metrics_listen: wire "
                f"MetricsServer and the metric decorators into the gateway ({e}).\n"
                f"gateway log:\n{cls.gateway.log_tail(20)}") from None

        cls.prometheus = harness.Prometheus(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {RULES}
scrape_configs:
  - job_name: userpilot-gateway
    static_configs:
      - targets: ["127.0.0.1:{cls.gateway.metrics_port}"]
""")
        cls.prometheus_url = cls.prometheus.url

    @classmethod
    def admin(cls, method, path, body=None):
        cls.emulator.admin(method, path, body)

    @classmethod
    def call(cls, method, request):
        try:
            getattr(cls.stub, method)(request, timeout=TIMEOUT,
                                      metadata=[("x-caller", "prom-test-caller")])
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    @classmethod
    def send_traffic(cls):
        gw = gateway_pb2
        codes = []
        # Every unary method once, successfully where the emulator allows it.
        codes.append(cls.call("IdentifyUser", gw.IdentifyUserRequest(
            user_id="u-private-4711", company=gw.Company(company_id="c-private-4711"))))
        codes.append(cls.call("IdentifyCompany", gw.IdentifyCompanyRequest(
            company_id="c-private-4711")))
        codes.append(cls.call("TrackEvent", gw.TrackEventRequest(
            user_id="u-private-4711", event_name="evt-private-4711")))
        codes.append(cls.call("ListJobs", gw.ListJobsRequest()))
        codes.append(cls.call("BulkIdentifyUsers", gw.BulkIdentifyUsersRequest(
            users=[gw.BulkUser(user_id="u-private-4711")])))
        codes.append(cls.call("DeleteUsers", gw.DeleteUsersRequest(user_ids=["u-private-4711"])))
        # Failures of every kind: the caller's (INVALID_ARGUMENT, NOT_FOUND) and Userpilot's
        # (the key refused, rate limited, unavailable).
        codes.append(cls.call("IdentifyUser", gw.IdentifyUserRequest(user_id="")))
        codes.append(cls.call("GetJob", gw.GetJobRequest(job_id="bulk:jobs:private-4711")))
        cls.admin("POST", "faults/script", {"action": "status", "status": 401})
        codes.append(cls.call("IdentifyUser", gw.IdentifyUserRequest(user_id="u-private-4711")))
        cls.admin("POST", "faults/script", {"action": "status", "status": 503, "count": 8})
        codes.append(cls.call("IdentifyCompany", gw.IdentifyCompanyRequest(
            company_id="c-private-4711")))
        cls.admin("DELETE", "faults")
        cls.admin("POST", "faults/script", {"action": "status", "status": 429, "retry_after": 1,
                                            "count": 8})
        codes.append(cls.call("TrackEvent", gw.TrackEventRequest(
            user_id="u-private-4711", event_name="evt-private-4711")))
        cls.admin("DELETE", "faults")
        # A call handed over for delivery: it reaches the emulator through the dispatcher.
        codes.append(cls.call("Enqueue", gw.EnqueueRequest(track_event=gw.TrackEventRequest(
            user_id="u-private-4711", event_name="evt-private-4711"))))
        cls.first_codes = codes

        # Steady traffic until the tests end, so every rate() window holds samples.
        def steady():
            while not cls.stop_traffic.wait(0.2):
                cls.call("IdentifyUser", gw.IdentifyUserRequest(user_id="u-private-4711"))
                cls.call("IdentifyUser", gw.IdentifyUserRequest(user_id=""))

        cls.traffic = threading.Thread(target=steady, daemon=True)
        cls.traffic.start()

        # Prometheus has scraped the failures and enough samples for rates.
        def scraped():
            failed = cls.query('count(grpc_server_handled_total{grpc_code!="OK"} > 0)')
            samples = cls.query('count_over_time(up{job="userpilot-gateway"}[1m])')
            return (failed and float(failed[0]["value"][1]) >= 3 and samples
                    and float(samples[0]["value"][1]) >= 6)

        wait_for(scraped, 30, "Prometheus to scrape the traffic")

    @classmethod
    def query(cls, expr):
        """The result list of an instant query; raises AssertionError when it is invalid."""
        url = cls.prometheus_url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            body = json.loads(http_get(url))
        except urllib.error.HTTPError as e:
            with e:
                body = json.loads(e.read().decode())
        if body.get("status") != "success":
            raise AssertionError(f"{body.get('errorType')}: {body.get('error')}")
        result = body["data"]["result"]
        return result if body["data"]["resultType"] in ("vector", "matrix") else [result]

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "queue_dir", None):
            # Removed at exit, once the gateway (stopped below) no longer holds it.
            atexit.register(shutil.rmtree, cls.queue_dir, True)
        cls.stop_traffic.set()
        if getattr(cls, "traffic", None) is not None:
            cls.traffic.join(timeout=10)
        for server in (cls.prometheus, cls.gateway, cls.emulator):
            if server is not None:
                server.stop()

    # --- helpers -----------------------------------------------------------------------------

    def live_metrics(self):
        return http_get(self.metrics_url)

    def catalog(self):
        return subprocess.run([CATALOG], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    def check_expressions(self, found, declared, exposed, must_return_series):
        problems, skipped = [], []
        for where, expr in found:
            names = expressions.metric_names(expr)
            unknown = names - declared
            if unknown:
                problems.append(f"{where}: reads undeclared metrics {sorted(unknown)}: {expr}")
                continue
            try:
                result = self.query(expr)
            except AssertionError as e:
                problems.append(f"{where}: invalid: {e}: {expr}")
                continue
            if not must_return_series or result:
                continue
            absent = sorted(n for n in names if n not in exposed)
            if absent and all(base_family(n, declared) in NOT_YET_WIRED for n in absent):
                skipped.append(f"{where} (not exposed yet: {', '.join(absent)})")
            else:
                problems.append(f"{where}: no series (metrics {sorted(names)}; not exposed: "
                                f"{absent}): {expr}")
        if skipped:
            print("\nskipped (metrics not wired yet):\n  " + "\n  ".join(skipped),
                  file=sys.stderr)
        if problems:
            self.fail(f"{len(problems)} expression(s) failed:\n" + "\n".join(problems))

    # --- tests -------------------------------------------------------------------------------

    def test_traffic_had_every_outcome(self):
        for code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
                     grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INTERNAL):
            self.assertIn(code, self.first_codes)

    def test_dashboard_expressions_are_valid_and_return_series(self):
        declared = expressions.declared_names(self.catalog()) | PROMETHEUS_OWN
        exposed = expressions.sample_names(self.live_metrics()) | PROMETHEUS_OWN
        found = expressions.dashboard_expressions(DASHBOARD)
        self.assertGreater(len(found), 30)
        self.check_expressions(found, declared, exposed, must_return_series=True)

    def test_rules_are_valid_and_evaluate_cleanly(self):
        answer = json.loads(http_get(self.prometheus_url + "/api/v1/rules"))
        found, recorded = expressions.rule_expressions(answer)
        self.assertGreaterEqual(len(found), 16, "the rules file did not load")
        declared = expressions.declared_names(self.catalog()) | PROMETHEUS_OWN | recorded
        self.check_expressions(found, declared, set(), must_return_series=False)

        def all_evaluated():
            groups = json.loads(http_get(self.prometheus_url + "/api/v1/rules"))["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return all(not r["lastEvaluation"].startswith("0001-") for r in rules)

        wait_for(all_evaluated, 10, "every rule to be evaluated once")
        groups = json.loads(http_get(self.prometheus_url + "/api/v1/rules"))["data"]["groups"]
        unhealthy = [f'{r["name"]}: {r.get("lastError")}' for g in groups for r in g["rules"]
                     if r["health"] != "ok"]
        self.assertEqual(unhealthy, [])
        # The recording rules produce data from the live traffic.
        self.assertTrue(self.query("userpilot_gateway:grpc_requests:rate5m"))
        self.assertTrue(self.query("userpilot_gateway:grpc_handling_seconds:p99_rate5m"))

    def test_every_declared_metric_is_exposed(self):
        declared_types = dict(re.findall(r"# TYPE (\S+) (\S+)", self.catalog()))
        exposed = {base_family(n, declared_types)
                   for n in expressions.sample_names(self.live_metrics())}
        missing = sorted(set(declared_types) - exposed - set(NOT_YET_WIRED))
        self.assertEqual(missing, [], "declared metrics the gateway does not expose")
        now_wired = sorted(set(NOT_YET_WIRED) & exposed)
        self.assertEqual(now_wired, [], "exposed now: remove them from NOT_YET_WIRED")

    def test_live_metrics_pass_promtool(self):
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=self.live_metrics(),
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_no_private_data_in_metrics(self):
        text = self.live_metrics()
        for value in PRIVATE:
            self.assertNotIn(value, text)
        self.assertNotIn("bulk:jobs:", text)
        # Label values come from fixed sets: list them all to be sure.
        values = set(re.findall(r'="((?:[^"\\]|\\.)*)"', text))
        self.assertFalse({v for v in values if "private" in v}, values)


if __name__ == "__main__":
    unittest.main()
