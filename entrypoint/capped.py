"""A bound on every botocore answer: at most so many bytes, within so many seconds.

botocore loads a whole response body into memory, however large, and a body that trickles in one
byte per read timeout never times out. `CappedSend` is a ``before-send`` handler that sends the
request through botocore's own HTTP session (its proxies, CA bundle, timeouts and SigV4 headers,
exactly what botocore would send) and reads the answer itself: at most ``max_bytes``, in at most
the attempt's read timeout, and never less than its ``Content-Length`` (a connection closed
mid-answer is a transport fault, retried; urllib3 is told by botocore not to check that).

The read goes through urllib3's ``read1``, which is http.client's: at most one receive per call,
whatever a chunk-size line says. (http.client's ``read(n)`` takes a chunk size of ``-1`` as "read
to the end of the stream", which is how botocore's own reads of a hostile answer grow without
bound: `_BoundedSession` puts botocore's credential fetchers behind the same read.) An XML answer
with a document type declaration is refused unparsed (`DoctypeAnswer`): botocore's XML parser
(xml.etree on expat) expands internal entities, and no AWS answer has one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from .answers import MAX_ANSWER_BYTES

__all__ = [
    "BoundedSession",
    "CappedSend",
    "DoctypeAnswer",
    "OversizedAnswer",
    "RefusedAnswer",
    "exchange",
    "fetch",
]

_READ_CHUNK = 16 * 1024
# What XML may not declare before botocore parses it (XML 1.0 §2.8 doctypedecl, §4.2 EntityDecl;
# both keywords are case-sensitive, and botocore decodes every XML answer as UTF-8).
_DTD_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")


class RefusedAnswer(Exception):  # noqa: N818 - raised through botocore, classified above it
    """An answer the bootstrap would not hand to botocore (raised from `exchange` or `CappedSend`,
    out of botocore): ``status`` is its HTTP status, ``host`` who sent it."""

    def __init__(self, message: str, status: int, host: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.host = host


class OversizedAnswer(RefusedAnswer):
    """A response body over its cap."""

    def __init__(self, status: int, size: str, cap: int = MAX_ANSWER_BYTES, host: str = "") -> None:
        super().__init__(f"HTTP {status} body of {size}, over the {cap}-byte cap", status, host)
        self.size = size
        self.cap = cap


class DoctypeAnswer(RefusedAnswer):
    """An XML answer with a document type declaration or an entity declaration."""

    def __init__(self, status: int, host: str = "") -> None:
        super().__init__(
            f"HTTP {status} XML answer declares a DOCTYPE or an ENTITY (no AWS answer does)",
            status,
            host,
        )


def _host(url: str) -> str:
    import urllib.parse

    try:
        return urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
    except ValueError:
        return ""


class _BufferedBody:
    """The part of urllib3's response that `botocore.awsrequest.AWSResponse` reads: ``stream``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_args: object, **_kwargs: object) -> Iterator[bytes]:
        yield self._data


class CappedSend:
    """A ``before-send`` handler: send the request through botocore's own HTTP session, then read
    the body ourselves, bounded in size (`MAX_ANSWER_BYTES`) and complete (no shorter than its
    ``Content-Length``), and bound the whole attempt in time (`exchange`). With ``refuse_dtd``
    (clients whose answers botocore parses as XML), an answer declaring a DOCTYPE or an ENTITY
    is refused before botocore sees it (`DoctypeAnswer`).

    Returning a response from ``before-send`` is botocore's documented way to supply one; what
    the session sends (proxies, CA bundle, timeouts, SigV4 headers) is exactly what botocore would.
    """

    def __init__(
        self,
        session: Any,  # noqa: ANN401 - botocore's URLLib3Session
        connect_timeout: float,
        read_timeout: float,
        max_bytes: int = MAX_ANSWER_BYTES,
        *,
        refuse_dtd: bool = False,
    ) -> None:
        self._session = session
        self._read_timeout = read_timeout
        self._limit = max(connect_timeout, read_timeout)
        self.max_bytes = max_bytes  # a service with larger answers gets its own cap
        self._refuse_dtd = refuse_dtd
        self._last = threading.local()  # per calling thread: the HTTP status of its last answer

    def last_status(self) -> int | None:
        """The HTTP status of the last answer this thread received (for classifying parser
        failures, which botocore raises after this handler has returned)."""
        status: int | None = getattr(self._last, "status", None)
        return status

    def __call__(self, request: Any, **_: object) -> Any:  # noqa: ANN401 - botocore request and response
        if request.stream_output:  # never for the operations we call; leave streaming alone
            return None
        self._last.status = None
        response = exchange(
            self._session,
            request,
            limit=self._limit,
            read_timeout=self._read_timeout,
            max_bytes=self.max_bytes,
        )
        self._last.status = response.status_code
        if self._refuse_dtd and any(marker in response.content for marker in _DTD_MARKERS):
            raise DoctypeAnswer(response.status_code, _host(request.url))
        return response


