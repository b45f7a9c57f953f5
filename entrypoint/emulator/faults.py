"""Fault injection and rate limiting for the emulator: a hostile or failing Metering service.

Tests make the emulator misbehave the ways a real network, a broken proxy or an attacker can, and
then assert that the bootstrap fails closed (issue 3)::

    emulator.faults.inject("prod-test", Fault.FOREIGN_KEY)          # every answer, from now on
    emulator.faults.inject("prod-test", Fault.CLOSE_MID_RESPONSE, times=1)   # the next one only
    emulator.faults.rate_limit(rate=20, burst=5)                     # ThrottlingException above it

A fault replaces a *successful* RegisterUsage answer: the product's ``throttle`` and
``server_errors`` countdowns still come first, so ``throttle=2`` plus a fault is "the fault after
two retries". The same plans, keyed by ``ProductSKU``, replace a successful License Manager
CheckoutLicense answer (a contract product's start), except the faults that re-sign a token,
which only a RegisterUsage answer has. The rate limiter is a token bucket in front of every
operation: a request that finds no token is answered ThrottlingException (HTTP 400), as AWS
throttles (License Manager: RateLimitExceededException), and takes no token.

Every answer, faulty or not, is recorded like any other call; a fault's record has
``error="fault:<name>"`` and a short description of what was sent instead of the body.
"""

from __future__ import annotations

import base64
import enum
import itertools
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .protocol import CONTENT_TYPE, ApiError, Reply, RequestContext
from .tokens import TokenSigner

__all__ = ["Fault", "Faults", "RawReply", "TokenBucket", "write_raw"]


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
    Fault.STATUS: 202,
    Fault.UNKNOWN_4XX: 400,
    Fault.UNKNOWN_5XX: 503,
    Fault.SLOW: 30.0,
    Fault.TRICKLE: 0.2,
    Fault.TRICKLE_HEADERS: 0.2,
    Fault.WRONG_CONTENT_TYPE: 200,
}

# The operations whose successful answers a plan replaces, and the member naming the product.
_PLANNED_BY: Mapping[str, str] = {"RegisterUsage": "ProductCode", "CheckoutLicense": "ProductSKU"}

_CAPTIVE_PORTAL = (
    b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
    b"<body><h1>Welcome</h1><p>Accept the terms to continue.</p></body></html>"
)


@dataclass
class _Plan:
    fault: Fault
    value: float | str
    times: int | None  # None: every answer


@dataclass(frozen=True, slots=True)
class RawReply:
    """An answer written byte by byte by `write_raw`, bypassing the JSON protocol."""

    fault: Fault
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    chunked: bool = False
    stop_after: int | None = None  # close the connection after this many body bytes
    reset: bool = False  # close at once, without a status line
    delay: float = 0.0  # wait this long before the status line
    byte_delay: float = 0.0  # wait this long before each body byte
    header_byte_delay: float = 0.0  # ... and before each byte of the status line and headers

    def describe(self) -> dict[str, Any]:
        """What the call record keeps instead of the body."""
        return {"fault": str(self.fault), "bytes": len(self.body)}


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

    def clear(self, product_code: str | None = None) -> None:
        with self._lock:
            if product_code is None:
                self._plans.clear()
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
        plan = self._take(code) if isinstance(code, str) else None
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
                    headers=_json_headers(body),
                    body=body,
                )
            return _raw(plan.fault, plan.value, body)
        return _apply(plan, request, reply, signer)

    def _take(self, product_code: str) -> _Plan | None:
        with self._lock:
            plans = self._plans.get(product_code, [])
            while plans and plans[0].times == 0:
                plans.pop(0)
            if not plans:
                return None
            plan = plans[0]
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


def _json_headers(body: bytes, content_type: str = CONTENT_TYPE) -> tuple[tuple[str, str], ...]:
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
        return RawReply(fault, headers=_json_headers(body), body=body)  # recorded as the fault
    body = json.dumps(reply.body).encode()
    if fault is Fault.STATUS:  # the genuine answer, under another success status
        return RawReply(fault, status=int(float(value)), headers=_json_headers(body), body=body)
    return _raw(fault, value, body)


