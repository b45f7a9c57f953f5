"""One HTTP(S) request with the standard library: bounded in time and in what it reads.

TLS verifies the server against the same CA bundle botocore uses (``AWS_CA_BUNDLE``, else
certifi's when installed, else the ``cacert.pem`` botocore ships), with hostname checking. No
proxy is used: environments with proxy settings are left to botocore (see
`entrypoint.aws.eligibility`).

Failures are named as botocore names them, so logs and diagnoses read the same on both paths:
``EndpointConnectionError``, ``ConnectTimeoutError``, ``ReadTimeoutError``,
``ConnectionClosedError``. A TLS certificate failure is `TlsError`: a configuration problem,
not something to retry.

Time is bounded per exchange, not per receive: a socket timeout alone lets an answer that trickles
in one byte per timeout (status line, headers or body) hold a caller for ever. The connection must
open within ``connect_timeout``; then the request and the whole answer must pass within
``read_timeout``, every receive getting at most what is left of it.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit

from entrypoint.errors import one_line
from entrypoint.signals import raise_if_interrupted

__all__ = ["Response", "TlsError", "TransportError", "ca_bundle", "request"]


class TransportError(Exception):
    """The request did not get a complete answer; worth retrying. ``kind`` names the failure."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class TlsError(Exception):
    """TLS could not be established or the certificate did not verify."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    truncated: bool  # the answer was larger than the cap; ``body`` holds at most the cap
    size: str = ""  # for a truncated answer: "N bytes, by Content-Length" or "more than N bytes"


class _DeadlineReader(io.RawIOBase):
    """Receives from a socket, each receive bounded by what is left of the attempt.

    Reads through the socket's own ``makefile``, whose reference keeps the descriptor open when
    http.client closes the connection before the body is read (``Connection: close`` answers).
    """

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float) -> None:
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        self._read_timeout = read_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        raise_if_interrupted()
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the attempt ran out of time")
        self._sock.settimeout(min(self._read_timeout, left))
        count: int | None = self._raw.readinto(buffer)
        return count or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client uses of a socket (sendall, makefile, close), under an attempt deadline."""

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._read_timeout = read_timeout

    def sendall(self, data: bytes) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the attempt ran out of time")
        self._sock.settimeout(min(self._read_timeout, left))
        self._sock.sendall(data)

    def makefile(self, _mode: str, *_args: object, **_kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline, self._read_timeout))

    def close(self) -> None:
        self._sock.close()


def ca_bundle(environ: Mapping[str, str]) -> str | None:
    """The CA file botocore would use: AWS_CA_BUNDLE, certifi's, or botocore's own."""
    configured = environ.get("AWS_CA_BUNDLE", "").strip()
    if configured:
        return configured
    for package, name in (("certifi", "cacert.pem"), ("botocore", "cacert.pem")):
        spec = find_spec(package)  # locates the package without importing it
        if spec is not None and spec.origin is not None:
            candidate = Path(spec.origin).with_name(name)
            if candidate.is_file():
                return str(candidate)
    return None


_contexts: dict[str | None, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    with _contexts_lock:
        context = _contexts.get(cafile)
        if context is None:
            try:
                context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                raise TlsError(
                    f"cannot load the CA bundle {cafile}: {one_line(exc, 120)}"
                ) from None
            _contexts[cafile] = context
        return context


def _connect(
    url: str, connect_timeout: float, environ: Mapping[str, str]
) -> tuple[http.client.HTTPConnection, str, str]:
    """An open connection to ``url``'s host, the request target, and ``scheme://host`` for
    messages."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError("EndpointConnectionError", f"{one_line(url, 120)} is not http(s)")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = _tls_context(ca_bundle(environ))
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=connect_timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=connect_timeout)
    where = f"{parts.scheme}://{parts.netloc}"
    try:
        connection.connect()
    except ssl.SSLCertVerificationError as exc:
        raise TlsError(f"the certificate of {where} did not verify: {exc.verify_message}") from None
    except ssl.SSLError as exc:
        raise TlsError(f"TLS with {where} failed: {one_line(exc, 120)}") from None
    except TimeoutError:
        raise TransportError("ConnectTimeoutError", f"connecting to {where} timed out") from None
    except OSError as exc:
        raise TransportError(
            "EndpointConnectionError", f"could not connect to {where}: {exc.strerror or exc}"
        ) from None
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return connection, target, where


def _read(answer: http.client.HTTPResponse, max_bytes: int) -> tuple[bytes, bool, str]:
    """At most ``max_bytes`` of the body; an answer declared larger is not read at all."""
    length = answer.getheader("Content-Length")
    declared = int(length) if length and length.isdigit() else None
    if declared is not None and declared > max_bytes:
        return b"", True, f"{declared} bytes, by Content-Length"
    data = answer.read(max_bytes + 1)
    if len(data) > max_bytes:
        return data[:max_bytes], True, f"more than {max_bytes} bytes"
    if declared is not None and len(data) < declared:
        raise http.client.IncompleteRead(data, declared - len(data))
    return data, False, ""


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes = b"",
    connect_timeout: float,
    read_timeout: float,
    max_bytes: int,
    environ: Mapping[str, str] = os.environ,
) -> Response:
    """Connect within ``connect_timeout``, then send one request and read its answer (at most
    ``max_bytes`` of body) within ``read_timeout``."""
    connection, target, where = _connect(url, connect_timeout, environ)
    deadline = time.monotonic() + read_timeout
    try:
        if connection.sock is not None:
            connection.sock = _DeadlineSocket(connection.sock, deadline, read_timeout)
        try:
            connection.request(method, target, body=body, headers=dict(headers))
            answer = connection.getresponse()
            data, truncated, size = _read(answer, max_bytes)
        except TimeoutError:
            raise TransportError("ReadTimeoutError", f"no answer from {where} in time") from None
        except (http.client.HTTPException, OSError) as exc:
            raise TransportError(
                "ConnectionClosedError",
                f"{where} closed the connection mid-answer ({type(exc).__name__})",
            ) from None
        return Response(
            status=answer.status,
            headers={k.lower(): v for k, v in answer.getheaders()},
            body=data,
            truncated=truncated,
            size=size,
        )
    finally:
        connection.close()
