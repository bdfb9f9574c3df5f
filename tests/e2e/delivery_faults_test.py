"""End-to-end (issue 16, "Done when"): the durable queue's faults answer callers clearly and lose
nothing already acknowledged.

  - Full queue: with a small --queue_max_bytes and Userpilot down (the emulator answers 503),
    Enqueue fills the queue until it answers RESOURCE_EXHAUSTED saying the queue is full; once
    Userpilot is back every acknowledged call arrives, in per-user order, and Enqueue is
    accepted again (the delivered calls' space is given back).
  - Corrupted tail: the gateway is SIGKILLed, the newest segment's last append record is cut in
    half and garbage written behind it (a torn write); the gateway restarted on the folder
    starts, says in its log and /metrics what it cut off, delivers every call acknowledged before the damaged
    one, and never the damaged one.
  - Redis down: with --queue_redis, the Redis server is stopped; Enqueue answers UNAVAILABLE
    naming the queue's Redis (never a silent success); once Redis is back (same append-only
    file) the calls acknowledged before are delivered and Enqueue is accepted again.
"""

import os
import re
import shutil
import struct
import tempfile
import unittest

import grpc
from google.protobuf import struct_pb2
from userpilot.gateway.v1 import gateway_pb2

import delivery_load
import upgw_harness as harness

TIMEOUT = delivery_load.TIMEOUT
DELIVERY_WAIT = 90  # seconds: retries after an outage back off (1 s, 2 s, 4 s, ...)
# Gateway budgets far above what these tests send, so nothing waits for a budget.
RATES = ["--identify_rate=60000/1m", "--track_rate=60000/1m"]
SEGMENT_HEADER_BYTES = 32  # service/delivery/log_format.h
RECORD_HEADER_BYTES = 17   # u32 CRC32C | u32 body length | u8 type | u64 sequence number
RECORD_APPEND = 1


def enqueue_all(test, stub, calls):
    """Enqueues (user, event) pairs one by one, each acknowledged; returns their delivery ids."""
    ids = []
    for user, event in calls:
        ids.append(stub.Enqueue(delivery_load.track(user, event), timeout=TIMEOUT).delivery_id)
        test.assertTrue(ids[-1])
    return ids


def acked_by_user(calls):
    out = {}
    for user, event in calls:
        out.setdefault(user, []).append(event)
    return out


def emulator_and_folder(test, prefix):
    """An emulator (limits off) and a temporary queue folder, both removed after the test; the
    test's `gateway`, when set, is stopped before them."""
    folder = tempfile.mkdtemp(prefix=prefix)
    test.addCleanup(shutil.rmtree, folder, True)
    emulator = harness.Emulator(["--rate_limits=false"])
    test.addCleanup(emulator.cleanup)
    test.gateway = None
    test.addCleanup(lambda: test.gateway is not None and test.gateway.stop())
    return emulator, folder


def wait_accepted(stub, user, event, what):
    """Enqueues (user, event) until it is acknowledged; its delivery id."""
    def accepted():
        code, answer = harness.call_code(stub.Enqueue, delivery_load.track(user, event),
                                         timeout=TIMEOUT)
        return answer.delivery_id if code == grpc.StatusCode.OK else None

    return harness.wait_for(accepted, 30, what, interval=0.5)


def last_append_record(data):
    """(offset, frame size) of the last append record of a segment file's bytes."""
    offset, last = SEGMENT_HEADER_BYTES, None
    while offset + RECORD_HEADER_BYTES <= len(data):
        _, length, kind = struct.unpack_from("<IIB", data, offset)
        size = RECORD_HEADER_BYTES + length
        if offset + size > len(data):
            break
        if kind == RECORD_APPEND:
            last = (offset, size)
        offset += size
    return last


class FullQueueTest(unittest.TestCase):
    def setUp(self):
        self.emulator, self.queue_dir = emulator_and_folder(self, "upgw-full-queue-")
        self.emulator.set_faults(error_ratio=1.0, error_status=503)  # Userpilot down
        self.gateway = harness.Gateway(self.emulator.url, [
            f"--queue_dir={self.queue_dir}", f"--queue_max_bytes={1 << 20}", *RATES])

    def test_full_queue_refuses_clearly_then_delivers_and_accepts_again(self):
        stub = self.gateway.stub()
        users = [f"full-user-{n}" for n in range(4)]
        metadata = struct_pb2.Struct()
        metadata.update({f"k{n}": "x" * 4000 for n in range(4)})  # 16 KB a call: ~64 fill 1 MiB
        calls, ids = [], []
        for n in range(200):
            user, event = users[n % len(users)], f"full-{n}"
            request = delivery_load.track(user, event)
            request.track_event.metadata.CopyFrom(metadata)
            code, answer = harness.call_code(stub.Enqueue, request, timeout=TIMEOUT)
            if code != grpc.StatusCode.OK:
                break
            calls.append((user, event))
            ids.append(answer.delivery_id)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, answer)
        self.assertIn("delivery queue full", answer.details())
        self.assertIn("queue_max_bytes", answer.details())
        self.assertGreater(len(calls), 20, "the queue was full before it held anything")
        # Full stays full while nothing drains: the same call is refused again, not stored.
        request.track_event.event_name = "refused"
        code, _ = harness.call_code(stub.Enqueue, request, timeout=TIMEOUT)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn('userpilot_gateway_delivery_enqueued_total{result="refused_full"}',
                      self.gateway.metrics())

        self.emulator.clear_faults()  # Userpilot is back: the backlog drains
        delivery_load.wait_delivered(stub, ids, DELIVERY_WAIT)
        delivery_load.check_received(self, self.emulator, acked_by_user(calls))
        self.assertNotIn("refused", [e for _, e in delivery_load.accepted_events(self.emulator)])

        # The delivered calls' space is given back: Enqueue is accepted again.
        later = wait_accepted(stub, users[0], "after-full", "Enqueue accepted after the drain")
        delivery_load.wait_delivered(stub, [later], DELIVERY_WAIT)
        self.assertEqual(self.gateway.stop(), 0, self.gateway.log_tail())


