#!/usr/bin/python3
"""Writes the gRPC service config of the gateway's contract, derived from a descriptor set.

    gen_service_config.py --descriptor_set userpilot_gateway.binpb \
        --file userpilot/gateway/v1/gateway.proto --out userpilot_gateway_service_config.json

Every method of every service in the named files gets one `methodConfig` entry
(https://github.com/grpc/grpc/blob/master/doc/service_config.md), so a Go, Java, C++ or Python
client that loads the file retries and times out by the contract's own declarations instead of a
copied table. What each method gets follows from its descriptor alone:

  - `retryPolicy` from its `idempotency_level`: IDEMPOTENT and NO_SIDE_EFFECTS methods are
    retried on UNAVAILABLE; methods of the default level (unknown: not safe to repeat) get no
    policy. RESOURCE_EXHAUSTED is not retried: gRPC's retry ignores google.rpc.RetryInfo, so it
    would call again long before the budget the gateway names has room, and gRPC's own "message
    too large" shares the code and never succeeds on a retry.
  - `timeout` from its class, the same classes and values as the client libraries' default
    deadlines (clients/cpp/client.h DefaultDeadlines, clients/python's Deadlines): a unary read
    (NO_SIDE_EFFECTS), a unary call that starts a job (it answers a Job), any other unary call,
    a client stream (upload), a server stream (watch: no timeout, since a cap on one stream
    would end a healthy long watch; it ends by itself or by the caller). A service config
    timeout caps the call's own deadline; it does not replace a shorter one.
  - `waitForReady` true for all: a call made while no gateway is reachable waits for one, within
    its deadline, instead of failing at once; nothing has been sent, so this is safe for every
    level.

docs/contract.md explains the values. Python with Debian's python3-protobuf: run it with
/usr/bin/python3.
"""

import argparse
import json
import os
import sys
import tempfile

from google.protobuf import descriptor_pb2

_LEVELS = descriptor_pb2.MethodOptions.IdempotencyLevel
# Levels whose methods may be repeated: the same request twice leaves the same state.
RETRIED_LEVELS = (_LEVELS.Value("IDEMPOTENT"), _LEVELS.Value("NO_SIDE_EFFECTS"))

# gRPC retries (gRFC A6). 4 attempts in all (gRPC allows at most 5); the backoff before attempt
# n is random in [0, min(initialBackoff * backoffMultiplier^(n-2), maxBackoff)].
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

# Per channel: every failed call costs a token, every success returns 0.1; below half of
# maxTokens no call is retried, so an outage is not multiplied by maxAttempts.
RETRY_THROTTLING = {"maxTokens": 10, "tokenRatio": 0.1}

# Timeout per method class; None: no timeout.
TIMEOUTS = {
    "read": "10s",     # unary, NO_SIDE_EFFECTS: one job read
    "bulk": "60s",     # unary with side effects answering a Job: up to 10,000 rows, and perhaps
                       # a wait for the job's one-at-a-time lane
    "write": "10s",    # other unary calls: identify, track, delete
    "upload": "600s",  # client (or bidirectional) streams: a 50 MB file, or a wait for a running job
    "watch": None,     # server streams: a watch lasts as long as the job, or until cancelled
}
# The message a method that starts a job answers with.
JOB = ".userpilot.gateway.v1.Job"


def method_class(method):
    """The timeout class of a MethodDescriptorProto."""
    if method.client_streaming:
        return "upload"
    if method.server_streaming:
        return "watch"
    if method.options.idempotency_level == _LEVELS.Value("NO_SIDE_EFFECTS"):
        return "read"
    if method.output_type == JOB:
        return "bulk"
    return "write"


def method_config(package, service, method):
    """The methodConfig entry of one method."""
    config = {
        "name": [{"service": f"{package}.{service.name}", "method": method.name}],
        "waitForReady": True,
    }
    timeout = TIMEOUTS[method_class(method)]
    if timeout is not None:
        config["timeout"] = timeout
    if method.options.idempotency_level in RETRIED_LEVELS:
        config["retryPolicy"] = dict(RETRY_POLICY)
    return config


def service_config(descriptor_set, file_names):
    """The service config (a dict) for every method of every service in `file_names`."""
    files = {f.name: f for f in descriptor_set.file}
    method_configs = []
    for name in file_names:
        if name not in files:
            raise SystemExit(f"gen_service_config: {name} is not in the descriptor set "
                             f"(it holds {', '.join(sorted(files))})")
        file = files[name]
        if not file.service:
            raise SystemExit(f"gen_service_config: {name} declares no service")
        for service in file.service:
            for method in service.method:
                method_configs.append(method_config(file.package, service, method))
    return {"methodConfig": method_configs, "retryThrottling": dict(RETRY_THROTTLING)}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--descriptor_set", required=True,
                        help="a FileDescriptorSet (protoc --descriptor_set_out)")
    parser.add_argument("--file", action="append", required=True,
                        help="a .proto file in the set whose services the config covers "
                             "(repeatable)")
    parser.add_argument("--out", required=True, help="where to write the JSON")
    args = parser.parse_args(argv)

    with open(args.descriptor_set, "rb") as f:
        descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    text = json.dumps(service_config(descriptor_set, args.file), indent=2) + "\n"
    # Written whole or not at all, so a build never sees half a file.
    out_dir = os.path.dirname(os.path.abspath(args.out))
    with tempfile.NamedTemporaryFile("w", dir=out_dir, delete=False) as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
