"""AWS Signature Version 4 for one request: pure, no I/O, clock passed in.

The algorithm of the AWS General Reference ("Create a signed AWS API request"): a canonical
request (method, URI, query, sorted lower-case headers with folded whitespace, signed header list,
payload SHA-256), a string to sign with the credential scope, and an HMAC-SHA256 chain that derives
the signing key from the secret, date, Region and service. Requests here always have path ``/``
and no query string (JSON 1.1 and form-encoded POSTs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

__all__ = ["ALGORITHM", "UNSIGNED_HEADERS", "sign"]

ALGORITHM = "AWS4-HMAC-SHA256"
# Sent but never signed: botocore's SIGNED_HEADERS_BLACKLIST (hop-by-hop and tracing headers
# that proxies add or rewrite on the way).
UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _canonical_value(value: str) -> str:
    return " ".join(value.split())


def host_header(url: str) -> str:
    """The Host value HTTP clients send for ``url``: the port only when it is not the default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def sign(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """Return ``headers`` plus Host, X-Amz-Date, X-Amz-Security-Token and Authorization.

    Every header given is signed except `UNSIGNED_HEADERS`. ``now`` must be timezone-aware.
    """
    stamp = now.astimezone(UTC)
    amz_date = stamp.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed: dict[str, str] = {"Host": host_header(url), **headers, "X-Amz-Date": amz_date}
    if session_token:
        signed["X-Amz-Security-Token"] = session_token
    canonical_headers = sorted(
        (name.lower(), _canonical_value(value))
        for name, value in signed.items()
        if name.lower() not in UNSIGNED_HEADERS
    )
    signed_names = ";".join(name for name, _ in canonical_headers)
    parts = urlsplit(url)
    canonical_request = "\n".join(
        [
            method.upper(),
            quote(parts.path or "/", safe="/~"),
            "",  # no query string
            "".join(f"{name}:{value}\n" for name, value in canonical_headers),
            signed_names,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    signed["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, "
        f"SignedHeaders={signed_names}, Signature={signature}"
    )
    return signed
