"""Errors of userpilot-gateway calls, with their google.rpc details decoded.

The gateway sends a google.rpc.Status in the `grpc-status-details-bin` trailer. ErrorDetails
decodes it from any grpc.RpcError (sync or grpc.aio) or GatewayError:

    details = ErrorDetails.from_rpc_error(rpc_error)
    details.bad_request.field_violations   # google.rpc.BadRequest, or None
    details.error_info.reason              # google.rpc.ErrorInfo, or None
    details.retry_delay                    # seconds (float) from google.rpc.RetryInfo, or None

The google.rpc classes are googleapis-common-protos' when it is installed, else private ones
that never collide with it (userpilot_gateway.rpc, whose SOURCE says which).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import grpc
from google.protobuf.message import DecodeError

from . import rpc

DOMAIN = "userpilot-gateway"  # ErrorInfo.domain of every error the gateway describes
_DETAILS_KEY = "grpc-status-details-bin"

# A google.rpc message (the classes are made at run time, see rpc.py).
RpcMessage = Any


class ErrorDetails:
    """The google.rpc details of a failed call; each attribute is None when absent, and `all`
    holds every detail (google.protobuf.Any) in the order the server sent them."""

    def __init__(self, bad_request: Optional[RpcMessage] = None,
                 error_info: Optional[RpcMessage] = None,
                 retry_info: Optional[RpcMessage] = None,
                 quota_failure: Optional[RpcMessage] = None,
                 all: Optional[List[Any]] = None) -> None:
        self.bad_request = bad_request      # google.rpc.BadRequest
        self.error_info = error_info        # google.rpc.ErrorInfo
        self.retry_info = retry_info        # google.rpc.RetryInfo
        self.quota_failure = quota_failure  # google.rpc.QuotaFailure
        self.all: List[Any] = all or []     # every detail, as google.protobuf.Any

    @classmethod
    def from_trailing_metadata(
            cls, trailing_metadata: Optional[Iterable[Tuple[str, Union[str, bytes]]]]
    ) -> "ErrorDetails":
        """Decodes the grpc-status-details-bin entry of `trailing_metadata` (empty details when
        there is none, or when it is not a google.rpc.Status)."""
        details = cls()
        for key, value in trailing_metadata or ():
            if key != _DETAILS_KEY or not isinstance(value, bytes):
                continue
            try:
                status = rpc.Status.FromString(value)
            except DecodeError:  # not what the gateway sends
                return cls()
            details.all = list(status.details)
            for any_detail in status.details:
                for attr, message_class in (("bad_request", rpc.BadRequest),
                                            ("error_info", rpc.ErrorInfo),
                                            ("retry_info", rpc.RetryInfo),
                                            ("quota_failure", rpc.QuotaFailure)):
                    if any_detail.Is(message_class.DESCRIPTOR):
                        message = message_class()
                        any_detail.Unpack(message)
                        setattr(details, attr, message)
        return details

    @classmethod
    def from_rpc_error(cls, error: BaseException) -> "ErrorDetails":
        """Decodes the details of a grpc.RpcError (empty when it carries none)."""
        trailing = getattr(error, "trailing_metadata", None)
        return cls.from_trailing_metadata(trailing() if callable(trailing) else None)

    @property
    def reason(self) -> Optional[str]:
        """ErrorInfo.reason, e.g. "UPSTREAM_RATE_LIMITED", or None."""
        return self.error_info.reason if self.error_info is not None else None

    @property
    def metadata(self) -> Dict[str, str]:
        """ErrorInfo.metadata as a dict ({} without an ErrorInfo)."""
        return dict(self.error_info.metadata) if self.error_info is not None else {}

    @property
    def retry_delay(self) -> Optional[float]:
        """RetryInfo.retry_delay in seconds (float), or None."""
        if self.retry_info is None or not self.retry_info.HasField("retry_delay"):
            return None
        delay = self.retry_info.retry_delay
        return float(delay.seconds + delay.nanos / 1e9)

    @property
    def request_may_have_been_sent(self) -> bool:
        """False only when the gateway says the request certainly never reached Userpilot."""
        return self.metadata.get("request_may_have_been_sent") != "false"

    @property
    def field_violations(self) -> List[Tuple[str, str]]:
        """BadRequest violations as (field, description) pairs ([] without a BadRequest)."""
        if self.bad_request is None:
            return []
        return [(v.field, v.description) for v in self.bad_request.field_violations]


class GatewayError(Exception):
    """A call that failed: the gRPC code and message, the decoded details, the attempts made.

    `cause` is the grpc.RpcError of the last attempt (None for errors made here).
    """

    def __init__(self, code: grpc.StatusCode, message: str,
                 details: Optional[ErrorDetails] = None, attempts: int = 1,
                 cause: Optional[BaseException] = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = details or ErrorDetails()
        self.attempts = attempts
        self.cause = cause

    @classmethod
    def from_rpc_error(cls, error: BaseException, attempts: int = 1) -> "GatewayError":
        code_of = getattr(error, "code", None)
        code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
        message_of = getattr(error, "details", None)
        message = message_of() if callable(message_of) else str(error)
        return cls(code, message or "", ErrorDetails.from_rpc_error(error), attempts, error)

    # Shortcuts to the details.
    @property
    def reason(self) -> Optional[str]:
        return self.details.reason

    @property
    def retry_delay(self) -> Optional[float]:
        return self.details.retry_delay

    @property
    def field_violations(self) -> List[Tuple[str, str]]:
        return self.details.field_violations

    def describe(self) -> str:
        """One line for logs: code, message, reason, key metadata, retry delay, violations."""
        parts = []
        if self.details.error_info is not None:
            parts.append(f"reason={self.details.reason}")
            for key in ("endpoint", "http_status", "upstream_request_id",
                        "request_may_have_been_sent"):
                if key in self.details.metadata:
                    parts.append(f"{key}={self.details.metadata[key]}")
        if self.retry_delay is not None:
            parts.append(f"retry_delay={self.retry_delay:g}s")
        parts.extend(f"{{{field}: {why}}}" for field, why in self.field_violations)
        suffix = f" [{' '.join(parts)}]" if parts else ""
        return f"{self.code.name}: {self.message}{suffix}"
