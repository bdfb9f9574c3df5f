"""userpilot_gateway.Client: the Python client of userpilot-gateway.

What every caller would otherwise repeat: a deadline on every call (default per kind of RPC),
the caller's name as `x-caller`, retries of UNAVAILABLE and RESOURCE_EXHAUSTED after the server's
RetryInfo delay (else backoff with jitter; bounded attempts; never past the deadline; the
non-idempotent TrackEvent and bulk identifies only when the request certainly never reached
Userpilot), errors raised as GatewayError with decoded details, and watch_job(), a generator
that reconnects after UNAVAILABLE without repeating a state. A Client is thread-safe.
"""

import dataclasses
import random
import threading
import time

import grpc
from google.protobuf import struct_pb2
from userpilot.gateway.v1 import gateway_pb2 as pb
from userpilot.gateway.v1 import gateway_pb2_grpc

from .errors import GatewayError

USER_AGENT = "userpilot-gateway-python-client/0.1"


@dataclasses.dataclass(frozen=True)
class Deadlines:
    """Default deadlines in seconds of calls made without `timeout`, by kind of RPC."""
    write: float = 10.0      # identify_user, identify_company, track_event, delete_*
    bulk: float = 60.0       # bulk_identify_users, bulk_identify_companies
    read: float = 10.0       # get_job, list_jobs
    import_: float = 600.0   # import_data
    watch: float = 1800.0    # watch_job, watch_jobs (reconnections included)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When and how often a failed call is tried again."""
    max_attempts: int = 4            # the first included; 1 turns retries off
    initial_backoff: float = 0.2     # seconds, without RetryInfo; waits drawn from [b/2, b]
    max_backoff: float = 5.0
    backoff_multiplier: float = 2.0
    max_retry_delay: float = 30.0    # a longer RetryInfo delay is not waited for


# method -> (Deadlines field, idempotent)
_POLICIES = {
    "IdentifyUser": ("write", True),
    "IdentifyCompany": ("write", True),
    "TrackEvent": ("write", False),
    "BulkIdentifyUsers": ("bulk", False),
    "BulkIdentifyCompanies": ("bulk", False),
    "ListJobs": ("read", True),
    "GetJob": ("read", True),
    "DeleteUsers": ("write", True),
    "DeleteCompanies": ("write", True),
}


def to_struct(values):
    """A google.protobuf.Struct from a dict of JSON primitives (None, bool, int, float, str)."""
    if values is None or isinstance(values, struct_pb2.Struct):
        return values
    message = struct_pb2.Struct()
    message.update(values)
    return message


def retry_delay(error, idempotent, backoff, jitter, policy):
    """Seconds to wait before retrying a call that failed with `error` (a GatewayError), or None
    when it must not be retried. `backoff` is the current backoff ceiling, `jitter` in [0, 1]."""
    code = error.code
    if code == grpc.StatusCode.UNAVAILABLE:
        # It may have reached Userpilot: a non-idempotent call could be recorded twice.
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


def _known_size(file):
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


def _same_state(a, b):
    """Equal apart from elapsed_time, which grows on every read."""
    x, y = pb.Job(), pb.Job()
    x.CopyFrom(a)
    y.CopyFrom(b)
    x.ClearField("elapsed_time")
    y.ClearField("elapsed_time")
    return x == y


