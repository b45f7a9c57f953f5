"""SigV4 checking for the emulator: the signature is recomputed with botocore's own signer.

The emulator knows the credentials it issued (its default test pair, container credentials, IMDS
role credentials) and can be given resolvers for credentials issued elsewhere (a local STS such as
moto's, for IRSA tests). A request passes only if its signature, recomputed over the headers it
says it signed, matches in constant time; otherwise it gets the error AWS gives for that fault,
with HTTP 400 as AWS's JSON front end answers them (aws/aws-sdk-go#1033 shows the live Metering
endpoint answering InvalidSignatureException with "status code: 400"; DynamoDB's, the same front
end, answers MissingAuthenticationTokenException and UnrecognizedClientException with 400 too):

* no Authorization header: MissingAuthenticationTokenException ("Missing Authentication Token")
* an Authorization header that is not SigV4: IncompleteSignatureException
* an unknown access key or a wrong/missing session token: UnrecognizedClientException
  ("The security token included in the request is invalid.")
* a scope for another service, a date more than 5 minutes off, or a signature that does not
  match: InvalidSignatureException
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .protocol import SIGNING_NAME, ApiError

__all__ = [
    "CredentialResolver",
    "Principal",
    "SignedRequest",
    "verify_request",
]

# AWS refuses requests whose X-Amz-Date is more than 5 minutes from its clock.
MAX_CLOCK_SKEW = timedelta(minutes=5)

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+"
    r"Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;_.-]+),\s*Signature=(?P<sig>[0-9a-f]{64})"
)
_INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105 - a message


@dataclass(frozen=True, slots=True)
class Principal:
    """Credentials the emulator accepts, and who they belong to.

    ``allowed`` is whether the principal's policy grants ``aws-marketplace:*`` actions; a
    principal without it gets AccessDeniedException, as a task role missing the policy would.
    """

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    arn: str = "arn:aws:iam::111122223333:user/emulator"
    allowed: bool = True

    def __repr__(self) -> str:
        return f"Principal({self.arn}, access_key_id={self.access_key_id[:4]}…)"


CredentialResolver = Callable[[str], Principal | None]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    method: str
    host: str
    path: str  # with the query string, as sent
    headers: Mapping[str, str]  # lower-cased names
    body: bytes


def _parse_amz_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ApiError(
            "IncompleteSignatureException", "X-Amz-Date is missing or malformed"
        ) from None


def _exact_signer_class() -> type[Any]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import HTTPHeaders

    class ExactHeadersSigV4(SigV4Auth):
        """botocore's signer, signing exactly the headers the request lists as signed (as AWS
        does), not botocore's own choice of headers: a client may sign User-Agent."""

        def headers_to_sign(self, request: Any) -> Any:  # noqa: ANN401 - botocore's types
            headers = HTTPHeaders()
            for name, value in request.headers.items():
                headers[name.lower()] = value
            return headers

    return ExactHeadersSigV4


def _ExactHeadersSigV4(*args: Any) -> Any:  # noqa: N802, ANN401 - a class made on first use
    return _exact_signer_class()(*args)


def verify_request(
    request: SignedRequest,
    resolve: CredentialResolver,
    *,
    now: datetime | None = None,
    signing_name: str = SIGNING_NAME,
) -> tuple[Principal, str]:
    """Check ``request``'s SigV4 signature for the service ``signing_name``; return the
    principal and the signed region."""
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    header = request.headers.get("authorization")
    if not header:
        raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.fullmatch(header.strip())
    if match is None:
        raise ApiError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            "parameters of AWS4-HMAC-SHA256",
        )
    if match.group("service") != signing_name:
        raise ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{signing_name}'.",
        )
    amz_date = request.headers.get("x-amz-date", "")
    signed_at = _parse_amz_date(amz_date)
    if amz_date[:8] != match.group("date"):
        raise ApiError(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from X-Amz-Date",
        )
    current = now or datetime.now(UTC)
    if abs(current - signed_at) > MAX_CLOCK_SKEW:
        raise ApiError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{(current - MAX_CLOCK_SKEW).strftime('%Y%m%dT%H%M%SZ')}",
        )
    principal = resolve(match.group("akid"))
    if principal is None:
        raise ApiError("UnrecognizedClientException", _INVALID_TOKEN)
    token = request.headers.get("x-amz-security-token")
    if principal.session_token is not None and not hmac.compare_digest(
        (token or "").encode(), principal.session_token.encode()
    ):
        raise ApiError("UnrecognizedClientException", _INVALID_TOKEN)

    signed_names = match.group("signed").split(";")
    missing = [name for name in signed_names if name not in request.headers and name != "host"]
    if missing:
        raise ApiError(
            "InvalidSignatureException", f"Signed header {missing[0]!r} is not in the request"
        )
    headers = {name: request.headers.get(name, request.host) for name in signed_names}
    rebuilt = AWSRequest(
        method=request.method,
        url=f"http://{request.host}{request.path}",
        data=request.body,
        headers=headers,
    )
    rebuilt.context["timestamp"] = amz_date
    region = match.group("region")
    signer = _ExactHeadersSigV4(
        Credentials(principal.access_key_id, principal.secret_access_key, token),
        signing_name,
        region,
    )
    canonical = signer.canonical_request(rebuilt)
    expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
    if not hmac.compare_digest(expected.encode(), match.group("sig").encode()):
        raise ApiError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    return principal, region
