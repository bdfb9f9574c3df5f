#!/bin/bash
# Builds the libFuzzer targets of fuzz/ in a clang build directory of their own and runs each
# for a bounded time from its seed corpus (fuzz/corpus/TARGET) plus the inputs earlier runs
# found (BUILD_DIR/corpus/TARGET). Exits non-zero when a build fails or a target finds a
# crash; the crashing input is left in BUILD_DIR/crashes/ and its path printed.
#
#   fuzz/run.sh [--build-dir DIR] [--seconds N | --runs N] [--jobs N] [TARGET...]
#
# DIR: default build-fuzz; N seconds per target: default 60; --runs N instead: N inputs per
# target from a fixed seed, so the run is the same on every machine (what a test wants: a
# result that does not depend on the machine's speed); jobs: compile jobs, default 2.
# TARGETs: default every fuzz/*_fuzzer.cc. `make fuzz` runs this; the fuzz.short test of the
# normal build runs it with --runs. Prints how long the build and the runs took.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build_dir=build-fuzz
seconds=60
runs=""
jobs=2
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in "$src"/fuzz/*_fuzzer.cc; do targets+=("$(basename "$f" .cc)"); done
fi
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || {
  echo "fuzz/run.sh: --seconds must be a positive whole number, not '$seconds'" >&2; exit 2; }
[[ -z "$runs" || ( "$runs" =~ ^[0-9]+$ && "$runs" -gt 0 ) ]] || {
  echo "fuzz/run.sh: --runs must be a positive whole number, not '$runs'" >&2; exit 2; }
if [[ -n "$runs" ]]; then
  bound=(-runs="$runs" -seed=1)
  each="$runs inputs"
else
  bound=(-max_total_time="$seconds")
  each="${seconds}s"
fi

compiler=${UPGW_FUZZ_CXX:-clang++-14}
if ! command -v "$compiler" >/dev/null; then
  echo "fuzz/run.sh: $compiler not found; scripts/install-deps.sh installs clang-14" >&2
  exit 1
fi
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

start=$(date +%s)
if [[ ! -f "$build_dir/build.ninja" ]]; then
  cmake -S "$src" -B "$build_dir" -G Ninja -DUPGW_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER="$compiler" "${launcher[@]}" >/dev/null
fi
cmake --build "$build_dir" -j"$jobs" --target "${targets[@]}"
built=$(date +%s)

# Every sanitizer report stops the run; ubsan.supp says which RapidJSON defect is let through.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$src/fuzz/ubsan.supp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
mkdir -p "$build_dir/crashes"
failed=()
for target in "${targets[@]}"; do
  corpus="$build_dir/corpus/$target"
  if [[ -n "$runs" ]]; then
    # The same run everywhere: start from the seeds alone, not from what earlier runs found.
    corpus="$build_dir/corpus-fixed/$target"
    rm -rf "$corpus"
  fi
  mkdir -p "$corpus"
  seeds=()
  if [[ -d "$src/fuzz/corpus/$target" ]]; then seeds=("$src/fuzz/corpus/$target"); fi
  log="$build_dir/$target.log"
  echo "== $target: $each"
  # New inputs go to the first corpus folder; the checked-in seeds are only read.
  if "$build_dir/fuzz/$target" "$corpus" "${seeds[@]}" "${bound[@]}" \
      -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
      -artifact_prefix="$build_dir/crashes/$target-" >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | tr '\n' ' ' || true
    echo
  else
    failed+=("$target")
    tail -n 60 "$log"
    grep -o "Test unit written to .*" "$log" || true
  fi
done
finished=$(date +%s)

echo "fuzz: build $((built - start)) s, runs $((finished - built)) s" \
  "(${#targets[@]} targets, $each each)"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $build_dir/crashes/)" >&2
  exit 1
fi
