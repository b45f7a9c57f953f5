"""The AWS JSON 1.1 protocol as the Metering service speaks it.

Requests: ``POST /`` with ``X-Amz-Target: AWSMPMeteringService.<Operation>``, a JSON object body
and a SigV4 ``Authorization`` header whose credential scope names the Region and the signing name
``aws-marketplace``. Errors: an HTTP status, ``{"__type": <code>, "message": <text>}`` and the
``x-amzn-ErrorType`` header; botocore reads the code from ``__type`` and drops any
``namespace#`` prefix, which AWS's front end puts on its own errors
(``com.amazon.coral.service#SerializationException``, ``com.amazon.coral.validate#...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TARGET_PREFIX", "ApiError", "Reply", "RequestContext", "parse_authorization"]

TARGET_PREFIX = "AWSMPMeteringService."
SIGNING_NAME = "aws-marketplace"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 1024 * 1024  # BatchMeterUsage: "each request must be less than 1 MB in size"

# Namespaces of the errors AWS's JSON front end (Coral) answers itself, before any operation runs.
CORAL_SERVICE = "com.amazon.coral.service"
CORAL_VALIDATE = "com.amazon.coral.validate"

_CREDENTIAL = re.compile(
    r"Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request"
)


class ApiError(Exception):
    """An error answer: ``code`` becomes ``__type``; 400 unless the service uses another status.

    ``namespace`` prefixes the wire ``__type`` (``namespace#code``); ``message`` None leaves the
    message out, as the front end does for some errors; ``message_key`` is ``message`` except
    where the shape or the front end writes ``Message``; ``extra`` holds the error shape's other
    members (RedirectException's ``Location``).
    """

    def __init__(
        self,
        code: str,
        message: str | None,
        status: int = 400,
        *,
        namespace: str | None = None,
        message_key: str = "message",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message or code)
        self.extra = dict(extra or {})
        self.code = code
        self.message = message or ""
        self.status = status
        self.namespace = namespace
        self._message = message
        self._message_key = message_key

    @property
    def wire_type(self) -> str:
        return f"{self.namespace}#{self.code}" if self.namespace else self.code

    def body(self) -> dict[str, Any]:
        """The JSON error document, exactly as sent."""
        document: dict[str, Any] = {"__type": self.wire_type, **self.extra}
        if self._message is not None:
            document[self._message_key] = self._message
        return document

    @classmethod
    def serialization(cls, message: str | None = None) -> ApiError:
        """Not JSON, not an object, or a member of the wrong type (HTTP 400)."""
        return cls(
            "SerializationException", message, namespace=CORAL_SERVICE, message_key="Message"
        )

    @classmethod
    def unknown_operation(cls) -> ApiError:
        """An ``X-Amz-Target`` the service does not have (HTTP 400, no message)."""
        return cls("UnknownOperationException", None, namespace=CORAL_SERVICE)

    @classmethod
    def validation(cls, message: str) -> ApiError:
        """Constraints of the API model broken (HTTP 400)."""
        return cls("ValidationException", message, namespace=CORAL_VALIDATE)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the emulator learned from a request's headers."""

    operation: str
    region: str | None
    service: str | None
    access_key_id: str | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Reply:
    body: dict[str, Any]
    status: int = 200


def parse_authorization(header: str | None) -> tuple[str | None, str | None, str | None]:
    """(access key id, region, service) from a SigV4 Authorization header, or Nones."""
    if not header:
        return None, None, None
    match = _CREDENTIAL.search(header)
    if match is None:
        return None, None, None
    return match.group("akid"), match.group("region"), match.group("service")
