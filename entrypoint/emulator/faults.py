"""Fault injection and rate limiting for the emulator: a hostile or failing service.

Tests make the emulator misbehave the ways a real network, a broken proxy or an attacker can, and
then assert that the bootstrap fails closed (issue 3)::

    emulator.faults.inject("prod-test", Fault.FOREIGN_KEY)          # every answer, from now on
    emulator.faults.inject("prod-test", Fault.CLOSE_MID_RESPONSE, times=1)   # the next one only
    emulator.faults.inject_endpoint(Endpoint.CONTAINER_CREDENTIALS, Fault.NEGATIVE_CHUNK)
    emulator.faults.rate_limit(rate=20, burst=5)                     # ThrottlingException above it

A fault replaces a *successful* RegisterUsage answer: the product's ``throttle`` and
``server_errors`` countdowns still come first, so ``throttle=2`` plus a fault is "the fault after
two retries". The same plans, keyed by ``ProductSKU``, replace a successful License Manager
CheckoutLicense answer (a contract product's start), except the faults that re-sign a token,
which only a RegisterUsage answer has. On the platform's endpoints (`Endpoint`: ECS task
metadata, container credentials, IMDS, the emulator's STS) a fault replaces whatever the endpoint
would have answered, with the faults that do not need a signed token (a body, a flood, a broken
transport). The rate limiter is a token bucket in front of every operation: a request that finds
no token is answered ThrottlingException (HTTP 400), as AWS throttles (License Manager:
RateLimitExceededException), and takes no token.

Every answer, faulty or not, is recorded like any other call; a fault's record has
``error="fault:<name>"`` and a short description of what was sent instead of the body.
"""

from __future__ import annotations

import base64
import enum
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .protocol import CONTENT_TYPE, ApiError, Reply, RequestContext
from .tokens import TokenSigner
from .wire import RawReply, flood, write_raw

__all__ = ["Endpoint", "Fault", "Faults", "RawReply", "TokenBucket", "write_raw"]


class Fault(enum.StrEnum):
    """Ways to answer RegisterUsage wrongly. The parameter each one takes is ``value``."""

    # A well-formed, signed answer that must not verify.
    FOREIGN_KEY = "foreign-key"  # signed by a key the image does not trust
    OTHER_NONCE = "other-nonce"  # a replay: signed, but for another request's nonce
    OTHER_PRODUCT = "other-product"  # claims productCode ``value`` (default prod-other)
    OTHER_VERSION = "other-version"  # claims publicKeyVersion + 1
    STALE_IAT = "stale-iat"  # iat ``value`` seconds in the past (default 10 years)
    FUTURE_IAT = "future-iat"  # iat ``value`` seconds in the future (default 1 day)
    # A complete answer that is not a RegisterUsage answer at all.
    MALFORMED_JSON = "malformed-json"  # 200, truncated JSON
    BODY = "body"  # exactly the body ``value``, with HTTP 200 or "HTTP <status> <body>"
    EMPTY_BODY = "empty-body"  # 200, no body
    HUGE_BODY = "huge-body"  # 200, a valid answer padded to ``value`` bytes (default 64 MiB)
    HUGE_CHUNKED_BODY = "huge-chunked-body"  # the same, chunked, with no Content-Length
    NEGATIVE_CHUNK = "negative-chunk"  # the same after a chunk-size line of -1, unframed
    UNDELIMITED = "undelimited"  # the same with neither length nor chunking, to the close
    GZIP = "gzip"  # the same gzip-compressed (Content-Encoding: gzip), to the close
    WRONG_CONTENT_TYPE = "wrong-content-type"  # text/html (a captive portal's, a proxy's page)
    # with HTTP status ``value`` (default 200)
    STATUS = "status"  # the genuine answer, with HTTP status ``value`` (default 202)
    UNKNOWN_4XX = "unknown-4xx"  # HTTP ``value`` (400) with an error code nobody knows
    UNKNOWN_5XX = "unknown-5xx"  # HTTP ``value`` (503) with an error code nobody knows
    # The transport failing.
    CLOSE_MID_RESPONSE = "close-mid-response"  # headers and half the body, then close
    RESET = "reset"  # the connection is closed (RST) without any answer
    SLOW = "slow"  # the answer comes ``value`` seconds late (default 30)
    TRICKLE = "trickle"  # the body comes one byte every ``value`` seconds (default 0.2)
    TRICKLE_HEADERS = "trickle-headers"  # so do the status line and headers (default 0.2)


