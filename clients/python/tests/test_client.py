"""Unit tests of userpilot_gateway.Client against a scripted in-process gRPC server (scripted.py):
deadlines, x-caller, the retry rules read from the contract, error details, watch_job's
reconnection, import_data's chunks. The grpc.aio client is tested in test_aio.py, TLS and
tokens in test_tls.py, the package against the real gateway in tests/clients/."""

import io
import unittest

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

import userpilot_gateway as upg
from scripted import ScriptedServer, error_info, job, retry_info
from userpilot_gateway import pb


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.server = ScriptedServer()
        self.servicer = self.server.servicer
        self.sleeps = []
        self.client = upg.Client(self.server.target, caller="unit-test",
                                 retry=upg.RetryPolicy(initial_backoff=0.1),
                                 sleep=self.sleeps.append)

    def tearDown(self):
        self.client.close()
        self.server.stop()

    def test_caller_and_default_deadlines(self):
        self.client.identify_user("u1", {"plan": "pro"}, {"company_id": "c1"})
        self.client.bulk_identify_users([{"user_id": "a"}, pb.BulkUser(user_id="b")])
        self.assertEqual(self.client.get_job("j", timeout=2.5).job_id, "j")
        seen = self.servicer.seen
        self.assertEqual([s.caller for s in seen], ["unit-test"] * 3)
        self.assertEqual([s.authorization for s in seen], [None] * 3)
        self.assertAlmostEqual(seen[0].time_remaining, 10, delta=1)
        self.assertAlmostEqual(seen[1].time_remaining, 60, delta=1)
        self.assertAlmostEqual(seen[2].time_remaining, 2.5, delta=1)

    def test_extra_call_metadata(self):
        self.client.identify_user("u1", {"plan": "pro"}, call_metadata=[("x-request-tag", "t1")])
        self.assertEqual(self.client.call("GetJob", pb.GetJobRequest(job_id="j")).job_id, "j")
        self.assertEqual(self.servicer.seen[0].metadata["x-request-tag"], "t1")
        self.assertNotIn("x-request-tag", self.servicer.seen[1].metadata)
        with self.assertRaisesRegex(ValueError, "unknown method 'Nope'; the methods of "
                                    "userpilot.gateway.v1.UserpilotGateway are: IdentifyUser, "):
            self.client.call("Nope", pb.GetJobRequest())
        with self.assertRaisesRegex(ValueError, "WatchJob is a streaming method"):
            self.client.call("WatchJob", pb.WatchJobRequest())

    def test_retries_unavailable_with_backoff(self):
        self.servicer.fail("IdentifyUser", grpc.StatusCode.UNAVAILABLE)
        self.servicer.fail("IdentifyUser", grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.client.identify_user("u1").upstream_request_id, "r1")
        self.assertEqual(self.servicer.calls("IdentifyUser"), 3)
        self.assertEqual(len(self.sleeps), 2)
        self.assertTrue(0.05 <= self.sleeps[0] <= 0.1, self.sleeps)
        self.assertTrue(0.1 <= self.sleeps[1] <= 0.2, self.sleeps)

    def test_waits_the_retry_info_delay(self):
        self.servicer.fail("IdentifyUser", grpc.StatusCode.RESOURCE_EXHAUSTED, "429",
                           error_info("UPSTREAM_RATE_LIMITED"), retry_info(1.5))
        self.client.identify_user("u1")
        self.assertEqual(len(self.sleeps), 1)
        self.assertTrue(1.5 <= self.sleeps[0] <= 1.8, self.sleeps)

    def test_bounded_attempts_and_the_error_raised(self):
        for _ in range(10):
            self.servicer.fail("GetJob", grpc.StatusCode.UNAVAILABLE, "down",
                               error_info("UPSTREAM_UNAVAILABLE", "true"))
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.get_job("j")
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(raised.exception.attempts, 4)
        self.assertEqual(raised.exception.reason, "UPSTREAM_UNAVAILABLE")
        self.assertEqual(self.servicer.calls("GetJob"), 4)
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.get_job("j", max_attempts=1)
        self.assertEqual(raised.exception.attempts, 1)

    def test_never_waits_past_the_deadline(self):
        self.servicer.fail("IdentifyUser", grpc.StatusCode.RESOURCE_EXHAUSTED, "429", retry_info(5))
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.identify_user("u1", timeout=1)
        self.assertEqual(raised.exception.attempts, 1)
        self.assertEqual(raised.exception.retry_delay, 5)
        self.assertEqual(self.sleeps, [])

    def test_track_event_retried_on_unavailable_only_when_surely_not_sent(self):
        self.servicer.fail("TrackEvent", grpc.StatusCode.UNAVAILABLE, "reset",
                           error_info("UPSTREAM_UNAVAILABLE", "true"))
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.track_event("u1", "e")
        self.assertEqual(raised.exception.attempts, 1)
        self.servicer.fail("TrackEvent", grpc.StatusCode.UNAVAILABLE, "no details")
        with self.assertRaises(upg.GatewayError):
            self.client.track_event("u1", "e")
        self.servicer.fail("TrackEvent", grpc.StatusCode.UNAVAILABLE, "refused",
                           error_info("UPSTREAM_UNAVAILABLE", "false"))
        self.assertEqual(self.client.track_event("u1", "e").upstream_request_id, "r2")
        self.servicer.fail("TrackEvent", grpc.StatusCode.RESOURCE_EXHAUSTED, "429", retry_info(0.2))
        self.client.track_event("u1", "e")
        self.assertEqual(self.servicer.calls("TrackEvent"), 6)

    def test_bulk_identify_not_repeated_when_it_may_have_started_a_job(self):
        self.servicer.fail("BulkIdentifyUsers", grpc.StatusCode.UNAVAILABLE)
        with self.assertRaises(upg.GatewayError):
            self.client.bulk_identify_users([{"user_id": "a"}])
        self.assertEqual(self.servicer.calls("BulkIdentifyUsers"), 1)

    def test_other_errors_not_retried_with_typed_details(self):
        bad = upg.rpc.BadRequest()
        bad.field_violations.add(field="user_id", description="is required")
        quota = upg.rpc.QuotaFailure()
        quota.violations.add(subject="budget:identify")
        self.servicer.fail("IdentifyUser", grpc.StatusCode.INVALID_ARGUMENT, "invalid", bad, quota,
                           error_info("JOB_IN_PROGRESS"))
        self.servicer.fail("IdentifyUser", grpc.StatusCode.RESOURCE_EXHAUSTED, "too big")
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.identify_user("")
        e = raised.exception
        self.assertEqual(e.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(e.field_violations, [("user_id", "is required")])
        self.assertEqual(e.details.quota_failure.violations[0].subject, "budget:identify")
        self.assertEqual(e.reason, "JOB_IN_PROGRESS")
        self.assertIsNone(e.retry_delay)
        self.assertIn("{user_id: is required}", e.describe())
        self.assertIsInstance(e.cause, grpc.RpcError)
        self.assertEqual(upg.ErrorDetails.from_rpc_error(e.cause).reason, "JOB_IN_PROGRESS")
        self.assertEqual([d.type_url.rsplit(".", 1)[1] for d in e.details.all],
                         ["BadRequest", "QuotaFailure", "ErrorInfo"])
        with self.assertRaises(upg.GatewayError) as raised:
            self.client.identify_user("u1")
        self.assertEqual(raised.exception.attempts, 1)
        self.assertEqual(self.sleeps, [])

    def test_watch_job_reconnects_without_repeating_a_state(self):
        self.servicer.watches.append(([job(pb.JOB_STATUS_QUEUED, 0), job(pb.JOB_STATUS_PROCESSING, 1)],
                                      grpc.StatusCode.UNAVAILABLE))
        self.servicer.watches.append(([job(pb.JOB_STATUS_PROCESSING, 2), job(pb.JOB_STATUS_COMPLETED, 3)],
                                      None))
        states = [j.status for j in self.client.watch_job("bulk:jobs:1")]
        self.assertEqual(states, [pb.JOB_STATUS_QUEUED, pb.JOB_STATUS_PROCESSING,
                                  pb.JOB_STATUS_COMPLETED])
        self.assertEqual(self.servicer.calls("WatchJob"), 2)

    def test_watch_job_resumes_a_stream_the_server_ended_at_its_own_deadline(self):
        self.servicer.watches.append(([job(pb.JOB_STATUS_PROCESSING, 1)],
                                      grpc.StatusCode.DEADLINE_EXCEEDED))
        self.servicer.watches.append(([job(pb.JOB_STATUS_COMPLETED, 2)], None))
        states = [j.status for j in self.client.watch_job("bulk:jobs:1")]
        self.assertEqual(states, [pb.JOB_STATUS_PROCESSING, pb.JOB_STATUS_COMPLETED])

    def test_watch_job_stops_early_and_gives_up_on_not_found(self):
        self.servicer.watches.append(([job(pb.JOB_STATUS_QUEUED, 0), job(pb.JOB_STATUS_PROCESSING, 1)],
                                      None))
        watch = self.client.watch_job("bulk:jobs:1")
        self.assertEqual(next(watch).status, pb.JOB_STATUS_QUEUED)
        watch.close()
        self.servicer.watches.append(([], grpc.StatusCode.NOT_FOUND))
        with self.assertRaises(upg.GatewayError) as raised:
            list(self.client.watch_job("nope"))
        self.assertEqual(raised.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_import_data_sends_header_then_chunks(self):
        data = b'{"user_id":"a"}\n{"user_id":"b"}\n'
        result = self.client.import_data(pb.IMPORT_TARGET_USERS_BULK, data, chunk_size=8)
        self.assertEqual(result.job_id, "import:jobs:1")
        messages = self.servicer.imported
        self.assertEqual(messages[0].header.target, pb.IMPORT_TARGET_USERS_BULK)
        self.assertEqual(messages[0].header.size_bytes, len(data))
        self.assertEqual(b"".join(m.chunk for m in messages[1:]), data)
        self.assertTrue(all(len(m.chunk) <= 8 for m in messages[1:]))

    def test_import_data_from_a_file_object(self):
        stream = io.BytesIO(b"skip\n" + b'{"user_id":"a"}\n')
        stream.read(5)
        self.client.import_data(pb.IMPORT_TARGET_USERS_BULK, stream, chunk_size=4)
        messages = self.servicer.imported
        self.assertEqual(messages[0].header.size_bytes, 16)
        self.assertEqual(b"".join(m.chunk for m in messages[1:]), b'{"user_id":"a"}\n')

    def test_list_jobs_returns_a_list(self):
        self.assertEqual([j.job_id for j in self.client.list_jobs()], ["a"])

    def test_retry_delay_rules(self):
        policy = upg.RetryPolicy()
        for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED,
                     grpc.StatusCode.INTERNAL, grpc.StatusCode.NOT_FOUND,
                     grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.CANCELLED):
            self.assertIsNone(upg.retry_delay(upg.GatewayError(code, "x"), True, 0.4, 0.5, policy))
        unavailable = upg.GatewayError(grpc.StatusCode.UNAVAILABLE, "x")
        self.assertEqual(upg.retry_delay(unavailable, True, 0.4, 0.0, policy), 0.2)
        self.assertIsNone(upg.retry_delay(unavailable, False, 0.4, 0.0, policy))

    def test_undecodable_details_are_empty(self):
        details = upg.ErrorDetails.from_trailing_metadata(
            [("grpc-status-details-bin", b"\xff\xff"), ("other", "x")])
        self.assertIsNone(details.error_info)
        self.assertEqual(details.all, [])


class MethodPolicyTest(unittest.TestCase):
    def test_follows_the_contracts_idempotency_levels(self):
        d = upg.Deadlines(write=1, bulk=2, read=3, import_=4, watch=5)
        expected = {
            "IdentifyUser": (1, True), "IdentifyCompany": (1, True),
            "BulkIdentifyUsers": (2, False), "BulkIdentifyCompanies": (2, False),
            "TrackEvent": (1, False), "ListJobs": (3, True), "GetJob": (3, True),
            "DeleteUsers": (1, True), "DeleteCompanies": (1, True), "WatchJob": (5, True),
            "WatchJobs": (5, True), "ImportData": (4, False),
            "Enqueue": (1, False), "EnqueueBatch": (1, False), "GetDelivery": (3, True),
            "ListDeadLetters": (3, True), "RedriveDeadLetters": (1, True),
        }
        service = pb.DESCRIPTOR.services_by_name["UserpilotGateway"]
        self.assertEqual(sorted(m.name for m in service.methods), sorted(expected),
                         "a method was added to the contract: add it here")
        for method in service.methods:
            policy = upg.method_policy(method, d)
            self.assertEqual((policy.deadline, policy.idempotent), expected[method.name],
                             method.name)

    def test_reads_the_option_not_the_name(self):
        # TrackEvent marked IDEMPOTENT, IdentifyUser unmarked: the client believes the contract.
        file = descriptor_pb2.FileDescriptorProto(name="policy_test.proto", package="policy_test",
                                                  syntax="proto3")
        file.message_type.add(name="M")
        service = file.service.add(name="S")
        track = service.method.add(name="TrackEvent", input_type=".policy_test.M",
                                   output_type=".policy_test.M")
        track.options.idempotency_level = descriptor_pb2.MethodOptions.IDEMPOTENT
        service.method.add(name="IdentifyUser", input_type=".policy_test.M",
                           output_type=".policy_test.M")
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        methods = pool.FindServiceByName("policy_test.S").methods_by_name
        d = upg.Deadlines()
        self.assertTrue(upg.method_policy(methods["TrackEvent"], d).idempotent)
        self.assertFalse(upg.method_policy(methods["IdentifyUser"], d).idempotent)
        self.assertEqual(upg.method_policy(methods["IdentifyUser"], d).deadline, d.write)


if __name__ == "__main__":
    unittest.main()