def _raw(fault: Fault, value: float | str, body: bytes) -> RawReply:
    """The bytes a non-protocol fault sends, given the answer's real JSON ``body``."""
    if fault is Fault.MALFORMED_JSON:
        broken = body[: len(body) // 2]
        return RawReply(fault, headers=_json_headers(broken), body=broken)
    if fault is Fault.BODY:
        text, status = str(value), 200
        if text.startswith("HTTP "):
            status, text = int(text[5:8]), text[9:]
        given = text.encode()
        return RawReply(fault, status=status, headers=_json_headers(given), body=given)
    if fault is Fault.EMPTY_BODY:
        return RawReply(fault, headers=_json_headers(b""))
    if fault in (Fault.HUGE_BODY, Fault.HUGE_CHUNKED_BODY):
        return _padded(fault, int(float(value)), body)
    if fault is Fault.WRONG_CONTENT_TYPE:
        page = _CAPTIVE_PORTAL
        status = int(float(value))
        return RawReply(fault, status=status, headers=_json_headers(page, "text/html"), body=page)
    if fault in (Fault.UNKNOWN_4XX, Fault.UNKNOWN_5XX):
        status = int(float(value))
        error = "UnknownFutureException" if status < 500 else "UnknownOutageException"
        payload = json.dumps({"__type": error, "message": "Something this client never saw"})
        headers = (*_json_headers(payload.encode()), ("x-amzn-ErrorType", error))
        return RawReply(fault, status=status, headers=headers, body=payload.encode())
    if fault is Fault.CLOSE_MID_RESPONSE:
        return RawReply(fault, headers=_json_headers(body), body=body, stop_after=len(body) // 2)
    if fault is Fault.RESET:
        return RawReply(fault, reset=True)
    if fault is Fault.SLOW:
        return RawReply(fault, headers=_json_headers(body), body=body, delay=float(value))
    if fault is Fault.TRICKLE:
        return RawReply(fault, headers=_json_headers(body), body=body, byte_delay=float(value))
    if fault is Fault.TRICKLE_HEADERS:
        delay = float(value)
        return RawReply(
            fault, headers=_json_headers(body), body=body, byte_delay=delay, header_byte_delay=delay
        )
    raise AssertionError(f"unhandled fault {fault}")  # pragma: no cover - every member above


def _padded(fault: Fault, size: int, body: bytes) -> _Padded:
    """A valid answer padded to ``size`` bytes: without a cap, a client reads it all, then
    verifies it (and a container with less memory than ``size`` is killed)."""
    pad = b" " * 65536
    head, tail = body[:-1] + b', "Padding": "', b'"}'
    repeat, rest = divmod(max(0, size - len(head) - len(tail)), len(pad))
    tail = b" " * rest + tail
    chunked = fault is Fault.HUGE_CHUNKED_BODY
    headers = [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]
    if not chunked:
        headers.append(("Content-Length", str(len(head) + len(pad) * repeat + len(tail))))
    return _Padded(
        fault,
        headers=tuple(headers),
        body=pad,
        repeat=repeat,
        chunked=chunked,
        head=head,
        tail=tail,
    )


@dataclass(frozen=True, slots=True)
class _Padded(RawReply):
    """A huge body sent as ``head``, then ``body`` ``repeat`` times, then ``tail``: 64 MiB on
    the wire from 64 KiB in memory."""

    head: bytes = b""
    tail: bytes = b""
    repeat: int = 1

    def describe(self) -> dict[str, Any]:
        return {"fault": str(self.fault), "bytes": len(self.head) + len(self.body) * self.repeat}


def write_raw(handler: BaseHTTPRequestHandler, raw: RawReply) -> None:
    """Send ``raw`` on the handler's connection, then close it. A client that hangs up early
    (it timed out, or refused a flood) is expected: nothing is raised."""
    handler.close_connection = True
    try:
        if raw.delay:
            time.sleep(raw.delay)
        if raw.reset:
            # SO_LINGER 0: close sends RST, the way a crashed load balancer drops a connection.
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            handler.connection.close()
            return
        if raw.header_byte_delay:
            _trickle_head(handler, raw)
        else:
            handler.send_response(raw.status)
            for name, value in raw.headers:
                handler.send_header(name, value)
            if raw.chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            # Said, so that a client does not reuse the connection this reply closes.
            handler.send_header("Connection", "close")
            handler.end_headers()
        _write_body(handler, raw)
        handler.wfile.flush()
    except OSError:
        return  # the client is gone


def _trickle_head(handler: BaseHTTPRequestHandler, raw: RawReply) -> None:
    """The status line and headers, one byte at a time: each byte resets a per-read timeout."""
    lines = [
        f"HTTP/1.1 {raw.status} OK",
        *(f"{name}: {value}" for name, value in raw.headers),
        "Connection: close",
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    for index in range(len(head)):
        handler.wfile.write(head[index : index + 1])
        handler.wfile.flush()
        time.sleep(raw.header_byte_delay)


def _write_body(handler: BaseHTTPRequestHandler, raw: RawReply) -> None:
    out = handler.wfile
    if isinstance(raw, _Padded):
        for piece in itertools.chain(
            [raw.head], itertools.repeat(raw.body, raw.repeat), [raw.tail]
        ):
            _send(out, piece, chunked=raw.chunked)
    elif raw.stop_after is not None:
        out.write(raw.body[: raw.stop_after])
        out.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        return
    elif raw.byte_delay:
        for index in range(len(raw.body)):
            out.write(raw.body[index : index + 1])
            out.flush()
            time.sleep(raw.byte_delay)
    else:
        _send(out, raw.body, chunked=raw.chunked)
    if raw.chunked:
        out.write(b"0\r\n\r\n")


def _send(out: Any, data: bytes, *, chunked: bool) -> None:  # noqa: ANN401 - a socket file
    if not data:
        return
    if chunked:
        out.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    else:
        out.write(data)
