"""End-to-end: the real gateway and emulator binaries over loopback, called from Python.

Python's grpcio is a second-language client of the contract: every RPC (the streaming ones
included), the error details in grpc-status-details-bin, health, /metrics, JSON logs, the CLI,
the API key never appearing in the gateway's output, and a clean SIGTERM drain that ends open
watches with UNAVAILABLE.
"""

import json
import os
import re
import signal
import subprocess
import time
import unittest
import urllib.request

import grpc
from google.protobuf import struct_pb2
from health_proto import health_pb2, health_pb2_grpc
from userpilot.gateway.v1 import gateway_pb2

import upgw_harness as harness
from upgw_harness import error_details

CTL = harness.CTL_BIN
API_KEY = "e2e-secret-key-3c91d"
TIMEOUT = 5  # seconds, every call


def struct(values):
    """A google.protobuf.Struct holding `values` (a dict of JSON primitives or dicts)."""
    message = struct_pb2.Struct()
    message.update(values)
    return message


class EndToEndTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = harness.Emulator(["--job_step=100ms"], api_key=API_KEY)
        try:
            cls.gateway = harness.Gateway(
                cls.emulator.url,
                ["--shutdown_grace=5s",
                 # The emulator's jobs finish in a few hundred ms: watch them at that pace.
                 "--job_read_rate=6000/1m",
                 "--watch_min_poll_interval=50ms", "--watch_max_poll_interval=200ms"],
                api_key=API_KEY, log_path=os.path.join(harness.BUILD, "tests/e2e/gateway.log"))
        except BaseException:
            cls.emulator.cleanup()
            raise
        cls.port = cls.gateway.port
        cls.channel = cls.gateway.channel()
        cls.stub = cls.gateway.stub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()
        cls.emulator.cleanup()

    def admin(self, method, path, body=None):
        return self.emulator.admin(method, path, body)

    def setUp(self):
        self.emulator.reset()

    def gateway_log_text(self):
        return self.gateway.log()

    def metrics_port(self):
        return self.gateway.metrics_port

    def call(self, method, request):
        return getattr(self.stub, method)(request, timeout=TIMEOUT,
                                          metadata=[("x-caller", "e2e-python")])

    def test_health_serving(self):
        health = health_pb2_grpc.HealthStub(self.channel)
        for service in ("", "userpilot.gateway.v1.UserpilotGateway"):
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
            self.assertEqual(response.status, health_pb2.HealthCheckResponse.SERVING)

    def test_every_rpc(self):
        metadata = {"plan": "pro", "seats": 3, "trial": False, "churned": None}
        response = self.call("IdentifyUser", gateway_pb2.IdentifyUserRequest(
            user_id="u1", metadata=struct(metadata),
            company=gateway_pb2.Company(company_id="c1", metadata=struct({"size": 40}))))
        self.assertTrue(response.upstream_request_id)
        self.assertTrue(self.call("IdentifyCompany", gateway_pb2.IdentifyCompanyRequest(
            company_id="c1", metadata=struct({"tier": "gold"}))).upstream_request_id)
        self.assertTrue(self.call("TrackEvent", gateway_pb2.TrackEventRequest(
            user_id="u1", event_name="signed_up", metadata=struct({"source": "e2e"}))).upstream_request_id)
        job = self.call("BulkIdentifyUsers", gateway_pb2.BulkIdentifyUsersRequest(users=[
            gateway_pb2.BulkUser(user_id="a"), gateway_pb2.BulkUser(user_id="b", company_id="c1")]))
        self.assertTrue(job.job_id.startswith("bulk:jobs:"))
        self.assertEqual(job.total_rows, 2)
        read = self.call("GetJob", gateway_pb2.GetJobRequest(job_id=job.job_id))
        self.assertEqual(read.job_id, job.job_id)
        listed = self.call("ListJobs", gateway_pb2.ListJobsRequest())
        self.assertIn(job.job_id, [j.job_id for j in listed.jobs])
        deadline = time.time() + 5
        while read.status != gateway_pb2.JOB_STATUS_COMPLETED and time.time() < deadline:
            time.sleep(0.05)
            read = self.call("GetJob", gateway_pb2.GetJobRequest(job_id=job.job_id))
        self.assertEqual(read.status, gateway_pb2.JOB_STATUS_COMPLETED)
        self.assertTrue(self.call("BulkIdentifyCompanies", gateway_pb2.BulkIdentifyCompaniesRequest(
            companies=[gateway_pb2.BulkCompany(company_id="c1")])).job_id)
        self.assertTrue(self.call("DeleteUsers", gateway_pb2.DeleteUsersRequest(
            user_ids=["u1"])).upstream_request_id)
        self.admin("PUT", "limits", {"delete_interval_ms": 1})
        self.assertTrue(self.call("DeleteCompanies", gateway_pb2.DeleteCompaniesRequest(
            company_ids=["c1"])).upstream_request_id)

        recorded = self.admin("GET", "requests")
        paths = [(r["method"], r["raw_path"]) for r in recorded]
        self.assertIn(("POST", "/v1/identify"), paths)
        self.assertIn(("DELETE", "/v1/companies"), paths)
        identify = next(r for r in recorded if r["raw_path"] == "/v1/identify")
        self.assertEqual(json.loads(identify["body"]), {
            "user_id": "u1", "metadata": metadata, "company": {"company_id": "c1", "size": 40}})
        self.assertEqual(identify["headers"]["authorization"], f"Token {API_KEY}")

    def test_bad_request_details(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.call("BulkIdentifyUsers", gateway_pb2.BulkIdentifyUsersRequest(users=[
                gateway_pb2.BulkUser(user_id="ok"),
                gateway_pb2.BulkUser(user_id="", metadata=struct({"plan": {"nested": 1}}))]))
        error = raised.exception
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT)
        fields = {field for field, _ in error_details(error).field_violations}
        self.assertEqual(fields, {"users[1].user_id", "users[1].metadata.plan"})
        self.assertEqual(self.admin("GET", "requests"), [])

    def test_upstream_errors_carry_details(self):
        self.admin("POST", "faults/script", {"action": "status", "status": 401})
        with self.assertRaises(grpc.RpcError) as raised:
            self.call("IdentifyUser", gateway_pb2.IdentifyUserRequest(user_id="u1"))
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INTERNAL)
        self.assertEqual(error_details(raised.exception).reason, "UPSTREAM_CREDENTIALS_REJECTED")
        self.admin("POST", "faults/script", {"action": "status", "status": 429,
                                             "retry_after": 7})
        with self.assertRaises(grpc.RpcError) as raised:
            self.call("TrackEvent", gateway_pb2.TrackEventRequest(user_id="u", event_name="e"))
        self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(error_details(raised.exception).retry_delay, 7)

    def test_cli_round_trip(self):
        target = f"--target=127.0.0.1:{self.port}"
        out = subprocess.run([CTL, target, "IdentifyUser", '{"user_id":"cli-user"}'],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("upstream_request_id", json.loads(out.stdout))
        out = subprocess.run([CTL, target, "GetJob", '{"job_id":"missing:job"}'],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(json.loads(out.stderr)["code"], "NOT_FOUND")
        out = subprocess.run([CTL, target, "NoSuchMethod"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 2)

    def test_watch_job_streams_to_the_end(self):
        job = self.call("BulkIdentifyUsers", gateway_pb2.BulkIdentifyUsersRequest(users=[
            gateway_pb2.BulkUser(user_id=f"w{i}") for i in range(5)]))
        updates = list(self.stub.WatchJob(gateway_pb2.WatchJobRequest(job_id=job.job_id),
                                          timeout=10, metadata=[("x-caller", "e2e-python")]))
        self.assertTrue(updates)
        self.assertEqual(updates[-1].status, gateway_pb2.JOB_STATUS_COMPLETED)
        self.assertEqual(updates[-1].completed_rows, 5)
        rows = [u.completed_rows for u in updates]
        self.assertEqual(rows, sorted(rows), "progress never goes back")

    def test_import_data_streams_a_file(self):
        lines = "".join(
            json.dumps({"event_type": "track", "user_id": f"u{i}", "event_name": "imported"}) + "\n"
            for i in range(2000))
        data = lines.encode()

        def messages():
            yield gateway_pb2.ImportDataRequest(header=gateway_pb2.ImportHeader(
                target=gateway_pb2.IMPORT_TARGET_HISTORICAL_IMPORT,
                format=gateway_pb2.IMPORT_FORMAT_NDJSON, filename="events.ndjson"))
            for start in range(0, len(data), 16 * 1024):
                yield gateway_pb2.ImportDataRequest(chunk=data[start:start + 16 * 1024])

        job = self.stub.ImportData(messages(), timeout=10, metadata=[("x-caller", "e2e-python")])
        self.assertTrue(job.job_id)
        self.assertEqual(job.file_size, len(data))
        uploads = [r for r in self.admin("GET", "requests") if r["raw_path"] == "/v1/imports"]
        self.assertEqual(len(uploads), 1)

        def bad():
            yield gateway_pb2.ImportDataRequest(header=gateway_pb2.ImportHeader(
                target=gateway_pb2.IMPORT_TARGET_HISTORICAL_IMPORT,
                format=gateway_pb2.IMPORT_FORMAT_NDJSON))
            yield gateway_pb2.ImportDataRequest(chunk=b'{"event_type":"track"}\nnot json\n')

        with self.assertRaises(grpc.RpcError) as refused:
            self.stub.ImportData(bad(), timeout=10)
        self.assertEqual(refused.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("line 1", refused.exception.details())

    def test_metrics_endpoint(self):
        self.call("IdentifyUser", gateway_pb2.IdentifyUserRequest(user_id="u-metrics"))
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port()}/metrics",
                                    timeout=TIMEOUT) as response:
            self.assertIn("text/plain", response.headers["Content-Type"])
            text = response.read().decode()
        handled = re.search(r'grpc_server_handled_total\{grpc_code="OK",grpc_method="IdentifyUser",'
                            r'grpc_service="userpilot.gateway.v1.UserpilotGateway",'
                            r'grpc_type="unary"\} (\d+)', text)
        self.assertIsNotNone(handled, "IdentifyUser is not counted")
        self.assertGreaterEqual(int(handled.group(1)), 1)
        self.assertRegex(text, r'userpilot_gateway_build_info\{revision="[^"]+",version="0\.1\.0"\} 1')
        self.assertRegex(text, r"process_resident_memory_bytes \d")
        self.assertIn('userpilot_gateway_upstream_requests_total{endpoint="POST /v1/identify"', text)
        self.assertNotIn("u-metrics", text)
        self.assertNotIn(API_KEY, text)

    def test_zz_sigterm_drains_and_key_never_logged(self):
        # Runs last (alphabetical): stops the shared gateway.
        self.call("IdentifyUser", gateway_pb2.IdentifyUserRequest(user_id="u-final"))
        # A burst answered just before the signal: its access-log lines may still be queued for
        # the log writer when the drain starts, and must all be written before the exit.
        # Refused by validation (no user_id), so neither budgets nor Userpilot are involved.
        burst = [self.stub.TrackEvent.future(
            gateway_pb2.TrackEventRequest(event_name="e"), timeout=TIMEOUT,
            metadata=[("x-caller", "e2e-drain")]) for _ in range(200)]
        for future in burst:
            self.assertEqual(future.exception().code(), grpc.StatusCode.INVALID_ARGUMENT)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port()}/metrics",
                                    timeout=TIMEOUT) as response:
            self.assertIn("userpilot_gateway_log_lines_dropped_total 0",
                          response.read().decode())
        # An open watch (WatchJobs never ends by itself) ends with UNAVAILABLE as the drain
        # starts, saying why, so the watcher can move to another replica; it is not left to be
        # cancelled when the grace period (5 s here) runs out.
        watch = self.stub.WatchJobs(gateway_pb2.WatchJobsRequest(include_existing=True),
                                    timeout=30)
        started = time.time()
        self.gateway.signal(signal.SIGTERM)
        with self.assertRaises(grpc.RpcError) as ended:
            for _ in watch:
                pass
        self.assertEqual(ended.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("shutting down", ended.exception.details())
        self.assertLess(time.time() - started, 4, "the watch lasted until the grace period's end")
        self.assertEqual(self.gateway.wait(15), 0)
        log = self.gateway_log_text()
        self.assertIn("[redacted]", log)
        self.assertNotIn(API_KEY, log)
        lines = [json.loads(line) for line in log.splitlines() if line.strip()]
        messages = [line["msg"] for line in lines]
        for expected in ("starting", "draining", "stopped"):
            self.assertIn(expected, messages)
        calls = [line for line in lines if line["msg"] == "call"]
        self.assertTrue(any(c["method"] == "IdentifyUser" and c["caller"] == "e2e-python"
                            and c["grpc_code"] == "OK" for c in calls))
        self.assertEqual(len([c for c in calls if c["caller"] == "e2e-drain"]), len(burst),
                         "access-log lines lost at the drain")
        self.assertFalse(any("u-final" in json.dumps(line) for line in lines),
                         "request content reached the log")


class MakeRunTest(unittest.TestCase):
    """`make run` without an API key: scripts/run.sh starts the emulator and the gateway, and
    userpilotctl reaches every RPC, as the README's session shows."""

    def test_run_script_with_emulator_then_ctl_every_rpc(self):
        port = harness.free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in ("USERPILOT_API_KEY", "USERPILOT_GATEWAY_API_KEY_FILE")}
        env["EMULATOR_PORT"] = "0"
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts/run.sh")
        run = subprocess.Popen(
            ["bash", script, harness.BUILD, f"--listen=127.0.0.1:{port}", "--metrics_listen=127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
            start_new_session=True)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=20)
            target = f"--target=127.0.0.1:{port}"

            def ctl(method, body="{}"):
                out = subprocess.run([CTL, target, method, body], capture_output=True, text=True,
                                     timeout=30)
                self.assertEqual(out.returncode, 0, f"{method}: {out.stderr}")
                return json.loads(out.stdout)

            ctl("IdentifyUser", '{"user_id":"u1","metadata":{"plan":"pro","seats":3},'
                                '"company":{"company_id":"c1","metadata":{"size":40}}}')
            ctl("IdentifyCompany", '{"company_id":"c1","metadata":{"tier":"gold"}}')
            ctl("TrackEvent", '{"user_id":"u1","event_name":"signed_up"}')
            job = ctl("BulkIdentifyUsers", '{"users":[{"user_id":"a"},{"user_id":"b"}]}')
            self.assertEqual(ctl("GetJob", json.dumps({"job_id": job["job_id"]}))["job_id"],
                             job["job_id"])
            self.assertIn(job["job_id"], [j["job_id"] for j in ctl("ListJobs")["jobs"]])
            ctl("DeleteUsers", '{"user_ids":["u1"]}')
            # The emulator allows one delete per 2 s, and nothing retries yet: the second
            # delete may be refused with RESOURCE_EXHAUSTED, which still proves it arrived.
            out = subprocess.run([CTL, target, "DeleteCompanies", '{"company_ids":["c1"]}'],
                                 capture_output=True, text=True, timeout=30)
            if out.returncode != 0:
                self.assertEqual(json.loads(out.stderr)["code"], "RESOURCE_EXHAUSTED")
            # Bulk companies once the users job has finished (one bulk job at a time).
            deadline = time.time() + 15
            while ctl("GetJob", json.dumps({"job_id": job["job_id"]}))["status"] != \
                    "JOB_STATUS_COMPLETED" and time.time() < deadline:
                time.sleep(0.2)
            ctl("BulkIdentifyCompanies", '{"companies":[{"company_id":"c1"}]}')
        finally:
            os.killpg(run.pid, signal.SIGINT)  # Ctrl-C, as a person would.
            code = run.wait(timeout=30)
            stderr = run.stderr.read()
            run.stderr.close()
        self.assertEqual(code, 0, stderr)
        self.assertIn("bundled Userpilot emulator", stderr)
        self.assertNotIn("emulator-demo-key", stderr)


if __name__ == "__main__":
    unittest.main()
