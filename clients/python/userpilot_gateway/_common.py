"""What the sync Client and the grpc.aio AsyncClient share: options, the retry rule, deadlines
and idempotency read from the contract's descriptors, metadata and credentials, and the
helpers that shape requests. Neither client decides any of this on its own, so both behave
alike."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from typing import (TYPE_CHECKING, Any, BinaryIO, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import grpc
from google.protobuf import descriptor_pb2, struct_pb2
from userpilot.gateway.v1 import gateway_pb2 as pb

from ._version import __version__
from .errors import GatewayError

if TYPE_CHECKING:
    from google.protobuf.descriptor import MethodDescriptor

USER_AGENT = f"userpilot-gateway-python-client/{__version__}"
SERVICE = pb.DESCRIPTOR.services_by_name["UserpilotGateway"]

# Extra request metadata: (key, value) pairs with lower-case keys.
Metadata = Sequence[Tuple[str, str]]
# JSON primitives a property may hold (None removes the property).
Primitive = Union[None, bool, int, float, str]


@dataclasses.dataclass(frozen=True)
class Deadlines:
    """Default deadlines in seconds of calls made without `timeout`, by kind of RPC. The kind
    comes from the method's descriptor (method_policy), so a method added to the contract gets
    one too."""
    write: float = 10.0      # unary, with side effects: identify_*, track_event, delete_*
    bulk: float = 60.0       # unary, with side effects, answering a Job: bulk_identify_*
    read: float = 10.0       # unary, NO_SIDE_EFFECTS: get_job, list_jobs
    import_: float = 600.0   # client streaming: import_data
    watch: float = 1800.0    # server streaming: watch_job, watch_jobs (reconnections included)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When and how often a failed call is tried again."""
    max_attempts: int = 4            # the first included; 1 turns retries off
    initial_backoff: float = 0.2     # seconds, without RetryInfo; waits drawn from [b/2, b]
    max_backoff: float = 5.0
    backoff_multiplier: float = 2.0
    max_retry_delay: float = 30.0    # a longer RetryInfo delay is not waited for


@dataclasses.dataclass(frozen=True)
class TlsOptions:
    """TLS towards the gateway (its --tls_cert_file), with a client certificate when it requires
    one (its --tls_client_ca_file). PEM bytes; from_files() reads them from files.

    root_certs:  the CAs that sign the gateway's certificate; None: gRPC's default roots
    cert_chain, private_key: this caller's certificate and key (mTLS), both or neither
    server_name: the name the gateway's certificate must carry when it is not the target's host
    """
    root_certs: Optional[bytes] = None
    cert_chain: Optional[bytes] = None
    private_key: Optional[bytes] = None
    server_name: Optional[str] = None

    def __post_init__(self) -> None:
        if (self.cert_chain is None) != (self.private_key is None):
            raise ValueError("a client certificate needs both cert_chain and private_key")

    @classmethod
    def from_files(cls, ca_file: Optional[str] = None, cert_file: Optional[str] = None,
                   key_file: Optional[str] = None,
                   server_name: Optional[str] = None) -> "TlsOptions":
        """Reads the PEM files (None: not given). ValueError naming the file when one cannot be
        read or holds no PEM block, or when only one of cert_file and key_file is given."""
        if (cert_file is None) != (key_file is None):
            raise ValueError("a client certificate needs both its certificate file and its key "
                             "file, not only one")
        return cls(root_certs=_read_pem("the CA file", ca_file),
                   cert_chain=_read_pem("the client certificate file", cert_file),
                   private_key=_read_pem("the client key file", key_file),
                   server_name=server_name)


