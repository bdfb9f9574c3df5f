"""A scripted gateway over mutual TLS, for the client TLS tests that run whole programs
(userpilotctl, the README examples): certificates made by make_test_certs.sh (openssl) in a
temporary folder, the Python client's scripted server (clients/python/tests/scripted.py)
serving TLS that requires a client certificate from the test CA, a token file, and the
environment the programs read.

    with TlsGateway() as gw:
        gw.env       # USERPILOT_GATEWAY_ + TLS_TARGET, CA_FILE, CERT_FILE, KEY_FILE,
                     # SERVER_NAME, TOKEN_FILE
        gw.path("other-ca.pem"), gw.servicer.seen, gw.TOKEN

The gateway's own TLS flags are tested by the gateway's tests; this stands in for it so the
clients' side is tested on its own.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../clients/python/tests"))
from scripted import ScriptedServer  # noqa: E402


class TlsGateway:
    TOKEN = "readme-token-7c1e.SECRET"

    def __init__(self, require_client_cert=True):
        self.require_client_cert = require_client_cert
        self.dir = None
        self.server = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="upgw-tls-")
        try:
            subprocess.run([os.path.join(HERE, "make_test_certs.sh"), self.dir], check=True)
            with open(self.path("token"), "w") as f:
                f.write(self.TOKEN + "\n")

            def read(name):
                with open(self.path(name), "rb") as f:
                    return f.read()

            credentials = grpc.ssl_server_credentials(
                [(read("server.key"), read("server.pem"))],
                root_certificates=read("ca.pem") if self.require_client_cert else None,
                require_client_auth=self.require_client_cert)
            self.server = ScriptedServer(credentials)
        except BaseException:
            self.__exit__()
            raise
        self.servicer = self.server.servicer
        self.env = {
            "USERPILOT_GATEWAY_TLS_TARGET": self.server.target,
            "USERPILOT_GATEWAY_CA_FILE": self.path("ca.pem"),
            "USERPILOT_GATEWAY_CERT_FILE": self.path("client.pem"),
            "USERPILOT_GATEWAY_KEY_FILE": self.path("client.key"),
            "USERPILOT_GATEWAY_SERVER_NAME": "gateway.test",
            "USERPILOT_GATEWAY_TOKEN_FILE": self.path("token"),
        }
        return self

    def __exit__(self, *exc):
        if self.server is not None:
            self.server.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
