"""The shared harness of the Python tests: real processes on loopback, started, awaited and stopped
with deadlines, and never leaked.

    emulator = Emulator(["--job_step=100ms"])          # the userpilot-emulator binary
    gateway = Gateway(emulator.url, ["--upstream_timeout=500ms"])
    stub = gateway.stub()                               # a UserpilotGateway stub on a new channel
    emulator.script("status", status=503, path_prefix="/v1/track", count=2)
    ... error_details(rpc_error).reason ...             # decoded by the project's Python client
    emulator.windows(60)["groups"]["identify"]["max_in_window"]
    gateway.stop(); emulator.stop()                     # or `with Emulator() as emulator:`

Every process:
  - writes stdout and stderr to a log file (no pipe can fill up and block it); `log()` reads it;
  - is started with PR_SET_PDEATHSIG=SIGKILL (through util-linux's setpriv), so it dies with
    the test process even when the test is killed (a ctest timeout), and is killed at
    interpreter exit if a test forgot it;
  - is waited for with a deadline (`wait_for_log`), and a process that exits or never becomes
    ready raises RuntimeError with its log, after being killed;
  - stops with SIGTERM and a bounded wait, then SIGKILL (`stop()` returns the exit status).

Ports come from the kernel: the emulator and gateway bind port 0 and print the port they got;
redis-server and Prometheus, which cannot, get a probed free port and are retried on another
when it was taken in between.

Binaries: UPGW_GATEWAY_BIN, UPGW_EMULATOR_BIN, UPGW_CTL_BIN (set by CMake), else under
UPGW_BUILD (default ../../build from here). The google.rpc details of a failed call are decoded
by userpilot_gateway.ErrorDetails (clients/python), the same decoder callers use.
"""

import atexit
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import weakref

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("UPGW_BUILD", os.path.join(HERE, "../../build"))
GATEWAY_BIN = os.environ.get("UPGW_GATEWAY_BIN", os.path.join(BUILD, "service/userpilot-gateway"))
EMULATOR_BIN = os.environ.get("UPGW_EMULATOR_BIN",
                              os.path.join(BUILD, "tests/emulator/userpilot-emulator"))
CTL_BIN = os.environ.get("UPGW_CTL_BIN", os.path.join(BUILD, "clients/cli/userpilotctl"))
API_KEY = "harness-test-key-5b3e"
# The sanitizer these binaries were built with ("asan", "tsan"; empty: none). Instrumented
# binaries run several times slower, so tests that measure timing on real processes widen their
# timing bounds (never their correctness checks) when it is set.
SANITIZER = os.environ.get("UPGW_SANITIZE", "")
START_TIMEOUT = 20.0  # seconds for a process to become ready
STOP_TIMEOUT = 10.0   # seconds between SIGTERM and SIGKILL
ADMIN_TIMEOUT = 10.0  # seconds for one emulator admin call


# ----- Waiting -----------------------------------------------------------------------------

def wait_for(predicate, timeout, what, interval=0.05):
    """Calls predicate() until it returns a true value (returned) or `timeout` seconds pass
    (AssertionError naming `what` and the last exception predicate raised)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: "
                                 f"{last!r})")
        time.sleep(interval)


def free_port():
    """A port nothing listens on right now (for servers that cannot bind port 0 themselves)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_time(text):
    """"2026-11-29T01:02:03.456789Z" (the emulator's received_at) -> Unix seconds."""
    text = text.rstrip("Z")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
    parsed = datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


# ----- Processes ---------------------------------------------------------------------------

# util-linux's setpriv sets PR_SET_PDEATHSIG and execs the command (no preexec_fn, which is
# unsafe beside gRPC's threads): the child gets SIGKILL when the thread that started it exits.
_SETPRIV = shutil.which("setpriv")
_DIE_WITH_PARENT = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []

_live = weakref.WeakSet()


@atexit.register
def _kill_leftovers():
    for process in list(_live):
        process.kill()


