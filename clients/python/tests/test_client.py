"""Unit tests of userpilot_gateway against a scripted in-process gRPC server: deadlines, x-caller,
the retry rules, error details, watch_job's reconnection, import_data's chunks. The package
against the real gateway is tested in tests/clients/python_client_test.py."""

import collections
import threading
import unittest
from concurrent import futures

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from userpilot.gateway.v1 import gateway_pb2_grpc

import userpilot_gateway as upg
from userpilot_gateway import pb


def details_trailer(code, message, *details):
    status = status_pb2.Status(code=code.value[0], message=message)
    for d in details:
        status.details.add().Pack(d)
    return ("grpc-status-details-bin", status.SerializeToString())


def error_info(reason, may_have_been_sent=None):
    info = error_details_pb2.ErrorInfo(reason=reason, domain=upg.DOMAIN)
    if may_have_been_sent is not None:
        info.metadata["request_may_have_been_sent"] = may_have_been_sent
    return info


def retry_info(seconds):
    return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
        seconds=int(seconds), nanos=int(round((seconds % 1) * 1e9))))


class Scripted(gateway_pb2_grpc.UserpilotGatewayServicer):
    """Answers each RPC with the next scripted failure (success when none is left)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.script = collections.defaultdict(collections.deque)
        self.watches = collections.deque()
        self.seen = []      # (method, x-caller, seconds left until the deadline)
        self.imported = []

    def fail(self, method, code, message="scripted", *details):
        self.script[method].append((code, message, details))

    def _answer(self, method, context, response):
        caller = dict(context.invocation_metadata()).get("x-caller")
        with self.lock:
            self.seen.append((method, caller, context.time_remaining()))
            scripted = self.script[method].popleft() if self.script[method] else None
        if scripted is None:
            return response
        code, message, details = scripted
        if details:
            context.set_trailing_metadata([details_trailer(code, message, *details)])
        context.abort(code, message)

    def calls(self, method):
        with self.lock:
            return sum(1 for m, _, _ in self.seen if m == method)

    def IdentifyUser(self, request, context):
        return self._answer("IdentifyUser", context, pb.IdentifyUserResponse(upstream_request_id="r1"))

    def TrackEvent(self, request, context):
        return self._answer("TrackEvent", context, pb.TrackEventResponse(upstream_request_id="r2"))

    def BulkIdentifyUsers(self, request, context):
        return self._answer("BulkIdentifyUsers", context,
                            pb.Job(job_id="bulk:jobs:1", total_rows=len(request.users)))

    def GetJob(self, request, context):
        return self._answer("GetJob", context, pb.Job(job_id=request.job_id))

    def ListJobs(self, request, context):
        return self._answer("ListJobs", context, pb.ListJobsResponse(jobs=[pb.Job(job_id="a")]))

    def WatchJob(self, request, context):
        self._answer("WatchJob", context, None)
        with self.lock:
            jobs, end = self.watches.popleft()
        for job in jobs:
            yield job
        if end is not None:
            context.abort(end, "scripted end")

    def ImportData(self, request_iterator, context):
        self._answer("ImportData", context, None)
        messages = list(request_iterator)
        with self.lock:
            self.imported.extend(messages)
        return pb.Job(job_id="import:jobs:1")


def job(status, elapsed):
    return pb.Job(job_id="bulk:jobs:1", status=status, elapsed_time=elapsed)


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.servicer = Scripted()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        gateway_pb2_grpc.add_UserpilotGatewayServicer_to_server(self.servicer, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.sleeps = []
        self.client = upg.Client(f"127.0.0.1:{port}", caller="unit-test",
                                 retry=upg.RetryPolicy(initial_backoff=0.1),
                                 sleep=self.sleeps.append)

    def tearDown(self):
        self.client.close()
        self.server.stop(None)

    def test_caller_and_default_deadlines(self):
        self.client.identify_user("u1", {"plan": "pro"}, {"company_id": "c1"})
        self.client.bulk_identify_users([{"user_id": "a"}, pb.BulkUser(user_id="b")])
        self.assertEqual(self.client.get_job("j", timeout=2.5).job_id, "j")
        seen = self.servicer.seen
        self.assertEqual([s[1] for s in seen], ["unit-test"] * 3)
        self.assertAlmostEqual(seen[0][2], 10, delta=1)
        self.assertAlmostEqual(seen[1][2], 60, delta=1)
        self.assertAlmostEqual(seen[2][2], 2.5, delta=1)

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
        bad = error_details_pb2.BadRequest()
        bad.field_violations.add(field="user_id", description="is required")
        quota = error_details_pb2.QuotaFailure()
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
        import io
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


if __name__ == "__main__":
    unittest.main()
