"""userpilot_gateway against the real gateway in front of the Userpilot emulator: every RPC, the
error details the gateway really sends, a retry after a real RetryInfo, TrackEvent not repeated
after a 503, and WatchJob and ImportData streams (skipped while the gateway lacks them)."""

import json
import time
import unittest

import grpc

import userpilot_gateway as upg
from gateway_fixture import GatewayFixture
from userpilot_gateway import pb


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gateway = GatewayFixture().__enter__()
        cls.client = upg.Client(cls.gateway.target, caller="python-integration")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.gateway.__exit__(None, None, None)

    def setUp(self):
        self.gateway.admin("POST", "reset")

    def requests(self, raw_path):
        return [r for r in self.gateway.admin("GET", "requests") if r["raw_path"] == raw_path]

    def wait_done(self, job_id):
        deadline = time.monotonic() + 10
        job = self.client.get_job(job_id)
        while job.status != pb.JOB_STATUS_COMPLETED and time.monotonic() < deadline:
            time.sleep(0.05)
            job = self.client.get_job(job_id)
        return job

    def test_every_unary_rpc(self):
        metadata = {"plan": "pro", "seats": 3, "trial": False, "churned": None}
        answer = self.client.identify_user("u1", metadata,
                                           company={"company_id": "c1", "metadata": {"size": 40}})
        self.assertTrue(answer.upstream_request_id)
        body = json.loads(self.requests("/v1/identify")[0]["body"])
        self.assertEqual(body, {"user_id": "u1", "metadata": metadata,
                                "company": {"company_id": "c1", "size": 40}})
        self.assertTrue(self.client.identify_company("c1", {"tier": "gold"}).upstream_request_id)
        self.assertTrue(self.client.track_event("u1", "signed_up", {"source": "py"}).upstream_request_id)
        job = self.client.bulk_identify_users([{"user_id": "a"}, {"user_id": "b", "company_id": "c1"}])
        self.assertTrue(job.job_id.startswith("bulk:jobs:"))
        self.assertEqual(job.total_rows, 2)
        self.assertIn(job.job_id, [j.job_id for j in self.client.list_jobs()])
        self.assertEqual(self.wait_done(job.job_id).completed_rows, 2)
        self.assertTrue(self.client.bulk_identify_companies([{"company_id": "c1"}]).job_id)
        self.assertTrue(self.client.delete_users(["u1"]).upstream_request_id)
        self.gateway.admin("PUT", "limits", {"delete_interval_ms": 1})
        self.assertTrue(self.client.delete_companies(["c1"]).upstream_request_id)
        self.gateway.admin("PUT", "limits", {"delete_interval_ms": 2000})
        response = self.client.call("GetJob", pb.GetJobRequest(job_id=job.job_id))
        self.assertEqual(response.job_id, job.job_id)
        for request in self.gateway.admin("GET", "requests"):
            self.assertNotIn("x-caller", request["headers"])  # a label for the gateway only

    def test_bad_request_details(self):
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.bulk_identify_users([{"user_id": "ok"},
                                             {"user_id": "", "metadata": {"plan": {"nested": 1}}}])
        e = raised.exception
        self.assertEqual(e.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual({f for f, _ in e.field_violations},
                         {"users[1].user_id", "users[1].metadata.plan"})
        self.assertEqual(e.attempts, 1)
        self.assertEqual(self.gateway.admin("GET", "requests"), [])

    def test_not_found_and_credentials_details(self):
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.get_job("bulk:jobs:nope")
        self.assertEqual(raised.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(raised.exception.reason, "UPSTREAM_NOT_FOUND")
        self.assertEqual(raised.exception.details.error_info.domain, upg.DOMAIN)
        self.gateway.admin("POST", "faults/script", {"action": "status", "status": 401})
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.identify_user("u1")
        self.assertEqual(raised.exception.code, grpc.StatusCode.INTERNAL)
        self.assertEqual(raised.exception.reason, "UPSTREAM_CREDENTIALS_REJECTED")
        self.assertEqual(raised.exception.attempts, 1)

    def test_rate_limited_call_succeeds_after_retry_info(self):
        self.gateway.admin("POST", "faults/script", {"action": "status", "status": 429,
                                                     "retry_after": 1, "path_prefix": "/v1/identify",
                                                     "count": 1})
        started = time.monotonic()
        self.client.identify_user("u-limited")
        # This client waited for the RetryInfo, or the gateway retried by itself: either way
        # Userpilot saw the request twice, a second apart.
        self.assertEqual(len(self.requests("/v1/identify")), 2)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)

    def test_track_event_not_repeated_after_upstream_failure(self):
        self.gateway.admin("POST", "faults/script", {"action": "status", "status": 503,
                                                     "path_prefix": "/v1/track", "count": 1})
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.track_event("u1", "clicked")
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(raised.exception.attempts, 1)
        self.assertTrue(raised.exception.details.request_may_have_been_sent)
        self.assertEqual(len(self.requests("/v1/track")), 1)

    def test_watch_job_stream(self):
        job = self.client.bulk_identify_users([{"user_id": "w1"}])
        try:
            states = [j.status for j in self.client.watch_job(job.job_id, timeout=20)]
        except upg.GatewayError as e:
            if e.code == grpc.StatusCode.UNIMPLEMENTED:
                self.skipTest("this gateway does not implement WatchJob yet")
            raise
        self.assertEqual(states[-1], pb.JOB_STATUS_COMPLETED)
        self.assertEqual(len(states), len(set(states)), states)  # each state once

    def test_import_data_stream(self):
        data = b'{"user_id":"i1"}\n{"user_id":"i2","metadata":{"plan":"pro"}}\n'
        try:
            job = self.client.import_data(pb.IMPORT_TARGET_USERS_BULK, data,
                                          filename="users.ndjson", chunk_size=10)
        except upg.GatewayError as e:
            if e.code == grpc.StatusCode.UNIMPLEMENTED:
                self.skipTest("this gateway does not implement ImportData yet")
            raise
        self.assertTrue(job.job_id)
        self.assertEqual(job.total_rows, 2)


if __name__ == "__main__":
    unittest.main()
