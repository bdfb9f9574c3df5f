"""Who may call, on the real gateway binary (issue 14): TLS, bearer tokens, client certificates,
the per-caller allow-list, the plaintext health listener and the connection cap.

Every certificate and key is made at run time (python3-cryptography) in a temporary folder;
nothing secret is committed. Three gateways in front of one emulator:

  tokens   TLS + --caller_tokens_file + --caller_allow + --health_listen: plaintext refused,
           no token and a wrong token UNAUTHENTICATED, a right token accepted, an RPC outside
           the allow-list PERMISSION_DENIED, x-caller ignored, nothing spent upstream for a
           refusal, refusals counted, reflection off, health on its own plaintext port.
  mtls     TLS requiring client certificates + --max_connections: no certificate refused, a
           right certificate accepted and named in the access log, the server certificate
           rotated on disk and served to new connections without a restart (an open channel
           keeps working), connections over the cap reset and counted.
  dev      no authentication: a start-up warning, x-caller trusted, reflection on.
"""

import datetime
import hashlib
import ipaddress
import os
import re
import socket
import ssl
import tempfile
import time
import unittest

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from health_proto import health_pb2, health_pb2_grpc
from userpilot.gateway.v1 import gateway_pb2, gateway_pb2_grpc

import upgw_harness as harness
from upgw_harness import error_details

TIMEOUT = 10.0  # seconds per call
RELOAD = "1s"   # --credentials_reload_interval
BILLING_TOKEN = "billing-secret-token-7d1"
GDPR_TOKEN = "gdpr-secret-token-93a"
ALLOW = ("gdpr-service=DeleteUsers|DeleteCompanies,"
         "*=IdentifyUser|IdentifyCompany|TrackEvent|GetJob|ListJobs|WatchJob")
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
# ServerReflectionRequest{list_services: ""}.
LIST_SERVICES = b"\x3a\x00"


# ----- Certificates made now ---------------------------------------------------------------

def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Pki:
    """A CA and certificates it issues, EC P-256, valid from an hour ago for a day."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upgw test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name, dns=(), ips=(), server=True):
        """(certificate PEM, key PEM, serial number)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        serial = x509.random_serial_number()
        names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i))
                                                 for i in ips]
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(serial)
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.SERVER_AUTH if server
                        else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem(key), serial


