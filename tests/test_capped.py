"""The bound on every answer botocore's HTTP session receives (`entrypoint.capped`), alone,
against real sockets that answer as a hostile endpoint would."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from entrypoint.capped import BoundedSession, OversizedAnswer, _reader, fetch
from entrypoint.emulator import Emulator

Answer = Callable[[socket.socket], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], str]]:
    """Serve one raw answer per connection with ``answer(conn)``; yields a function giving the
    URL for an answer."""
    servers: list[socket.socket] = []

    def start(answer: Answer) -> str:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def loop() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    with contextlib.suppress(OSError):  # the reader hung up: that is the point
                        answer(conn)

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{server.getsockname()[1]}/"

    yield start
    for server in servers:
        server.close()


def _chunked_flood(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    for _ in range(16 * 1024):  # 1 GiB, unless the reader hangs up first
        conn.sendall(chunk)


def _trickle(conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
        conn.sendall(bytes([byte]))
        time.sleep(0.1)


def _short(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")


def _negative_chunk(conn: socket.socket) -> None:
    """A chunk-size line of -1: http.client's read(n) takes it as "to the end of the stream"."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n")
    for _ in range(16 * 1024):  # 1 GiB, unless the reader hangs up first
        conn.sendall(b" " * 0x10000)


def _not_hex(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n")


def test_fetch_reads_a_small_answer(emulator: Emulator) -> None:
    status, body = fetch(
        "GET", emulator.ecs_metadata_uri + "/task", headers={}, timeout=5, max_bytes=256 * 1024
    )
    assert status == 200
    assert b"TaskARN" in body


def test_fetch_refuses_by_content_length_before_reading(emulator: Emulator) -> None:
    with pytest.raises(OversizedAnswer, match="by Content-Length, over the 10-byte cap"):
        fetch("GET", emulator.ecs_metadata_uri + "/task", headers={}, timeout=5, max_bytes=10)


def test_fetch_refuses_a_chunked_flood_after_the_cap(serve: Callable[[Answer], str]) -> None:
    """No Content-Length warns of it: the read stops one chunk past the cap."""
    with pytest.raises(OversizedAnswer, match=r"body of more than \d+ bytes, over the 1024-byte"):
        fetch("GET", serve(_chunked_flood), headers={}, timeout=5, max_bytes=1024)


def test_fetch_bounds_a_trickling_answer_as_a_whole(serve: Callable[[Answer], str]) -> None:
    """Each byte comes within the per-receive timeout; the whole answer does not."""
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError) as raised:
        fetch("GET", serve(_trickle), headers={}, timeout=0.5, max_bytes=1024)
    assert str(raised.value.kwargs["error"]) == "no complete answer within 0.5s"
    assert time.monotonic() - started < 2


def test_fetch_refuses_an_answer_shorter_than_its_length(serve: Callable[[Answer], str]) -> None:
    with pytest.raises(ConnectionClosedError) as raised:
        fetch("GET", serve(_short), headers={}, timeout=2, max_bytes=1024)
    assert "after 9 of 100 bytes" in str(raised.value.kwargs["error"])


def test_fetch_names_a_refused_connection() -> None:
    with Emulator() as closed:
        url = closed.url
    with pytest.raises(EndpointConnectionError, match="Could not connect"):
        fetch("GET", url + "/", headers={}, timeout=1, max_bytes=1024)


def test_fetch_refuses_a_negative_chunk_flood_after_the_cap(serve: Callable[[Answer], str]) -> None:
    with pytest.raises(OversizedAnswer, match=r"body of more than \d+ bytes, over the 1024-byte"):
        fetch("GET", serve(_negative_chunk), headers={}, timeout=5, max_bytes=1024)


def test_a_chunk_size_that_is_not_hexadecimal_is_a_closed_connection(
    serve: Callable[[Answer], str],
) -> None:
    """http.client reads it as a transfer cut short (IncompleteRead): a transport fault."""
    with pytest.raises(ConnectionClosedError) as raised:
        fetch("GET", serve(_not_hex), headers={}, timeout=2, max_bytes=1024)
    assert "IncompleteRead" in str(raised.value.kwargs["error"])


def test_a_bounded_session_reads_for_botocores_fetchers(serve: Callable[[Answer], str]) -> None:
    """What botocore's container credentials and IMDS fetchers send with: ``send`` only, the
    answer bounded, the last status and first bytes kept for the diagnosis."""
    from botocore.awsrequest import AWSRequest
    from botocore.httpsession import URLLib3Session

    bounded = BoundedSession(URLLib3Session(timeout=2), connect_timeout=2, read_timeout=2)
    try:
        url = serve(_chunked_flood)
        with pytest.raises(OversizedAnswer, match="over the 65536-byte cap") as raised:
            bounded.send(AWSRequest(method="GET", url=url).prepare())
        assert raised.value.host.startswith("127.0.0.1:")
        assert bounded.last_body == b""
        answer = bounded.send(AWSRequest(method="GET", url=serve(_short_ok)).prepare())
        assert (answer.status_code, answer.content) == (404, b"not here")
        assert (bounded.last_status, bounded.last_body) == (404, b"not here")
    finally:
        bounded.close()


def _short_ok(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 8\r\n\r\nnot here")


class _Urllib3V1Response:
    """What matters of urllib3 1.26's HTTPResponse here: no read1, http.client's response in
    ``_fp`` (whose read1 takes at most one receive, whatever the chunk-size line says)."""

    def __init__(self, fp: object) -> None:
        self._fp = fp


def test_the_reader_never_uses_read_n_on_urllib3_1(serve: Callable[[Answer], str]) -> None:
    import http.client

    port = int(serve(_negative_chunk).rsplit(":", 1)[1].rstrip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/")
        read = _reader(_Urllib3V1Response(connection.getresponse()))
        chunk = read(16 * 1024)
        assert 0 < len(chunk) <= 16 * 1024
    finally:
        connection.close()
