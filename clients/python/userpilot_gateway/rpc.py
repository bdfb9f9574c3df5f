"""The google.rpc message classes this package decodes error details with.

When googleapis-common-protos is installed, its modules (google.rpc.status_pb2 and
error_details_pb2): the details a caller gets are then instances of the classes the rest of
its code uses. Otherwise, classes built in a private descriptor pool from google_rpc.desc (a
descriptor set of google/rpc/status.proto and error_details.proto, made with protoc when the
package is built). The private pool never registers google/rpc/*.proto in protobuf's default
pool, so googleapis-common-protos imported later (or by another library) does not collide with
it, as copies of its modules generated into this package would.

SOURCE says which: "googleapis-common-protos" or "private".
"""

from __future__ import annotations

import importlib.resources
from typing import Any, Callable, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def _googleapis() -> Tuple[Any, ...]:
    from google.rpc import error_details_pb2, status_pb2

    return (status_pb2.Status, error_details_pb2.BadRequest, error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo, error_details_pb2.QuotaFailure)


def _private() -> Tuple[Any, ...]:
    data = importlib.resources.files(__package__).joinpath("google_rpc.desc").read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file)
    # protobuf >= 4.24 has GetMessageClass; older ones a MessageFactory.
    get_class: Callable[[Any], Any]
    if hasattr(message_factory, "GetMessageClass"):
        get_class = message_factory.GetMessageClass
    else:
        get_class = message_factory.MessageFactory(pool).GetPrototype
    return tuple(get_class(pool.FindMessageTypeByName(f"google.rpc.{name}"))
                 for name in ("Status", "BadRequest", "ErrorInfo", "RetryInfo", "QuotaFailure"))


try:
    Status, BadRequest, ErrorInfo, RetryInfo, QuotaFailure = _googleapis()
    SOURCE = "googleapis-common-protos"
except ImportError:
    Status, BadRequest, ErrorInfo, RetryInfo, QuotaFailure = _private()
    SOURCE = "private"
