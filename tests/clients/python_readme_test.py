"""Runs every ```python example of clients/python/README.md against a real gateway in front of
the Userpilot emulator, each in a fresh interpreter, in README order, with a clean emulator."""

import os
import re
import subprocess
import sys
import unittest

from gateway_fixture import GatewayFixture

README = os.path.join(os.path.dirname(__file__), "../../clients/python/README.md")


def examples():
    with open(README) as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.S | re.M)


class PythonReadmeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gateway = GatewayFixture().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.gateway.__exit__(None, None, None)

    def test_every_example_runs(self):
        blocks = examples()
        self.assertGreaterEqual(len(blocks), 4, "the README's examples went missing")
        for number, code in enumerate(blocks, 1):
            with self.subTest(example=number):
                self.gateway.admin("POST", "reset")
                env = dict(os.environ, USERPILOT_GATEWAY_TARGET=self.gateway.target)
                result = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                                        capture_output=True, timeout=60)
                self.assertEqual(result.returncode, 0,
                                 f"example {number} failed:\n{code}\n--- stdout\n{result.stdout}"
                                 f"--- stderr\n{result.stderr}")
                print(f"--- example {number}\n{result.stdout}", end="")


if __name__ == "__main__":
    unittest.main()
