"""A real userpilot-gateway in front of the Userpilot emulator, for client tests.

Starts the built `userpilot-emulator` and `userpilot-gateway` binaries on loopback ports chosen by
the kernel through the shared test harness (tests/harness/upgw_harness.py), and stops both.

    with GatewayFixture(build_dir) as gw:
        gw.target          # "127.0.0.1:PORT" of the gateway
        gw.emulator_url    # "http://127.0.0.1:PORT" of the emulator
        gw.admin("POST", "reset")   # the emulator's admin API (see tests/emulator/README.md)

Binaries come from UPGW_GATEWAY_BIN / UPGW_EMULATOR_BIN, else from the build folder.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../harness"))
import upgw_harness as harness  # noqa: E402

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
        self.emulator = harness.Emulator([f"--job_step={self.job_step}"], api_key=API_KEY,
                                         binary=self.emulator_bin)
        self.emulator_url = self.emulator.url
        self.gateway = harness.Gateway(self.emulator_url, self.gateway_args, api_key=API_KEY,
                                       binary=self.gateway_bin, log_path=self.log_path)
        self.target = self.gateway.target

    def log(self):
        """Everything the gateway wrote so far."""
        return self.gateway.log() if self.gateway is not None else ""

    def admin(self, method, path, body=None):
        """Calls the emulator's admin API (/_emulator/PATH); returns the decoded JSON answer."""
        return self.emulator.admin(method, path, body)

    def stop(self):
        for process in (self.gateway, self.emulator):
            if process is not None:
                process.cleanup()