def _read_pem(what: str, path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise ValueError(f"{what} '{path}' cannot be read: {e.strerror}") from None
    if b"-----BEGIN " not in pem:
        raise ValueError(f"{what} '{path}' holds no PEM block (-----BEGIN ...)")
    return pem


def check_bearer_token(token: str, source: str) -> str:
    """Returns `token` if an HTTP header can carry it (visible ASCII, not empty); ValueError
    naming `source` otherwise. The message never quotes the token."""
    if not token:
        raise ValueError(f"the bearer token from {source} is empty")
    for i, c in enumerate(token):
        if not "\x21" <= c <= "\x7e":
            raise ValueError(f"the bearer token from {source} holds a character that is not "
                             f"visible ASCII (at character {i + 1})")
    return token


def read_bearer_token(path: str) -> str:
    """The bearer token in the file at `path` (a mounted secret), without surrounding
    whitespace. ValueError naming the file when it cannot be read or holds no valid token."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"the token file '{path}' cannot be read: {e.strerror}") from None
    return check_bearer_token(text.strip(), f"'{path}'")


@dataclasses.dataclass(frozen=True)
class MethodPolicy:
    """What a method's descriptor says about calling it."""
    deadline: float    # the default deadline in seconds (by kind, see Deadlines)
    idempotent: bool   # IDEMPOTENT or NO_SIDE_EFFECTS: may be repeated after any UNAVAILABLE


def method_policy(method: "MethodDescriptor", deadlines: Deadlines) -> MethodPolicy:
    """Reads the method's `idempotency_level` option (gateway.proto) and its shape: there is no
    table of methods here, so the contract alone decides."""
    level = method.GetOptions().idempotency_level
    idempotent = level in (descriptor_pb2.MethodOptions.IDEMPOTENT,
                           descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS)
    if method.client_streaming:
        return MethodPolicy(deadlines.import_, idempotent)
    if method.server_streaming:
        return MethodPolicy(deadlines.watch, idempotent)
    if level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS:
        return MethodPolicy(deadlines.read, idempotent)
    if method.output_type.full_name == pb.Job.DESCRIPTOR.full_name:
        return MethodPolicy(deadlines.bulk, idempotent)  # it starts a job
    return MethodPolicy(deadlines.write, idempotent)


def find_method(name: str) -> "MethodDescriptor":
    """The method of UserpilotGateway named exactly `name`; ValueError listing them if none."""
    method = SERVICE.methods_by_name.get(name)
    if method is None:
        raise ValueError(f"unknown method {name!r}; the methods of {SERVICE.full_name} are: "
                         + ", ".join(m.name for m in SERVICE.methods))
    return method


def retry_delay(error: GatewayError, idempotent: bool, backoff: float, jitter: float,
                policy: RetryPolicy) -> Optional[float]:
    """Seconds to wait before retrying a call that failed with `error`, or None when it must
    not be retried. `backoff` is the current backoff ceiling, `jitter` in [0, 1]."""
    code = error.code
    if code == grpc.StatusCode.UNAVAILABLE:
        # It may have reached Userpilot: a non-idempotent call could be recorded twice, unless
        # the gateway knows it never left.
        if not idempotent and error.details.request_may_have_been_sent:
            return None
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Refused before it had an effect. Without details it is gRPC's own message size limit.
        if error.details.retry_info is None and error.details.error_info is None:
            return None
    else:
        return None
    delay = error.retry_delay
    if delay is not None:
        if delay > policy.max_retry_delay:
            return None
        return delay * (1 + 0.2 * jitter)  # at least the server's delay, spread up to 20 %
    return backoff * (0.5 + 0.5 * jitter)


class Retrier:
    """The retry state of one call: how long to wait after each failure, or None to give up
    (attempts used up, the rule says no, or the wait would reach the deadline)."""

    def __init__(self, policy: RetryPolicy, idempotent: bool, deadline: float,
                 max_attempts: Optional[int], jitter: "Jitter") -> None:
        self._policy = policy
        self._idempotent = idempotent
        self._deadline = deadline
        self._allowed = max(1, max_attempts or policy.max_attempts)
        self._jitter = jitter
        self.backoff = policy.initial_backoff

    def delay_after(self, error: GatewayError, attempt: int) -> Optional[float]:
        if attempt >= self._allowed:
            return None
        delay = retry_delay(error, self._idempotent, self.backoff, self._jitter(), self._policy)
        if delay is None or time.monotonic() + delay >= self._deadline:
            return None
        self.backoff = min(self.backoff * self._policy.backoff_multiplier,
                           self._policy.max_backoff)
        return delay

    def progressed(self) -> None:
        """A watch delivered something new: failures start counting afresh."""
        self.backoff = self._policy.initial_backoff


class Jitter:
    """Uniform draws in [0, 1], safe from any thread."""

    def __init__(self) -> None:
        self._random = random.Random()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._random.random()


def watch_error(error: GatewayError, deadline: float) -> GatewayError:
    """The error a watch's retry decision is made on: the gateway caps a call's deadline
    (--max_deadline), so a stream it ended while ours still runs is resumed like an UNAVAILABLE
    one."""
    if error.code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() + 1 < deadline:
        return GatewayError(grpc.StatusCode.UNAVAILABLE, error.message)
    return error


class Connection:
    """How a client reaches the gateway: channel options and credentials, and the metadata and
    call credentials of every call. The token is kept here and sent, never logged."""

    def __init__(self, caller: Optional[str], tls: Optional[TlsOptions],
                 bearer_token: Optional[str], token_over_plaintext: bool,
                 channel_options: Sequence[Tuple[str, Any]]) -> None:
        self.caller = caller
        # Set by a client that made a plaintext channel itself (check() refuses the token then).
        self.plaintext = False
        self.tls = tls
        options: List[Tuple[str, Any]] = [("grpc.primary_user_agent", USER_AGENT)]
        if tls is not None and tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        self.channel_options = options + list(channel_options)
        self._token = bearer_token or None
        if self._token is not None:
            check_bearer_token(self._token, "bearer_token")
        # gRPC sends call credentials only over TLS; token_over_plaintext sends the header as
        # plain metadata instead (a mesh sidecar encrypts the hop, or local development).
        self._as_metadata = token_over_plaintext
        self.call_credentials: Optional[grpc.CallCredentials] = None
        if self._token is not None and not token_over_plaintext:
            self.call_credentials = grpc.access_token_call_credentials(self._token)

    def channel_credentials(self) -> Optional[grpc.ChannelCredentials]:
        """TLS credentials, or None for plaintext."""
        if self.tls is None:
            return None
        return grpc.ssl_channel_credentials(root_certificates=self.tls.root_certs,
                                            private_key=self.tls.private_key,
                                            certificate_chain=self.tls.cert_chain)

    def check(self) -> None:
        """Raises GatewayError(UNAUTHENTICATED) before a call that would need to send the token
        over a plaintext channel this client made, as gRPC does for call credentials on any
        plaintext channel: the token stays here."""
        if self.plaintext and self.call_credentials is not None:
            raise GatewayError(grpc.StatusCode.UNAUTHENTICATED,
                               "a bearer token is set but the connection is plaintext: gRPC "
                               "sends tokens only over TLS (set tls=...), or set "
                               "token_over_plaintext=True where something else protects the "
                               "hop")

    def metadata(self, extra: Metadata) -> List[Tuple[str, str]]:
        md = [("x-caller", self.caller)] if self.caller else []
        if self._token is not None and self._as_metadata:
            md.append(("authorization", f"Bearer {self._token}"))
        return md + list(extra)


def to_struct(values: Union[None, struct_pb2.Struct, Mapping[str, Primitive]]
              ) -> Optional[struct_pb2.Struct]:
    """A google.protobuf.Struct from a dict of JSON primitives (None, bool, int, float, str)."""
    if values is None or isinstance(values, struct_pb2.Struct):
        return values
    message = struct_pb2.Struct()
    message.update(values)
    return message


def company(value: Union[None, pb.Company, Mapping[str, Any]]) -> Optional[pb.Company]:
    if value is None or isinstance(value, pb.Company):
        return value
    return pb.Company(company_id=value.get("company_id", ""),
                      metadata=to_struct(value.get("metadata")))


def bulk_users(users: Sequence[Union[pb.BulkUser, Mapping[str, Any]]]) -> List[pb.BulkUser]:
    return [u if isinstance(u, pb.BulkUser) else pb.BulkUser(
        user_id=u.get("user_id", ""), company_id=u.get("company_id", ""),
        metadata=to_struct(u.get("metadata"))) for u in users]


def bulk_companies(companies: Sequence[Union[pb.BulkCompany, Mapping[str, Any]]]
                   ) -> List[pb.BulkCompany]:
    return [c if isinstance(c, pb.BulkCompany) else pb.BulkCompany(
        company_id=c.get("company_id", ""), metadata=to_struct(c.get("metadata")))
        for c in companies]


# A file to upload: bytes, or a binary file object.
Upload = Union[bytes, bytearray, BinaryIO]


def known_size(file: Upload) -> Optional[int]:
    """Bytes left in `file` (bytes or a seekable binary file), or None when unknown."""
    if isinstance(file, (bytes, bytearray)):
        return len(file)
    try:
        here = file.tell()
        end = file.seek(0, 2)
        file.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


def import_messages(header: pb.ImportHeader, file: Upload,
                    chunk_size: int) -> Iterator[pb.ImportDataRequest]:
    """The ImportData stream: the header, then the file in chunks, read as the stream sends."""
    yield pb.ImportDataRequest(header=header)
    if isinstance(file, (bytes, bytearray)):
        for at in range(0, len(file), chunk_size):
            yield pb.ImportDataRequest(chunk=bytes(file[at:at + chunk_size]))
        return
    while True:
        chunk = file.read(chunk_size)
        if not chunk:
            return
        yield pb.ImportDataRequest(chunk=chunk)


def import_header(target: "pb.ImportTarget", file: Upload,
                  format: "pb.ImportFormat", filename: str,
                  wait_for_running_job: bool, size_bytes: Optional[int]) -> pb.ImportHeader:
    """The header of an upload; the size is sent when known, so the gateway can refuse an
    oversized or truncated upload."""
    if size_bytes is None:
        size_bytes = known_size(file)
    header = pb.ImportHeader(target=target, filename=filename, format=format,
                             wait_for_running_job=wait_for_running_job)
    if size_bytes is not None:
        header.size_bytes = size_bytes
    return header


def same_state(a: pb.Job, b: pb.Job) -> bool:
    """Equal apart from elapsed_time, which grows on every read."""
    x, y = pb.Job(), pb.Job()
    x.CopyFrom(a)
    y.CopyFrom(b)
    x.ClearField("elapsed_time")
    y.ClearField("elapsed_time")
    return bool(x == y)
