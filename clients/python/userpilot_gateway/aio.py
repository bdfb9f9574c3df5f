"""userpilot_gateway.AsyncClient: the grpc.aio client of userpilot-gateway.

The same methods, options and rules as the synchronous Client (deadlines per kind of RPC,
x-caller, TLS and bearer tokens, retries by the contract's idempotency levels, GatewayError
with decoded details, reconnecting watches), as coroutines and async iterators for asyncio
services:

    async with upg.AsyncClient(target, caller="billing") as client:
        await client.identify_user("u-1", {"plan": "pro"})
        async for job in client.watch_job(job_id):
            ...

Create it inside the event loop that uses it (grpc.aio channels belong to one loop). Safe to
use from many tasks of that loop at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import (Any, AsyncIterator, Awaitable, Callable, List, Mapping, Optional, Sequence,
                    Tuple, Type, TypeVar, Union)

import grpc
import grpc.aio
from google.protobuf import message as protobuf_message
from userpilot.gateway.v1 import gateway_pb2 as pb
from userpilot.gateway.v1 import gateway_pb2_grpc

from . import _common
from ._common import Deadlines, Metadata, RetryPolicy, TlsOptions, Upload
from .client import Properties
from .errors import GatewayError

T = TypeVar("T")


class AsyncClient:
    """A grpc.aio client of one gateway target; the arguments are the sync Client's, except
    `sleep`, a coroutine function (default asyncio.sleep), and `channel`, a grpc.aio.Channel."""

    def __init__(self, target: str = "localhost:50051", caller: Optional[str] = None, *,
                 deadlines: Deadlines = Deadlines(), retry: RetryPolicy = RetryPolicy(),
                 tls: Optional[TlsOptions] = None, bearer_token: Optional[str] = None,
                 token_over_plaintext: bool = False,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 channel: Optional[grpc.aio.Channel] = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 channel_options: Sequence[Tuple[str, Any]] = ()) -> None:
        self._connection = _common.Connection(caller, tls, bearer_token, token_over_plaintext,
                                              channel_options)
        options = self._connection.channel_options
        credentials = credentials or self._connection.channel_credentials()
        self._owns_channel = channel is None
        if channel is not None:
            self._channel = channel
        elif credentials is not None:
            self._channel = grpc.aio.secure_channel(target, credentials, options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options)
            self._connection.plaintext = True
        self._stub = gateway_pb2_grpc.UserpilotGatewayStub(self._channel)
        self.caller = caller
        self.deadlines = deadlines
        self.retry = retry
        self._sleep = sleep
        self._jitter = _common.Jitter()

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- the RPCs (see Client for what each does) ----------------------------------------

    async def identify_user(self, user_id: str, metadata: Properties = None,
                            company: Union[None, pb.Company, Mapping[str, Any]] = None, *,
                            timeout: Optional[float] = None, max_attempts: Optional[int] = None,
                            call_metadata: Metadata = ()) -> pb.IdentifyUserResponse:
        request = pb.IdentifyUserRequest(user_id=user_id, metadata=_common.to_struct(metadata),
                                         company=_common.company(company))
        return await self._unary("IdentifyUser", request, pb.IdentifyUserResponse, timeout,
                                 max_attempts, call_metadata)

    async def identify_company(self, company_id: str, metadata: Properties = None, *,
                               timeout: Optional[float] = None,
                               max_attempts: Optional[int] = None,
                               call_metadata: Metadata = ()) -> pb.IdentifyCompanyResponse:
        request = pb.IdentifyCompanyRequest(company_id=company_id,
                                            metadata=_common.to_struct(metadata))
        return await self._unary("IdentifyCompany", request, pb.IdentifyCompanyResponse,
                                 timeout, max_attempts, call_metadata)

    async def bulk_identify_users(self, users: Sequence[Union[pb.BulkUser, Mapping[str, Any]]],
                                  *, timeout: Optional[float] = None,
                                  max_attempts: Optional[int] = None,
                                  call_metadata: Metadata = ()) -> pb.Job:
        request = pb.BulkIdentifyUsersRequest(users=_common.bulk_users(users))
        return await self._unary("BulkIdentifyUsers", request, pb.Job, timeout, max_attempts,
                                 call_metadata)

    async def bulk_identify_companies(
            self, companies: Sequence[Union[pb.BulkCompany, Mapping[str, Any]]], *,
            timeout: Optional[float] = None, max_attempts: Optional[int] = None,
            call_metadata: Metadata = ()) -> pb.Job:
        request = pb.BulkIdentifyCompaniesRequest(companies=_common.bulk_companies(companies))
        return await self._unary("BulkIdentifyCompanies", request, pb.Job, timeout,
                                 max_attempts, call_metadata)

    async def track_event(self, user_id: str, event_name: str, metadata: Properties = None, *,
                          timeout: Optional[float] = None, max_attempts: Optional[int] = None,
                          call_metadata: Metadata = ()) -> pb.TrackEventResponse:
        request = pb.TrackEventRequest(user_id=user_id, event_name=event_name,
                                       metadata=_common.to_struct(metadata))
        return await self._unary("TrackEvent", request, pb.TrackEventResponse, timeout,
                                 max_attempts, call_metadata)

    async def list_jobs(self, *, timeout: Optional[float] = None,
                        max_attempts: Optional[int] = None,
                        call_metadata: Metadata = ()) -> List[pb.Job]:
        response = await self._unary("ListJobs", pb.ListJobsRequest(), pb.ListJobsResponse,
                                     timeout, max_attempts, call_metadata)
        return list(response.jobs)

    async def get_job(self, job_id: str, *, timeout: Optional[float] = None,
                      max_attempts: Optional[int] = None,
                      call_metadata: Metadata = ()) -> pb.Job:
        return await self._unary("GetJob", pb.GetJobRequest(job_id=job_id), pb.Job, timeout,
                                 max_attempts, call_metadata)

    async def delete_users(self, user_ids: Sequence[str], *, timeout: Optional[float] = None,
                           max_attempts: Optional[int] = None,
                           call_metadata: Metadata = ()) -> pb.DeleteUsersResponse:
        return await self._unary("DeleteUsers", pb.DeleteUsersRequest(user_ids=list(user_ids)),
                                 pb.DeleteUsersResponse, timeout, max_attempts, call_metadata)

    async def delete_companies(self, company_ids: Sequence[str], *,
                               timeout: Optional[float] = None,
                               max_attempts: Optional[int] = None,
                               call_metadata: Metadata = ()) -> pb.DeleteCompaniesResponse:
        return await self._unary("DeleteCompanies",
                                 pb.DeleteCompaniesRequest(company_ids=list(company_ids)),
                                 pb.DeleteCompaniesResponse, timeout, max_attempts,
                                 call_metadata)

    async def call(self, method: str, request: protobuf_message.Message, *,
                   timeout: Optional[float] = None, max_attempts: Optional[int] = None,
                   call_metadata: Metadata = ()) -> protobuf_message.Message:
        return await self._unary(method, request, protobuf_message.Message, timeout,
                                 max_attempts, call_metadata)

    def watch_job(self, job_id: str, *, timeout: Optional[float] = None,
                  max_attempts: Optional[int] = None,
                  call_metadata: Metadata = ()) -> AsyncIterator[pb.Job]:
        """An async iterator of the job's states; see Client.watch_job. Closing it (aclose(),
        or leaving `async for`) cancels the watch."""
        return self._watch("WatchJob", pb.WatchJobRequest(job_id=job_id), timeout, max_attempts,
                           call_metadata, dedupe=True)

    def watch_jobs(self, include_existing: bool = False, *, timeout: Optional[float] = None,
                   max_attempts: Optional[int] = None,
                   call_metadata: Metadata = ()) -> AsyncIterator[pb.Job]:
        return self._watch("WatchJobs", pb.WatchJobsRequest(include_existing=include_existing),
                           timeout, max_attempts, call_metadata, dedupe=False)

    async def import_data(self, target: "pb.ImportTarget", file: Upload, *,
                          format: "pb.ImportFormat" = pb.IMPORT_FORMAT_NDJSON,
                          filename: str = "", wait_for_running_job: bool = False,
                          size_bytes: Optional[int] = None, chunk_size: int = 256 * 1024,
                          timeout: Optional[float] = None,
                          call_metadata: Metadata = ()) -> pb.Job:
        """See Client.import_data. A file object is read on the event loop's thread, one chunk
        at a time as the stream sends."""
        self._connection.check()
        header = _common.import_header(target, file, format, filename, wait_for_running_job,
                                       size_bytes)
        policy = _common.method_policy(_common.find_method("ImportData"), self.deadlines)
        try:
            job: pb.Job = await self._stub.ImportData(
                _common.import_messages(header, file, chunk_size),
                timeout=timeout if timeout is not None else policy.deadline,
                metadata=self._connection.metadata(call_metadata),
                credentials=self._connection.call_credentials)
            return job
        except grpc.RpcError as e:
            raise GatewayError.from_rpc_error(e) from None

    # ---- internals -------------------------------------------------------------------------

    async def _unary(self, method: str, request: protobuf_message.Message,
                     response_type: Type[T], timeout: Optional[float],
                     max_attempts: Optional[int], call_metadata: Metadata) -> T:
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
                response: T = await rpc(request, timeout=max(0.0, deadline - time.monotonic()),
                                 metadata=self._connection.metadata(call_metadata),
                                 credentials=self._connection.call_credentials)
                return response
            except grpc.RpcError as e:
                error = GatewayError.from_rpc_error(e, attempt)
            delay = retrier.delay_after(error, attempt)
            if delay is None:
                raise error
            await self._sleep(delay)

    async def _watch(self, method: str, request: protobuf_message.Message,
                     timeout: Optional[float], max_attempts: Optional[int],
                     call_metadata: Metadata, dedupe: bool) -> AsyncIterator[pb.Job]:
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
                async for job in call:
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
            await self._sleep(delay)
