"""contract.grpcio: the generated service config (build/proto/userpilot_gateway_service_config.json)
loaded by a real gRPC client, Python's grpcio, as the channel's default service config, and
calls through it to a real gateway in front of the emulator (the shared harness):

  - GetJob (NO_SIDE_EFFECTS) answered UNAVAILABLE once is retried by grpcio and succeeds; the
    same call on a channel without the config fails, so the retry is the config's;
  - TrackEvent (not idempotent) answered UNAVAILABLE is not retried;
  - a call while nothing listens waits for the channel (waitForReady) until its deadline instead
    of failing at once;
  - grpcio does refuse an invalid config (so the calls above show it accepted this one).

The gateway runs with --retry_max_attempts=1, so its own retry layer does not hide the
UNAVAILABLE from the client.
"""

import json
import os
import unittest

import grpc

import upgw_harness as harness
from userpilot.gateway.v1 import gateway_pb2, gateway_pb2_grpc

TIMEOUT = 20  # seconds, for calls expected to succeed


class ServiceConfigThroughGrpcioTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.environ["UPGW_SERVICE_CONFIG"]) as f:
            cls.config = f.read()
        cls.emulator = harness.Emulator(["--job_step=100ms"])
        try:
            cls.gateway = harness.Gateway(
                cls.emulator.url,
                ["--retry_max_attempts=1", "--circuit_breaker=false", "--job_read_rate=6000/1m"],
                log_path=os.path.join(harness.BUILD, "tests/contract/gateway.log"))
        except BaseException:
            cls.emulator.cleanup()
            raise
        cls.channel = grpc.insecure_channel(cls.gateway.target,
                                            options=[("grpc.service_config", cls.config)])
        cls.stub = gateway_pb2_grpc.UserpilotGatewayStub(cls.channel)
        cls.plain = cls.gateway.stub()  # a channel without the config
        job = cls.plain.BulkIdentifyUsers(
            gateway_pb2.BulkIdentifyUsersRequest(users=[gateway_pb2.BulkUser(user_id="u-1")]),
            timeout=TIMEOUT)
        cls.job_id = job.job_id

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.gateway.stop()
        cls.emulator.cleanup()

    def setUp(self):
        self.emulator.clear_faults()
        self.emulator.admin("DELETE", "requests")

    def statuses(self, path):
        return [r["response_status"] for r in self.emulator.requests_to(path)]

    def test_get_job_retried_on_unavailable(self):
        path = f"/v1/background_jobs/{self.job_id}"
        self.emulator.script("status", status=503, path_prefix="/v1/background_jobs/", count=1)
        job = self.stub.GetJob(gateway_pb2.GetJobRequest(job_id=self.job_id), timeout=TIMEOUT)
        self.assertEqual(job.job_id, self.job_id)
        self.assertEqual(self.statuses(path), [503, 200])

    def test_without_the_config_get_job_is_not_retried(self):
        path = f"/v1/background_jobs/{self.job_id}"
        self.emulator.script("status", status=503, path_prefix="/v1/background_jobs/", count=1)
        code, _ = harness.call_code(self.plain.GetJob,
                                    gateway_pb2.GetJobRequest(job_id=self.job_id),
                                    timeout=TIMEOUT)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.statuses(path), [503])

    def test_track_event_is_not_retried(self):
        self.emulator.script("status", status=503, path_prefix="/v1/track", count=1)
        code, error = harness.call_code(
            self.stub.TrackEvent,
            gateway_pb2.TrackEventRequest(user_id="u-1", event_name="contract_checked"),
            timeout=TIMEOUT)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, error)
        self.assertEqual(self.statuses("/v1/track"), [503])

    def test_waits_for_ready_instead_of_failing_fast(self):
        target = f"127.0.0.1:{harness.free_port()}"  # nothing listens there
        with grpc.insecure_channel(target,
                                   options=[("grpc.service_config", self.config)]) as channel:
            code, _ = harness.call_code(gateway_pb2_grpc.UserpilotGatewayStub(channel).ListJobs,
                                        gateway_pb2.ListJobsRequest(), timeout=1)
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)
        with grpc.insecure_channel(target) as channel:
            code, _ = harness.call_code(gateway_pb2_grpc.UserpilotGatewayStub(channel).ListJobs,
                                        gateway_pb2.ListJobsRequest(), timeout=5)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)

    def test_grpcio_refuses_an_invalid_config(self):
        config = json.loads(self.config)
        config["methodConfig"][0]["retryPolicy"] = {
            "maxAttempts": 1, "initialBackoff": "0.2s", "maxBackoff": "1s",
            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
        with grpc.insecure_channel(self.gateway.target, options=[
                ("grpc.service_config", json.dumps(config))]) as channel:
            code, _ = harness.call_code(gateway_pb2_grpc.UserpilotGatewayStub(channel).ListJobs,
                                        gateway_pb2.ListJobsRequest(), timeout=5)
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)


if __name__ == "__main__":
    unittest.main()
