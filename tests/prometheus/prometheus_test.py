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
default <build>/service/userpilot-gateway), PYTHONPATH holding the e2e Python stubs.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import grpc
from userpilot.gateway.v1 import gateway_pb2, gateway_pb2_grpc

import expressions

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("UPGW_BUILD", os.path.join(HERE, "../../build"))
SOURCE = os.environ.get("UPGW_SOURCE", os.path.join(HERE, "../.."))
GATEWAY = os.environ.get("UPGW_GATEWAY") or os.path.join(BUILD, "service/userpilot-gateway")
EMULATOR = os.path.join(BUILD, "tests/emulator/userpilot-emulator")
CATALOG = os.path.join(BUILD, "service/metrics/upgw_metrics_catalog")
DASHBOARD = os.path.join(SOURCE, "deploy/grafana/userpilot-gateway.json")
RULES = os.path.join(SOURCE, "deploy/prometheus/userpilot-gateway.rules.yml")
PROMETHEUS = "/usr/bin/prometheus"
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=TIMEOUT):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def base_family(name, declared):
    """The family a sample name belongs to (histogram suffixes removed)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in declared:
            return name[: -len(suffix)]
    return name


class LivePrometheusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="upgw-prometheus-")
        cls.processes = []
        cls.stop_traffic = threading.Event()
        try:
            cls.start_servers()
            cls.send_traffic()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls, args, log_name, **kwargs):
        log = open(os.path.join(cls.tmp, log_name), "w+")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        cls.processes.append((process, log))
        return process

    @classmethod
    def log_tail(cls, log_name, lines=20):
        with open(os.path.join(cls.tmp, log_name)) as f:
            return "".join(f.readlines()[-lines:])

    @classmethod
    def start_servers(cls):
        cls.emulator = subprocess.Popen(
            [EMULATOR, "--listen=127.0.0.1:0", f"--api_key={API_KEY}", "--job_step=100ms"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        cls.processes.append((cls.emulator, cls.emulator.stdout))
        match = re.search(r"http://127\.0\.0\.1:(\d+)", cls.emulator.stdout.readline())
        assert match, "the emulator did not say where it listens"
        cls.emulator_url = match.group(0)

        cls.port, cls.metrics_port = free_port(), free_port()
        cls.gateway = cls.start(
            [GATEWAY, f"--listen=127.0.0.1:{cls.port}", f"--upstream_url={cls.emulator_url}",
             f"--metrics_listen=127.0.0.1:{cls.metrics_port}", "--shutdown_grace=2s"],
            "gateway.log", env=dict(os.environ, USERPILOT_API_KEY=API_KEY))
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{cls.port}")
        grpc.channel_ready_future(cls.channel).result(timeout=10)
        cls.stub = gateway_pb2_grpc.UserpilotGatewayStub(cls.channel)
        cls.metrics_url = f"http://127.0.0.1:{cls.metrics_port}/metrics"
        try:
            wait_for(lambda: "grpc_server_started_total" in http_get(cls.metrics_url), 10,
                     "the gateway's /metrics")
        except AssertionError as e:
            raise AssertionError(
                f"{GATEWAY} does not serve Prometheus metrics on --metrics_listen: wire "
                f"MetricsServer and the metric decorators into the gateway ({e}).\n"
                f"gateway log:\n{cls.log_tail('gateway.log')}") from None

        cls.prometheus_url = f"http://127.0.0.1:{free_port()}"
        config = os.path.join(cls.tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {RULES}
scrape_configs:
  - job_name: userpilot-gateway
    static_configs:
      - targets: ["127.0.0.1:{cls.metrics_port}"]
""")
        cls.start([PROMETHEUS, f"--config.file={config}",
                   f"--web.listen-address={cls.prometheus_url[len('http://'):]}",
                   f"--storage.tsdb.path={os.path.join(cls.tmp, 'data')}", "--log.level=warn"],
                  "prometheus.log")
        try:
            wait_for(lambda: "Ready" in http_get(cls.prometheus_url + "/-/ready"), 30,
                     "Prometheus to be ready")
        except AssertionError:
            raise AssertionError("Prometheus did not start:\n" + cls.log_tail("prometheus.log"))

    @classmethod
    def admin(cls, method, path, body=None):
        request = urllib.request.Request(f"{cls.emulator_url}/_emulator/{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()

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
        cls.stop_traffic.set()
        if getattr(cls, "traffic", None) is not None:
            cls.traffic.join(timeout=10)
        if getattr(cls, "channel", None) is not None:
            cls.channel.close()
        for process, log in reversed(cls.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if log is not None:
                log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

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
