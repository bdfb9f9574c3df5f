#!/usr/bin/python3
"""Runs a command against a stand-in gateway serving mutual TLS (tls_fixture.py), with the
USERPILOT_GATEWAY_{TLS_TARGET,CA_FILE,CERT_FILE,KEY_FILE,SERVER_NAME,TOKEN_FILE} environment
the README's TLS examples read; fails unless the command succeeds and every call it made
carried the bearer token over a connection with the test client certificate.

    run_with_tls_gateway.py -- COMMAND [ARGS...]
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tls_fixture import TlsGateway  # noqa: E402


def main():
    command = sys.argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        sys.exit("run_with_tls_gateway.py: no command")
    with TlsGateway(require_client_cert=True) as gw:
        result = subprocess.run(command, env=dict(os.environ, **gw.env), capture_output=True,
                                text=True, timeout=60)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.returncode != 0:
            return result.returncode
        seen = list(gw.servicer.seen)
        if not seen:
            sys.stderr.write("run_with_tls_gateway: the command made no call\n")
            return 1
        for call in seen:
            if call.authorization != f"Bearer {gw.TOKEN}" or not call.identity.startswith("billing"):
                sys.stderr.write(f"run_with_tls_gateway: {call.method} came without the token "
                                 f"or the client certificate\n")
                return 1
        if gw.TOKEN in result.stdout + result.stderr:
            sys.stderr.write("run_with_tls_gateway: the token was printed\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
