"""The package as another service sees it: error details decoded into googleapis-common-protos'
google.rpc classes when that package is installed (a stand-in generated the same way, since
Debian 12 does not package it), no collision with it when it is imported after this package,
and a public API that mypy --strict accepts, with a caller's code checked against it."""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

PACKAGE = os.environ["UPGW_PYTHON_PACKAGE"]
STANDIN = os.environ["UPGW_GOOGLEAPIS_STANDIN"]

# Decodes a status whose details were made by whichever google.rpc classes `make` names, and
# prints where the package's classes came from and what it decoded.
DECODE = textwrap.dedent("""
    import sys
    import userpilot_gateway as upg
    {make}
    status = Status(code=8, message="m")
    info = ErrorInfo(reason="UPSTREAM_RATE_LIMITED", domain=upg.DOMAIN)
    retry = RetryInfo()
    retry.retry_delay.seconds = 2
    status.details.add().Pack(info)
    status.details.add().Pack(retry)
    details = upg.ErrorDetails.from_trailing_metadata(
        [("grpc-status-details-bin", status.SerializeToString())])
    print(upg.rpc.SOURCE, details.reason, details.retry_delay,
          type(details.error_info).__module__)
""")


def run(code, *path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"{code}\n--- stderr\n{result.stderr}")
    return result.stdout.split()


class GoogleRpcTest(unittest.TestCase):
    def test_uses_googleapis_common_protos_when_installed(self):
        out = run(DECODE.format(make="from google.rpc.status_pb2 import Status\n"
                                     "from google.rpc.error_details_pb2 import ErrorInfo, "
                                     "RetryInfo"), PACKAGE, STANDIN)
        self.assertEqual(out, ["googleapis-common-protos", "UPSTREAM_RATE_LIMITED", "2.0",
                               "google.rpc.error_details_pb2"])

    def test_private_classes_without_it_and_no_collision_when_it_comes_later(self):
        out = run(DECODE.format(make="from userpilot_gateway.rpc import Status, ErrorInfo, "
                                     "RetryInfo"), PACKAGE)
        self.assertEqual(out[:3], ["private", "UPSTREAM_RATE_LIMITED", "2.0"])
        # googleapis-common-protos imported after the package (another library needing it):
        # both sets of classes work side by side.
        later = DECODE.format(make=f"sys.path.append({STANDIN!r})\n"
                                   "from google.rpc.status_pb2 import Status\n"
                                   "from google.rpc.error_details_pb2 import ErrorInfo, "
                                   "RetryInfo")
        self.assertEqual(run(later, PACKAGE)[:3], ["private", "UPSTREAM_RATE_LIMITED", "2.0"])


class TypingTest(unittest.TestCase):
    def test_mypy_strict_accepts_the_package_and_checks_its_callers(self):
        caller = textwrap.dedent("""
            import asyncio
            from typing import List
            import userpilot_gateway as upg
            from userpilot_gateway import pb

            def sync(client: upg.Client) -> str:
                answer = client.identify_user("u-1", {"plan": "pro", "seats": 3})
                jobs: List[pb.Job] = client.list_jobs(timeout=2.5)
                return answer.upstream_request_id + str(len(jobs))

            async def main() -> None:
                async with upg.AsyncClient("localhost:50051", caller="x") as client:
                    job = await client.get_job("bulk:jobs:1")
                    async for state in client.watch_job(job.job_id):
                        print(state.status)
            asyncio.run(main())
        """)
        wrong = caller.replace('timeout=2.5', 'timeout="soon"')
        with tempfile.TemporaryDirectory() as tmp:
            for name, code in (("caller.py", caller), ("wrong.py", wrong)):
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(code)
            config = os.path.join(PACKAGE, "pyproject.toml")
            cache = os.environ.get("UPGW_MYPY_CACHE") or os.path.join(tmp, "cache")
            mypy = [sys.executable, "-m", "mypy", "--config-file", config, "--cache-dir", cache]
            env = dict(os.environ, MYPYPATH=PACKAGE)
            package = os.path.join(PACKAGE, "userpilot_gateway")
            good = subprocess.run(mypy + [package, os.path.join(tmp, "caller.py")],
                                  env=env, capture_output=True, text=True, timeout=240)
            self.assertEqual(good.returncode, 0, good.stdout + good.stderr)
            bad = subprocess.run(mypy + [os.path.join(tmp, "wrong.py")], env=env,
                                 capture_output=True, text=True, timeout=240)
            self.assertNotEqual(bad.returncode, 0)
            self.assertIn('Argument "timeout" to "list_jobs" of "Client" has incompatible type',
                          bad.stdout)


if __name__ == "__main__":
    unittest.main()