def write(path, data):
    """Replaces `path` at once (rename), as a Kubernetes Secret volume update does."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.replace(tmp, path)


def sha256_hex(token):
    return hashlib.sha256(token.encode()).hexdigest()


def metric_value(text, name, **labels):
    """The value of the series `name{labels}` in a /metrics exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def server_certificate_serial(port, pki, client_cert=None, client_key=None):
    """The serial number of the certificate a new TLS connection to 127.0.0.1:port is shown."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=pki.pem.decode())
    context.set_alpn_protocols(["h2"])
    if client_cert is not None:
        context.load_cert_chain(client_cert, client_key)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


class SecurityTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory(prefix="upgw-security-")
        d = cls.dir.name
        cls.path = staticmethod(lambda name: os.path.join(d, name))
        cls.pki = Pki()
        write(cls.path("ca.crt"), cls.pki.pem)
        cert, key, cls.server_serial = cls.pki.issue("gateway", dns=["localhost"],
                                                     ips=["127.0.0.1"])
        write(cls.path("tls.crt"), cert)
        write(cls.path("tls.key"), key)
        # The mtls gateway's own files, so rotating them leaves the tokens gateway alone.
        write(cls.path("mtls.crt"), cert)
        write(cls.path("mtls.key"), key)
        client_cert, client_key, _ = cls.pki.issue("ignored-cn", dns=["billing"], server=False)
        write(cls.path("client.crt"), client_cert)
        write(cls.path("client.key"), client_key)
        cls.client_cert, cls.client_key = client_cert, client_key
        write(cls.path("tokens"),
              f"# caller tokens\nbilling {sha256_hex(BILLING_TOKEN)}\n"
              f"gdpr-service {sha256_hex(GDPR_TOKEN)}\n")

        cls.emulator = harness.Emulator()
        cls.gateways = []
        try:
            cls.tokens = cls._gateway([
                f"--tls_cert_file={cls.path('tls.crt')}", f"--tls_key_file={cls.path('tls.key')}",
                f"--caller_tokens_file={cls.path('tokens')}", f"--caller_allow={ALLOW}",
                "--health_listen=127.0.0.1:0", f"--credentials_reload_interval={RELOAD}"])
            match = re.search(r"health on port (\d+)", cls.tokens.log())
            cls.health_port = int(match.group(1))
            cls.mtls = cls._gateway([
                f"--tls_cert_file={cls.path('mtls.crt')}", f"--tls_key_file={cls.path('mtls.key')}",
                f"--tls_client_ca_file={cls.path('ca.crt')}", "--max_connections=3",
                f"--credentials_reload_interval={RELOAD}"])
            cls.dev = cls._gateway([])
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def _gateway(cls, args):
        gateway = harness.Gateway(cls.emulator.url, args)
        cls.gateways.append(gateway)
        return gateway

    @classmethod
    def tearDownClass(cls):
        for gateway in cls.gateways:
            gateway.cleanup()
        cls.emulator.cleanup()
        cls.dir.cleanup()

    def setUp(self):
        self.emulator.reset()

    # ----- Channels ----------------------------------------------------------------------

    def tls_channel(self, gateway, client_certificate=False):
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.pki.pem,
            private_key=self.client_key if client_certificate else None,
            certificate_chain=self.client_cert if client_certificate else None)
        # A channel of its own (no shared subchannel), so each test makes its own handshake.
        channel = grpc.secure_channel(f"localhost:{gateway.port}", creds,
                                      options=[("grpc.use_local_subchannel_pool", 1)])
        self.addCleanup(channel.close)
        return channel

    def identify(self, channel, token=None, x_caller=None, method="IdentifyUser"):
        metadata = []
        if token is not None:
            metadata.append(("authorization", f"Bearer {token}"))
        if x_caller is not None:
            metadata.append(("x-caller", x_caller))
        stub = gateway_pb2_grpc.UserpilotGatewayStub(channel)
        if method == "DeleteUsers":
            request = gateway_pb2.DeleteUsersRequest(user_ids=["u-1"])
        else:
            request = gateway_pb2.IdentifyUserRequest(user_id="u-1")
        return harness.call_code(getattr(stub, method), request, timeout=TIMEOUT,
                                 metadata=metadata)

    def access_log(self, gateway, method):
        records, _ = gateway.json_log()
        return [r for r in records if r.get("msg") == "call" and r.get("method") == method]

    def wait_for_access_log(self, gateway, method, caller, before):
        """The access-log lines of `method` by `caller` after the first `before` lines of
        `method`, waiting up to 5 s for one: lines are written by a background writer, so a
        call's line can arrive after its answer (docs/operating.md#logs)."""
        return harness.wait_for(
            lambda: [r for r in self.access_log(gateway, method)[before:]
                     if r.get("caller") == caller],
            5, f"an access-log line of {method} by {caller}")

    # ----- tokens gateway ------------------------------------------------------------------

    def test_plaintext_is_refused_on_the_tls_port(self):
        channel = grpc.insecure_channel(self.tokens.target)
        self.addCleanup(channel.close)
        code, _ = self.identify(channel, token=BILLING_TOKEN)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.emulator.requests(), [])

    def test_no_token_and_wrong_tokens_are_unauthenticated_and_spend_nothing(self):
        channel = self.tls_channel(self.tokens)
        before = self.tokens.metrics()
        cases = [None, "not-the-token", BILLING_TOKEN + "x", BILLING_TOKEN[:-1]]
        for token in cases:
            code, error = self.identify(channel, token=token, x_caller="billing")
            self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, token)
            self.assertEqual(error_details(error).reason, "CALLER_UNAUTHENTICATED")
        # Nothing reached Userpilot, so no budget was spent.
        self.assertEqual(self.emulator.requests(), [])
        after = self.tokens.metrics()
        self.assertEqual(
            metric_value(after, "userpilot_gateway_auth_refused_total", reason="bad_token")
            - metric_value(before, "userpilot_gateway_auth_refused_total", reason="bad_token"), 3)
        self.assertEqual(
            metric_value(after, "userpilot_gateway_auth_refused_total", reason="no_credentials")
            - metric_value(before, "userpilot_gateway_auth_refused_total",
                           reason="no_credentials"), 1)
        log = self.tokens.log()
        for secret in (BILLING_TOKEN, GDPR_TOKEN, harness.API_KEY):
            self.assertNotIn(secret, log)

    def test_a_right_token_is_accepted_and_x_caller_ignored(self):
        channel = self.tls_channel(self.tokens)
        before = len(self.access_log(self.tokens, "IdentifyUser"))
        code, response = self.identify(channel, token=BILLING_TOKEN, x_caller="gdpr-service")
        self.assertEqual(code, grpc.StatusCode.OK, response)
        self.assertEqual(len(self.emulator.requests()), 1)
        self.wait_for_access_log(self.tokens, "IdentifyUser", "billing", before)
        # Claiming to be gdpr-service does not open DeleteUsers to billing.
        code, error = self.identify(channel, token=BILLING_TOKEN, x_caller="gdpr-service",
                                    method="DeleteUsers")
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)

    def test_an_rpc_outside_the_allow_list_is_permission_denied(self):
        channel = self.tls_channel(self.tokens)
        before = self.tokens.metrics()
        code, error = self.identify(channel, token=BILLING_TOKEN, method="DeleteUsers")
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("DeleteUsers", error.details())
        self.assertIn("billing", error.details())
        details = error_details(error)
        self.assertEqual(details.reason, "CALLER_NOT_ALLOWED")
        self.assertEqual(details.metadata["caller"], "billing")
        self.assertEqual(details.metadata["rpc"], "DeleteUsers")
        self.assertEqual(self.emulator.requests(), [])
        after = self.tokens.metrics()
        self.assertEqual(
            metric_value(after, "userpilot_gateway_auth_refused_total", reason="not_allowed",
                         caller="billing")
            - metric_value(before, "userpilot_gateway_auth_refused_total", reason="not_allowed",
                           caller="billing"), 1)
        # The caller it is allowed to: gdpr-service.
        before = len(self.access_log(self.tokens, "DeleteUsers"))
        code, response = self.identify(channel, token=GDPR_TOKEN, method="DeleteUsers")
        self.assertEqual(code, grpc.StatusCode.OK, response)
        self.wait_for_access_log(self.tokens, "DeleteUsers", "gdpr-service", before)

    def test_reflection_is_off_when_authentication_is_on(self):
        channel = self.tls_channel(self.tokens)
        call = channel.stream_stream(REFLECTION)
        with self.assertRaises(grpc.RpcError) as raised:
            list(call(iter([LIST_SERVICES]), timeout=TIMEOUT))
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_health_listener_is_plaintext_and_serves_only_health(self):
        channel = grpc.insecure_channel(f"127.0.0.1:{self.health_port}")
        self.addCleanup(channel.close)
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "userpilot.gateway.v1.UserpilotGateway"):
            response = health.Check(health_pb2.HealthCheckRequest(service=service),
                                    timeout=TIMEOUT)
            self.assertEqual(response.status, health_pb2.HealthCheckResponse.SERVING)
        code, _ = self.identify(channel, token=BILLING_TOKEN)
        self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED)
        call = channel.stream_stream(REFLECTION)
        with self.assertRaises(grpc.RpcError) as raised:
            list(call(iter([LIST_SERVICES]), timeout=TIMEOUT))
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    # ----- mtls gateway --------------------------------------------------------------------

    def test_without_a_client_certificate_the_handshake_fails(self):
        code, _ = self.identify(self.tls_channel(self.mtls), x_caller="billing")
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.emulator.requests(), [])

    def test_a_right_client_certificate_is_accepted_and_names_the_caller(self):
        channel = self.tls_channel(self.mtls, client_certificate=True)
        before = len(self.access_log(self.mtls, "IdentifyUser"))
        code, response = self.identify(channel, x_caller="spoofed")
        self.assertEqual(code, grpc.StatusCode.OK, response)
        self.wait_for_access_log(self.mtls, "IdentifyUser", "billing", before)
        # Without --caller_allow every authenticated caller may call every RPC.
        code, response = self.identify(channel, method="DeleteUsers")
        self.assertEqual(code, grpc.StatusCode.OK, response)

    def test_a_rotated_certificate_is_served_without_a_restart(self):
        client = (self.path("client.crt"), self.path("client.key"))
        self.assertEqual(server_certificate_serial(self.mtls.port, self.pki, *client),
                         self.server_serial)
        channel = self.tls_channel(self.mtls, client_certificate=True)
        self.assertEqual(self.identify(channel)[0], grpc.StatusCode.OK)
        pid = self.mtls.pid
        cert, key, serial = self.pki.issue("gateway-rotated", dns=["localhost"],
                                           ips=["127.0.0.1"])
        write(self.path("mtls.key"), key)
        write(self.path("mtls.crt"), cert)

        def rotated():
            try:
                return server_certificate_serial(self.mtls.port, self.pki, *client) == serial
            except (OSError, ssl.SSLError):
                return False  # Between the two files' reloads.
        harness.wait_for(rotated, 20, "the rotated certificate", interval=0.2)
        self.assertEqual(self.mtls.pid, pid)
        self.assertIsNone(self.mtls.poll())
        # The connection opened before the rotation still carries calls.
        self.assertEqual(self.identify(channel)[0], grpc.StatusCode.OK)

    def test_connections_over_the_cap_are_reset_and_counted(self):
        before = metric_value(self.mtls.metrics(), "userpilot_gateway_connections_refused_total",
                              reason="limit")
        # Idle TCP connections (no handshake yet) count against --max_connections=3.
        held = []
        try:
            for _ in range(3):
                held.append(socket.create_connection(("127.0.0.1", self.mtls.port),
                                                     timeout=TIMEOUT))
            harness.wait_for(
                lambda: metric_value(self.mtls.metrics(),
                                     "userpilot_gateway_connections_open") >= 3,
                10, "three open connections")
            # Reset at once: connect() itself may already see it, else the first read does.
            with self.assertRaises((ConnectionResetError, ConnectionAbortedError,
                                    BrokenPipeError, EOFError)):
                with socket.create_connection(("127.0.0.1", self.mtls.port),
                                              timeout=TIMEOUT) as extra:
                    if extra.recv(1) == b"":
                        raise EOFError
            harness.wait_for(
                lambda: metric_value(self.mtls.metrics(),
                                     "userpilot_gateway_connections_refused_total",
                                     reason="limit") >= before + 1,
                10, "the refusal counted")
        finally:
            for s in held:
                s.close()
        # Once they close, calls are served again.
        channel = self.tls_channel(self.mtls, client_certificate=True)
        harness.wait_for(lambda: self.identify(channel)[0] == grpc.StatusCode.OK, 15,
                         "a call after the held connections closed", interval=0.5)

    # ----- development mode ----------------------------------------------------------------

    def test_development_mode_warns_and_trusts_x_caller(self):
        self.assertIn("every caller is trusted", self.dev.log())
        channel = self.dev.channel()
        before = len(self.access_log(self.dev, "IdentifyUser"))
        code, response = self.identify(channel, x_caller="dev-caller")
        self.assertEqual(code, grpc.StatusCode.OK, response)
        self.wait_for_access_log(self.dev, "IdentifyUser", "dev-caller", before)
        call = channel.stream_stream(REFLECTION)
        responses = list(call(iter([LIST_SERVICES]), timeout=TIMEOUT))
        self.assertEqual(len(responses), 1)


if __name__ == "__main__":
    unittest.main()
