"""What the durable-delivery e2e tests share (delivery_test, delivery_crash_test,
delivery_redis_crash_test, delivery_faults_test): Enqueue requests, the seed of random kill
moments, sustained Enqueue load that records what was acknowledged, waiting for deliveries,
and the final check against the emulator's record (every acknowledged call at least once, in
per-user order of first arrivals; duplicates counted, never asserted away).
"""

import json
import os
import random
import threading
import time

import grpc
from userpilot.gateway.v1 import gateway_pb2

import upgw_harness as harness

TIMEOUT = 5  # seconds, every call


def track(user, event):
    return gateway_pb2.EnqueueRequest(
        track_event=gateway_pb2.TrackEventRequest(user_id=user, event_name=event))


def crash_random():
    """A random.Random seeded from UPGW_CRASH_SEED, or a fresh seed; the seed is printed so a
    failing run can be repeated."""
    seed = int(os.environ.get("UPGW_CRASH_SEED", random.randrange(1 << 30)))
    print(f"UPGW_CRASH_SEED={seed}", flush=True)
    return random.Random(seed)


def accepted_events(emulator):
    """(user_id, event_name) of every /v1/track request the emulator accepted, in arrival order."""
    out = []
    for r in emulator.requests_to("/v1/track"):
        if 200 <= r["response_status"] < 300:
            body = json.loads(r["body"])
            out.append((body["user_id"], body["event_name"]))
    return out


class EnqueueLoad:
    """One caller thread per user, each sending its next track call only after the previous
    one's answer, so a user's acknowledged calls have one order. `stubs()` returns the stubs of
    the gateways up now; a user's n-th attempt goes to stubs()[n % len(stubs())], so with several
    replicas each user's calls alternate between them. A call that fails (the gateway died under
    it, or its channel was closed by a restart) is counted as refused: not acknowledged, it may
    or may not have been stored."""

    def __init__(self, users, stubs, prefix="load-user", pause=0.02):
        self._stubs = stubs
        self._pause = pause
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.acked = {f"{prefix}-{u}": [] for u in range(users)}  # events, in ack order
        self.ids = []
        self.refused = 0
        self._threads = [threading.Thread(target=self._run, args=(user,), daemon=True)
                         for user in self.acked]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2 * TIMEOUT)

    def snapshot(self):
        """(delivery ids, {user: acknowledged events in order}) so far."""
        with self._lock:
            return list(self.ids), {u: list(events) for u, events in self.acked.items()}

    def _run(self, user):
        seq = 0
        while not self._stop.is_set():
            event = f"{user}-{seq}"
            try:
                stubs = self._stubs()
                answer = stubs[seq % len(stubs)].Enqueue(track(user, event), timeout=TIMEOUT)
            except (grpc.RpcError, ValueError, ZeroDivisionError):
                with self._lock:
                    self.refused += 1
                seq += 1
                time.sleep(0.05)
                continue
            seq += 1
            with self._lock:
                self.acked[user].append(event)
                self.ids.append(answer.delivery_id)
            time.sleep(self._pause)


def wait_delivered(stub, ids, timeout, state=gateway_pb2.DELIVERY_STATE_DELIVERED):
    """Waits until GetDelivery says `state` for every id (each asked until it does)."""
    left = list(ids)

    def done():
        while left:
            answer = stub.GetDelivery(gateway_pb2.GetDeliveryRequest(delivery_id=left[-1]),
                                      timeout=TIMEOUT)
            if answer.delivery.state != state:
                return False
            left.pop()
        return True

    harness.wait_for(done, timeout, f"{len(ids)} deliveries "
                     f"{gateway_pb2.DeliveryState.Name(state)}", interval=0.5)


def check_received(test, emulator, acked):
    """Asserts that the emulator accepted every acknowledged call of `acked` ({user: events in
    ack order}) at least once, and each user's in that order (first arrivals; calls that were
    not acknowledged may arrive too and are left out). Returns (calls received, duplicates)."""
    received = {u: [] for u in acked}
    for user, event in accepted_events(emulator):
        received.setdefault(user, []).append(event)
    duplicates = 0
    for user, events in acked.items():
        got = received[user]
        duplicates += len(got) - len(set(got))
        acked_set = set(events)
        first_arrivals = [e for e in dict.fromkeys(got) if e in acked_set]
        test.assertEqual(first_arrivals, events,
                         f"{user}: acknowledged calls missing or out of order")
    return sum(len(v) for v in received.values()), duplicates
