"""Errors of userpilot-gateway calls, with their google.rpc details decoded.

The gateway sends a google.rpc.Status in the `grpc-status-details-bin` trailer. ErrorDetails
decodes it from any grpc.RpcError (or a GatewayError), without the grpcio-status package:

    details = ErrorDetails.from_rpc_error(rpc_error)
    details.bad_request.field_violations   # google.rpc.BadRequest, or None
    details.error_info.reason              # google.rpc.ErrorInfo, or None
    details.retry_delay                    # seconds (float) from google.rpc.RetryInfo, or None
"""

import grpc
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "userpilot-gateway"  # ErrorInfo.domain of every error the gateway describes
_DETAILS_KEY = "grpc-status-details-bin"


class ErrorDetails:
    """The google.rpc details of a failed call; every attribute is None when absent."""

    def __init__(self, bad_request=None, error_info=None, retry_info=None, quota_failure=None):
        self.bad_request = bad_request      # google.rpc.BadRequest
        self.error_info = error_info        # google.rpc.ErrorInfo
        self.retry_info = retry_info        # google.rpc.RetryInfo
        self.quota_failure = quota_failure  # google.rpc.QuotaFailure

    @classmethod
    def from_trailing_metadata(cls, trailing_metadata):
        details = cls()
        for key, value in trailing_metadata or ():
            if key != _DETAILS_KEY:
                continue
            status = status_pb2.Status.FromString(value)
            for any_detail in status.details:
                for attr, message_class in (("bad_request", error_details_pb2.BadRequest),
                                            ("error_info", error_details_pb2.ErrorInfo),
                                            ("retry_info", error_details_pb2.RetryInfo),
                                            ("quota_failure", error_details_pb2.QuotaFailure)):
                    if any_detail.Is(message_class.DESCRIPTOR):
                        message = message_class()
                        any_detail.Unpack(message)
                        setattr(details, attr, message)
        return details

    @classmethod
    def from_rpc_error(cls, error):
        """Decodes the details of a grpc.RpcError (empty when it carries none)."""
        trailing = getattr(error, "trailing_metadata", None)
        return cls.from_trailing_metadata(trailing() if callable(trailing) else None)

    @property
    def reason(self):
        """ErrorInfo.reason, e.g. "UPSTREAM_RATE_LIMITED", or None."""
        return self.error_info.reason if self.error_info is not None else None

    @property
    def metadata(self):
        """ErrorInfo.metadata as a dict ({} without an ErrorInfo)."""
        return dict(self.error_info.metadata) if self.error_info is not None else {}

    @property
    def retry_delay(self):
        """RetryInfo.retry_delay in seconds (float), or None."""
        if self.retry_info is None or not self.retry_info.HasField("retry_delay"):
            return None
        return self.retry_info.retry_delay.seconds + self.retry_info.retry_delay.nanos / 1e9

    @property
    def request_may_have_been_sent(self):
        """False only when the gateway says the request certainly never reached Userpilot."""
        return self.metadata.get("request_may_have_been_sent") != "false"

    @property
    def field_violations(self):
        """BadRequest violations as (field, description) pairs ([] without a BadRequest)."""
        if self.bad_request is None:
            return []
        return [(v.field, v.description) for v in self.bad_request.field_violations]


class GatewayError(Exception):
    """A call that failed: the gRPC code and message, the decoded details, the attempts made.

    `cause` is the grpc.RpcError of the last attempt.
    """

    def __init__(self, code, message, details=None, attempts=1, cause=None):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = details or ErrorDetails()
        self.attempts = attempts
        self.cause = cause

    @classmethod
    def from_rpc_error(cls, error, attempts=1):
        code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
        message = error.details() if callable(getattr(error, "details", None)) else str(error)
        return cls(code, message or "", ErrorDetails.from_rpc_error(error), attempts, error)

    # Shortcuts to the details.
    @property
    def reason(self):
        return self.details.reason

    @property
    def retry_delay(self):
        return self.details.retry_delay

    @property
    def field_violations(self):
        return self.details.field_violations

    def describe(self):
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
