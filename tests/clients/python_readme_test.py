"""Runs every ```python example of clients/python/README.md, each in a fresh interpreter, in
README order, against a real gateway in front of the Userpilot emulator (reset before each),
with a stand-in gateway serving mutual TLS for the TLS example (tls_fixture.py)."""

import os
import re
import subprocess
import sys
import unittest

from gateway_fixture import GatewayFixture
from tls_fixture import TlsGateway

README = os.path.join(os.path.dirname(__file__), "../../clients/python/README.md")


def examples():
    with open(README) as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.S | re.M)


class PythonReadmeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gateway = GatewayFixture().__enter__()
        cls.tls = TlsGateway(require_client_cert=True).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.tls.__exit__()
        cls.gateway.__exit__(None, None, None)

    def test_every_example_runs(self):
        blocks = examples()
        self.assertGreaterEqual(len(blocks), 6, "the README's examples went missing")
        for number, code in enumerate(blocks, 1):
            with self.subTest(example=number):
                self.gateway.admin("POST", "reset")
                env = dict(os.environ, USERPILOT_GATEWAY_TARGET=self.gateway.target,
                           **self.tls.env)
                result = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                                        capture_output=True, timeout=60)
                self.assertEqual(result.returncode, 0,
                                 f"example {number} failed:\n{code}\n--- stdout\n{result.stdout}"
                                 f"--- stderr\n{result.stderr}")
                print(f"--- example {number}\n{result.stdout}", end="")
        # The TLS example reached the TLS gateway with the token and the client certificate.
        seen = self.tls.servicer.seen
        self.assertTrue(seen, "no example called the TLS gateway")
        for call in seen:
            self.assertEqual(call.authorization, f"Bearer {self.tls.TOKEN}")
            self.assertEqual(call.identity.split(",")[0], "billing")


if __name__ == "__main__":
    unittest.main()
