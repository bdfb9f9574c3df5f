"""End-to-end (issue 16): durable delivery on the real gateway and emulator binaries.

Enqueue and EnqueueBatch hand over identify and track calls; every one reaches the emulator, in
the order it was acknowledged for its user, and GetDelivery then says DELIVERED. A call the
emulator answers 400 becomes a dead letter with the reason (GetDelivery DEAD, ListDeadLetters),
and RedriveDeadLetters sends it again. Validation is the synchronous RPC's (INVALID_ARGUMENT
naming `track_event.event_name`, nothing stored or sent). A gateway restarted on the same
--queue_dir delivers what the first one had acknowledged but could not deliver (the emulator
answered 503 meanwhile). Without --queue_dir the delivery RPCs answer FAILED_PRECONDITION.
"""

import json
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc
from userpilot.gateway.v1 import gateway_pb2

import delivery_load
import upgw_harness as harness

DELIVERY_WAIT = 60  # seconds, for a backlog to drain
TIMEOUT = delivery_load.TIMEOUT
track = delivery_load.track
accepted_events = delivery_load.accepted_events


class DeliveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.queue_dir = tempfile.mkdtemp(prefix="upgw-e2e-queue-")
        cls.emulator = harness.Emulator()
        try:
            cls.gateway = cls.start_gateway()
        except BaseException:
            cls.emulator.cleanup()
            shutil.rmtree(cls.queue_dir, ignore_errors=True)
            raise

    @classmethod
    def start_gateway(cls):
        return harness.Gateway(cls.emulator.url, [f"--queue_dir={cls.queue_dir}",
                                                  "--queue_sync_share=0.2"])

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()
        cls.emulator.cleanup()
        shutil.rmtree(cls.queue_dir, ignore_errors=True)

    def setUp(self):
        self.emulator.reset()
        self.stub = self.gateway.stub()

    def get(self, delivery_id):
        return self.stub.GetDelivery(gateway_pb2.GetDeliveryRequest(delivery_id=delivery_id),
                                     timeout=TIMEOUT).delivery

    def wait_state(self, ids, state, timeout=DELIVERY_WAIT):
        harness.wait_for(lambda: all(self.get(i).state == state for i in ids), timeout,
                         f"{len(ids)} deliveries {gateway_pb2.DeliveryState.Name(state)}",
                         interval=0.2)

    def test_every_call_arrives_in_per_user_order(self):
        users = [f"order-user-{n}" for n in range(4)]
        expected = {u: [] for u in users}
        ids = []
        for i in range(10):  # one by one, round robin over the users
            user = users[i % len(users)]
            event = f"single-{i}"
            answer = self.stub.Enqueue(track(user, event), timeout=TIMEOUT)
            self.assertTrue(answer.delivery_id)
            self.assertFalse(answer.duplicate)
            ids.append(answer.delivery_id)
            expected[user].append(event)
        batch = gateway_pb2.EnqueueBatchRequest()
        for i in range(20):
            user = users[(i * 3) % len(users)]
            event = f"batch-{i}"
            batch.calls.append(track(user, event))
            expected[user].append(event)
        identify = gateway_pb2.EnqueueRequest(
            identify_user=gateway_pb2.IdentifyUserRequest(user_id=users[0]))
        batch.calls.append(identify)
        answer = self.stub.EnqueueBatch(batch, timeout=TIMEOUT)
        self.assertEqual(len(answer.outcomes), 21)
        for outcome in answer.outcomes:
            self.assertEqual(outcome.code, 0, outcome.message)
            ids.append(outcome.delivery_id)
        self.wait_state(ids, gateway_pb2.DELIVERY_STATE_DELIVERED)
        received = accepted_events(self.emulator)
        self.assertEqual(len(received), 30, received)  # each exactly once: no crash here
        for user in users:
            self.assertEqual([e for u, e in received if u == user], expected[user], user)
        self.assertEqual(len(self.emulator.requests_to("/v1/identify")), 1)
        delivery = self.get(ids[0])
        self.assertEqual(delivery.call_type, "track_event")
        self.assertEqual(delivery.attempts, 1)
        self.assertTrue(delivery.HasField("finish_time"))
        identify_delivery = self.get(ids[-1])
        self.assertEqual(identify_delivery.call_type, "identify_user")
        # The dispatcher's work is visible in the metrics.
        text = self.gateway.metrics()
        self.assertIn('userpilot_gateway_delivery_attempts_total{outcome="delivered"}', text)
        self.assertIn("userpilot_gateway_delivery_append_seconds_count", text)

    def test_invalid_call_is_refused_like_the_synchronous_rpc(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.Enqueue(track("u-invalid", ""), timeout=TIMEOUT)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        details = harness.error_details(caught.exception)
        self.assertEqual([v.field for v in details.bad_request.field_violations],
                         ["track_event.event_name"])
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.Enqueue(gateway_pb2.EnqueueRequest(), timeout=TIMEOUT)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        time.sleep(1)
        self.assertEqual(self.emulator.requests_to("/v1/track"), [])

    def test_idempotency_key_stores_once(self):
        request = track("idem-user", "paid")
        request.idempotency_key = "order-4711"
        first = self.stub.Enqueue(request, timeout=TIMEOUT)
        second = self.stub.Enqueue(request, timeout=TIMEOUT)
        self.assertEqual(second.delivery_id, first.delivery_id)
        self.assertTrue(second.duplicate)
        self.wait_state([first.delivery_id], gateway_pb2.DELIVERY_STATE_DELIVERED)
        self.assertEqual(accepted_events(self.emulator), [("idem-user", "paid")])

    def test_a_400_is_a_dead_letter_and_redrive_sends_it_again(self):
        self.emulator.script("status", status=400, path_prefix="/v1/track", count=1)
        dead = self.stub.Enqueue(track("dead-user", "refused"), timeout=TIMEOUT).delivery_id
        self.wait_state([dead], gateway_pb2.DELIVERY_STATE_DEAD)
        delivery = self.get(dead)
        self.assertIn("400", delivery.last_error)
        listed = self.stub.ListDeadLetters(gateway_pb2.ListDeadLettersRequest(), timeout=TIMEOUT)
        self.assertIn(dead, [d.delivery_id for d in listed.dead_letters])
        # The dead letter does not hold its user's later calls back.
        later = self.stub.Enqueue(track("dead-user", "later"), timeout=TIMEOUT).delivery_id
        self.wait_state([later], gateway_pb2.DELIVERY_STATE_DELIVERED)
        answer = self.stub.RedriveDeadLetters(
            gateway_pb2.RedriveDeadLettersRequest(delivery_ids=[dead, "no-such-id"]),
            timeout=TIMEOUT)
        self.assertEqual([o.code for o in answer.outcomes],
                         [0, grpc.StatusCode.NOT_FOUND.value[0]])
        self.wait_state([dead], gateway_pb2.DELIVERY_STATE_DELIVERED)
        self.assertEqual(accepted_events(self.emulator),
                         [("dead-user", "later"), ("dead-user", "refused")])
        listed = self.stub.ListDeadLetters(gateway_pb2.ListDeadLettersRequest(), timeout=TIMEOUT)
        self.assertNotIn(dead, [d.delivery_id for d in listed.dead_letters])

    def test_a_restart_delivers_what_was_acknowledged(self):
        # Userpilot is down: calls are acknowledged, stored, and retried.
        self.emulator.set_faults(error_ratio=1.0, error_status=503)
        ids = [self.stub.Enqueue(track("restart-user", f"r-{i}"), timeout=TIMEOUT).delivery_id
               for i in range(5)]
        type(self).gateway.stop()
        type(self).gateway = self.start_gateway()
        self.stub = self.gateway.stub()
        self.assertEqual(self.get(ids[0]).state, gateway_pb2.DELIVERY_STATE_PENDING)
        self.emulator.clear_faults()
        self.wait_state(ids, gateway_pb2.DELIVERY_STATE_DELIVERED)
        self.assertEqual(accepted_events(self.emulator),
                         [("restart-user", f"r-{i}") for i in range(5)])

    def test_userpilotctl_covers_the_delivery_rpcs(self):
        def ctl(method, body):
            out = subprocess.run([harness.CTL_BIN, f"--target={self.gateway.target}", method,
                                  json.dumps(body)], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, f"{method}: {out.stderr}")
            return json.loads(out.stdout)

        answer = ctl("Enqueue", {"identify_company": {"company_id": "ctl-co"}})
        delivery_id = answer["delivery_id"]
        self.wait_state([delivery_id], gateway_pb2.DELIVERY_STATE_DELIVERED)
        got = ctl("GetDelivery", {"delivery_id": delivery_id})
        self.assertEqual(got["delivery"]["state"], "DELIVERY_STATE_DELIVERED")
        batch = ctl("EnqueueBatch", {"calls": [{"track_event": {"user_id": "ctl-u",
                                                                "event_name": "e"}}]})
        self.assertEqual(len(batch["outcomes"]), 1)
        for dead in ctl("ListDeadLetters", {"page_size": 5}).get("dead_letters", []):
            self.assertEqual(dead["state"], "DELIVERY_STATE_DEAD")
        # Delivered, not dead: per-id FAILED_PRECONDITION.
        redriven = ctl("RedriveDeadLetters", {"delivery_ids": [delivery_id]})
        self.assertEqual(redriven["outcomes"][0]["code"],
                         grpc.StatusCode.FAILED_PRECONDITION.value[0])


class DeliveryOffTest(unittest.TestCase):
    def test_without_a_queue_the_delivery_rpcs_answer_failed_precondition(self):
        with harness.Emulator() as emulator, harness.Gateway(emulator.url) as gateway:
            stub = gateway.stub()
            for method, request in (
                    ("Enqueue", track("u", "e")),
                    ("EnqueueBatch", gateway_pb2.EnqueueBatchRequest(calls=[track("u", "e")])),
                    ("GetDelivery", gateway_pb2.GetDeliveryRequest(delivery_id="x")),
                    ("ListDeadLetters", gateway_pb2.ListDeadLettersRequest()),
                    ("RedriveDeadLetters",
                     gateway_pb2.RedriveDeadLettersRequest(delivery_ids=["x"]))):
                with self.subTest(method), self.assertRaises(grpc.RpcError) as caught:
                    getattr(stub, method)(request, timeout=TIMEOUT)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                self.assertIn("async delivery is off", caught.exception.details())
            self.assertEqual(emulator.requests(), [])


if __name__ == "__main__":
    unittest.main()
