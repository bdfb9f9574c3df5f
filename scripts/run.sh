#!/usr/bin/env bash
# `make run`: runs the gateway from build folder $1 (default: build), passing the rest of the
# arguments to it. With no API key configured (neither USERPILOT_API_KEY nor
# USERPILOT_GATEWAY_API_KEY_FILE nor --api_key_file), it starts the bundled Userpilot emulator
# on loopback first and points the gateway at it, so the gateway can be tried with no account.
set -euo pipefail
build=${1:-build}
shift || true
gateway="$build/service/userpilot-gateway"
emulator="$build/tests/emulator/userpilot-emulator"

has_key_file_flag=false
for arg in "$@"; do [[ $arg == --api_key_file* ]] && has_key_file_flag=true; done

if [[ -n ${USERPILOT_API_KEY:-} || -n ${USERPILOT_GATEWAY_API_KEY_FILE:-} ]] || $has_key_file_flag; then
  echo "run: fronting the Userpilot API (upstream: ${USERPILOT_GATEWAY_UPSTREAM_URL:-from flags or default})" >&2
  exec "$gateway" "$@"
fi

demo_key="emulator-demo-key"
port_file=$(mktemp)
"$emulator" --listen=127.0.0.1:${EMULATOR_PORT:-8089} --api_key="$demo_key" >"$port_file" &
emulator_pid=$!
cleanup() { kill "$emulator_pid" 2>/dev/null || true; wait "$emulator_pid" 2>/dev/null || true; rm -f "$port_file"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM  # Until the gateway starts: just stop the emulator.

url=""
for _ in $(seq 100); do
  url=$(grep -o 'http://[0-9.:]*' "$port_file" | head -n1 || true)
  [[ -n $url ]] && break
  kill -0 "$emulator_pid" 2>/dev/null || { echo "run: the emulator failed to start" >&2; exit 1; }
  sleep 0.1
done
[[ -n $url ]] || { echo "run: the emulator did not report its address in 10 s" >&2; exit 1; }

echo "run: USERPILOT_API_KEY is not set, so the gateway fronts the bundled Userpilot emulator at $url" >&2
echo "run: set USERPILOT_API_KEY (or --api_key_file) to front the real Userpilot API instead" >&2
USERPILOT_API_KEY="$demo_key" "$gateway" --upstream_url="$url" "$@" &
gateway_pid=$!
# Ctrl-C or SIGTERM: pass it to the gateway, which drains and exits 0; then stop the emulator.
trap 'kill -TERM "$gateway_pid" 2>/dev/null || true' INT TERM
status=0
wait "$gateway_pid" || status=$?
if ((status > 128)); then  # The wait was cut short by a signal: wait for the drain's own status.
  status=0
  wait "$gateway_pid" || status=$?
fi
exit "$status"
