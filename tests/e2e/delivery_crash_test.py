"""End-to-end (issue 16, "Done when"): the durable queue survives SIGKILL.

Under sustained Enqueue load from several callers (one per user, each waiting for its call's
acknowledgement before sending the next), the gateway is killed with SIGKILL at random moments
several times and restarted on the same --queue_dir. In the end the emulator must have received
every acknowledged call at least once, and for each user the acknowledged calls in the order
they were acknowledged (first arrivals; a call whose attempt was under way when the gateway died
may arrive twice: at-least-once). Duplicates are counted and printed, never asserted away.

UPGW_CRASH_SEED fixes the random kill moments (the seed used is printed). The load and the
check are delivery_load's, shared with delivery_redis_crash_test.
"""

import shutil
import tempfile
import threading
import time
import unittest

import delivery_load
import upgw_harness as harness

USERS = 6
KILLS = 4
DELIVERY_WAIT = 120  # seconds, for the backlog to drain at the end


class DeliveryCrashTest(unittest.TestCase):
    def setUp(self):
        self.random = delivery_load.crash_random()
        self.queue_dir = tempfile.mkdtemp(prefix="upgw-crash-queue-")
        # No upstream rate limit, and gateway budgets far above the load, so the backlog
        # drains between kills and at the end.
        self.emulator = harness.Emulator(["--rate_limits=false"])
        self.gateway = None
        self.lock = threading.Lock()
        self.stub = None
        self.load = delivery_load.EnqueueLoad(USERS, self.stubs, prefix="crash-user")

    def tearDown(self):
        self.load.stop()
        if self.gateway is not None:
            self.gateway.stop()
        self.emulator.cleanup()
        shutil.rmtree(self.queue_dir, ignore_errors=True)

    def stubs(self):
        with self.lock:
            return [self.stub]

    def start_gateway(self):
        gateway = harness.Gateway(self.emulator.url, [f"--queue_dir={self.queue_dir}",
                                                      "--identify_rate=6000/1m",
                                                      "--track_rate=6000/1m"])
        with self.lock:
            self.gateway = gateway
            self.stub = gateway.stub()

    def test_sigkill_under_load_loses_no_acknowledged_call(self):
        self.start_gateway()
        self.load.start()
        for _ in range(KILLS):
            time.sleep(self.random.uniform(0.5, 2.5))
            self.assertLess(self.gateway.kill(), 0)  # SIGKILL: ended by the signal
            time.sleep(self.random.uniform(0, 0.3))
            self.start_gateway()
        time.sleep(1)
        self.load.stop()

        ids, acked = self.load.snapshot()
        self.assertGreater(len(ids), 50, "the load was too light to mean anything")
        delivery_load.wait_delivered(self.stub, ids, DELIVERY_WAIT)
        total, duplicates = delivery_load.check_received(self, self.emulator, acked)
        print(f"acknowledged {len(ids)} calls, refused {self.load.refused} while the gateway "
              f"was down; received {total} (duplicates {duplicates}) over {KILLS} SIGKILLs",
              flush=True)


if __name__ == "__main__":
    unittest.main()