_DEFAULTS: Mapping[Fault, float | str] = {
    Fault.OTHER_PRODUCT: "prod-other",
    Fault.STALE_IAT: 10 * 365 * 86400.0,
    Fault.FUTURE_IAT: 86400.0,
    Fault.HUGE_BODY: 64 * 1024 * 1024,
    Fault.HUGE_CHUNKED_BODY: 64 * 1024 * 1024,
    Fault.NEGATIVE_CHUNK: 64 * 1024 * 1024,
    Fault.UNDELIMITED: 64 * 1024 * 1024,
    Fault.GZIP: 64 * 1024 * 1024,
    Fault.STATUS: 202,
    Fault.UNKNOWN_4XX: 400,
    Fault.UNKNOWN_5XX: 503,
    Fault.SLOW: 30.0,
    Fault.TRICKLE: 0.2,
    Fault.TRICKLE_HEADERS: 0.2,
    Fault.WRONG_CONTENT_TYPE: 200,
}

# The framing each flood fault sends its padded answer with (`entrypoint.emulator.wire`).
_FLOODS: Mapping[Fault, str] = {
    Fault.HUGE_BODY: "length",
    Fault.HUGE_CHUNKED_BODY: "chunked",
    Fault.NEGATIVE_CHUNK: "negative-chunk",
    Fault.UNDELIMITED: "undelimited",
    Fault.GZIP: "gzip",
}
# The operations whose successful answers a plan replaces, and the member naming the product.
_PLANNED_BY: Mapping[str, str] = {"RegisterUsage": "ProductCode", "CheckoutLicense": "ProductSKU"}


class Endpoint(enum.StrEnum):
    """The platform endpoints a fault can be injected on (`entrypoint.emulator.platform`)."""

    TASK_METADATA = "task-metadata"  # GET <ECS_CONTAINER_METADATA_URI_V4>[/task]
    CONTAINER_CREDENTIALS = "container-credentials"  # GET /ecs/credentials/<id>
    IMDS_TOKEN = "imds-token"  # PUT /latest/api/token  # noqa: S105 - an endpoint's name
    IMDS_CREDENTIALS = "imds-credentials"  # GET /latest/meta-data/iam/security-credentials/...
    IMDS_METADATA = "imds-metadata"  # GET /latest/meta-data/placement/...
    STS = "sts"  # POST /sts/ AssumeRoleWithWebIdentity


_CAPTIVE_PORTAL = (
    b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
    b"<body><h1>Welcome</h1><p>Accept the terms to continue.</p></body></html>"
)


# Faults that need no signed token, so a platform endpoint can answer with them.
ENDPOINT_FAULTS = frozenset(
    {
        Fault.MALFORMED_JSON,
        Fault.BODY,
        Fault.EMPTY_BODY,
        *_FLOODS,
        Fault.WRONG_CONTENT_TYPE,
        Fault.UNKNOWN_4XX,
        Fault.UNKNOWN_5XX,
        Fault.CLOSE_MID_RESPONSE,
        Fault.RESET,
        Fault.SLOW,
        Fault.TRICKLE,
        Fault.TRICKLE_HEADERS,
    }
)


@dataclass
class _Plan:
    fault: Fault
    value: float | str
    times: int | None  # None: every answer
    after: int = 0  # answer this many requests as usual first


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up. Thread-safe; the clock is injected."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take one token if there is one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


