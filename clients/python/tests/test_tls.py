"""TLS, client certificates and bearer tokens in the sync and grpc.aio clients, against the
scripted server over TLS and mTLS (grpc.ssl_server_credentials), with certificates made by
tests/clients/make_test_certs.sh (openssl) when the tests start: the token arrives as
`authorization: Bearer ...`, a wrong CA or a missing client certificate fails, the token is
not sent over plaintext unless asked, and never appears in an error."""

import os
import shutil
import subprocess
import tempfile
import unittest

import grpc

import userpilot_gateway as upg
from scripted import ScriptedServer

TOKEN = "tok-3f9a.SECRET_value~1"


def setUpModule():
    global CERTS
    CERTS = tempfile.mkdtemp(prefix="upgw-py-certs-")
    subprocess.run([os.environ["UPGW_MAKE_TEST_CERTS"], CERTS], check=True)


def tearDownModule():
    shutil.rmtree(CERTS)


def path(name):
    return os.path.join(CERTS, name)


def read(name):
    with open(path(name), "rb") as f:
        return f.read()


def server_tls(require_client_cert):
    return grpc.ssl_server_credentials(
        [(read("server.key"), read("server.pem"))],
        root_certificates=read("ca.pem") if require_client_cert else None,
        require_client_auth=require_client_cert)


def tls(ca="ca", client=None, server_name="gateway.test"):
    return upg.TlsOptions.from_files(
        ca_file=path(f"{ca}.pem"), cert_file=path(f"{client}.pem") if client else None,
        key_file=path(f"{client}.key") if client else None, server_name=server_name)


class SyncTlsTest(unittest.TestCase):
    def list_jobs(self, target, **options):
        with upg.Client(target, caller="billing", retry=upg.RetryPolicy(max_attempts=1),
                        **options) as client:
            return client.list_jobs(timeout=10)

    def test_token_arrives_over_tls(self):
        server = ScriptedServer(server_tls(require_client_cert=False))
        self.addCleanup(server.stop)
        self.list_jobs(server.target, tls=tls(), bearer_token=TOKEN)
        [seen] = server.servicer.seen
        self.assertEqual(seen.authorization, f"Bearer {TOKEN}")
        self.assertEqual(seen.caller, "billing")

    def test_wrong_ca_or_name_fails_without_leaking_the_token(self):
        server = ScriptedServer(server_tls(require_client_cert=False))
        self.addCleanup(server.stop)
        for options in ({"tls": tls(ca="other-ca"), "bearer_token": TOKEN},
                        {"tls": tls(server_name=None)},
                        {}):
            with self.subTest(options=sorted(options)):
                with self.assertRaises(upg.GatewayError) as raised:
                    self.list_jobs(server.target, **options)
                self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
                self.assertNotIn(TOKEN, raised.exception.describe())
        self.assertEqual(server.servicer.seen, [])

    def test_mutual_tls(self):
        server = ScriptedServer(server_tls(require_client_cert=True))
        self.addCleanup(server.stop)
        self.list_jobs(server.target, tls=tls(client="client"))
        [seen] = server.servicer.seen
        self.assertEqual(seen.identity, "billing,billing.test")  # the first DNS SAN is the caller
        for options in ({"tls": tls()}, {"tls": tls(client="rogue")}):
            with self.assertRaises(upg.GatewayError) as raised:
                self.list_jobs(server.target, **options)
            self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(len(server.servicer.seen), 1)

    def test_token_not_sent_over_plaintext_unless_allowed(self):
        server = ScriptedServer()
        self.addCleanup(server.stop)
        with self.assertRaises(upg.GatewayError) as raised:
            self.list_jobs(server.target, bearer_token=TOKEN)
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertNotIn(TOKEN, raised.exception.describe())
        self.assertEqual(server.servicer.seen, [])
        self.list_jobs(server.target, bearer_token=TOKEN, token_over_plaintext=True)
        self.assertEqual(server.servicer.seen[0].authorization, f"Bearer {TOKEN}")

    def test_options_name_the_file_and_never_quote_the_token(self):
        options = tls(client="client")
        self.assertIn(b"-----BEGIN CERTIFICATE-----", options.root_certs)
        self.assertIn(b"PRIVATE KEY-----", options.private_key)
        with self.assertRaisesRegex(ValueError, f"the CA file '{path('nope.pem')}' cannot be "
                                                "read: No such file"):
            upg.TlsOptions.from_files(ca_file=path("nope.pem"))
        with open(path("der"), "wb") as f:
            f.write(b"\x30\x82")
        with self.assertRaisesRegex(ValueError, "the client key file '.*der' holds no PEM"):
            upg.TlsOptions.from_files(cert_file=path("client.pem"), key_file=path("der"))
        with self.assertRaisesRegex(ValueError, "needs both"):
            upg.TlsOptions.from_files(cert_file=path("client.pem"))

        with open(path("token"), "w") as f:
            f.write(f"  {TOKEN}\n")
        self.assertEqual(upg.read_bearer_token(path("token")), TOKEN)
        with open(path("token"), "w") as f:
            f.write("two words-SECRET\n")
        with self.assertRaises(ValueError) as raised:
            upg.read_bearer_token(path("token"))
        self.assertIn("not visible ASCII (at character 4)", str(raised.exception))
        self.assertNotIn("SECRET", str(raised.exception))
        with self.assertRaisesRegex(ValueError, "the bearer token from bearer_token holds a "
                                                "character that is not visible ASCII"):
            upg.Client("127.0.0.1:1", bearer_token="bad token")


class AsyncTlsTest(unittest.IsolatedAsyncioTestCase):
    async def test_token_and_client_certificate_over_mutual_tls(self):
        server = ScriptedServer(server_tls(require_client_cert=True))
        self.addCleanup(server.stop)
        async with upg.AsyncClient(server.target, caller="billing", tls=tls(client="client"),
                                   bearer_token=TOKEN) as client:
            await client.list_jobs(timeout=10)
        [seen] = server.servicer.seen
        self.assertEqual(seen.authorization, f"Bearer {TOKEN}")
        self.assertEqual(seen.identity, "billing,billing.test")

    async def test_wrong_ca_fails(self):
        server = ScriptedServer(server_tls(require_client_cert=False))
        self.addCleanup(server.stop)
        async with upg.AsyncClient(server.target, tls=tls(ca="other-ca"), bearer_token=TOKEN,
                                   retry=upg.RetryPolicy(max_attempts=1)) as client:
            with self.assertRaises(upg.GatewayError) as raised:
                await client.list_jobs(timeout=10)
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(server.servicer.seen, [])

    async def test_token_not_sent_over_plaintext_unless_allowed(self):
        server = ScriptedServer()
        self.addCleanup(server.stop)
        async with upg.AsyncClient(server.target, bearer_token=TOKEN,
                                   retry=upg.RetryPolicy(max_attempts=1)) as client:
            with self.assertRaises(upg.GatewayError) as raised:
                await client.list_jobs(timeout=10)
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        async with upg.AsyncClient(server.target, bearer_token=TOKEN,
                                   token_over_plaintext=True) as client:
            await client.list_jobs(timeout=10)
        self.assertEqual(server.servicer.seen[0].authorization, f"Bearer {TOKEN}")


if __name__ == "__main__":
    unittest.main()
