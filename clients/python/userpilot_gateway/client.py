"""userpilot_gateway.Client: the synchronous Python client of userpilot-gateway.

What every caller would otherwise repeat: a deadline on every call (default per kind of RPC),
the caller's name as `x-caller`, TLS with an optional client certificate and a bearer token,
retries of UNAVAILABLE and RESOURCE_EXHAUSTED after the server's RetryInfo delay (else backoff
with jitter; bounded attempts; never past the deadline; methods that the contract does not
mark IDEMPOTENT or NO_SIDE_EFFECTS only when the request certainly never reached Userpilot),
errors raised as GatewayError with decoded details, and watch_job(), a generator that
reconnects after UNAVAILABLE without repeating a state. The rules live in _common, shared with
the grpc.aio AsyncClient (aio.py). A Client is thread-safe.
"""

from __future__ import annotations

import time
from typing import (Any, Callable, Iterator, List, Mapping, Optional, Sequence, Tuple, Type,
                    TypeVar, Union)

import grpc
from google.protobuf import message as protobuf_message
from google.protobuf import struct_pb2
from userpilot.gateway.v1 import gateway_pb2 as pb
from userpilot.gateway.v1 import gateway_pb2_grpc

from . import _common
from ._common import Deadlines, Metadata, Primitive, RetryPolicy, TlsOptions, Upload
from .errors import GatewayError

T = TypeVar("T")

Properties = Union[None, struct_pb2.Struct, Mapping[str, Primitive]]


