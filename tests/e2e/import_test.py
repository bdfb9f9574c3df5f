"""End-to-end: ImportData against the real gateway and emulator binaries (issue 13, items 2, 3
and 9), called from Python's grpcio through the shared harness (tests/harness).

- A stream is complete only when the caller half-closes it: a message that cannot be decoded,
  or one larger than the gateway accepts, ends the call and nothing reaches Userpilot.
- Stalled streams cannot hold import slots: the idle timeout and the call's deadline
  (--default_deadline / --max_deadline, as for unary calls) end them, and /metrics counts them.
- Rows are checked by the same rules as the unary calls, naming the line and the field.
"""

import json
import os
import re
import threading
import time
import unittest

import grpc
from userpilot.gateway.v1 import gateway_pb2

import upgw_harness as harness
from upgw_harness import error_details

IMPORT_METHOD = "/userpilot.gateway.v1.UserpilotGateway/ImportData"
IDLE_TIMEOUT_S = 1
DEADLINE_S = 4
# The gateway's largest message: --max_bulk_request_bytes plus 1 MiB.
MAX_BULK_REQUEST_BYTES = 1_000_000


def bad_request(error):
    """The BadRequest field violations of a failed call, as "field: description" strings."""
    return [f"{field}: {why}" for field, why in error_details(error).field_violations]


def header(target=gateway_pb2.IMPORT_TARGET_USERS_BULK, fmt=gateway_pb2.IMPORT_FORMAT_NDJSON):
    return gateway_pb2.ImportDataRequest(
        header=gateway_pb2.ImportHeader(target=target, format=fmt, filename="e2e"))


def chunk(data):
    return gateway_pb2.ImportDataRequest(chunk=data)


def users(first, count):
    return "".join(json.dumps({"user_id": f"u{i}"}) + "\n" for i in range(first, first + count))


class ImportEndToEndTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = harness.Emulator(["--job_step=50ms"])
        try:
            cls.gateway = harness.Gateway(
                cls.emulator.url,
                ["--job_read_rate=6000/1m",
                 "--max_concurrent_imports=2", f"--import_idle_timeout={IDLE_TIMEOUT_S}s",
                 f"--default_deadline={DEADLINE_S}s", f"--max_deadline={DEADLINE_S}s",
                 f"--max_bulk_request_bytes={MAX_BULK_REQUEST_BYTES}"],
                log_path=os.path.join(harness.BUILD, "tests/e2e/import-gateway.log"))
        except BaseException:
            cls.emulator.cleanup()
            raise
        cls.channel = cls.gateway.channel()
        cls.stub = cls.gateway.stub(cls.channel)
        # ImportData with messages sent as given bytes: a client that can send what no
        # well-behaved client would.
        cls.raw_import = cls.channel.stream_unary(
            IMPORT_METHOD, request_serializer=None,
            response_deserializer=gateway_pb2.Job.FromString)

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()
        cls.emulator.cleanup()

    def setUp(self):
        self.emulator.reset()
        self.await_free_slots()

    def uploads(self):
        return [r for r in self.emulator.requests()
                if r["path"] in ("/v1/users/bulk_identify", "/v1/imports")]

    def metrics(self):
        return self.gateway.metrics()

    def metric(self, name, labels=""):
        match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", self.metrics(), re.M)
        return float(match.group(1)) if match else None

    def await_free_slots(self):
        """Waits until no import holds a slot (the previous test's calls have ended)."""
        harness.wait_for(lambda: self.metric("userpilot_gateway_imports_in_flight") == 0, 10,
                         "no import in flight")

    def import_raw(self, messages, timeout=20):
        """Runs ImportData with `messages` (protos or raw bytes); returns the job or the error."""
        encoded = [m if isinstance(m, bytes) else m.SerializeToString() for m in messages]
        try:
            return self.raw_import(iter(encoded), timeout=timeout)
        except grpc.RpcError as error:
            return error

    # ----- item 2: only a real half-close ends the file -----

    def test_a_well_formed_import_still_uploads_once(self):
        job = self.import_raw([header(), chunk(users(0, 500).encode())])
        self.assertIsInstance(job, gateway_pb2.Job, job)
        self.assertEqual(job.total_rows, 500)
        self.assertEqual(len(self.uploads()), 1)

    def test_an_undecodable_message_mid_stream_uploads_nothing(self):
        garbage = b"\x0f\x00\xff"  # Field 1 with wire type 7: not a protobuf message.
        for tail in ([garbage, chunk(users(1, 1000).encode())], [garbage]):
            error = self.import_raw([header(), chunk(users(0, 1).encode()), *tail])
            self.assertIsInstance(error, grpc.RpcError)
            self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT, error.details())
            self.assertEqual(bad_request(error),
                             ["message 3: is not an ImportDataRequest (it cannot be decoded); "
                              "nothing was uploaded"])
        self.assertEqual(self.uploads(), [])

    def test_an_oversized_message_mid_stream_uploads_nothing(self):
        big = chunk(b"x" * (MAX_BULK_REQUEST_BYTES + 2 * 1024 * 1024))
        for _ in range(10):
            error = self.import_raw([header(), chunk(users(0, 100).encode()), big,
                                     chunk(users(100, 100).encode())])
            self.assertIsInstance(error, grpc.RpcError)
            # Over the server's receive limit: RESOURCE_EXHAUSTED from gRPC; under it (the limit
            # is sized by ImportData's chunks, not this gateway's small bulk limit): the row
            # checks refuse the over-long line, naming it.
            self.assertIn(error.code(), (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                         grpc.StatusCode.INVALID_ARGUMENT), error.details())
        self.assertEqual(self.uploads(), [], "Userpilot received a prefix of the file")

    # ----- item 3: stalled streams do not hold slots -----

    def stalled_import(self, results, release, trickle=None):
        """An import that sends its header, then nothing (or a row every `trickle` seconds) until
        `release` is set."""
        def messages():
            yield header().SerializeToString()
            while not release.wait(trickle if trickle else 30):
                yield chunk(users(0, 1).encode()).SerializeToString()

        def run():
            started = time.time()
            try:
                results.append((self.raw_import(messages(), timeout=60), time.time() - started))
            except grpc.RpcError as error:
                results.append((error, time.time() - started))
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def test_silent_streams_are_ended_by_the_idle_timeout_and_counted(self):
        idle_before = self.metric("userpilot_gateway_import_timeouts_total", '{reason="idle"}') or 0
        release = threading.Event()
        results = []
        threads = [self.stalled_import(results, release) for _ in range(2)]
        harness.wait_for(lambda: self.metric("userpilot_gateway_imports_in_flight") == 2, 5,
                         "both stalled imports admitted")
        # Both slots are held: a third import is refused at once.
        refused = self.import_raw([header(), chunk(users(0, 1).encode())])
        self.assertIsInstance(refused, grpc.RpcError)
        self.assertEqual(refused.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        for thread in threads:
            thread.join(timeout=10)
        release.set()
        self.assertEqual(len(results), 2)
        for error, seconds in results:
            self.assertEqual(error.code(), grpc.StatusCode.DEADLINE_EXCEEDED, error.details())
            self.assertIn("sent nothing for 1s", error.details())
            self.assertLess(seconds, IDLE_TIMEOUT_S + 2)
        self.assertEqual(
            self.metric("userpilot_gateway_import_timeouts_total", '{reason="idle"}'),
            idle_before + 2)
        # The slots are free again.
        self.await_free_slots()
        job = self.import_raw([header(), chunk(users(0, 3).encode())])
        self.assertIsInstance(job, gateway_pb2.Job, job)
        self.assertEqual(len(self.uploads()), 1, "only the last import was uploaded")

    def test_a_trickling_stream_is_ended_by_the_gateways_deadline(self):
        before = self.metric("userpilot_gateway_import_timeouts_total", '{reason="deadline"}') or 0
        release = threading.Event()
        results = []
        # A row every 0.3 s: never idle for 1 s. The caller asks for 60 s; the gateway's
        # --max_deadline (4 s) cuts it.
        self.stalled_import(results, release, trickle=0.3).join(timeout=15)
        release.set()
        self.assertEqual(len(results), 1)
        error, seconds = results[0]
        self.assertEqual(error.code(), grpc.StatusCode.DEADLINE_EXCEEDED, error.details())
        self.assertIn("deadline came before the file was complete", error.details())
        self.assertGreater(seconds, DEADLINE_S - 1)
        self.assertLess(seconds, DEADLINE_S + 2)
        self.assertEqual(
            self.metric("userpilot_gateway_import_timeouts_total", '{reason="deadline"}'),
            before + 1)
        self.assertEqual(self.uploads(), [])

    # ----- item 9: the unary calls' row rules, naming line and field -----

    def test_hostile_rows_are_refused_naming_line_and_field(self):
        users_bulk = gateway_pb2.IMPORT_TARGET_USERS_BULK
        events = gateway_pb2.IMPORT_TARGET_HISTORICAL_IMPORT
        csv = gateway_pb2.IMPORT_FORMAT_CSV
        ndjson = gateway_pb2.IMPORT_FORMAT_NDJSON
        many = ",".join(f'"k{i}":{i}' for i in range(1000))
        cases = [
            (users_bulk, ndjson, '{"user_id":"a\\u0000b"}\n', "file line 2.user_id",
             "must not contain control characters (U+0000 at byte 1)"),
            (users_bulk, ndjson, '{"user_id":"a\\nb"}\n', "file line 2.user_id",
             "must not contain control characters (U+000A at byte 1)"),
            (users_bulk, ndjson, '{"user_id":"%s"}\n' % ("i" * 100_000), "file line 2.user_id",
             "must be at most 256 bytes (got 100000)"),
            (users_bulk, ndjson, '{"user_id":"u","metadata":{%s}}\n' % many,
             "file line 2.metadata", "must have at most 100 keys (got 1000)"),
            (users_bulk, ndjson, '{"user_id":"u","metadata":{"v":"%s"}}\n' % ("v" * 10_240),
             "file line 2.metadata.v", "must be at most 4096 bytes (got 10240)"),
            (users_bulk, ndjson, '{"user_id":"u","metadata":{"a":{}},"metadata":{"b":1}}\n',
             "file line 2.metadata", "appears more than once in the row"),
            (events, csv, "page_view,u1,bad\xff\n", "file line 3.note",
             "must be valid UTF-8 (bad byte at offset 3)"),
            (events, csv, "page_view,u1,a\x00b\n", "file line 3.note",
             "must not contain U+0000 (NUL)"),
        ]
        for target, fmt, bad_row, field, description in cases:
            with self.subTest(field=field, description=description):
                if fmt == csv:
                    data = b"event_type,user_id,note\npage_view,u0,ok\n" + bad_row.encode("latin-1")
                else:
                    data = users(0, 1).encode() + bad_row.encode()
                error = self.import_raw([header(target, fmt), chunk(data)])
                self.assertIsInstance(error, grpc.RpcError)
                self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT, error.details())
                self.assertIn(f"{field}: {description}", bad_request(error))
        for data, expected in [
                (b"user_id,event_type_x\nu1,page_view\n",
                 "file line 1: the header row has no event_type column"),
                (b"event_type,plan\npage_view,pro\n",
                 "file line 1: the header row has no user_id or company_id column"),
                (b"\xef\xbb\xbfevent_type,user_id\npage_view,u1\n",
                 "file line 1: the file starts with a UTF-8 byte order mark (EF BB BF), which "
                 "Userpilot does not accept: save the file without it")]:
            with self.subTest(expected=expected):
                error = self.import_raw([header(events, csv), chunk(data)])
                self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT, error.details())
                self.assertIn(expected, bad_request(error))
        self.assertEqual(self.uploads(), [])

    def test_a_row_is_judged_as_the_unary_call_judges_it(self):
        row = {"user_id": "a\u0000b", "metadata": {"v": "x" * 5000, "o": {"nested": 1}}}
        with self.assertRaises(grpc.RpcError) as unary:
            request = gateway_pb2.BulkIdentifyUsersRequest()
            user = request.users.add(user_id=row["user_id"])
            user.metadata.update(row["metadata"])
            self.stub.BulkIdentifyUsers(request, timeout=10)
        imported = self.import_raw([header(), chunk((json.dumps(row) + "\n").encode())])
        strip = lambda violations, prefix: sorted(v[len(prefix):] for v in violations)
        self.assertEqual(strip(bad_request(imported), "file line 1."),
                         strip(bad_request(unary.exception), "users[0]."))
        self.assertEqual(self.uploads(), [])


if __name__ == "__main__":
    unittest.main()
