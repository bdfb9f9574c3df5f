"""Real processes for the traffic-control tests: the emulator, gateways, redis-server, and an
open-loop load driver that records every call's outcome.

Everything runs on 127.0.0.1 with ports chosen by the kernel (or probed free for redis-server),
bounded in time, and is stopped by the test that started it.

    emulator = Emulator(["--identify_limit=200", "--rate_window=10s"])
    gateway = Gateway(emulator.url, ["--identify_rate=200/10s"])
    load = Load(gateway.target)
    load.run([Stream("IdentifyUser", rate=100, caller="svc")], duration=15, deadline=2.0)
    ...
    gateway.stop(); emulator.stop()

Binaries come from UPGW_GATEWAY_BIN / UPGW_EMULATOR_BIN (set by CMake), else from UPGW_BUILD.
"""

import collections
import datetime
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import grpc
from google.rpc import error_details_pb2, status_pb2
from userpilot.gateway.v1 import gateway_pb2, gateway_pb2_grpc

BUILD = os.environ.get("UPGW_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
GATEWAY_BIN = os.environ.get("UPGW_GATEWAY_BIN", os.path.join(BUILD, "service/userpilot-gateway"))
EMULATOR_BIN = os.environ.get("UPGW_EMULATOR_BIN",
                              os.path.join(BUILD, "tests/emulator/userpilot-emulator"))
API_KEY = "traffic-tests-key-77f0"
START_TIMEOUT = 20  # seconds for a process to start serving


def _stop(process, timeout=10):
    """SIGTERM, then SIGKILL after `timeout` s; returns the exit status (None if not started)."""
    if process is None:
        return None
    if process.poll() is not None:
        return process.returncode
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return process.returncode


class Emulator:
    """The userpilot-emulator binary on a free loopback port."""

    def __init__(self, args=()):
        self.process = subprocess.Popen(
            [EMULATOR_BIN, "--listen=127.0.0.1:0", f"--api_key={API_KEY}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not match:
            _stop(self.process)
            self.process.stdout.close()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = match.group(0)

    def admin(self, method, path, body=None):
        """The emulator's admin API (/_emulator/PATH); the decoded JSON answer."""
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}", method=method,
            data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return json.loads(text) if text else None

    def requests(self):
        """The request record, oldest first, each with `received` in Unix seconds (float)."""
        records = self.admin("GET", "requests")
        for r in records:
            r["received"] = parse_time(r["received_at"])
        return records

    def stop(self):
        _stop(self.process)
        if self.process.stdout:
            self.process.stdout.close()


def parse_time(text):
    """"2026-11-29T01:02:03.456789Z" -> Unix seconds."""
    text = text.rstrip("Z")
    if "." in text:
        base, fraction = text.split(".")
        fraction = (fraction + "000000")[:6]
        text = f"{base}.{fraction}"
        fmt = "%Y-%m-%dT%H:%M:%S.%f"
    else:
        fmt = "%Y-%m-%dT%H:%M:%S"
    parsed = datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


class Gateway:
    """The userpilot-gateway binary in front of `upstream_url`, on a free loopback port."""

    def __init__(self, upstream_url, args=(), log_path=None):
        env = dict(os.environ, USERPILOT_API_KEY=API_KEY)
        for key in list(env):
            if key.startswith("USERPILOT_GATEWAY_"):
                del env[key]  # Only the flags below count.
        self.lines = []
        self.log_path = log_path
        self.process = subprocess.Popen(
            [GATEWAY_BIN, "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
             f"--upstream_url={upstream_url}", "--shutdown_grace=2s", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        port = None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            match = re.search(r"serving gRPC on port (\d+)", line)
            if match:
                port = int(match.group(1))
                break
        if port is None:
            _stop(self.process)
            self.process.stderr.close()
            raise RuntimeError("the gateway did not start:\n" + "".join(self.lines))
        self.target = f"127.0.0.1:{port}"
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()

    def _read_log(self):
        for line in self.process.stderr:
            self.lines.append(line)

    def rss_kib(self):
        """Resident set size from /proc, in KiB."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def sanitized(self):
        """True when the binary runs under AddressSanitizer, whose quarantine keeps freed memory
        resident (up to 256 MB): RSS then says nothing about leaks; LeakSanitizer at exit does."""
        with open(f"/proc/{self.process.pid}/maps") as maps:
            return "libasan" in maps.read()

    def log(self):
        return "".join(self.lines)

    def stop(self):
        """Drains and stops the gateway; returns its exit status (0: a clean drain, and under
        ASan no leak reported)."""
        status = _stop(self.process, timeout=20)
        self._drain.join(timeout=5)
        if self.log_path:
            with open(self.log_path, "w") as out:
                out.write(self.log())
        self.process.stderr.close()
        return status


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """Debian's redis-server on loopback, no persistence, in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="upgw-traffic-redis-")
        self.process = None
        for _ in range(5):  # A probed port can be taken in between: try another.
            self.port = free_port()
            self.process = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--dir", self.dir.name],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready(deadline=time.monotonic() + 5):
                self.url = f"redis://127.0.0.1:{self.port}"
                return
            _stop(self.process)
        raise RuntimeError("redis-server did not start")

    def _wait_ready(self, deadline):
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self):
        _stop(self.process)
        self.dir.cleanup()


# ----- Load -----

Outcome = collections.namedtuple(
    "Outcome", "stream caller target start end deadline code message details")
# target: index of the gateway called; start, end: time.monotonic(); deadline: seconds the call
# was given; details: decoded google.rpc details by message name (ErrorInfo, RetryInfo,
# QuotaFailure).


def decode_details(error):
    found = {}
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for any_detail in status.details:
            for cls in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo,
                        error_details_pb2.QuotaFailure):
                if any_detail.Is(cls.DESCRIPTOR):
                    message = cls()
                    any_detail.Unpack(message)
                    found[cls.DESCRIPTOR.name] = message
    return found


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
                                  grpc.StatusCode.OK, "", {})
            else:
                outcome = Outcome(stream.method, caller, target, start, end, deadline,
                                  error.code(), error.details(), decode_details(error))
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

def accepted_upstream(records, path):
    """Receive times (Unix seconds) of requests to `path` the emulator accepted (2xx)."""
    return sorted(r["received"] for r in records
                  if r["path"] == path and 200 <= r["response_status"] < 300)


def max_in_any_window(times, window):
    best, first = 0, 0
    for last in range(len(times)):
        while times[last] - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def summarize(outcomes):
    counts = collections.Counter(o.code.name for o in outcomes)
    return dict(counts)
