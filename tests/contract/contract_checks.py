"""Checks of the gateway's contract that buf cannot make, over descriptors (docs/contract.md):

  - the generated gRPC service config matches gRPC's own schema and the descriptors: every
    method has exactly one entry, retries exactly where the idempotency level allows them;
  - the `buf:lint:ignore` comments are only the exceptions buf.yaml names, on elements a release
    already has;
  - no RPC's idempotency level is lower than in any release (buf.yaml leaves this rule to us,
    since buf would also refuse raising a level).

Each check returns a list of problems (strings); empty means the contract passes. Runs under
/usr/bin/python3 with Debian's python3-protobuf.
"""

import glob
import json
import os
import re

from google.protobuf import descriptor_pb2, json_format, message_factory

_LEVELS = descriptor_pb2.MethodOptions.IdempotencyLevel
UNKNOWN = _LEVELS.Value("IDEMPOTENCY_UNKNOWN")
IDEMPOTENT = _LEVELS.Value("IDEMPOTENT")
NO_SIDE_EFFECTS = _LEVELS.Value("NO_SIDE_EFFECTS")
# How much a level promises: a method may move up this order between releases, never down.
LEVEL_RANK = {UNKNOWN: 0, IDEMPOTENT: 1, NO_SIDE_EFFECTS: 2}

# The lint exceptions buf.yaml explains, per kind of element.
ALLOWED_IGNORES = {
    "service": {"SERVICE_SUFFIX"},
    "method": {"RPC_RESPONSE_STANDARD_NAME", "RPC_REQUEST_RESPONSE_UNIQUE"},
}

# FileDescriptorProto field numbers, for SourceCodeInfo paths.
_FILE_SERVICE = 6
_SERVICE_METHOD = 2


# ----- Loading -----------------------------------------------------------------------------

def load_descriptor_set(path):
    """A FileDescriptorSet from a binary file (protoc --descriptor_set_out, buf build)."""
    with open(path, "rb") as f:
        return descriptor_pb2.FileDescriptorSet.FromString(f.read())


def load_release_image(path):
    """A release image (`buf build -o x.json`) as a FileDescriptorSet. A buf image is a
    FileDescriptorSet whose files carry one more field (bufExtension), skipped here."""
    with open(path) as f:
        return json_format.Parse(f.read(), descriptor_pb2.FileDescriptorSet(),
                                 ignore_unknown_fields=True)


def release_images(source_dir):
    """{name: FileDescriptorSet} of every image in proto/releases/."""
    paths = sorted(glob.glob(os.path.join(source_dir, "proto/releases/*.json")))
    return {os.path.basename(p): load_release_image(p) for p in paths}


def methods(descriptor_set, file_names=None):
    """{(service full name, method name): MethodDescriptorProto} of the named files (all files
    when None)."""
    found = {}
    for file in descriptor_set.file:
        if file_names is not None and file.name not in file_names:
            continue
        for service in file.service:
            for method in service.method:
                found[(f"{file.package}.{service.name}", method.name)] = method
    return found


# ----- The service config ------------------------------------------------------------------

