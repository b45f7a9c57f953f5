"""RegisterUsage without botocore: one SigV4-signed JSON 1.1 POST, classified like botocore's.

Implements the `entrypoint.metering.MeteringClient` protocol, with the same outcomes as the
botocore client: errors are parsed as botocore's JSON parser does (``__type`` after any ``#`` or
``:``, else the HTTP status; ``message`` or ``Message``) and classified by the same function;
transport failures carry botocore's names. Both paths cap the answer at
`entrypoint.metering.MAX_ANSWER_BYTES` and bound each attempt as a whole in time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from entrypoint._version import __version__
from entrypoint.answers import (
    MAX_ANSWER_BYTES,
    RegisterUsageAnswer,
    Transient,
    answer_from_response,
    classify_client_error,
    classify_oversized,
)
from entrypoint.credentials import CredentialSource, announce_credentials
from entrypoint.errors import ConfigurationError, VerificationError, one_line

from . import transport
from .credentials import AwsCredentials, resolve_credentials
from .sigv4 import sign

__all__ = ["MAX_ANSWER_BYTES", "LeanMeteringClient", "parse_error"]

TARGET = "AWSMPMeteringService.RegisterUsage"
SIGNING_NAME = "aws-marketplace"
_FAILED = "the workload was not started"


def parse_error(body: bytes) -> tuple[str, str]:
    """(code, message) of a JSON 1.1 error answer, as botocore's JSON parser reads them; the code
    is empty when the answer has none (the caller classifies by HTTP status)."""
    try:
        parsed: Any = json.loads(body) if body else {}
    except ValueError:
        parsed = {"message": body.decode("utf-8", "replace")}
    if not isinstance(parsed, dict):
        parsed = {}
    raw_code = parsed.get("__type")
    code = raw_code if isinstance(raw_code, str) else ""  # none: classified by its status
    if ":" in code:
        code = code.split(":", 1)[0]
    if "#" in code:
        code = code.rsplit("#", 1)[1]
    message = parsed.get("message", parsed.get("Message", ""))
    return code, message if isinstance(message, str) else json.dumps(message)


def _answer(body: bytes) -> RegisterUsageAnswer:
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise VerificationError("the RegisterUsage answer is not JSON", remedy=_FAILED) from None
    if not isinstance(parsed, dict):
        raise VerificationError("the RegisterUsage answer is not a JSON object", remedy=_FAILED)
    rotation = parsed.get("PublicKeyRotationTimestamp")
    if rotation is not None:
        if isinstance(rotation, bool) or not isinstance(rotation, int | float):
            raise VerificationError(
                f"answer's PublicKeyRotationTimestamp is {type(rotation).__name__}, "
                "not a timestamp",
                remedy=_FAILED,
            )
        if not math.isfinite(rotation):
            raise VerificationError(
                "answer's PublicKeyRotationTimestamp is not finite", remedy=_FAILED
            )
        try:
            parsed["PublicKeyRotationTimestamp"] = datetime.fromtimestamp(rotation, tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise VerificationError(
                "answer's PublicKeyRotationTimestamp is out of range", remedy=_FAILED
            ) from None
    return answer_from_response(parsed)


class LeanMeteringClient:
    """One RegisterUsage attempt per call, with the lean credential chain."""

    def __init__(
        self,
        *,
        region: str,
        endpoint: str,
        connect_timeout: float,
        read_timeout: float,
        environ: Mapping[str, str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.region = region
        self.endpoint = endpoint.rstrip("/") + "/"
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._environ = environ
        self._clock = clock
        self._credentials: AwsCredentials | None = None
        self.credential_source: CredentialSource | None = None

    def _current_credentials(self) -> AwsCredentials:
        now = self._clock()
        if self._credentials is None or not self._credentials.fresh(now):
            self._credentials = resolve_credentials(self._environ, self.region, now=now)
            if self.credential_source is None:
                self.credential_source = announce_credentials(
                    self._credentials.method, self._environ
                )
        return self._credentials

    def prepare(self) -> str:
        """Resolve credentials without calling the API; return the endpoint (for ``check``)."""
        self._current_credentials()
        return self.endpoint.rstrip("/")

    def register_usage(
        self,
        *,
        product_code: str,
        public_key_version: int,
        nonce: str,
        timeout: float | None = None,
    ) -> RegisterUsageAnswer:
        credentials = self._current_credentials()
        body = json.dumps(
            {"ProductCode": product_code, "PublicKeyVersion": public_key_version, "Nonce": nonce},
            separators=(",", ":"),
        ).encode("utf-8")
        headers = sign(
            method="POST",
            url=self.endpoint,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": TARGET,
                "User-Agent": f"marketplace-entrypoint/{__version__}",
            },
            body=body,
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
            session_token=credentials.session_token,
            region=self.region,
            service=SIGNING_NAME,
            now=self._clock(),
        )
        connect, read = self.connect_timeout, self.read_timeout
        if timeout is not None:
            connect, read = min(connect, max(timeout, 0.05)), min(read, max(timeout, 0.05))
        try:
            answer = transport.request(
                "POST",
                self.endpoint,
                headers=headers,
                body=body,
                connect_timeout=connect,
                read_timeout=read,
                max_bytes=MAX_ANSWER_BYTES,
                environ=self._environ,
            )
        except transport.TransportError as exc:
            raise Transient(exc.kind, exc.detail) from None
        except transport.TlsError as exc:
            raise ConfigurationError(
                f"TLS to the Metering endpoint failed: {exc}",
                remedy="check AWS_CA_BUNDLE, any TLS-inspecting proxy, and this host's clock",
            ) from None
        if answer.truncated:
            raise classify_oversized(answer.status, answer.size)
        if answer.status == 200:
            return _answer(answer.body)
        code, message = parse_error(answer.body)
        raise classify_client_error(code, answer.status, one_line(message, 300))
