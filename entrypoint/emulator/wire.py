"""Answers written byte by byte, bypassing the JSON protocol: what the emulator's faults send.

A `RawReply` is a status line, headers and a body, and how to send them: at once, late, a byte at
a time, cut short, or reset. A `Flood` is a huge body sent from a small buffer (64 KiB repeated):
with a ``Content-Length``, with valid chunking, with a chunk-size line of ``-1`` (which Python's
http.client reads as "to the end of the stream"), with no length at all (to the end of the
connection), or gzip-compressed on the fly (``Content-Encoding: gzip``, no length). A client that
hangs up early (it timed out, or refused a flood) is expected: nothing is raised.
"""

from __future__ import annotations

import itertools
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

__all__ = ["FLOOD_FRAMINGS", "Flood", "RawReply", "write_raw"]

_PAD = b" " * 65536
_TIGHT_GZIP = 64 * 1024 * 1024
# How a flood is framed on the wire.
FLOOD_FRAMINGS = ("length", "chunked", "negative-chunk", "undelimited", "gzip")


@dataclass(frozen=True, slots=True)
class RawReply:
    """An answer written by `write_raw`. ``fault`` names what it stands for, in the call log."""

    fault: str
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
        return {"fault": self.fault, "bytes": len(self.body)}


@dataclass(frozen=True, slots=True)
class Flood(RawReply):
    """A valid answer padded to ``size`` bytes: ``head``, spaces, then ``tail``, framed as
    ``framing`` says (one of `FLOOD_FRAMINGS`). Without a cap, a client reads it all and then
    uses it (and a container with less memory than ``size`` is killed)."""

    head: bytes = b""
    tail: bytes = b""
    size: int = 64 * 1024 * 1024
    framing: str = "length"

    def describe(self) -> dict[str, Any]:
        return {"fault": self.fault, "bytes": self.size, "framing": self.framing}

    def pieces(self) -> Iterator[bytes]:
        """The body, unframed, in pieces of at most 64 KiB."""
        repeat, rest = divmod(max(0, self.size - len(self.head) - len(self.tail)), len(_PAD))
        return itertools.chain(
            [self.head], itertools.repeat(_PAD, repeat), [b" " * rest + self.tail]
        )


def flood(
    fault: str,
    body: bytes,
    content_type: str,
    *,
    size: int,
    framing: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> Flood:
    """``body`` (a JSON object, an XML document or plain text) padded to ``size`` bytes, where
    the padding leaves it what it was: inside the object, before the closing tag, at the end."""
    if framing not in FLOOD_FRAMINGS:
        raise ValueError(f"unknown flood framing {framing!r}; one of {', '.join(FLOOD_FRAMINGS)}")
    if body.endswith(b"}"):
        head, tail = body[:-1] + b', "Padding": "', b'"}'
    elif body.rstrip().endswith(b">") and b"</" in body:
        cut = body.rindex(b"</")
        head, tail = body[:cut], body[cut:]
    else:
        head, tail = body, b""
    framed: list[tuple[str, str]] = [("Content-Type", content_type), *headers]
    total = max(size, len(head) + len(tail))
    if framing == "length":
        framed.append(("Content-Length", str(total)))
    elif framing in ("chunked", "negative-chunk"):
        framed.append(("Transfer-Encoding", "chunked"))
    elif framing == "gzip":
        framed.append(("Content-Encoding", "gzip"))
    return Flood(fault, headers=tuple(framed), head=head, tail=tail, size=total, framing=framing)


def write_raw(handler: BaseHTTPRequestHandler, raw: RawReply) -> None:
    """Send ``raw`` on the handler's connection, then close it."""
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
        if isinstance(raw, Flood):
            _write_flood(handler, raw)
        else:
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


def _write_flood(handler: BaseHTTPRequestHandler, raw: Flood) -> None:
    out = handler.wfile
    if raw.framing == "negative-chunk":
        out.write(b"-1\r\n")  # then the body, unframed, to the end of the connection
    # wbits 16 + 15: a gzip member (RFC 1952), as Content-Encoding: gzip carries. Up to 64 MiB
    # the padding is packed as tightly as deflate can (about 1,000 to 1: a bomb that fits
    # under a small size cap), beyond that as fast as it can (level 1: the bytes come at once).
    packer = None
    if raw.framing == "gzip":
        level = 9 if raw.size <= _TIGHT_GZIP else 1
        packer = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for piece in raw.pieces():
        data = packer.compress(piece) if packer is not None else piece
        if not data:
            continue
        if raw.framing == "chunked":
            out.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        else:
            out.write(data)
    if packer is not None:
        out.write(packer.flush())
    if raw.framing == "chunked":
        out.write(b"0\r\n\r\n")


def _write_body(handler: BaseHTTPRequestHandler, raw: RawReply) -> None:
    out = handler.wfile
    if raw.stop_after is not None:
        out.write(raw.body[: raw.stop_after])
        out.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        return
    if raw.byte_delay:
        for index in range(len(raw.body)):
            out.write(raw.body[index : index + 1])
            out.flush()
            time.sleep(raw.byte_delay)
    elif raw.chunked and raw.body:
        out.write(f"{len(raw.body):x}\r\n".encode() + raw.body + b"\r\n")
    else:
        out.write(raw.body)
    if raw.chunked:
        out.write(b"0\r\n\r\n")