class Process:
    """One child process with its output in a log file. Start it from the main thread (its
    death signal follows the thread that started it)."""

    def __init__(self, name, argv, env=None, log_path=None):
        self.name = name
        self.argv = list(argv)
        self._own_dir = None
        if log_path is None:
            self._own_dir = tempfile.mkdtemp(prefix=f"upgw-{name}-")
            log_path = os.path.join(self._own_dir, f"{name}.log")
        self.log_path = log_path
        self._log = open(log_path, "wb")
        try:
            self.popen = subprocess.Popen(_DIE_WITH_PARENT + self.argv, stdin=subprocess.DEVNULL,
                                          stdout=self._log, stderr=subprocess.STDOUT, env=env)
        except BaseException:
            self._log.close()
            raise
        _live.add(self)

    @property
    def pid(self):
        return self.popen.pid

    def poll(self):
        return self.popen.poll()

    def log(self):
        """Everything the process wrote so far (stdout and stderr, interleaved)."""
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_tail(self, lines=40):
        return "".join(self.log().splitlines(keepends=True)[-lines:])

    def wait_for_log(self, pattern, timeout=START_TIMEOUT):
        """The first match of `pattern` (a regex) in the log, waiting up to `timeout` seconds.
        Kills the process and raises RuntimeError when it exits first or the time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log())
            if match:
                return match
            if self.poll() is not None:
                self._fail(f"exited with status {self.popen.returncode} before printing "
                           f"/{pattern}/")
            if time.monotonic() >= deadline:
                self._fail(f"did not print /{pattern}/ within {timeout}s")
            time.sleep(0.02)

    def _fail(self, why):
        self.kill()
        raise RuntimeError(f"{self.name} {why}; its log:\n{self.log_tail()}")

    def signal(self, sig):
        if self.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """The exit status, or None when it is still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit status (negative: the
        signal that ended it)."""
        if self.poll() is None:
            self.popen.terminate()
            if self.wait(timeout) is None:
                self.popen.kill()
                self.popen.wait()
        self._close()
        return self.popen.returncode

    def kill(self):
        """SIGKILL at once (for failures); returns the exit status."""
        if self.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._close()
        return self.popen.returncode

    def _close(self):
        _live.discard(self)
        if not self._log.closed:
            self._log.close()

    def cleanup(self):
        """Stops the process and removes its log when the harness made the folder for it."""
        self.stop()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # What the kernel says about the process.
    def fd_count(self):
        """Open file descriptors, from /proc."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kib(self):
        """Resident set size, from /proc, in KiB."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def sanitized(self):
        """True under AddressSanitizer, whose quarantine keeps freed memory resident: RSS then
        says nothing about leaks (LeakSanitizer does, at exit)."""
        with open(f"/proc/{self.pid}/maps") as maps:
            return "libasan" in maps.read()


def _clean_env(extra):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("USERPILOT_"):
            del env[key]  # Only what the test passes counts.
    env.update(extra or {})
    return env


# ----- The emulator ------------------------------------------------------------------------

class Emulator(Process):
    """The userpilot-emulator binary on 127.0.0.1 and a port of the kernel's choosing, with its
    admin API (tests/emulator/README.md) as methods."""

    def __init__(self, args=(), api_key=API_KEY, log_path=None, binary=None):
        super().__init__("emulator", [binary or EMULATOR_BIN, "--listen=127.0.0.1:0",
                                      f"--api_key={api_key}", *args],
                         env=_clean_env({}), log_path=log_path)
        self.api_key = api_key
        self.url = self.wait_for_log(r"listening on (http://127\.0\.0\.1:\d+)").group(1)

    def admin(self, method, path, body=None, timeout=ADMIN_TIMEOUT):
        """Calls /_emulator/PATH; the decoded JSON answer (None when empty). An error status
        raises AssertionError with the emulator's message."""
        request = urllib.request.Request(
            f"{self.url}/_emulator/{path}", method=method,
            data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as e:
            with e:
                raise AssertionError(f"emulator admin {method} {path}: {e.code} "
                                     f"{e.read().decode(errors='replace')}") from None
        return json.loads(text) if text else None

    def reset(self):
        """Forgets requests, counters, faults, rate windows and jobs."""
        self.admin("POST", "reset")

    def requests(self):
        """The request record, oldest first, each with `received` in Unix seconds (float)."""
        records = self.admin("GET", "requests")
        for r in records:
            r["received"] = parse_time(r["received_at"])
        return records

    def requests_to(self, path):
        """The recorded requests whose decoded path is `path`."""
        return [r for r in self.requests() if r["path"] == path]

    def stats(self):
        return self.admin("GET", "stats")

    def script(self, action="status", **rule):
        """Appends one fault rule: script("status", status=429, retry_after=2, count=3),
        script("drop", path_prefix="/v1/track"), script("pass", echo_key=["base64"]), ..."""
        return self.admin("POST", "faults/script", dict(rule, action=action))

    def set_faults(self, **faults):
        """Merges fault settings: set_faults(error_ratio=0.5), set_faults(latency_ms=1500)."""
        return self.admin("PUT", "faults", faults)

    def clear_faults(self):
        return self.admin("DELETE", "faults")

    def set_limits(self, **limits):
        return self.admin("PUT", "limits", limits)

    def windows(self, window_s=None):
        """Per budget group (identify, track, delete, job_reads): requests, the most received
        within any sliding window of `window_s` seconds (default: the emulator's rate window),
        the most answered 2xx within one, and the 429s (rate_limited: the limiter's;
        injected_429: fault injection's). Raises AssertionError when the bounded record has
        lost requests, which would make the counts wrong."""
        path = "windows" if window_s is None else f"windows?window_ms={window_s * 1000:g}"
        answer = self.admin("GET", path)
        if answer["evicted"]:
            raise AssertionError(f"the emulator's record lost {answer['evicted']} requests: "
                                 "raise --request_log_capacity")
        return answer


# ----- The gateway -------------------------------------------------------------------------

class Gateway(Process):
    """The userpilot-gateway binary in front of `upstream_url`, on a port of the kernel's
    choosing, /metrics on another. USERPILOT_* variables of the test's environment are not
    passed on: only `args` and `env` count. The upstream key check is off
    (--key_check_interval=0), so the emulator's record holds only what the test caused; a test
    of the check passes its own --key_check_interval in `args` (the later flag wins)."""

    def __init__(self, upstream_url, args=(), api_key=API_KEY, env=None, log_path=None,
                 binary=None, start_timeout=START_TIMEOUT):
        extra = dict(env or {})
        if api_key is not None:
            extra.setdefault("USERPILOT_API_KEY", api_key)
        super().__init__("gateway", [binary or GATEWAY_BIN, "--listen=127.0.0.1:0",
                                     "--metrics_listen=127.0.0.1:0",
                                     f"--upstream_url={upstream_url}", "--shutdown_grace=2s",
                                     "--key_check_interval=0", *args],
                         env=_clean_env(extra), log_path=log_path)
        match = self.wait_for_log(r"serving gRPC on port (\d+)(?:, /metrics on port (\d+))?",
                                  timeout=start_timeout)
        self.port = int(match.group(1))
        self.metrics_port = int(match.group(2)) if match.group(2) else None
        self.target = f"127.0.0.1:{self.port}"
        self._channels = []

    @property
    def metrics_url(self):
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def channel(self, ready_timeout=10):
        """A new insecure channel to the gateway, ready; closed by stop()."""
        channel = grpc.insecure_channel(self.target)
        grpc.channel_ready_future(channel).result(timeout=ready_timeout)
        self._channels.append(channel)
        return channel

    def stub(self, channel=None):
        from userpilot.gateway.v1 import gateway_pb2_grpc
        return gateway_pb2_grpc.UserpilotGatewayStub(channel or self.channel())

    def metrics(self, timeout=5):
        with urllib.request.urlopen(self.metrics_url, timeout=timeout) as response:
            return response.read().decode()

    def json_log(self):
        """The log split into (JSON records, other lines)."""
        records, other = [], []
        for line in self.log().splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                other.append(line)
        return records, other

    def stop(self, timeout=20):
        """Drains and stops the gateway; returns its exit status (0: a clean drain, and under
        ASan no leak reported)."""
        for channel in self._channels:
            channel.close()
        self._channels = []
        return super().stop(timeout)


# ----- Other servers -----------------------------------------------------------------------

class GatewayBehindEmulator(unittest.TestCase):
    """A test case class whose tests share one emulator and one gateway in front of it, started
    once for the class with EMULATOR_ARGS and GATEWAY_ARGS (`cls.emulator`, `cls.gateway`,
    `cls.stub`); the class fails if the gateway does not exit 0 at the end."""
    EMULATOR_ARGS = ()
    GATEWAY_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator(cls.EMULATOR_ARGS)
        try:
            cls.gateway = Gateway(cls.emulator.url, cls.GATEWAY_ARGS)
        except BaseException:
            cls.emulator.stop()
            raise
        cls.stub = cls.gateway.stub()

    @classmethod
    def tearDownClass(cls):
        status = cls.gateway.stop()
        cls.emulator.stop()
        assert status == 0, f"the gateway exited with {status}:\n{cls.gateway.log()[-4000:]}"


def _start_on_free_port(make, ready, attempts=5):
    """make(port) -> Process; ready(process, port) -> bool. Retries on another port when the
    probed one was taken in between."""
    for _ in range(attempts):
        port = free_port()
        process = make(port)
        try:
            wait_for(lambda: process.poll() is not None or ready(process, port), START_TIMEOUT,
                     f"{process.name} on port {port}")
        except AssertionError:
            process.kill()
            raise RuntimeError(f"{process.name} did not start:\n{process.log_tail()}") from None
        if process.poll() is None:
            return process, port
        process.kill()
    raise RuntimeError(f"{process.name} did not start:\n{process.log_tail()}")


class RedisServer:
    """Debian's redis-server on loopback in a temporary folder, without persistence unless
    `args` turn it on (later arguments win: ["--appendonly", "yes", "--appendfsync", "always"]).
    `halt()` stops the server but keeps its folder (its AOF) and port; `restart()` starts it
    again there, as after an outage."""

    def __init__(self, args=()):
        self.dir = tempfile.mkdtemp(prefix="upgw-redis-")
        self._args = list(args)
        try:
            self.process, self.port = _start_on_free_port(self._make, self._ready)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.url = f"redis://127.0.0.1:{self.port}"

    def _make(self, port):
        return Process("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                 "--save", "", "--appendonly", "no", "--dir", self.dir,
                                 *self._args])

    @staticmethod
    def _ready(_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def halt(self):
        """Stops the server (SIGTERM, then SIGKILL), keeping its folder and port."""
        return self.process.stop()

    def restart(self):
        """Starts the server again on the same port and folder (after halt())."""
        self.process = self._make(self.port)
        try:
            wait_for(lambda: self.process.poll() is not None or self._ready(None, self.port),
                     START_TIMEOUT, f"redis-server on port {self.port} again")
        except AssertionError:
            self.process.kill()
            raise
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server did not restart:\n{self.process.log_tail()}")

    def stop(self):
        status = self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return status


class Prometheus:
    """Debian's Prometheus server on loopback with `config` (YAML text), its data in a temporary
    folder; `url` once it says it is ready."""

    BINARY = "/usr/bin/prometheus"

    def __init__(self, config):
        self.dir = tempfile.mkdtemp(prefix="upgw-prometheus-")
        config_path = os.path.join(self.dir, "prometheus.yml")
        with open(config_path, "w") as f:
            f.write(config)

        def make(port):
            return Process("prometheus", [
                self.BINARY, f"--config.file={config_path}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={os.path.join(self.dir, 'data')}", "--log.level=warn"],
                log_path=os.path.join(self.dir, f"prometheus-{port}.log"))

        def ready(_, port):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                return b"Ready" in r.read()

        try:
            self.process, port = _start_on_free_port(make, ready)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.url = f"http://127.0.0.1:{port}"

    def stop(self):
        status = self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return status


# ----- Calls and their errors --------------------------------------------------------------

def error_details(error):
    """The google.rpc details of a failed call (a grpc.RpcError), decoded by the project's
    Python client: userpilot_gateway.ErrorDetails (.bad_request, .error_info, .retry_info,
    .quota_failure, .reason, .metadata, .retry_delay, .field_violations)."""
    from userpilot_gateway import ErrorDetails
    return ErrorDetails.from_rpc_error(error)


def call_code(fn, *args, **kwargs):
    """(grpc.StatusCode, response or grpc.RpcError) of one call."""
    try:
        return grpc.StatusCode.OK, fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code(), e


# ----- Windows over the request record -----------------------------------------------------

def accepted_upstream(records, path):
    """Receive times (Unix seconds) of requests to `path` the emulator accepted (2xx)."""
    return sorted(r["received"] for r in records
                  if r["path"] == path and 200 <= r["response_status"] < 300)


def max_in_any_window(times, window):
    """The most of `times` (sorted seconds) within any half-open window [t, t + window)."""
    best, first = 0, 0
    for last in range(len(times)):
        while times[last] - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


class Watchdog:
    """Runs `action` (e.g. a process's kill) unless cancelled within `timeout` seconds: bounds
    a step that could block forever, such as a call into a frozen server without a deadline."""

    def __init__(self, timeout, action):
        self._timer = threading.Timer(timeout, action)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self):
        self._timer.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()
