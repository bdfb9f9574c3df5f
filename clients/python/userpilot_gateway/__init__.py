"""userpilot_gateway: the Python client of userpilot-gateway.

    import userpilot_gateway as upg
    client = upg.Client("localhost:50051", caller="billing")
    client.identify_user("u-1", {"plan": "pro"})

`pb` is the generated module of userpilot.gateway.v1 (messages and enums), generated from
proto/ at build time (see README.md).
"""

from userpilot.gateway.v1 import gateway_pb2 as pb

from .client import Client, Deadlines, RetryPolicy, retry_delay, to_struct
from .errors import DOMAIN, ErrorDetails, GatewayError

__all__ = ["Client", "Deadlines", "RetryPolicy", "ErrorDetails", "GatewayError", "DOMAIN", "pb",
           "retry_delay", "to_struct"]
__version__ = "0.1.0"
