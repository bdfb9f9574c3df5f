#!/usr/bin/python3
"""Runs a command against a real gateway in front of the Userpilot emulator.

    run_with_gateway.py [--build=DIR] [--expect=REGEX]... -- COMMAND [ARGS...]

Starts both binaries (gateway_fixture.py), runs COMMAND with USERPILOT_GATEWAY_TARGET (the
gateway's host:port) and UPGW_EMULATOR_URL in its environment, stops both, and exits with the
command's status; non-zero as well when the command's output lacks an --expect pattern.
"""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway_fixture import GatewayFixture  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.environ.get("UPGW_BUILD", "build"))
    parser.add_argument("--expect", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    with GatewayFixture(args.build) as gw:
        env = dict(os.environ, USERPILOT_GATEWAY_TARGET=gw.target,
                   UPGW_EMULATOR_URL=gw.emulator_url)
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                timeout=args.timeout)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.returncode != 0:
            sys.stderr.write(f"run_with_gateway: {command[0]} exited {result.returncode}\n"
                             f"gateway log:\n{gw.log()}")
            return result.returncode
    missing = [p for p in args.expect if not re.search(p, result.stdout, re.M)]
    for pattern in missing:
        sys.stderr.write(f"run_with_gateway: the output lacks /{pattern}/\n")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
