"""A local AWS Marketplace Metering service over real HTTP, for tests, demos and sellers.

Any SDK can talk to it through the standard endpoint override::

    AWS_ENDPOINT_URL_MARKETPLACE_METERING=http://127.0.0.1:<port>

It signs PS256 tokens with keys of its own and writes the matching keys directory, so the real
entrypoint verifies its answers exactly as it verifies AWS's. Use it as a context manager::

    with Emulator(products={"prod-abc": ProductBehavior()}) as emulator:
        emulator.write_keys(tmp / "keys")
        ...  # run the bootstrap against emulator.url
        assert emulator.calls("RegisterUsage")[-1].status == 200
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cryptography.hazmat.primitives.asymmetric import rsa

from .faults import Faults, RawReply, write_raw
from .operations import OPERATIONS
from .protocol import (
    CONTENT_TYPE,
    MAX_BODY_BYTES,
    TARGET_PREFIX,
    ApiError,
    Reply,
    RequestContext,
    parse_authorization,
)
from .state import CallRecord, EmulatorState, ProductBehavior
from .tokens import KeyFactory, TokenSigner, generate_key

__all__ = ["Emulator"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # a fleet of bootstraps connects at once
    state: EmulatorState
    signer: TokenSigner
    faults: Faults

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (timed out, or refused a flood) is normal here, not a bug."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]  # socketserver's loose types


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "marketplace-entrypoint-emulator"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the call records are the log."""

    def _send_json(self, status: int, body: Mapping[str, Any], error: str | None = None) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error is not None:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._send_json(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        state = self.server.state
        target = self.headers.get("X-Amz-Target", "")
        operation = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
        akid, region, service = parse_authorization(self.headers.get("Authorization"))
        ctx = RequestContext(
            operation=operation or target,
            region=region,
            service=service,
            access_key_id=akid,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        body: dict[str, Any] = {}
        faults = self.server.faults
        try:
            body = self._read_body()
            faults.admit(ctx)  # the rate limiter (issue 3): ThrottlingException above the rate
            reply = faults.answer(ctx, body, self._dispatch(ctx, body), self.server.signer)
        except ApiError as exc:
            state.record(
                operation=ctx.operation,
                status=exc.status,
                error=exc.code,
                region=region,
                access_key_id=akid,
                request=body,
                response={"__type": exc.code, "message": exc.message},
            )
            self._send_json(exc.status, {"__type": exc.code, "message": exc.message}, exc.code)
            return
        if isinstance(reply, RawReply):  # an injected fault (issue 3): recorded, then written raw
            state.record(
                operation=ctx.operation,
                status=0 if reply.reset else reply.status,
                error=f"fault:{reply.fault}",
                region=region,
                access_key_id=akid,
                request=body,
                response=reply.describe(),
            )
            write_raw(self, reply)
            return
        state.record(
            operation=ctx.operation,
            status=reply.status,
            error=None,
            region=region,
            access_key_id=akid,
            request=body,
            response=reply.body,
        )
        self._send_json(reply.status, reply.body)

    def _read_body(self) -> dict[str, Any]:
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            raise ApiError("SerializationException", "Content-Length is required")
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError("SerializationException", "Request body too large", status=413)
        raw = self.rfile.read(length)
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise ApiError("SerializationException", "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError("SerializationException", "Request body must be a JSON object")
        return body

    def _dispatch(self, ctx: RequestContext, body: dict[str, Any]) -> Reply:
        if ctx.access_key_id is None:
            raise ApiError(
                "MissingAuthenticationTokenException", "Missing Authentication Token", status=403
            )
        handler = OPERATIONS.get(ctx.operation)
        if handler is None:
            raise ApiError("UnknownOperationException", f"Unknown operation {ctx.operation!r}")
        return handler(self.server.state, self.server.signer, ctx, body)


class Emulator:
    """The Metering emulator: an HTTP server on a thread, plus its state.

    ``products`` maps product codes to behaviours (default: none, so every product code is
    InvalidProductCodeException until configured). ``key_factory`` makes signing keys (tests pass
    a caching one to save the 50 ms each 2048-bit key costs).
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
        products: Mapping[str, ProductBehavior] | None = None,
        key_factory: KeyFactory = generate_key,
    ) -> None:
        self.state = EmulatorState(region=region, products=dict(products or {}))
        self.signer = TokenSigner(key_factory)
        self.faults = Faults()  # fault injection and rate limiting (see faults.py)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _Server(self._address, _Handler)
        server.state = self.state
        server.signer = self.signer
        server.faults = self.faults
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="metering-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Run in the calling thread until `stop` (from another thread or a signal handler)."""
        self.start()
        if self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)

    # -- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._address[0]
        return f"http://{host}:{self.port}"

    @property
    def region(self) -> str:
        return self.state.region

    # -- state -------------------------------------------------------------------------------
    def configure(self, product_code: str, **changes: object) -> ProductBehavior:
        """Create or change a product (see `ProductBehavior` for the fields)."""
        return self.state.configure(product_code, **changes)

    def calls(self, operation: str | None = None) -> list[CallRecord]:
        """Every request answered so far (optionally of one operation), oldest first."""
        return self.state.calls(operation)

    def reset_calls(self) -> None:
        with self.state.lock:
            self.state.records.clear()

    def public_key(self, product_code: str, version: int = 1) -> rsa.RSAPublicKey:
        return self.signer.public_key(product_code, version)

    def write_keys(self, directory: Path | str, products: Iterable[str] | None = None) -> Path:
        """Write the keys directory the entrypoint should trust for these products (default:
        every configured product, every key version)."""
        with self.state.lock:
            chosen = list(self.state.products) if products is None else list(products)
            layout = {code: self.state.products[code].key_versions for code in chosen}
        return self.signer.write_keys(directory, layout)