class CorruptedTailTest(unittest.TestCase):
    def setUp(self):
        self.emulator, self.queue_dir = emulator_and_folder(self, "upgw-torn-queue-")

    def start_gateway(self):
        self.gateway = harness.Gateway(self.emulator.url, [f"--queue_dir={self.queue_dir}",
                                                           *RATES])
        return self.gateway.stub()

    def test_torn_last_record_is_cut_off_and_the_rest_delivered(self):
        self.emulator.set_faults(error_ratio=1.0, error_status=503)  # nothing delivered yet
        stub = self.start_gateway()
        calls = [("torn-user", f"torn-{n}") for n in range(10)]
        ids = enqueue_all(self, stub, calls)
        self.assertLess(self.gateway.kill(), 0)

        segments = sorted(f for f in os.listdir(self.queue_dir) if f.startswith("segment-"))
        newest = os.path.join(self.queue_dir, segments[-1])
        with open(newest, "rb") as f:
            data = f.read()
        offset, size = last_append_record(data)
        self.assertIn(b"torn-9", data[offset:offset + size])  # the last acknowledged call
        with open(newest, "r+b") as f:  # half of it, then garbage: a torn write
            f.truncate(offset + size // 2)
            f.seek(0, os.SEEK_END)
            f.write(os.urandom(100))

        self.emulator.clear_faults()
        stub = self.start_gateway()  # starts: the damage is not fatal
        records, _ = self.gateway.json_log()
        opened = [r for r in records if r.get("msg", "").startswith("delivery queue opened")]
        self.assertEqual(len(opened), 1, records)
        self.assertEqual(opened[0]["level"], "warning", opened[0])
        self.assertGreaterEqual(opened[0]["torn_tail_bytes"], 100, opened[0])
        self.assertEqual(opened[0]["corrupt_regions"], 0, opened[0])
        dropped = re.search(r'userpilot_gateway_delivery_replay_dropped_bytes\{damage="torn_tail"\} '
                            r'(\S+)', self.gateway.metrics())
        self.assertIsNotNone(dropped)
        self.assertEqual(float(dropped.group(1)), opened[0]["torn_tail_bytes"])

        delivery_load.wait_delivered(stub, ids[:-1], DELIVERY_WAIT)
        code, _ = harness.call_code(
            stub.GetDelivery, gateway_pb2.GetDeliveryRequest(delivery_id=ids[-1]),
            timeout=TIMEOUT)
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        received = [e for _, e in delivery_load.accepted_events(self.emulator)]
        self.assertEqual(list(dict.fromkeys(received)), [e for _, e in calls[:-1]])
        # A later call is stored and delivered behind them.
        later = enqueue_all(self, stub, [("torn-user", "after-restart")])
        delivery_load.wait_delivered(stub, later, DELIVERY_WAIT)


class RedisDownTest(unittest.TestCase):
    def setUp(self):
        self.redis = harness.RedisServer(["--appendonly", "yes", "--appendfsync", "always"])
        self.addCleanup(self.redis.stop)
        self.emulator, _ = emulator_and_folder(self, "upgw-redis-down-")

    def test_redis_down_answers_unavailable_and_loses_nothing_acknowledged(self):
        self.emulator.set_faults(error_ratio=1.0, error_status=503)  # held in Redis meanwhile
        self.gateway = harness.Gateway(self.emulator.url, [
            f"--queue_redis={self.redis.url}", "--queue_redis_lease_timeout=2s", *RATES])
        stub = self.gateway.stub()
        calls = [(f"redis-user-{n % 2}", f"before-{n}") for n in range(6)]
        ids = enqueue_all(self, stub, calls)

        self.redis.halt()
        for n in range(3):
            code, error = harness.call_code(
                stub.Enqueue, delivery_load.track("redis-user-0", f"down-{n}"), timeout=TIMEOUT)
            self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, error)
            self.assertIn(f"delivery queue Redis {self.redis.url}", error.details())
        self.assertIsNone(self.gateway.poll())

        self.redis.restart()
        self.emulator.clear_faults()

        ids.append(wait_accepted(stub, "redis-user-1", "after", "Enqueue accepted once Redis "
                                 "is back"))
        calls.append(("redis-user-1", "after"))
        delivery_load.wait_delivered(stub, ids, DELIVERY_WAIT)
        delivery_load.check_received(self, self.emulator, acked_by_user(calls))
        received = [e for _, e in delivery_load.accepted_events(self.emulator)]
        self.assertFalse([e for e in received if e.startswith("down-")], received)


if __name__ == "__main__":
    unittest.main()
