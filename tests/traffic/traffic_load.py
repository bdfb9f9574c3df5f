"""An open-loop load driver for the traffic tests: Streams of calls at steady rates against one or
more gateways, every call's Outcome recorded (code, timing, decoded details).

    load = Load(gateway.target)
    load.run([Stream("IdentifyUser", rate=100, caller="svc")], duration=15, deadlines=[2.0])
    summarize(load.outcomes)      # {"OK": 1400, "RESOURCE_EXHAUSTED": 100}

Processes (emulator, gateways, redis-server) come from the shared harness, upgw_harness.
"""

import collections
import threading
import time

import grpc
from userpilot.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from userpilot_gateway import ErrorDetails


# ----- Load -----

Outcome = collections.namedtuple(
    "Outcome", "stream caller target start end deadline code message details")
# target: index of the gateway called; start, end: time.monotonic(); deadline: seconds the call
# was given; details: the decoded google.rpc details (userpilot_gateway.ErrorDetails, empty for
# OK).


class Stream:
    """Calls of one RPC from one caller at a steady rate (open loop: nobody waits for answers).

    `callers` > 1 spreads the stream over that many x-caller names (caller-0, caller-1, ...).
    """

    def __init__(self, method, rate, caller, callers=1, targets=None):
        self.method = method
        self.rate = rate
        self.caller = caller
        self.callers = callers
        self.targets = targets  # None: every target of the Load, round robin.

    def request(self, i):
        if self.method == "IdentifyUser":
            return gateway_pb2.IdentifyUserRequest(user_id=f"{self.caller}-u{i}")
        if self.method == "TrackEvent":
            return gateway_pb2.TrackEventRequest(user_id=f"{self.caller}-u{i}",
                                                  event_name="overload")
        raise ValueError(self.method)

    def caller_name(self, i):
        return self.caller if self.callers == 1 else f"{self.caller}-{i % self.callers}"


class Load:
    """Drives Streams against one or more gateways and records every Outcome."""

    def __init__(self, targets):
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        self.channels = [grpc.insecure_channel(t) for t in self.targets]
        for channel in self.channels:
            grpc.channel_ready_future(channel).result(timeout=10)
        self.stubs = [gateway_pb2_grpc.UserpilotGatewayStub(c) for c in self.channels]
        self.lock = threading.Lock()
        self.outcomes = []
        self.in_flight = 0
        self.idle = threading.Condition(self.lock)

    def close(self):
        for channel in self.channels:
            channel.close()

    def _issue(self, stream, i, deadline):
        targets = stream.targets if stream.targets is not None else range(len(self.stubs))
        target = targets[i % len(targets)]
        stub = self.stubs[target]
        caller = stream.caller_name(i)
        start = time.monotonic()
        future = getattr(stub, stream.method).future(
            stream.request(i), timeout=deadline, metadata=[("x-caller", caller)])
        with self.lock:
            self.in_flight += 1

        def done(f):
            end = time.monotonic()
            error = f.exception()
            if error is None:
                outcome = Outcome(stream.method, caller, target, start, end, deadline,
                                  grpc.StatusCode.OK, "", ErrorDetails())
            else:
                outcome = Outcome(stream.method, caller, target, start, end, deadline,
                                  error.code(), error.details(), ErrorDetails.from_rpc_error(error))
            with self.lock:
                self.outcomes.append(outcome)
                self.in_flight -= 1
                self.idle.notify_all()

        future.add_done_callback(done)

    def _pace(self, stream, began, duration, deadlines):
        # Exactly round(rate * duration) calls, call i due at began + i / rate (late calls go at
        # once, so a stalled sender catches up rather than sending fewer).
        for i in range(round(stream.rate * duration)):
            delay = began + i / stream.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._issue(stream, i, deadlines[i % len(deadlines)])

    def run(self, streams, duration, deadlines, on_tick=None):
        """Runs every stream for `duration` seconds, then waits for the last answers.

        Call i of a stream gets the deadline deadlines[i % len(deadlines)] (seconds).

        `on_tick(elapsed)` is called about once a second from this thread (e.g. to sample RSS).
        Returns (wall-clock start, wall-clock end) of the sending period, in Unix seconds.
        """
        start_wall = time.time()
        began = time.monotonic()
        stop_at = began + duration
        deadline = max(deadlines)
        threads = [threading.Thread(target=self._pace, args=(s, began, duration, deadlines),
                                    daemon=True)
                   for s in streams]
        for t in threads:
            t.start()
        while time.monotonic() < stop_at:
            time.sleep(min(1.0, max(0.0, stop_at - time.monotonic())))
            if on_tick is not None:
                on_tick(time.monotonic() - began)
        end_wall = time.time()
        for t in threads:
            t.join(timeout=deadline + 10)
        with self.lock:
            self.idle.wait_for(lambda: self.in_flight == 0, timeout=deadline + 10)
        return start_wall, end_wall


# ----- Analysis -----

def summarize(outcomes):
    """{code name: count}."""
    return dict(collections.Counter(o.code.name for o in outcomes))
