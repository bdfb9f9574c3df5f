"""A scripted in-process userpilot-gateway for the Python client's tests (and userpilotctl's
TLS test): each RPC answers with the next scripted failure (success when none is left), each
watch plays the next scripted stream, and every call is recorded (method, x-caller,
authorization, the client certificate's identity, seconds left until the deadline, all the
metadata).

    server = ScriptedServer()                       # plaintext on 127.0.0.1, a free port
    server = ScriptedServer(grpc.ssl_server_credentials(...))   # TLS
    server.servicer.fail("IdentifyUser", grpc.StatusCode.UNAVAILABLE)
    ... server.target ...
    server.stop()
"""

import collections
import threading
from concurrent import futures

import grpc
from userpilot.gateway.v1 import gateway_pb2 as pb
from userpilot.gateway.v1 import gateway_pb2_grpc

import userpilot_gateway as upg

Seen = collections.namedtuple(
    "Seen", "method caller authorization identity time_remaining metadata")


def details_trailer(code, message, *details):
    status = upg.rpc.Status(code=code.value[0], message=message)
    for d in details:
        status.details.add().Pack(d)
    return ("grpc-status-details-bin", status.SerializeToString())


def error_info(reason, may_have_been_sent=None):
    info = upg.rpc.ErrorInfo(reason=reason, domain=upg.DOMAIN)
    if may_have_been_sent is not None:
        info.metadata["request_may_have_been_sent"] = may_have_been_sent
    return info


def retry_info(seconds):
    info = upg.rpc.RetryInfo()
    info.retry_delay.seconds = int(seconds)
    info.retry_delay.nanos = int(round((seconds % 1) * 1e9))
    return info


def job(status, elapsed):
    return pb.Job(job_id="bulk:jobs:1", status=status, elapsed_time=elapsed)


class Scripted(gateway_pb2_grpc.UserpilotGatewayServicer):
    """Answers each RPC with the next scripted failure (success when none is left)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.script = collections.defaultdict(collections.deque)
        self.watches = collections.deque()
        self.seen = []      # Seen
        self.imported = []

    def fail(self, method, code, message="scripted", *details):
        self.script[method].append((code, message, details))

    def _answer(self, method, context, response):
        metadata = dict(context.invocation_metadata())
        identity = b",".join(context.peer_identities() or []).decode()
        with self.lock:
            self.seen.append(Seen(method, metadata.get("x-caller"), metadata.get("authorization"),
                                  identity, context.time_remaining(), metadata))
            scripted = self.script[method].popleft() if self.script[method] else None
        if scripted is None:
            return response
        code, message, details = scripted
        if details:
            context.set_trailing_metadata([details_trailer(code, message, *details)])
        context.abort(code, message)

    def calls(self, method):
        with self.lock:
            return sum(1 for s in self.seen if s.method == method)

    def IdentifyUser(self, request, context):
        return self._answer("IdentifyUser", context, pb.IdentifyUserResponse(upstream_request_id="r1"))

    def IdentifyCompany(self, request, context):
        return self._answer("IdentifyCompany", context,
                            pb.IdentifyCompanyResponse(upstream_request_id="rc"))

    def TrackEvent(self, request, context):
        return self._answer("TrackEvent", context, pb.TrackEventResponse(upstream_request_id="r2"))

    def BulkIdentifyUsers(self, request, context):
        return self._answer("BulkIdentifyUsers", context,
                            pb.Job(job_id="bulk:jobs:1", total_rows=len(request.users)))

    def BulkIdentifyCompanies(self, request, context):
        return self._answer("BulkIdentifyCompanies", context,
                            pb.Job(job_id="bulk:jobs:2", total_rows=len(request.companies)))

    def GetJob(self, request, context):
        return self._answer("GetJob", context, pb.Job(job_id=request.job_id))

    def ListJobs(self, request, context):
        return self._answer("ListJobs", context, pb.ListJobsResponse(jobs=[pb.Job(job_id="a")]))

    def DeleteUsers(self, request, context):
        return self._answer("DeleteUsers", context, pb.DeleteUsersResponse(upstream_request_id="d"))

    def WatchJob(self, request, context):
        self._answer("WatchJob", context, None)
        with self.lock:
            jobs, end = self.watches.popleft()
        for state in jobs:
            yield state
        if end is not None:
            context.abort(end, "scripted end")

    def ImportData(self, request_iterator, context):
        self._answer("ImportData", context, None)
        messages = list(request_iterator)
        with self.lock:
            self.imported.extend(messages)
        return pb.Job(job_id="import:jobs:1")


class ScriptedServer:
    """A Scripted servicer served on 127.0.0.1 at a free port, over `credentials` (plaintext
    when None)."""

    def __init__(self, credentials=None):
        self.servicer = Scripted()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        gateway_pb2_grpc.add_UserpilotGatewayServicer_to_server(self.servicer, self.server)
        if credentials is None:
            port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            port = self.server.add_secure_port("127.0.0.1:0", credentials)
        if port == 0:
            raise RuntimeError("cannot listen on 127.0.0.1")
        self.server.start()
        self.target = f"127.0.0.1:{port}"

    def stop(self):
        self.server.stop(None)
