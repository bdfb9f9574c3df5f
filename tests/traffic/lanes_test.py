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
    the job with ListJobs, waits for it and is accepted.
"""

import json
import os
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


if __name__ == "__main__":
    unittest.main()