@dataclass
class Faults:
    """The emulator's fault plans (per product code) and rate limiter. Thread-safe."""

    _plans: dict[str, list[_Plan]] = field(default_factory=dict)
    _endpoint_plans: dict[str, list[_Plan]] = field(default_factory=dict)
    _bucket: TokenBucket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- configuration -------------------------------------------------------------------------
    def inject(
        self,
        product_code: str,
        fault: Fault | str,
        *,
        times: int | None = None,
        value: float | str | None = None,
    ) -> None:
        """Answer ``product_code``'s next ``times`` successful calls (None: all) with ``fault``.

        Plans queue up: the first one with answers left is used."""
        kind = Fault(fault)
        plan = _Plan(kind, _DEFAULTS.get(kind, 0.0) if value is None else value, times)
        with self._lock:
            self._plans.setdefault(product_code, []).append(plan)

    def inject_endpoint(
        self,
        endpoint: Endpoint | str,
        fault: Fault | str,
        *,
        times: int | None = None,
        value: float | str | None = None,
        after: int = 0,
    ) -> None:
        """Answer ``times`` requests (None: all) to a platform ``endpoint`` with ``fault``, after
        answering ``after`` as usual: one of `ENDPOINT_FAULTS` (a signed-token fault has no
        meaning there)."""
        kind, where = Fault(fault), Endpoint(endpoint)
        if kind not in ENDPOINT_FAULTS:
            raise ValueError(f"{kind} is a RegisterUsage fault, not one for {where}")
        plan = _Plan(kind, _DEFAULTS.get(kind, 0.0) if value is None else value, times, after)
        with self._lock:
            self._endpoint_plans.setdefault(str(where), []).append(plan)

    def clear(self, product_code: str | None = None) -> None:
        """Forget the plans for ``product_code`` (None: every plan, the endpoints' too)."""
        with self._lock:
            if product_code is None:
                self._plans.clear()
                self._endpoint_plans.clear()
            else:
                self._plans.pop(product_code, None)

    def rate_limit(self, rate: float | None, burst: float = 1.0) -> None:
        """Throttle above ``rate`` requests a second (bursts of ``burst``); None turns it off."""
        with self._lock:
            self._bucket = None if rate is None else TokenBucket(rate, burst)

    # -- hooks the server calls ------------------------------------------------------------------
    def admit(self, ctx: RequestContext) -> None:
        """Before an operation runs: raise ThrottlingException when over the rate limit."""
        bucket = self._bucket
        if bucket is not None and ctx.access_key_id is not None and not bucket.take():
            raise ApiError("ThrottlingException", "Rate exceeded")

    def answer(
        self, ctx: RequestContext, request: Mapping[str, Any], reply: Reply, signer: TokenSigner
    ) -> Reply | RawReply:
        """After a successful operation: the answer to send instead, if a fault is planned."""
        key = _PLANNED_BY.get(ctx.operation)
        if key is None or reply.status != 200:
            return reply
        code = request.get(key)
        plan = self._take(self._plans, code) if isinstance(code, str) else None
        if plan is None:
            return reply
        if ctx.operation != "RegisterUsage":  # no token to re-sign: the transport faults only
            if plan.fault in _RESIGNED:
                return reply
            body = json.dumps(reply.body).encode()
            if plan.fault is Fault.STATUS:
                return RawReply(
                    plan.fault,
                    status=int(float(plan.value)),
                    headers=_headers(body),
                    body=body,
                )
            return _raw(plan.fault, plan.value, body)
        return _apply(plan, request, reply, signer)

    def answer_endpoint(self, endpoint: str, body: bytes, content_type: str) -> RawReply | None:
        """Before a platform endpoint answers ``body``: the answer to send instead, if any."""
        plan = self._take(self._endpoint_plans, endpoint)
        if plan is None:
            return None
        return _raw(plan.fault, plan.value, body, content_type)

    def _take(self, table: dict[str, list[_Plan]], key: str) -> _Plan | None:
        with self._lock:
            plans = table.get(key, [])
            while plans and plans[0].times == 0:
                plans.pop(0)
            if not plans:
                return None
            plan = plans[0]
            if plan.after > 0:  # this request is answered as usual
                plan.after -= 1
                return None
            if plan.times is not None:
                plan.times -= 1
            return plan


# -- what each fault sends ----------------------------------------------------------------------