class Client:
    """A client of one gateway target ("host:port" or any gRPC target).

    caller:      sent as `x-caller` (up to 64 bytes of [A-Za-z0-9._-]); None: not sent
    deadlines:   Deadlines; retry: RetryPolicy
    credentials: grpc.ChannelCredentials (default: plaintext, as the gateway's port is)
    channel:     an existing grpc.Channel instead of `target`
    sleep:       replaces time.sleep between attempts (tests)
    """

    def __init__(self, target="localhost:50051", caller=None, *, deadlines=Deadlines(),
                 retry=RetryPolicy(), credentials=None, channel=None, sleep=time.sleep,
                 channel_options=()):
        options = [("grpc.primary_user_agent", USER_AGENT), *channel_options]
        if channel is not None:
            self._channel, self._owns_channel = channel, False
        elif credentials is not None:
            self._channel, self._owns_channel = grpc.secure_channel(target, credentials, options), True
        else:
            self._channel, self._owns_channel = grpc.insecure_channel(target, options), True
        self._stub = gateway_pb2_grpc.UserpilotGatewayStub(self._channel)
        self.caller = caller
        self.deadlines = deadlines
        self.retry = retry
        self._sleep = sleep
        self._random = random.Random()
        self._random_lock = threading.Lock()

    def close(self):
        if self._owns_channel:
            self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the RPCs --------------------------------------------------------------------------

    def identify_user(self, user_id, metadata=None, company=None, **call):
        """Creates or updates a user. `company`: {"company_id": ..., "metadata": {...}} or a
        pb.Company. Returns pb.IdentifyUserResponse (upstream_request_id)."""
        if isinstance(company, dict):
            company = pb.Company(company_id=company.get("company_id", ""),
                                 metadata=to_struct(company.get("metadata")))
        return self.call("IdentifyUser", pb.IdentifyUserRequest(
            user_id=user_id, metadata=to_struct(metadata), company=company), **call)

    def identify_company(self, company_id, metadata=None, **call):
        return self.call("IdentifyCompany", pb.IdentifyCompanyRequest(
            company_id=company_id, metadata=to_struct(metadata)), **call)

    def bulk_identify_users(self, users, **call):
        """Starts a bulk identify job. `users`: dicts {"user_id", "company_id", "metadata"} or
        pb.BulkUser. Returns the pb.Job. Not idempotent (each call starts a job)."""
        rows = [u if isinstance(u, pb.BulkUser) else pb.BulkUser(
            user_id=u.get("user_id", ""), company_id=u.get("company_id", ""),
            metadata=to_struct(u.get("metadata"))) for u in users]
        return self.call("BulkIdentifyUsers", pb.BulkIdentifyUsersRequest(users=rows), **call)

    def bulk_identify_companies(self, companies, **call):
        rows = [c if isinstance(c, pb.BulkCompany) else pb.BulkCompany(
            company_id=c.get("company_id", ""), metadata=to_struct(c.get("metadata")))
            for c in companies]
        return self.call("BulkIdentifyCompanies",
                         pb.BulkIdentifyCompaniesRequest(companies=rows), **call)

    def track_event(self, user_id, event_name, metadata=None, **call):
        """Records an event. Not idempotent: retried on UNAVAILABLE only when the gateway says
        Userpilot never saw it."""
        return self.call("TrackEvent", pb.TrackEventRequest(
            user_id=user_id, event_name=event_name, metadata=to_struct(metadata)), **call)

    def list_jobs(self, **call):
        """The account's jobs (a list of pb.Job), in Userpilot's order."""
        return list(self.call("ListJobs", pb.ListJobsRequest(), **call).jobs)

    def get_job(self, job_id, **call):
        return self.call("GetJob", pb.GetJobRequest(job_id=job_id), **call)

    def delete_users(self, user_ids, **call):
        return self.call("DeleteUsers", pb.DeleteUsersRequest(user_ids=list(user_ids)), **call)

    def delete_companies(self, company_ids, **call):
        return self.call("DeleteCompanies",
                         pb.DeleteCompaniesRequest(company_ids=list(company_ids)), **call)

    def call(self, method, request, *, timeout=None, max_attempts=None, metadata=()):
        """Calls unary `method` (its proto name) with `request`, with the deadline, x-caller and
        retry rules above. Returns the response; raises GatewayError."""
        field, idempotent = _POLICIES.get(method, ("write", False))
        deadline = time.monotonic() + (timeout if timeout is not None else getattr(self.deadlines, field))
        attempts_allowed = max(1, max_attempts or self.retry.max_attempts)
        rpc = getattr(self._stub, method)
        backoff = self.retry.initial_backoff
        attempt = 0
        while True:
            attempt += 1
            try:
                return rpc(request, timeout=max(0.0, deadline - time.monotonic()),
                           metadata=self._metadata(metadata))
            except grpc.RpcError as e:
                error = GatewayError.from_rpc_error(e, attempt)
            backoff = self._wait_to_retry(error, idempotent, attempt, attempts_allowed, backoff,
                                          deadline)
            if backoff is None:
                raise error

    def watch_job(self, job_id, *, timeout=None, max_attempts=None, metadata=()):
        """Yields the states of one job (pb.Job): its current state, then each change, until
        COMPLETED or FAILED. Reconnects after UNAVAILABLE (a replica draining) and never yields
        the same state twice. Closing the generator cancels the watch. Raises GatewayError."""
        return self._watch("WatchJob", pb.WatchJobRequest(job_id=job_id), timeout,
                           max_attempts, metadata, dedupe=True)

    def watch_jobs(self, include_existing=False, *, timeout=None, max_attempts=None, metadata=()):
        """Yields every job change of the account until the deadline (DEADLINE_EXCEEDED) or the
        caller stops iterating."""
        return self._watch("WatchJobs", pb.WatchJobsRequest(include_existing=include_existing),
                           timeout, max_attempts, metadata, dedupe=False)

    def import_data(self, target, file, *, format=pb.IMPORT_FORMAT_NDJSON, filename="",
                    wait_for_running_job=False, size_bytes=None, chunk_size=256 * 1024,
                    timeout=None, metadata=()):
        """Uploads `file` (bytes, or a binary file object) to ImportData and returns the pb.Job
        Userpilot created. `target`: pb.IMPORT_TARGET_*. The size is sent when known (bytes, a
        real file, or `size_bytes`), so the gateway can refuse an oversized or truncated
        upload. Never retried."""
        if size_bytes is None:
            size_bytes = _known_size(file)
        header = pb.ImportHeader(target=target, filename=filename, format=format,
                                 wait_for_running_job=wait_for_running_job)
        if size_bytes is not None:
            header.size_bytes = size_bytes

        def messages():
            yield pb.ImportDataRequest(header=header)
            if isinstance(file, (bytes, bytearray)):
                for at in range(0, len(file), chunk_size):
                    yield pb.ImportDataRequest(chunk=bytes(file[at:at + chunk_size]))
            else:
                while True:
                    chunk = file.read(chunk_size)
                    if not chunk:
                        return
                    yield pb.ImportDataRequest(chunk=chunk)

        try:
            return self._stub.ImportData(
                messages(), timeout=timeout if timeout is not None else self.deadlines.import_,
                metadata=self._metadata(metadata))
        except grpc.RpcError as e:
            raise GatewayError.from_rpc_error(e) from None

    # ---- internals -------------------------------------------------------------------------

    def _metadata(self, extra):
        md = [("x-caller", self.caller)] if self.caller else []
        return md + list(extra)

    def _jitter(self):
        with self._random_lock:
            return self._random.random()

    def _wait_to_retry(self, error, idempotent, attempt, attempts_allowed, backoff, deadline):
        """Sleeps before the next attempt and returns the next backoff; None: do not retry."""
        if attempt >= attempts_allowed:
            return None
        delay = retry_delay(error, idempotent, backoff, self._jitter(), self.retry)
        if delay is None or time.monotonic() + delay >= deadline:
            return None
        self._sleep(delay)
        return min(backoff * self.retry.backoff_multiplier, self.retry.max_backoff)

    def _watch(self, method, request, timeout, max_attempts, metadata, dedupe):
        deadline = time.monotonic() + (timeout if timeout is not None else self.deadlines.watch)
        attempts_allowed = max(1, max_attempts or self.retry.max_attempts)
        backoff = self.retry.initial_backoff
        last = None
        failures = 0  # consecutive attempts that yielded nothing new
        while True:
            failures += 1
            call = getattr(self._stub, method)(
                request, timeout=max(0.0, deadline - time.monotonic()),
                metadata=self._metadata(metadata))
            try:
                first = True
                for job in call:
                    repeat = dedupe and first and last is not None and _same_state(job, last)
                    first = False
                    if repeat:
                        continue
                    failures, backoff, last = 0, self.retry.initial_backoff, job
                    yield job
                return
            except grpc.RpcError as e:
                error = GatewayError.from_rpc_error(e, failures)
            finally:
                call.cancel()
            decision = error
            if (error.code == grpc.StatusCode.DEADLINE_EXCEEDED
                    and time.monotonic() + 1 < deadline):
                # The gateway caps a call's deadline (--max_deadline): resume a stream it ended
                # while ours still runs, as after UNAVAILABLE.
                decision = GatewayError(grpc.StatusCode.UNAVAILABLE, error.message)
            backoff = self._wait_to_retry(decision, True, failures, attempts_allowed, backoff,
                                          deadline)
            if backoff is None:
                raise error
