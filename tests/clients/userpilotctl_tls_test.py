"""userpilotctl over TLS: the real binary against a scripted gateway that serves mutual TLS with
certificates made at test time (tls_fixture.py). The token (from --token_file or
USERPILOT_GATEWAY_TOKEN) arrives as `authorization: Bearer ...` and never appears in the
output; a wrong CA, a missing client certificate and a token over plaintext all fail."""

import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tls_fixture import ScriptedServer, TlsGateway  # noqa: E402

CTL = os.environ.get("UPGW_USERPILOTCTL_BIN", "build/clients/cli/userpilotctl")


def error_code(result):
    """The code of the error JSON userpilotctl prints last on stderr (gRPC's own log lines, such
    as a failed handshake's, may come before it)."""
    return json.loads(result.stderr.strip().splitlines()[-1])["code"]


def userpilotctl(*args, env=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("USERPILOT_GATEWAY_")}
    environment.update(env or {})
    return subprocess.run([CTL, "--nopretty", "--deadline=30s", "--max_attempts=1", *args],
                          env=environment, capture_output=True, text=True, timeout=60)


class UserpilotctlTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = TlsGateway(require_client_cert=True).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__()

    def setUp(self):
        with self.gw.servicer.lock:
            self.gw.servicer.seen.clear()

    def tls_flags(self, ca="ca.pem", client="client"):
        flags = [f"--target={self.gw.server.target}", f"--tls_ca_file={self.gw.path(ca)}",
                 "--tls_server_name=gateway.test"]
        if client:
            flags += [f"--tls_cert_file={self.gw.path(client + '.pem')}",
                      f"--tls_key_file={self.gw.path(client + '.key')}"]
        return flags

    def assertNoToken(self, result):
        self.assertNotIn(self.gw.TOKEN, result.stdout + result.stderr)

    def test_mutual_tls_and_a_token_file(self):
        result = userpilotctl(*self.tls_flags(), f"--token_file={self.gw.path('token')}",
                              "--caller=billing", "ListJobs")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout), {"jobs": [{"job_id": "a"}]})
        [seen] = self.gw.servicer.seen
        self.assertEqual(seen.authorization, f"Bearer {self.gw.TOKEN}")
        self.assertEqual(seen.identity.split(",")[0], "billing")
        self.assertEqual(seen.caller, "billing")
        self.assertNoToken(result)

    def test_the_token_from_the_environment(self):
        result = userpilotctl(*self.tls_flags(), "GetJob", '{"job_id":"bulk:jobs:1"}',
                              env={"USERPILOT_GATEWAY_TOKEN": "env-token-1"})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.gw.servicer.seen[0].authorization, "Bearer env-token-1")

    def test_a_wrong_ca_or_no_client_certificate_fails(self):
        for flags in (self.tls_flags(ca="other-ca.pem"), self.tls_flags(client=None),
                      self.tls_flags(client="rogue")):
            with self.subTest(flags=flags):
                result = userpilotctl(*flags, f"--token_file={self.gw.path('token')}",
                                      "ListJobs")
                self.assertEqual(result.returncode, 1, result.stderr)
                self.assertEqual(error_code(result), "UNAVAILABLE")
                self.assertNoToken(result)
        self.assertEqual(self.gw.servicer.seen, [])

    def test_unreadable_files_are_usage_errors_naming_the_file(self):
        missing = self.gw.path("missing.pem")
        result = userpilotctl(f"--tls_ca_file={missing}", "ListJobs")
        self.assertEqual(result.returncode, 2)
        self.assertIn(f"the CA file '{missing}' cannot be read", result.stderr)
        result = userpilotctl("--tls_cert_file=x.pem", "ListJobs")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--tls_cert_file and --tls_key_file go together", result.stderr)
        self.assertIn("--tls_ca_file", userpilotctl("--help").stdout)

    def test_a_token_is_not_sent_over_plaintext_unless_asked(self):
        plain = ScriptedServer()
        self.addCleanup(plain.stop)
        result = userpilotctl(f"--target={plain.target}", f"--token_file={self.gw.path('token')}",
                              "ListJobs")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(error_code(result), "UNAUTHENTICATED")
        self.assertNoToken(result)
        self.assertEqual(plain.servicer.seen, [])
        result = userpilotctl(f"--target={plain.target}", f"--token_file={self.gw.path('token')}",
                              "--token_over_plaintext", "ListJobs")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(plain.servicer.seen[0].authorization, f"Bearer {self.gw.TOKEN}")


if __name__ == "__main__":
    unittest.main()
