"""End-to-end (issue 16, "Done when"): the shared queue (--queue_redis) survives a replica's SIGKILL.

Two gateway replicas share one redis-server (append-only file on, fsync always). Several
callers (one per user, each waiting for its call's acknowledgement before sending the next)
alternate their calls between the two replicas. At random moments one of the replicas is
killed with SIGKILL and, a moment later, restarted (a new consumer of the stream); the other
keeps taking calls and delivering, and takes over the dead replica's leased calls once
--queue_redis_lease_timeout (short here) has passed. In the end the emulator must have received
every acknowledged call at least once, and each user's in the order they were acknowledged
(first arrivals). Duplicates are counted and printed, never asserted away.

UPGW_CRASH_SEED fixes the random kill moments and victims (the seed used is printed). The load
and the check are delivery_load's, shared with delivery_crash_test.
"""

import threading
import time
import unittest

import delivery_load
import upgw_harness as harness

USERS = 6
KILLS = 4
LEASE_TIMEOUT = "2s"  # a dead replica's leased calls go to the other one after this
DELIVERY_WAIT = 120  # seconds, for the backlog to drain at the end
UPSTREAM_LATENCY_MS = 30


class DeliveryRedisCrashTest(unittest.TestCase):
    def setUp(self):
        self.random = delivery_load.crash_random()
        self.redis = harness.RedisServer(["--appendonly", "yes", "--appendfsync", "always"])
        self.emulator = harness.Emulator(["--rate_limits=false"])
        # Each delivery takes a while, so a replica killed at a random moment holds leased
        # calls (sent or about to be) that the other replica must take over.
        self.emulator.set_faults(latency_ms=UPSTREAM_LATENCY_MS)
        self.lock = threading.Lock()
        self.replicas = [None, None]  # (gateway, stub), or None while down
        self.load = delivery_load.EnqueueLoad(USERS, self.stubs, prefix="replica-user")

    def tearDown(self):
        self.load.stop()
        for replica in self.replicas:
            if replica is not None:
                replica[0].stop()
        self.emulator.cleanup()
        self.redis.stop()

    def stubs(self):
        with self.lock:
            return [r[1] for r in self.replicas if r is not None]

    def start_replica(self, n):
        gateway = harness.Gateway(self.emulator.url, [
            f"--queue_redis={self.redis.url}", f"--queue_redis_lease_timeout={LEASE_TIMEOUT}",
            "--identify_rate=60000/1m", "--track_rate=60000/1m"])
        with self.lock:
            self.replicas[n] = (gateway, gateway.stub())

    def test_sigkill_of_one_replica_under_load_loses_no_acknowledged_call(self):
        self.start_replica(0)
        self.start_replica(1)
        self.load.start()
        victims = []
        for _ in range(KILLS):
            time.sleep(self.random.uniform(0.5, 2.5))
            victim = self.random.randrange(2)
            victims.append(victim)
            with self.lock:
                gateway, _ = self.replicas[victim]
                self.replicas[victim] = None
            self.assertLess(gateway.kill(), 0)  # SIGKILL: ended by the signal
            time.sleep(self.random.uniform(0, 0.5))
            self.start_replica(victim)
        time.sleep(1)
        self.load.stop()

        ids, acked = self.load.snapshot()
        self.assertGreater(len(ids), 50, "the load was too light to mean anything")
        delivery_load.wait_delivered(self.replicas[0][1], ids, DELIVERY_WAIT)
        total, duplicates = delivery_load.check_received(self, self.emulator, acked)
        in_doubt = sum(_in_doubt(r[0].metrics()) for r in self.replicas)
        print(f"acknowledged {len(ids)} calls over two replicas, refused {self.load.refused} "
              f"(the victim died under them); received {total} (duplicates {duplicates}; "
              f"in-doubt attempts by the live replicas {in_doubt}) over {KILLS} SIGKILLs of "
              f"replicas {victims}", flush=True)


def _in_doubt(metrics_text):
    for line in metrics_text.splitlines():
        if line.startswith("userpilot_gateway_delivery_in_doubt_total"):
            return int(float(line.split()[-1]))
    return 0


if __name__ == "__main__":
    unittest.main()
