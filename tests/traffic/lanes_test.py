"""Job lanes on the real binaries (issue 12): one bulk identify job at a time, not a rate.

One userpilot-emulator whose jobs take three steps of 300 ms (queued, validating, processing)
and which answers 409 to a second bulk job while one is unfinished, as Userpilot does; one
userpilot-gateway with its default lanes (GetJob polled every 2 s).
  - BulkIdentifyUsers, then, once its job completed, BulkIdentifyCompanies right after: both
    accepted at once, and the emulator never answers 409;
  - a bulk call while the previous job runs, with a deadline too short to outwait it: refused
    at once with FAILED_PRECONDITION / JOB_IN_PROGRESS naming the running job, nothing sent;
    with a longer deadline: it waits for the job and is accepted, still without a 409;
  - a job started elsewhere (straight at the emulator): the gateway's call meets the 409, finds
    the job with ListJobs, waits for it and is accepted;
  - /metrics tells all of the above per lane: sends at once and after waiting, the refusal by
    reason, the 409, the bound, and a wait histogram counting every send.
"""

import json
import os
import re
import sys
import time
import unittest
import urllib.request

import grpc

sys.path.insert(0, os.path.dirname(__file__))
import upgw_harness as harness  # noqa: E402
from userpilot.gateway.v1 import gateway_pb2  # noqa: E402

STEP = 0.3  # seconds per job phase in the emulator


class LanesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = harness.Emulator([f"--job_step={int(STEP * 1000)}ms"])
        try:
            cls.gateway = harness.Gateway(cls.emulator.url)
        except BaseException:
            cls.emulator.stop()
            raise
        cls.stub = cls.gateway.stub()

    @classmethod
    def tearDownClass(cls):
        status = cls.gateway.stop()
        cls.emulator.stop()
        assert status == 0, f"the gateway exited with {status}:\n{cls.gateway.log()[-4000:]}"

    def users(self, timeout, tag):
        return self.stub.BulkIdentifyUsers(
            gateway_pb2.BulkIdentifyUsersRequest(
                users=[gateway_pb2.BulkUser(user_id=f"{tag}-u")]), timeout=timeout)

    def companies(self, timeout, tag):
        return self.stub.BulkIdentifyCompanies(
            gateway_pb2.BulkIdentifyCompaniesRequest(
                companies=[gateway_pb2.BulkCompany(company_id=f"{tag}-c")]), timeout=timeout)

    def wait_finished(self, job_id):
        def done():
            job = self.stub.GetJob(gateway_pb2.GetJobRequest(job_id=job_id), timeout=10)
            return job.status in (gateway_pb2.JOB_STATUS_COMPLETED, gateway_pb2.JOB_STATUS_FAILED)
        harness.wait_for(done, 30, f"job {job_id} to finish", interval=0.1)

    def conflicts(self):
        return [r for r in self.emulator.requests()
                if r["path"].endswith("/bulk_identify") and r["response_status"] == 409]

    def test_1_companies_right_after_a_finished_users_job_is_accepted_at_once(self):
        users = self.users(30, "a")
        self.wait_finished(users.job_id)
        sent = time.time()
        companies = self.companies(30, "a")
        took = time.time() - sent
        print(f"BulkIdentifyCompanies after a finished users job: accepted in {took * 1000:.1f} ms")
        self.assertTrue(companies.job_id)
        self.assertLess(took, 1.5)  # One GetJob and the submission, no wait for a rate.
        self.assertEqual(self.conflicts(), [])
        self.wait_finished(companies.job_id)

    def test_2_a_bulk_while_the_previous_runs_is_refused_or_waits(self):
        running = self.users(30, "b").job_id
        # Too short to outwait the job (the next poll is 2 s away): refused at once.
        sent = time.time()
        with self.assertRaises(grpc.RpcError) as refused:
            self.companies(1.0, "b1")
        took = time.time() - sent
        self.assertEqual(refused.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        details = harness.error_details(refused.exception)
        self.assertEqual(details.reason, "JOB_IN_PROGRESS")
        self.assertEqual(details.metadata.get("job_id"), running)
        self.assertLess(took, 0.9)
        # Long enough: waits for the job, then is accepted.
        sent = time.time()
        companies = self.companies(30, "b2")
        took = time.time() - sent
        print(f"BulkIdentifyCompanies while a users job ran: accepted after {took:.2f} s")
        self.assertTrue(companies.job_id)
        self.assertEqual(self.conflicts(), [])
        self.wait_finished(companies.job_id)

    def test_3_a_job_started_elsewhere_is_waited_for(self):
        # Another client of the key starts a bulk job.
        request = urllib.request.Request(
            f"{self.emulator.url}/v1/companies/bulk_identify", method="POST",
            data=json.dumps({"companies": [{"company_id": "elsewhere"}]}).encode(),
            headers={"Authorization": f"Token {self.emulator.api_key}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            elsewhere = json.loads(response.read().decode())["job_id"]
        users = self.users(30, "c")
        self.assertTrue(users.job_id)
        self.assertNotEqual(users.job_id, elsewhere)
        self.assertEqual(len(self.conflicts()), 1)  # Met once, then waited for.
        self.wait_finished(users.job_id)

    def metric(self, text, name, **labels):
        """The value of the sample `name` with exactly `labels` in /metrics `text`."""
        want = {k: str(v) for k, v in labels.items()}
        for line in text.splitlines():
            match = re.fullmatch(r"([a-z_:]+)(?:\{(.*)\})? (\S+)", line)
            if not match or match.group(1) != name:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if got == want:
                return float(match.group(3))
        self.fail(f"no sample {name}{want} in /metrics")

    def test_4_the_lanes_metrics_say_what_happened(self):
        text = self.gateway.metrics()
        m = lambda name, **labels: self.metric(text, "userpilot_gateway_job_lane_" + name,  # noqa
                                               **labels)
        for lane in ("bulk", "imports"):
            self.assertEqual(m("waiting", lane=lane), 0)
            self.assertEqual(m("max_waiting", lane=lane), 4)
        # test_2's short call, refused because the running job would outlast it.
        self.assertEqual(m("rejections_total", lane="bulk", reason="wait_exceeds_deadline"), 1)
        self.assertEqual(m("rejections_total", lane="bulk", reason="queue_full"), 0)
        self.assertEqual(m("rejections_total", lane="bulk", reason="deadline_reached"), 0)
        # test_3's 409; then it waited for that job and was sent once more.
        self.assertEqual(m("conflicts_total", lane="bulk"), 1)
        at_once = m("admissions_total", lane="bulk", queued="false")
        after_wait = m("admissions_total", lane="bulk", queued="true")
        self.assertGreaterEqual(after_wait, 1)  # test_3's resend (and test_2's long call).
        self.assertEqual(at_once + after_wait, 6)  # 2 + 2 + 2 sends (test_3: the 409, then again).
        # The wait histogram counts every send.
        self.assertEqual(m("wait_seconds_count", lane="bulk"), at_once + after_wait)
        self.assertGreater(m("wait_seconds_sum", lane="bulk"), 0)
        self.assertEqual(m("admissions_total", lane="imports", queued="false"), 0)
        self.assertEqual(m("wait_seconds_count", lane="imports"), 0)


if __name__ == "__main__":
    unittest.main()
