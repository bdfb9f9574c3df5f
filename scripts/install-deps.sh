#!/usr/bin/env bash
# Installs every build, run and test dependency of userpilot-gateway from Debian 12 packages.
# Idempotent and quick when everything is present: it asks dpkg first and calls apt-get only
# for what is missing. Runs as root, or through sudo when it is available.
#
#   install-deps.sh               everything `make run` and `make test` need
#   install-deps.sh --build-only  only what compiling the gateway needs (the Dockerfile's build stage)
#   install-deps.sh --image       the container image tools tests/image uses (ctest -L image)
set -euo pipefail

build_packages=(
  # Build toolchain.
  g++ cmake ninja-build pkg-config make git ca-certificates
  # Libraries the gateway links.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libcurl4-openssl-dev prometheus-cpp-dev libhiredis-dev libspdlog-dev
  # CRC32C (crc32_iscsi) for the delivery log's record checksums.
  libisal-dev
  # RapidJSON (header-only): the SAX reader that checks ImportData's NDJSON rows, and the
  # depth-bounded, linear-time reader of Userpilot's JSON answers.
  rapidjson-dev
  # libcrypto: SHA-256, constant-time comparison and certificate checks (service/auth).
  libssl-dev
  # google/rpc/*.proto (Status, error details) and gRPC's own protos (health, reflection).
  golang-github-gogo-googleapis-dev grpc-proto
  # GoogleTest/GoogleMock: the CMake configuration needs them even for the gateway alone.
  libgtest-dev libgmock-dev
)
test_packages=(
  # Tests: Python's grpcio as a second-language client, real Redis and Prometheus servers,
  # nghttp2's h2load for benchmarks.
  python3 python3-grpcio python3-grpc-tools python3-protobuf
  redis-server prometheus nghttp2-client
  # The client libraries' packaging and TLS tests: the Python wheel built offline with Debian's
  # setuptools and installed into a fresh venv, mypy over its typed API, certificates made with
  # openssl at test time.
  python3-setuptools python3-wheel python3-pip python3-venv python3-mypy openssl
  # The benchmark report's pictures (bench/plot.py) and their test.
  python3-matplotlib
  # tests/security makes its CA, server and client certificates at run time.
  python3-cryptography
  # The fuzz targets (fuzz/, the fuzz.short test and `make fuzz`): clang 14 with libFuzzer and
  # the sanitizer runtimes.
  clang-14 libclang-rt-14-dev
)
# Building and running the Dockerfile without a Docker engine or a registry: buildah (chroot
# isolation, vfs storage) and mmdebstrap for the Debian base image.
image_packages=(buildah mmdebstrap)

case ${1:-} in
  "") packages=("${build_packages[@]}" "${test_packages[@]}")
      # Node.js (for offline Kubernetes manifest validation) may come from another repository
      # that bundles npm; only ask Debian for it when there is no node at all.
      command -v node >/dev/null || packages+=(nodejs npm) ;;
  --build-only) packages=("${build_packages[@]}") ;;
  --image) packages=("${image_packages[@]}") ;;
  *) echo "usage: install-deps.sh [--build-only | --image]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# --no-install-recommends keeps prometheus from pulling in its exporters and web assets we never use.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