class Client:
    """A client of one gateway target ("host:port" or any gRPC target).

    caller:        sent as `x-caller` (up to 64 bytes of [A-Za-z0-9._-]); None: not sent
    deadlines:     Deadlines; retry: RetryPolicy
    tls:           TlsOptions: TLS (and a client certificate); None: plaintext
    bearer_token:  sent as `authorization: Bearer <token>`, only over TLS (gRPC fails the call
                   with UNAUTHENTICATED over plaintext) unless token_over_plaintext
    credentials:   grpc.ChannelCredentials of your own instead of `tls`
    channel:       an existing grpc.Channel instead of `target` (not closed by close())
    sleep:         replaces time.sleep between attempts (tests)
    channel_options: extra gRPC channel arguments
    """

    def __init__(self, target: str = "localhost:50051", caller: Optional[str] = None, *,
                 deadlines: Deadlines = Deadlines(), retry: RetryPolicy = RetryPolicy(),
                 tls: Optional[TlsOptions] = None, bearer_token: Optional[str] = None,
                 token_over_plaintext: bool = False,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 channel: Optional[grpc.Channel] = None,
                 sleep: Callable[[float], None] = time.sleep,
                 channel_options: Sequence[Tuple[str, Any]] = ()) -> None:
        self._connection = _common.Connection(caller, tls, bearer_token, token_over_plaintext,
                                              channel_options)
        options = self._connection.channel_options
        credentials = credentials or self._connection.channel_credentials()
        self._owns_channel = channel is None
        if channel is not None:
            self._channel = channel
        elif credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options)
        else:
            self._channel = grpc.insecure_channel(target, options)
            self._connection.plaintext = True
        self._stub = gateway_pb2_grpc.UserpilotGatewayStub(self._channel)
        self.caller = caller
        self.deadlines = deadlines
        self.retry = retry
        self._sleep = sleep
        self._jitter = _common.Jitter()

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the RPCs --------------------------------------------------------------------------

    def identify_user(self, user_id: str, metadata: Properties = None,
                      company: Union[None, pb.Company, Mapping[str, Any]] = None, *,
                      timeout: Optional[float] = None, max_attempts: Optional[int] = None,
                      call_metadata: Metadata = ()) -> pb.IdentifyUserResponse:
        """Creates or updates a user. `company`: {"company_id": ..., "metadata": {...}} or a
        pb.Company. Returns pb.IdentifyUserResponse (upstream_request_id)."""
        request = pb.IdentifyUserRequest(user_id=user_id, metadata=_common.to_struct(metadata),
                                         company=_common.company(company))
        return self._unary("IdentifyUser", request, pb.IdentifyUserResponse, timeout,
                           max_attempts, call_metadata)

    def identify_company(self, company_id: str, metadata: Properties = None, *,
                         timeout: Optional[float] = None, max_attempts: Optional[int] = None,
                         call_metadata: Metadata = ()) -> pb.IdentifyCompanyResponse:
        request = pb.IdentifyCompanyRequest(company_id=company_id,
                                            metadata=_common.to_struct(metadata))
        return self._unary("IdentifyCompany", request, pb.IdentifyCompanyResponse, timeout,
                           max_attempts, call_metadata)

    def bulk_identify_users(self, users: Sequence[Union[pb.BulkUser, Mapping[str, Any]]], *,
                            timeout: Optional[float] = None, max_attempts: Optional[int] = None,
                            call_metadata: Metadata = ()) -> pb.Job:
        """Starts a bulk identify job. `users`: dicts {"user_id", "company_id", "metadata"} or
        pb.BulkUser. Returns the pb.Job. Not idempotent (each call that reaches Userpilot
        starts a job)."""
        request = pb.BulkIdentifyUsersRequest(users=_common.bulk_users(users))
        return self._unary("BulkIdentifyUsers", request, pb.Job, timeout, max_attempts,
                           call_metadata)

    def bulk_identify_companies(self,
                                companies: Sequence[Union[pb.BulkCompany, Mapping[str, Any]]],
                                *, timeout: Optional[float] = None,
                                max_attempts: Optional[int] = None,
                                call_metadata: Metadata = ()) -> pb.Job:
        request = pb.BulkIdentifyCompaniesRequest(companies=_common.bulk_companies(companies))
        return self._unary("BulkIdentifyCompanies", request, pb.Job, timeout, max_attempts,
                           call_metadata)

    def track_event(self, user_id: str, event_name: str, metadata: Properties = None, *,
                    timeout: Optional[float] = None, max_attempts: Optional[int] = None,
                    call_metadata: Metadata = ()) -> pb.TrackEventResponse:
        """Records an event. Not idempotent: retried on UNAVAILABLE only when the gateway says
        Userpilot never saw it."""
        request = pb.TrackEventRequest(user_id=user_id, event_name=event_name,
                                       metadata=_common.to_struct(metadata))
        return self._unary("TrackEvent", request, pb.TrackEventResponse, timeout, max_attempts,
                           call_metadata)

    def list_jobs(self, *, timeout: Optional[float] = None, max_attempts: Optional[int] = None,
                  call_metadata: Metadata = ()) -> List[pb.Job]:
        """The account's jobs, in Userpilot's order."""
        return list(self._unary("ListJobs", pb.ListJobsRequest(), pb.ListJobsResponse, timeout,
                                max_attempts, call_metadata).jobs)

    def get_job(self, job_id: str, *, timeout: Optional[float] = None,
                max_attempts: Optional[int] = None, call_metadata: Metadata = ()) -> pb.Job:
        return self._unary("GetJob", pb.GetJobRequest(job_id=job_id), pb.Job, timeout,
                           max_attempts, call_metadata)

    def delete_users(self, user_ids: Sequence[str], *, timeout: Optional[float] = None,
                     max_attempts: Optional[int] = None,
                     call_metadata: Metadata = ()) -> pb.DeleteUsersResponse:
        return self._unary("DeleteUsers", pb.DeleteUsersRequest(user_ids=list(user_ids)),
                           pb.DeleteUsersResponse, timeout, max_attempts, call_metadata)

    def delete_companies(self, company_ids: Sequence[str], *, timeout: Optional[float] = None,
                         max_attempts: Optional[int] = None,
                         call_metadata: Metadata = ()) -> pb.DeleteCompaniesResponse:
        return self._unary("DeleteCompanies",
                           pb.DeleteCompaniesRequest(company_ids=list(company_ids)),
                           pb.DeleteCompaniesResponse, timeout, max_attempts, call_metadata)

    def call(self, method: str, request: protobuf_message.Message, *,
             timeout: Optional[float] = None, max_attempts: Optional[int] = None,
             call_metadata: Metadata = ()) -> protobuf_message.Message:
        """Calls unary `method` (its proto name) with `request`, with the deadline, metadata and
        retry rules above. Returns the response; raises GatewayError (ValueError for a method
        the contract does not have)."""
        return self._unary(method, request, protobuf_message.Message, timeout,
                                 max_attempts, call_metadata)

    def watch_job(self, job_id: str, *, timeout: Optional[float] = None,
                  max_attempts: Optional[int] = None,
                  call_metadata: Metadata = ()) -> Iterator[pb.Job]:
        """Yields the states of one job: its current state, then each change, until COMPLETED
        or FAILED. Reconnects after UNAVAILABLE (a replica draining) and never yields the same
        state twice. Closing the generator cancels the watch. Raises GatewayError."""
        return self._watch("WatchJob", pb.WatchJobRequest(job_id=job_id), timeout, max_attempts,
                           call_metadata, dedupe=True)

    def watch_jobs(self, include_existing: bool = False, *, timeout: Optional[float] = None,
                   max_attempts: Optional[int] = None,
                   call_metadata: Metadata = ()) -> Iterator[pb.Job]:
        """Yields every job change of the account until the deadline (DEADLINE_EXCEEDED) or the
        caller stops iterating."""
        return self._watch("WatchJobs", pb.WatchJobsRequest(include_existing=include_existing),
                           timeout, max_attempts, call_metadata, dedupe=False)

    def import_data(self, target: "pb.ImportTarget", file: Upload, *,
                    format: "pb.ImportFormat" = pb.IMPORT_FORMAT_NDJSON,
                    filename: str = "", wait_for_running_job: bool = False,
                    size_bytes: Optional[int] = None, chunk_size: int = 256 * 1024,
                    timeout: Optional[float] = None, call_metadata: Metadata = ()) -> pb.Job:
        """Uploads `file` (bytes, or a binary file object) to ImportData and returns the pb.Job
        Userpilot created. `target`: pb.IMPORT_TARGET_*. The size is sent when known (bytes, a
        real file, or `size_bytes`). Never retried: the stream is consumed."""
        self._connection.check()
        header = _common.import_header(target, file, format, filename, wait_for_running_job,
                                       size_bytes)
        policy = _common.method_policy(_common.find_method("ImportData"), self.deadlines)
        try:
            job: pb.Job = self._stub.ImportData(
                _common.import_messages(header, file, chunk_size),
                timeout=timeout if timeout is not None else policy.deadline,
                metadata=self._connection.metadata(call_metadata),
                credentials=self._connection.call_credentials)
            return job
        except grpc.RpcError as e:
            raise GatewayError.from_rpc_error(e) from None

    # ---- internals -------------------------------------------------------------------------

    def _unary(self, method: str, request: protobuf_message.Message, response_type: Type[T],
               timeout: Optional[float], max_attempts: Optional[int],
               call_metadata: Metadata) -> T:
        self._connection.check()
        descriptor = _common.find_method(method)
        if descriptor.client_streaming or descriptor.server_streaming:
            raise ValueError(f"{method} is a streaming method; call() is for unary methods")
        policy = _common.method_policy(descriptor, self.deadlines)
        deadline = time.monotonic() + (timeout if timeout is not None else policy.deadline)
        retrier = _common.Retrier(self.retry, policy.idempotent, deadline, max_attempts,
                                  self._jitter)
        rpc = getattr(self._stub, method)
        attempt = 0
        while True:
            attempt += 1
            try:
                response: T = rpc(request, timeout=max(0.0, deadline - time.monotonic()),
                           metadata=self._connection.metadata(call_metadata),
                           credentials=self._connection.call_credentials)
                return response
            except grpc.RpcError as e:
                error = GatewayError.from_rpc_error(e, attempt)
            delay = retrier.delay_after(error, attempt)
            if delay is None:
                raise error
            self._sleep(delay)

    def _watch(self, method: str, request: protobuf_message.Message, timeout: Optional[float],
               max_attempts: Optional[int], call_metadata: Metadata,
               dedupe: bool) -> Iterator[pb.Job]:
        self._connection.check()
        policy = _common.method_policy(_common.find_method(method), self.deadlines)
        deadline = time.monotonic() + (timeout if timeout is not None else policy.deadline)
        retrier = _common.Retrier(self.retry, policy.idempotent, deadline, max_attempts,
                                  self._jitter)
        last: Optional[pb.Job] = None
        failures = 0  # consecutive attempts that yielded nothing new
        while True:
            failures += 1
            call = getattr(self._stub, method)(
                request, timeout=max(0.0, deadline - time.monotonic()),
                metadata=self._connection.metadata(call_metadata),
                credentials=self._connection.call_credentials)
            try:
                first = True
                for job in call:
                    repeat = dedupe and first and last is not None and _common.same_state(job, last)
                    first = False
                    if repeat:
                        continue
                    failures, last = 0, job
                    retrier.progressed()
                    yield job
                return
            except grpc.RpcError as e:
                error = GatewayError.from_rpc_error(e, failures)
            finally:
                call.cancel()
            delay = retrier.delay_after(_common.watch_error(error, deadline), failures)
            if delay is None:
                raise error
            self._sleep(delay)