def _claims(token: str) -> dict[str, Any]:
    """The payload the emulator itself signed (trusted here: it is our own token)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def _headers(body: bytes, content_type: str = CONTENT_TYPE) -> tuple[tuple[str, str], ...]:
    return (
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    )


# Faults that re-sign the emulator's own claims, changed: (claims, value) -> changes.
_RESIGNED: Mapping[Fault, Callable[[Mapping[str, Any], float | str], dict[str, Any]]] = {
    Fault.FOREIGN_KEY: lambda _claims, _value: {},
    Fault.OTHER_NONCE: lambda _claims, _value: {"nonce": secrets.token_urlsafe(32)},
    Fault.OTHER_PRODUCT: lambda _claims, value: {"productCode": str(value)},
    Fault.OTHER_VERSION: lambda claims, _value: {
        "publicKeyVersion": int(claims["publicKeyVersion"]) + 1
    },
    Fault.STALE_IAT: lambda _claims, value: {"iat": int(time.time() - float(value))},
    Fault.FUTURE_IAT: lambda _claims, value: {"iat": int(time.time() + float(value))},
}


def _apply(plan: _Plan, request: Mapping[str, Any], reply: Reply, signer: TokenSigner) -> RawReply:
    fault, value = plan.fault, plan.value
    claims = _claims(str(reply.body["Signature"]))
    if fault in _RESIGNED:
        code = str(request["ProductCode"])
        # FOREIGN_KEY signs with a key no keys directory holds; the others with the product's.
        key_name = f"{code}~foreign" if fault is Fault.FOREIGN_KEY else code
        changed = {**claims, **_RESIGNED[fault](claims, value)}
        signature = signer.sign(changed, key_name, int(request["PublicKeyVersion"]))
        body = json.dumps({**reply.body, "Signature": signature}).encode()
        return RawReply(fault, headers=_headers(body), body=body)  # recorded as the fault
    body = json.dumps(reply.body).encode()
    if fault is Fault.STATUS:  # the genuine answer, under another success status
        return RawReply(fault, status=int(float(value)), headers=_headers(body), body=body)
    return _raw(fault, value, body)


def _raw(
    fault: Fault, value: float | str, body: bytes, content_type: str = CONTENT_TYPE
) -> RawReply:
    """The bytes a non-protocol fault sends, given the answer's real ``body``."""
    if fault is Fault.MALFORMED_JSON:
        broken = body[: len(body) // 2]
        return RawReply(fault, headers=_headers(broken, content_type), body=broken)
    if fault is Fault.BODY:
        text, status = str(value), 200
        if text.startswith("HTTP "):
            status, text = int(text[5:8]), text[9:]
        given = text.encode()
        return RawReply(fault, status=status, headers=_headers(given, content_type), body=given)
    if fault is Fault.EMPTY_BODY:
        return RawReply(fault, headers=_headers(b"", content_type))
    if fault in _FLOODS:
        extra = (("x-amzn-RequestId", str(uuid.uuid4())),)
        size = int(float(value))
        return flood(fault, body, content_type, size=size, framing=_FLOODS[fault], headers=extra)
    if fault is Fault.WRONG_CONTENT_TYPE:
        page = _CAPTIVE_PORTAL
        status = int(float(value))
        return RawReply(fault, status=status, headers=_headers(page, "text/html"), body=page)
    if fault in (Fault.UNKNOWN_4XX, Fault.UNKNOWN_5XX):
        status = int(float(value))
        error = "UnknownFutureException" if status < 500 else "UnknownOutageException"
        payload = json.dumps({"__type": error, "message": "Something this client never saw"})
        headers = (*_headers(payload.encode()), ("x-amzn-ErrorType", error))
        return RawReply(fault, status=status, headers=headers, body=payload.encode())
    headers = _headers(body, content_type)
    if fault is Fault.CLOSE_MID_RESPONSE:
        return RawReply(fault, headers=headers, body=body, stop_after=len(body) // 2)
    if fault is Fault.RESET:
        return RawReply(fault, reset=True)
    if fault is Fault.SLOW:
        return RawReply(fault, headers=headers, body=body, delay=float(value))
    if fault is Fault.TRICKLE:
        return RawReply(fault, headers=headers, body=body, byte_delay=float(value))
    if fault is Fault.TRICKLE_HEADERS:
        delay = float(value)
        return RawReply(
            fault, headers=headers, body=body, byte_delay=delay, header_byte_delay=delay
        )
    raise AssertionError(f"unhandled fault {fault}")  # pragma: no cover - every member above
