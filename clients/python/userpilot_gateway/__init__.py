"""userpilot_gateway: the Python client of userpilot-gateway.

    import userpilot_gateway as upg
    with upg.Client("localhost:50051", caller="billing") as client:
        client.identify_user("u-1", {"plan": "pro"})

    async with upg.AsyncClient("localhost:50051", caller="billing") as client:   # grpc.aio
        await client.identify_user("u-1", {"plan": "pro"})

`pb` is the generated module of userpilot.gateway.v1 (messages and enums); `rpc` holds the
google.rpc classes error details are decoded into (googleapis-common-protos' when installed).
"""

from userpilot.gateway.v1 import gateway_pb2 as pb

from . import rpc
from ._version import __version__
from ._common import (Deadlines, MethodPolicy, RetryPolicy, TlsOptions, check_bearer_token,
                      method_policy, read_bearer_token, retry_delay, to_struct)
from .aio import AsyncClient
from .client import Client
from .errors import DOMAIN, ErrorDetails, GatewayError

__all__ = ["__version__", "AsyncClient", "Client", "DOMAIN", "Deadlines", "ErrorDetails",
           "GatewayError", "MethodPolicy", "RetryPolicy", "TlsOptions", "check_bearer_token",
           "method_policy", "pb", "read_bearer_token", "retry_delay", "rpc", "to_struct"]
