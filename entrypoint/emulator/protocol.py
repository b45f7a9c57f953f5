"""The AWS JSON 1.1 protocol as the Metering service speaks it.

Requests: ``POST /`` with ``X-Amz-Target: AWSMPMeteringService.<Operation>``, a JSON object body
and a SigV4 ``Authorization`` header whose credential scope names the Region and the signing name
``aws-marketplace``. Errors: an HTTP status, ``{"__type": <code>, "message": <text>}`` and the
``x-amzn-ErrorType`` header, which is what botocore's JSON parser reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["TARGET_PREFIX", "ApiError", "Reply", "RequestContext", "parse_authorization"]

TARGET_PREFIX = "AWSMPMeteringService."
SIGNING_NAME = "aws-marketplace"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 1024 * 1024

_CREDENTIAL = re.compile(
    r"Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request"
)


class ApiError(Exception):
    """An error answer: ``code`` becomes ``__type``; 400 unless the service uses another status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


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
