#!/usr/bin/env bash
# One command per benchmark scenario (see BENCHMARKS.md):
#   bench/run.sh overhead|throughput|footprint|overload|jobs|burst|all [--smoke] [options]
# Binaries come from $BUILD (default: build/); build them first:
#   cmake --build build --target userpilot-gateway userpilot-emulator upgw-bench
# (jobs_bench_test too, for a gateway binary without the job flags)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/run.py" "$@"