def _keys(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{prefix}{key}"
            yield from _keys(item, f"{prefix}{key}.")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _keys(item, f"{prefix.rstrip('.')}[{i}].")


def check_service_config_schema(text, schema_set):
    """Problems of the JSON `text` against gRPC's own definition of a service config
    (grpc.service_config.ServiceConfig in grpc/service_config/service_config.proto, whose proto3
    JSON form the service config is), given as a FileDescriptorSet holding it."""
    classes = message_factory.GetMessages(schema_set.file)
    config = classes["grpc.service_config.ServiceConfig"]()
    try:
        json_format.Parse(text, config)  # Strict: an unknown or misspelt field is an error.
    except json_format.ParseError as e:
        return [f"not a grpc.service_config.ServiceConfig: {e}"]
    # gRPC's parsers read the JSON (lowerCamelCase) names only.
    return [f"{key}: gRPC reads lowerCamelCase names only"
            for key in _keys(json.loads(text)) if "_" in key.rsplit(".", 1)[-1]]


def check_service_config(config, descriptor_set, file_names):
    """Problems of the service config (a dict) against the methods of `file_names`."""
    problems = []
    wanted = methods(descriptor_set, file_names)
    seen = {}
    for i, entry in enumerate(config.get("methodConfig", [])):
        for name in entry.get("name", []):
            key = (name.get("service"), name.get("method"))
            if key[1] is None:
                problems.append(f"methodConfig[{i}] names the whole service {key[0]}: every "
                                "method gets its own entry")
            elif key in seen:
                problems.append(f"{key[0]}/{key[1]} has two methodConfig entries")
            elif key not in wanted:
                problems.append(f"methodConfig[{i}] names {key[0]}/{key[1]}, which the "
                                "descriptors do not have")
            else:
                seen[key] = entry
    for key, method in wanted.items():
        label = f"{key[0]}/{key[1]}"
        entry = seen.get(key)
        if entry is None:
            problems.append(f"{label} has no methodConfig entry")
            continue
        level = method.options.idempotency_level
        policy = entry.get("retryPolicy")
        if level in (IDEMPOTENT, NO_SIDE_EFFECTS):
            if policy is None:
                problems.append(f"{label} is {_LEVELS.Name(level)} but has no retryPolicy")
            else:
                if policy.get("retryableStatusCodes") != ["UNAVAILABLE"]:
                    problems.append(f"{label} retries {policy.get('retryableStatusCodes')}, "
                                    "not exactly [UNAVAILABLE]")
                if not 2 <= policy.get("maxAttempts", 0) <= 5:
                    problems.append(f"{label} maxAttempts {policy.get('maxAttempts')} is "
                                    "outside 2..5 (gRPC's bounds)")
        elif policy is not None:
            problems.append(f"{label} is {_LEVELS.Name(level)} (not safe to repeat) but has a "
                            "retryPolicy")
        if "hedgingPolicy" in entry:
            problems.append(f"{label} has a hedgingPolicy: hedging sends a request twice")
        if entry.get("waitForReady") is not True:
            problems.append(f"{label} does not wait for ready")
        streams_answers_only = method.server_streaming and not method.client_streaming
        if streams_answers_only and "timeout" in entry:
            problems.append(f"{label} streams answers for as long as it lasts but has a timeout")
        if not streams_answers_only and not re.fullmatch(r"\d+(\.\d+)?s",
                                                         entry.get("timeout", "")):
            problems.append(f"{label} has no timeout (or not in seconds: "
                            f"{entry.get('timeout')!r})")
    if "retryThrottling" not in config:
        problems.append("no retryThrottling: an outage would be multiplied by maxAttempts")
    return problems


# ----- Lint exceptions ---------------------------------------------------------------------

def _element(file, path):
    """("service"|"method"|"other", description, service, method) of a SourceCodeInfo path."""
    if len(path) == 2 and path[0] == _FILE_SERVICE:
        service = file.service[path[1]]
        return "service", f"service {service.name}", service, None
    if len(path) == 4 and path[0] == _FILE_SERVICE and path[2] == _SERVICE_METHOD:
        service = file.service[path[1]]
        method = service.method[path[3]]
        return "method", f"rpc {service.name}.{method.name}", service, method
    return "other", f"the element at {list(path)}", None, None


def check_lint_ignores(descriptor_set, file_names, releases):
    """Problems with the `buf:lint:ignore` comments of `file_names` (the descriptor set must carry
    source info): each must name an exception buf.yaml allows for its kind of element, on a
    service or RPC that a release image already has (the same RPC with the same response type)."""
    problems = []
    released_services = set()
    released_methods = {}
    for image in releases.values():
        for (service, name), method in methods(image).items():
            released_services.add(service)
            released_methods[(service, name)] = method.output_type
    for file in descriptor_set.file:
        if file.name not in file_names:
            continue
        if not file.source_code_info.location:
            problems.append(f"{file.name}: the descriptor set has no source info")
        for location in file.source_code_info.location:
            comments = [location.leading_comments, location.trailing_comments,
                        *location.leading_detached_comments]
            rules = re.findall(r"buf:lint:ignore\s+(\S+)", "\n".join(comments))
            if not rules:
                continue
            kind, what, service, method = _element(file, location.path)
            for rule in rules:
                if rule not in ALLOWED_IGNORES.get(kind, set()):
                    problems.append(f"{file.name}: {what} ignores {rule}, which buf.yaml does "
                                    "not allow there")
                    continue
                service_name = f"{file.package}.{service.name}"
                if kind == "service" and service_name not in released_services:
                    problems.append(f"{file.name}: {what} ignores {rule} but is in no release: "
                                    "a new service follows the rule")
                if kind == "method":
                    released = released_methods.get((service_name, method.name))
                    if released is None:
                        problems.append(f"{file.name}: {what} ignores {rule} but is in no "
                                        "release: a new RPC follows the standard names")
                    elif released != method.output_type:
                        problems.append(f"{file.name}: {what} ignores {rule} but answers "
                                        f"{method.output_type}, not the released "
                                        f"{released}")
    return problems


# ----- Idempotency levels ------------------------------------------------------------------

def check_levels_not_lowered(descriptor_set, releases):
    """Problems where an RPC of a release has a lower idempotency level now (or is gone)."""
    problems = []
    current = methods(descriptor_set)
    for release, image in sorted(releases.items()):
        for key, old in methods(image).items():
            label = f"{key[0]}/{key[1]}"
            new = current.get(key)
            if new is None:
                problems.append(f"{label} of {release} is gone")
                continue
            old_level = old.options.idempotency_level
            new_level = new.options.idempotency_level
            if LEVEL_RANK[new_level] < LEVEL_RANK[old_level]:
                problems.append(f"{label} is {_LEVELS.Name(new_level)}, lower than "
                                f"{_LEVELS.Name(old_level)} in {release}: old clients would "
                                "retry what is no longer safe to repeat")
    return problems
