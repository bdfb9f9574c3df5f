"""The Python package as a service installs it: a wheel built offline from the staged package
(pip wheel --no-build-isolation, Debian's setuptools), installed into a fresh virtual
environment that sees Debian's grpcio and protobuf (--system-site-packages; pip resolves the
wheel's dependencies against them, --no-index), then used from outside this repository to call
a real gateway in front of the Userpilot emulator, with the sync and the grpc.aio client."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
import zipfile

from gateway_fixture import GatewayFixture

PACKAGE = os.environ["UPGW_PYTHON_PACKAGE"]
PYTHON = "/usr/bin/python3"  # Debian's, which has grpcio and protobuf

SERVICE = textwrap.dedent("""
    import asyncio, os, sys
    import grpc
    import userpilot_gateway as upg

    assert upg.__file__.startswith(sys.prefix), upg.__file__   # the installed copy
    target = os.environ["USERPILOT_GATEWAY_TARGET"]
    with upg.Client(target, caller="wheel-test") as client:
        print("sync", bool(client.identify_user("w-1", {"plan": "pro"}).upstream_request_id))
        try:
            client.identify_user("", {"plan": {"nested": 1}})
        except upg.GatewayError as e:
            print("refused", e.code.name, sorted(f for f, _ in e.field_violations))

    async def main():
        async with upg.AsyncClient(target, caller="wheel-test") as client:
            await client.track_event("w-1", "installed", {"via": "wheel"})
            jobs = await client.list_jobs()
            print("aio", type(jobs).__name__, upg.rpc.SOURCE, upg.__version__)
    asyncio.run(main())
""")


class PythonWheelTest(unittest.TestCase):
    def test_wheel_in_a_fresh_venv_calls_the_gateway(self):
        with tempfile.TemporaryDirectory(prefix="upgw-wheel-") as tmp:
            source = os.path.join(tmp, "src")
            shutil.copytree(PACKAGE, source,
                            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                            "--no-index", "-q", "-w", os.path.join(tmp, "dist"), source],
                           check=True, timeout=300)
            [wheel] = os.listdir(os.path.join(tmp, "dist"))
            self.assertRegex(wheel, r"^userpilot_gateway_client-\d+\.\d+\.\d+-py3-none-any\.whl$")
            names = zipfile.ZipFile(os.path.join(tmp, "dist", wheel)).namelist()
            for expected in ("userpilot_gateway/py.typed", "userpilot_gateway/aio.py",
                             "userpilot_gateway/google_rpc.desc",
                             "userpilot/gateway/v1/gateway_pb2.py",
                             "userpilot/gateway/v1/gateway_pb2.pyi",
                             "userpilot/gateway/v1/gateway_pb2_grpc.py",
                             "userpilot/gateway/v1/py.typed"):
                self.assertIn(expected, names)
            # No top-level google.rpc modules to collide with googleapis-common-protos, and no
            # __init__.py that would make userpilot a regular package.
            self.assertEqual([n for n in names if n.startswith("google/")], [])
            self.assertNotIn("userpilot/__init__.py", names)
            metadata = [n for n in names if n.endswith("METADATA")]
            text = zipfile.ZipFile(os.path.join(tmp, "dist", wheel)).read(metadata[0]).decode()
            self.assertRegex(text, r"Requires-Dist: grpcio \(?>=1\.51")
            self.assertRegex(text, r"Requires-Dist: googleapis-common-protos \(?>=1\.56\)? ?; "
                                   r"extra == .googleapis.")

            venv = os.path.join(tmp, "venv")
            subprocess.run([PYTHON, "-m", "venv", "--system-site-packages", venv], check=True,
                           timeout=120)
            python = os.path.join(venv, "bin", "python")
            subprocess.run([python, "-m", "pip", "install", "--no-index", "-q",
                            os.path.join(tmp, "dist", wheel)], check=True, timeout=300)

            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            with GatewayFixture() as gw:
                env["USERPILOT_GATEWAY_TARGET"] = gw.target
                result = subprocess.run([python, "-c", SERVICE], cwd=tmp, env=env,
                                        capture_output=True, text=True, timeout=120)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            lines = result.stdout.splitlines()
            self.assertEqual(lines[0], "sync True")
            self.assertEqual(lines[1], "refused INVALID_ARGUMENT ['metadata.plan', 'user_id']")
            self.assertRegex(lines[2], r"^aio list private \d+\.\d+\.\d+$")


if __name__ == "__main__":
    unittest.main()