class BoundedSession:
    """botocore's HTTP session for its credential fetchers (the container credentials endpoint,
    IMDS), with the bound `exchange` puts on every answer.

    botocore's `ContainerMetadataFetcher` and `IMDSFetcher` make their own ``URLLib3Session``
    and read every answer whole (``AWSResponse.content``), so no client event reaches them. They
    only ever call ``send``: this object takes the place of their session, sends through it (its
    timeouts, no proxy for link-local addresses) and reads the answer bounded. It remembers the
    last answer's status and first bytes, for the diagnosis when botocore gives up on it.
    """

    def __init__(
        self,
        session: Any,  # noqa: ANN401 - botocore's URLLib3Session
        *,
        connect_timeout: float,
        read_timeout: float,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._session = session
        self._send = CappedSend(session, connect_timeout, read_timeout, max_bytes)
        self.last_status: int | None = None
        self.last_body = b""

    def send(self, request: Any) -> Any:  # noqa: ANN401 - botocore request and response
        self.last_status, self.last_body = None, b""
        response = self._send(request)
        self.last_status, self.last_body = response.status_code, bytes(response.content[:512])
        return response

    def close(self) -> None:
        self._session.close()


def exchange(
    session: Any,  # noqa: ANN401 - botocore's URLLib3Session
    request: Any,  # noqa: ANN401 - botocore's AWSPreparedRequest
    *,
    limit: float,
    read_timeout: float,
    max_bytes: int,
) -> Any:  # noqa: ANN401 - botocore's AWSResponse
    """Send ``request`` through ``session`` and return its whole answer, read by us.

    urllib3's read timeout applies to each receive, so an answer whose status line, headers or
    body arrive a byte at a time never times out. The exchange therefore runs on a worker thread
    that the caller waits for at most ``limit`` seconds (the read timeout is "per attempt" in the
    README; near the deadline the register loop shrinks it to the time left), then gives up with
    botocore's `ReadTimeoutError`, retried like any read timeout; the abandoned worker ends at its
    next per-read timeout or with the process (exec replaces it). The caller's wait is
    interruptible: SIGINT/SIGTERM handlers run on the main thread. The body is at most
    ``max_bytes`` (else `OversizedAnswer`) and no shorter than its ``Content-Length`` (else
    `ConnectionClosedError`). Failures are botocore's own exceptions, as if botocore had read.
    """
    from botocore.exceptions import ReadTimeoutError

    request.stream_output = True  # the session returns before reading the body
    outcome: list[Any] = []
    worker = threading.Thread(
        target=_attempt,
        args=(session, request, read_timeout, max_bytes, outcome),
        name="bounded-exchange",
        daemon=True,
    )
    worker.start()
    worker.join(limit)
    if not outcome:  # still waiting for bytes: the attempt took too long as a whole
        raise ReadTimeoutError(
            endpoint_url=request.url, error=f"no complete answer within {limit:g}s"
        )
    request.stream_output = False
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _attempt(
    session: Any,  # noqa: ANN401 - botocore's URLLib3Session
    request: Any,  # noqa: ANN401 - botocore's AWSPreparedRequest
    read_timeout: float,
    max_bytes: int,
    outcome: list[Any],
) -> None:
    from botocore.awsrequest import AWSResponse

    try:
        response = session.send(request)
        body = _read(request, response, read_timeout, max_bytes)
        result: Any = AWSResponse(
            response.url, response.status_code, response.headers, _BufferedBody(body)
        )
    except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
        result = exc
    outcome.append(result)


def _read(request: Any, response: Any, read_timeout: float, max_bytes: int) -> bytes:  # noqa: ANN401 - botocore types
    from http.client import HTTPException

    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
    from urllib3.exceptions import HTTPError as URLLib3Error
    from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeout

    raw = response.raw
    host = _host(request.url)
    declared = _content_length(response.headers.get("content-length"))
    if declared is not None and declared > max_bytes:
        raw.close()
        raise OversizedAnswer(
            response.status_code, f"{declared} bytes, by Content-Length", max_bytes, host
        )
    chunks: list[bytes] = []
    size = 0
    stop = time.monotonic() + read_timeout
    read = _reader(raw)
    try:
        while chunk := read(_READ_CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raw.close()
                raise OversizedAnswer(
                    response.status_code, f"more than {size - 1} bytes", max_bytes, host
                )
            if time.monotonic() > stop:
                raw.close()
                raise ReadTimeoutError(endpoint_url=request.url, error="body trickled in")
    except URLLib3ReadTimeout as exc:
        raise ReadTimeoutError(endpoint_url=request.url, error=exc) from None
    except (URLLib3Error, HTTPException, ValueError) as exc:
        # A broken transfer: urllib3's errors, http.client's own where nothing wraps them (the
        # urllib3 1.26 reader), and ValueError for a read on a connection closed under it.
        raw.close()
        raise ConnectionClosedError(endpoint_url=request.url, request=request, error=exc) from None
    if declared is not None and size < declared:
        raw.close()
        raise ConnectionClosedError(
            endpoint_url=request.url,
            request=request,
            error=f"connection closed after {size} of {declared} bytes",
        )
    raw.release_conn()
    return b"".join(chunks)


def _reader(raw: Any) -> Any:  # noqa: ANN401 - urllib3's HTTPResponse; a read function
    """A function reading at most one receive of the body, undecoded (a gzip body stays as
    sent: nothing it would inflate to is ever held).

    urllib3 2's ``read1`` is http.client's ``read1``: one receive, so the clock is checked while
    bytes trickle, and a chunk size of ``-1`` cannot make it read to the end of the stream.
    urllib3 1.26 (which botocore still accepts) has no ``read1`` and its ``read(n)`` reaches
    http.client's ``_safe_read(-1)`` on such a chunk: read from http.client's response directly.
    """
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        return lambda size: read1(size, decode_content=False)
    return raw._fp.read1  # urllib3 1.26: its http.client response


def fetch(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: float,
    max_bytes: int,
) -> tuple[int, bytes]:
    """One plain (unsigned) HTTP request through botocore's HTTP session, bounded as `exchange`
    bounds every answer: for the platform's link-local metadata endpoints, which botocore has
    no client for. No proxy (link-local addresses are never proxied), botocore's default CA
    bundle for an https override. Returns the status and the body; raises botocore's
    exceptions (`EndpointConnectionError`, `ConnectTimeoutError`, `ReadTimeoutError`, ...),
    `OversizedAnswer`, or `ValueError` for a URL urllib3 cannot use."""
    from botocore.awsrequest import AWSRequest
    from botocore.httpsession import URLLib3Session

    # botocore-stubs say int, but urllib3 takes any number of seconds (botocore passes floats).
    session = URLLib3Session(timeout=timeout)  # type: ignore[arg-type]
    try:
        request = AWSRequest(method=method, url=url, headers=dict(headers)).prepare()
        response = exchange(
            session, request, limit=timeout, read_timeout=timeout, max_bytes=max_bytes
        )
    finally:
        session.close()
    return int(response.status_code), bytes(response.content)


def _content_length(value: str | None) -> int | None:
    if value is None or not value.strip().isdecimal():
        return None
    return int(value.strip())
