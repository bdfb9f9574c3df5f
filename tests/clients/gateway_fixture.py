"""A real userpilot-gateway in front of the Userpilot emulator, for client tests.

Starts the built `userpilot-emulator` and `userpilot-gateway` binaries on loopback ports chosen by
the kernel (both print the port they got), waits until the gateway serves, and stops both.

    with GatewayFixture(build_dir) as gw:
        gw.target          # "127.0.0.1:PORT" of the gateway
        gw.emulator_url    # "http://127.0.0.1:PORT" of the emulator
        gw.admin("POST", "reset")   # the emulator's admin API (see tests/emulator/README.md)

Binaries come from UPGW_GATEWAY_BIN / UPGW_EMULATOR_BIN, else from the build folder.
"""

import json
import os
import re
import subprocess
import threading
import time
import urllib.request

API_KEY = "client-tests-key-5e1d"


class GatewayFixture:
    def __init__(self, build_dir=None, gateway_args=(), job_step="100ms", log_path=None):
        build_dir = build_dir or os.environ.get("UPGW_BUILD", "build")
        self.gateway_bin = os.environ.get("UPGW_GATEWAY_BIN",
                                          os.path.join(build_dir, "service/userpilot-gateway"))
        self.emulator_bin = os.environ.get(
            "UPGW_EMULATOR_BIN", os.path.join(build_dir, "tests/emulator/userpilot-emulator"))
        self.gateway_args = list(gateway_args)
        self.job_step = job_step
        self.log_path = log_path
        self.emulator = None
        self.gateway = None
        self.target = None
        self.emulator_url = None
        self._log_lines = []
        self._log_thread = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.emulator = subprocess.Popen(
            [self.emulator_bin, "--listen=127.0.0.1:0", f"--api_key={API_KEY}",
             f"--job_step={self.job_step}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.emulator.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not match:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.emulator_url = match.group(0)

        env = dict(os.environ, USERPILOT_API_KEY=API_KEY)
        for key in list(env):
            if key.startswith("USERPILOT_GATEWAY_"):
                del env[key]  # only the flags below
        self.gateway = subprocess.Popen(
            [self.gateway_bin, "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
             f"--upstream_url={self.emulator_url}", "--shutdown_grace=2s", *self.gateway_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        port = self._wait_for_port(deadline=time.monotonic() + 20)
        self.target = f"127.0.0.1:{port}"
        self._log_thread = threading.Thread(target=self._drain_log, daemon=True)
        self._log_thread.start()

    def _wait_for_port(self, deadline):
        # "userpilot-gateway: serving gRPC on port N, upstream ..." once it listens.
        while time.monotonic() < deadline:
            line = self.gateway.stderr.readline()
            if not line:
                break
            self._log_lines.append(line)
            match = re.search(r"serving gRPC on port (\d+)", line)
            if match:
                return int(match.group(1))
        raise RuntimeError("the gateway did not start:\n" + "".join(self._log_lines))

    def _drain_log(self):
        for line in self.gateway.stderr:
            self._log_lines.append(line)

    def log(self):
        """Everything the gateway wrote to stderr so far."""
        return "".join(self._log_lines)

    def admin(self, method, path, body=None):
        """Calls the emulator's admin API (/_emulator/PATH); returns the decoded JSON answer."""
        request = urllib.request.Request(
            f"{self.emulator_url}/_emulator/{path}", method=method,
            data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
            return json.loads(text) if text else None

    def stop(self):
        for process in (self.gateway, self.emulator):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._log_thread is not None:
            self._log_thread.join(timeout=2)
        if self.log_path:
            with open(self.log_path, "w") as out:
                out.write(self.log())
        for process in (self.gateway, self.emulator):
            if process is not None:
                for stream in (process.stdout, process.stderr):
                    if stream is not None:
                        stream.close()
