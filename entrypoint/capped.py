"""A bound on every botocore answer: at most so many bytes, within so many seconds.

botocore loads a whole response body into memory, however large, and a body that trickles in one
byte per read timeout never times out. `CappedSend` is a ``before-send`` handler that sends the
request through botocore's own HTTP session (its proxies, CA bundle, timeouts and SigV4 headers,
exactly what botocore would send) and reads the answer itself: at most ``max_bytes``, in at most
the attempt's read timeout, and never less than its ``Content-Length`` (a connection closed
mid-answer is a transport fault, retried; urllib3 is told by botocore not to check that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from .answers import MAX_ANSWER_BYTES

__all__ = ["CappedSend", "OversizedAnswer", "exchange", "fetch"]

_READ_CHUNK = 16 * 1024


class OversizedAnswer(Exception):  # noqa: N818 - raised through botocore, classified above it
    """A response body over its cap (raised from `exchange`, out of botocore)."""

    def __init__(self, status: int, size: str, cap: int = MAX_ANSWER_BYTES) -> None:
        super().__init__(f"HTTP {status} body of {size}, over the {cap}-byte cap")
        self.status = status
        self.size = size
        self.cap = cap


class _BufferedBody:
    """The part of urllib3's response that `botocore.awsrequest.AWSResponse` reads: ``stream``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_args: object, **_kwargs: object) -> Iterator[bytes]:
        yield self._data


class CappedSend:
    """A ``before-send`` handler: send the request through botocore's own HTTP session, then read
    the body ourselves, bounded in size (`MAX_ANSWER_BYTES`) and complete (no shorter than its
    ``Content-Length``), and bound the whole attempt in time (`exchange`).

    Returning a response from ``before-send`` is botocore's documented way to supply one; what
    the session sends (proxies, CA bundle, timeouts, SigV4 headers) is exactly what botocore would.
    """

    def __init__(
        self,
        session: Any,  # noqa: ANN401 - botocore's URLLib3Session
        connect_timeout: float,
        read_timeout: float,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._session = session
        self._read_timeout = read_timeout
        self._limit = max(connect_timeout, read_timeout)
        self._max_bytes = max_bytes
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
            max_bytes=self._max_bytes,
        )
        self._last.status = response.status_code
        return response


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
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
    from urllib3.exceptions import HTTPError as URLLib3Error
    from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeout

    raw = response.raw
    declared = _content_length(response.headers.get("content-length"))
    if declared is not None and declared > max_bytes:
        raw.close()
        raise OversizedAnswer(
            response.status_code, f"{declared} bytes, by Content-Length", max_bytes
        )
    chunks: list[bytes] = []
    size = 0
    stop = time.monotonic() + read_timeout
    # read1 (urllib3 2) returns after one receive, so the clock is checked while bytes trickle;
    # read would block until the whole chunk arrived, one read timeout per receive.
    read = getattr(raw, "read1", None) or raw.read
    try:
        while chunk := read(_READ_CHUNK, decode_content=False):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raw.close()
                raise OversizedAnswer(
                    response.status_code, f"more than {size - 1} bytes", max_bytes
                )
            if time.monotonic() > stop:
                raw.close()
                raise ReadTimeoutError(endpoint_url=request.url, error="body trickled in")
    except URLLib3ReadTimeout as exc:
        raise ReadTimeoutError(endpoint_url=request.url, error=exc) from None
    except URLLib3Error as exc:
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
