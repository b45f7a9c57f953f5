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
from collections.abc import Iterator
from typing import Any

from .answers import MAX_ANSWER_BYTES

__all__ = ["CappedSend", "OversizedAnswer"]

_READ_CHUNK = 16 * 1024


class OversizedAnswer(Exception):  # noqa: N818 - raised through botocore, classified above it
    """A response body over `MAX_ANSWER_BYTES` (raised from `CappedSend`, out of botocore)."""

    def __init__(self, status: int, size: str) -> None:
        super().__init__(f"HTTP {status} body of {size}")
        self.status = status
        self.size = size


class _BufferedBody:
    """The part of urllib3's response that `botocore.awsrequest.AWSResponse` reads: ``stream``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_args: object, **_kwargs: object) -> Iterator[bytes]:
        yield self._data


class CappedSend:
    """A ``before-send`` handler: send the request through botocore's own HTTP session, then read
    the body ourselves, bounded in size (`MAX_ANSWER_BYTES`) and complete (no shorter than its
    ``Content-Length``), and bound the whole attempt in time.

    urllib3's read timeout applies to each receive, so an answer whose status line, headers or
    body arrive a byte at a time never times out. The attempt therefore runs on a worker thread
    that the caller waits for at most the longer of the two timeouts (the read timeout is "per
    attempt" in the README; near the deadline the register loop shrinks both to the time left),
    then gives up with `ReadTimeoutError`, retried like any read timeout; the
    abandoned worker ends at its next per-read timeout or with the process (exec replaces it).
    The caller's wait is interruptible: SIGINT/SIGTERM handlers run on the main thread.

    Returning a response from ``before-send`` is botocore's documented way to supply one; what
    the session sends (proxies, CA bundle, timeouts, SigV4 headers) is exactly what botocore would.
    """

    def __init__(self, session: Any, connect_timeout: float, read_timeout: float) -> None:  # noqa: ANN401 - botocore's URLLib3Session
        self._session = session
        self._read_timeout = read_timeout
        self._limit = max(connect_timeout, read_timeout)
        self._last = threading.local()  # per calling thread: the HTTP status of its last answer

    def last_status(self) -> int | None:
        """The HTTP status of the last answer this thread received (for classifying parser
        failures, which botocore raises after this handler has returned)."""
        status: int | None = getattr(self._last, "status", None)
        return status

    def __call__(self, request: Any, **_: object) -> Any:  # noqa: ANN401 - botocore request and response
        from botocore.exceptions import ReadTimeoutError

        if request.stream_output:  # never for RegisterUsage; leave streaming operations alone
            return None
        request.stream_output = True  # the session returns before reading the body
        outcome: list[Any] = []
        worker = threading.Thread(
            target=self._attempt, args=(request, outcome), name="register-usage", daemon=True
        )
        worker.start()
        self._last.status = None
        worker.join(self._limit)
        if not outcome:  # still waiting for bytes: the attempt took too long as a whole
            raise ReadTimeoutError(
                endpoint_url=request.url, error=f"no complete answer within {self._limit:g}s"
            )
        request.stream_output = False
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        self._last.status = result.status_code
        return result

    def _attempt(self, request: Any, outcome: list[Any]) -> None:  # noqa: ANN401 - botocore type
        from botocore.awsrequest import AWSResponse

        try:
            response = self._session.send(request)
            body = self._read(request, response)
            result: Any = AWSResponse(
                response.url, response.status_code, response.headers, _BufferedBody(body)
            )
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            result = exc
        outcome.append(result)

    def _read(self, request: Any, response: Any) -> bytes:  # noqa: ANN401 - botocore types
        from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
        from urllib3.exceptions import HTTPError as URLLib3Error
        from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeout

        raw = response.raw
        declared = _content_length(response.headers.get("content-length"))
        if declared is not None and declared > MAX_ANSWER_BYTES:
            raw.close()
            raise OversizedAnswer(response.status_code, f"{declared} bytes, by Content-Length")
        chunks: list[bytes] = []
        size = 0
        stop = time.monotonic() + self._read_timeout
        # read1 (urllib3 2) returns after one receive, so the clock is checked while bytes trickle;
        # read would block until the whole chunk arrived, one read timeout per receive.
        read = getattr(raw, "read1", None) or raw.read
        try:
            while chunk := read(_READ_CHUNK, decode_content=False):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raw.close()
                    raise OversizedAnswer(response.status_code, f"more than {size - 1} bytes")
                if time.monotonic() > stop:
                    raw.close()
                    raise ReadTimeoutError(endpoint_url=request.url, error="body trickled in")
        except URLLib3ReadTimeout as exc:
            raise ReadTimeoutError(endpoint_url=request.url, error=exc) from None
        except URLLib3Error as exc:
            raise ConnectionClosedError(
                endpoint_url=request.url, request=request, error=exc
            ) from None
        if declared is not None and size < declared:
            raw.close()
            raise ConnectionClosedError(
                endpoint_url=request.url,
                request=request,
                error=f"connection closed after {size} of {declared} bytes",
            )
        raw.release_conn()
        return b"".join(chunks)


def _content_length(value: str | None) -> int | None:
    if value is None or not value.strip().isdecimal():
        return None
    return int(value.strip())
