#!/usr/bin/python3
"""The C++ client library as an outside project uses it: installed from this build into a
temporary prefix (cmake --install --component userpilot_gateway_client), then a separate CMake
project, whose CMakeLists.txt is the one in clients/cpp/README.md ("Use it from another CMake
project") and whose main.cc is that README's complete example, finds it with
find_package(userpilot_gateway_client CONFIG), links userpilot_gateway::client, builds, and
runs against a real gateway in front of the Userpilot emulator.

    cpp_installed_test.py --build=BUILD --source=REPO --readme=clients/cpp/README.md
                          --example=FILE.cc
                          [-- extra cmake arguments for the outside project]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway_fixture import GatewayFixture  # noqa: E402

SECTION = "Use it from another CMake project"


def readme_cmake(readme):
    """The one ```cmake block of the README's SECTION."""
    with open(readme) as f:
        text = f.read()
    section = re.search(rf"^## {re.escape(SECTION)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not section:
        raise SystemExit(f"{readme}: no section '## {SECTION}'")
    blocks = re.findall(r"^```cmake\n(.*?)^```", section.group(1), re.M | re.S)
    if len(blocks) != 1:
        raise SystemExit(f"{readme}, section '{SECTION}': {len(blocks)} ```cmake blocks, not 1")
    return blocks[0]


def run(command, **kwargs):
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--readme", required=True)
    parser.add_argument("--example", required=True)
    parser.add_argument("cmake_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmake_args = [a for a in args.cmake_args if a != "--"]

    with tempfile.TemporaryDirectory(prefix="upgw-outside-") as tmp:
        prefix = os.path.join(tmp, "prefix")
        run(["cmake", "--install", args.build, "--prefix", prefix,
             "--component", "userpilot_gateway_client"], stdout=subprocess.DEVNULL)
        # The installed tree is self-contained: nothing in it points back into the build or
        # the source tree.
        for tree in (os.path.realpath(args.build), os.path.realpath(args.source)):
            for root, _, files in os.walk(os.path.join(prefix, "lib", "cmake")):
                for name in files:
                    with open(os.path.join(root, name)) as f:
                        if tree in f.read():
                            raise SystemExit(f"{name} refers to {tree}")

        source = os.path.join(tmp, "billing_service")
        os.makedirs(source)
        with open(os.path.join(source, "CMakeLists.txt"), "w") as f:
            f.write(readme_cmake(args.readme))
        shutil.copy(args.example, os.path.join(source, "main.cc"))
        binary = os.path.join(tmp, "build")
        launcher = ["-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"] if shutil.which("ccache") else []
        run(["cmake", "-S", source, "-B", binary, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}",
             *launcher, *cmake_args], stdout=subprocess.DEVNULL)
        run(["cmake", "--build", binary])

        with GatewayFixture(args.build) as gw:
            env = dict(os.environ, USERPILOT_GATEWAY_TARGET=gw.target)
            result = subprocess.run([os.path.join(binary, "billing_service")], env=env,
                                    capture_output=True, text=True, timeout=120)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.returncode != 0:
            sys.stderr.write(f"the outside project's program exited {result.returncode}\n"
                             f"gateway log:\n{gw.log()}")
            return 1
        for pattern in (r"^refused as expected", r"JOB_STATUS_COMPLETED"):
            if not re.search(pattern, result.stdout, re.M):
                sys.stderr.write(f"the output lacks /{pattern}/\n")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
