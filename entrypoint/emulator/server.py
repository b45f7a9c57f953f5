"""A local AWS Marketplace Metering service over real HTTP, for tests, demos and sellers.

Any SDK can talk to it through the standard endpoint override::

    AWS_ENDPOINT_URL_MARKETPLACE_METERING=http://127.0.0.1:<port>
    AWS_ENDPOINT_URL_LICENSE_MANAGER=http://127.0.0.1:<port>   # contract products

The same port serves AWS License Manager (JSON 1.1, ``X-Amz-Target: AWSLicenseManager.*``, SigV4
for ``license-manager``, both from botocore's model): the operations a contract-priced product
calls, on the licenses `LicenseControl` grants (`entrypoint.emulator.operations.license_manager`).

It signs PS256 tokens with keys of its own and writes the matching keys directory, so the real
entrypoint verifies its answers exactly as it verifies AWS's. It checks SigV4 on every Metering
request against the credentials it knows (`EMULATOR_ACCESS_KEY_ID` / `EMULATOR_SECRET_ACCESS_KEY`,
whatever its platform endpoints issued, and what resolvers added with
`Emulator.add_credential_resolver` return), and it serves the platform endpoints a task reads
(ECS task metadata, container credentials, IMDSv2, and STS AssumeRoleWithWebIdentity: see
`entrypoint.emulator.platform`). Use it as a context manager::

    with Emulator(products={"prod-abc": ProductBehavior()}) as emulator:
        emulator.write_keys(tmp / "keys")
        ...  # run the bootstrap against emulator.url
        assert emulator.calls("RegisterUsage")[-1].status == 200
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cryptography.hazmat.primitives.asymmetric import rsa

from .control import ADMIN_PREFIX, ServiceControl, admin_route
from .faults import Faults, RawReply, write_raw
from .license_control import LicenseControl
from .model import LICENSE_MANAGER, SERVICE_NAME, signing_name, target_prefix
from .operations import LICENSE_OPERATIONS, OPERATIONS, Operation
from .platform import PlatformState
from .protocol import (
    CONTENT_TYPE,
    MAX_BODY_BYTES,
    ApiError,
    Reply,
    RequestContext,
    parse_authorization,
)
from .sigv4 import CredentialResolver, Principal, SignedRequest, verify_request
from .state import CallRecord, EmulatorState, ProductBehavior
from .tokens import KeyFactory, TokenSigner, generate_key

__all__ = ["EMULATOR_ACCESS_KEY_ID", "EMULATOR_SECRET_ACCESS_KEY", "Emulator"]

# The emulator's own test credentials: not a real key, printed by `marketplace-entrypoint
# emulator` for local runs and used by the demo and the tests.
EMULATOR_ACCESS_KEY_ID = "AKIAEMULATOREXAMPLE1"
EMULATOR_SECRET_ACCESS_KEY = "emulator/example/secret/key/not/a/real/one"  # noqa: S105 - public test key


@functools.cache
def _services() -> tuple[tuple[str, str, Mapping[str, Operation]], ...]:
    """(X-Amz-Target prefix, service, operations) of each emulated service, from the models."""
    return (
        (target_prefix(SERVICE_NAME), SERVICE_NAME, OPERATIONS),
        (target_prefix(LICENSE_MANAGER), LICENSE_MANAGER, LICENSE_OPERATIONS),
    )


def _route(target: str) -> tuple[str, str, Mapping[str, Operation]]:
    """(operation, service, its operations) for an ``X-Amz-Target``; Metering's when unknown."""
    for prefix, service, operations in _services():
        if target.startswith(prefix):
            return target.removeprefix(prefix), service, operations
    return "", SERVICE_NAME, OPERATIONS


class _Server(ThreadingHTTPServer):
    """Threads per connection; a client that hangs up mid-answer is normal here (read timeouts,
    interrupted bootstraps), so only unexpected handler failures are printed."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # a fleet of bootstraps connects at once
    state: EmulatorState
    signer: TokenSigner
    platform: PlatformState
    emulator: Emulator
    faults: Faults

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ANN401 - stdlib
        """A client that hung up (timed out, refused a flood, was interrupted) is normal here."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body then waits for
    # the client's delayed ACK (40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
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

    def _platform(self, method: str, body: bytes = b"") -> bool:
        """Answer a platform endpoint request (or the fault planned for it); False if the path
        is not one."""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.server.platform.handle(method, self.path, headers, body)
        if answer is None:
            return False
        payload = answer.body.encode("utf-8")
        operation = f"{method} {self.path.split('?', 1)[0]}"
        raw = self.server.faults.answer_endpoint(answer.endpoint, payload, answer.content_type)
        if raw is not None:
            self.server.state.record(
                operation=operation,
                status=0 if raw.reset else raw.status,
                error=f"fault:{raw.fault}",
                region=None,
                access_key_id=None,
                request={},
                response=raw.describe(),
            )
            write_raw(self, raw)
            return True
        self.server.state.record(
            operation=operation,
            status=answer.status,
            error=None if answer.status == 200 else str(answer.status),
            region=None,
            access_key_id=None,
            request={},
            response={},
        )
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        return True

    def do_GET(self) -> None:
        if self.path.startswith(ADMIN_PREFIX):
            self._send_json(*admin_route(self.server.state, "GET", self.path))
            return
        if not self._platform("GET"):
            self._send_json(404, {"message": "Not Found"})

    def do_PUT(self) -> None:
        if not self._platform("PUT"):
            self._send_json(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        if self.path.startswith(ADMIN_PREFIX):
            self._send_json(*admin_route(self.server.state, "POST", self.path))
            return
        if self.path.split("?", 1)[0].rstrip("/") == "/sts":
            try:
                raw = self._read_raw()
            except ApiError as exc:
                self._send_json(exc.status, exc.body(), exc.code)
                return
            self._platform("POST", raw)
            return
        state = self.server.state
        target = self.headers.get("X-Amz-Target", "")
        operation, service_name, operations = _route(target)
        akid, region, service = parse_authorization(self.headers.get("Authorization"))
        headers = {k.lower(): v for k, v in self.headers.items()}
        ctx = RequestContext(
            operation=operation or target,
            region=region,
            service=service,
            access_key_id=akid,
            headers=headers,
        )
        body: dict[str, Any] = {}
        faults = self.server.faults
        try:
            raw = self._read_raw()
            self._authenticate(ctx, raw, service_name)
            body = self._parse_body(raw)
            self._admit(ctx, service_name)
            reply = faults.answer(
                ctx, body, self._dispatch(ctx, body, operations), self.server.signer
            )
        except ApiError as exc:
            state.record(
                operation=ctx.operation,
                status=exc.status,
                error=exc.code,
                region=region,
                access_key_id=akid,
                request=body,
                response=exc.body(),
            )
            self._send_json(exc.status, exc.body(), exc.code)
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

    def _read_raw(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            raise ApiError.serialization("Content-Length is required")
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            error = ApiError.serialization("Request body too large")
            error.status = 413
            raise error
        return self.rfile.read(length)

    def _admit(self, ctx: RequestContext, service: str) -> None:
        """The rate limiter (issue 3): ThrottlingException above the rate, or License Manager's
        own throttling error, RateLimitExceededException."""
        try:
            self.server.faults.admit(ctx)
        except ApiError as exc:
            if service != LICENSE_MANAGER:
                raise
            raise ApiError(
                "RateLimitExceededException", exc.message, exc.status, message_key="Message"
            ) from None

    def _authenticate(self, ctx: RequestContext, raw: bytes, service: str = SERVICE_NAME) -> None:
        """SigV4 first, as AWS does: nothing else is looked at for an unauthenticated request."""
        emulator = self.server.emulator
        if not emulator.verify_signatures:
            if ctx.access_key_id is None:
                raise ApiError(
                    "MissingAuthenticationTokenException", "Missing Authentication Token"
                )
            return
        principal, _ = verify_request(
            SignedRequest(
                method="POST",
                host=self.headers.get("Host", ""),
                path=self.path,
                headers=ctx.headers,
                body=raw,
            ),
            emulator.resolve_credentials,
            signing_name=signing_name(service),
        )
        if not principal.allowed:
            action = f"{signing_name(service)}:{ctx.operation}"
            raise ApiError(
                "AccessDeniedException",
                f"User: {principal.arn} is not authorized to perform: {action} because no "
                f"identity-based policy allows the {action} action",
                message_key="Message" if service == LICENSE_MANAGER else "message",
            )

    def _parse_body(self, raw: bytes) -> dict[str, Any]:
        if not raw:  # AWS's JSON front end answers an empty body as it does bad JSON
            raise ApiError.serialization()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise ApiError.serialization() from None
        if not isinstance(body, dict):
            raise ApiError.serialization("Start of structure or map found where not expected.")
        return body

    def _dispatch(
        self, ctx: RequestContext, body: dict[str, Any], operations: Mapping[str, Operation]
    ) -> Reply:
        handler = operations.get(ctx.operation)
        if handler is None:
            raise ApiError.unknown_operation()
        return handler(self.server.state, self.server.signer, ctx, body)


class Emulator(ServiceControl, LicenseControl):
    """The Metering and License Manager emulator: an HTTP server on a thread, plus its state.

    ``products`` maps product codes to behaviours (default: none, so every product code is
    InvalidProductCodeException until configured). ``key_factory`` makes signing keys (tests pass
    a caching one to save the 50 ms each 2048-bit key costs). ``verify_signatures`` turns the SigV4
    check off (then any Authorization header with a credential scope is accepted). ``clock`` is
    the service's "now" in epoch seconds (tests move it). ``state_file`` journals every metering
    record and replays it on start, so a restarted emulator remembers them
    (`entrypoint.emulator.persistence`). Metering records, SaaS customers and resets: see
    `ServiceControl`.
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
        products: Mapping[str, ProductBehavior] | None = None,
        key_factory: KeyFactory = generate_key,
        verify_signatures: bool = True,
        clock: Callable[[], float] = time.time,
        state_file: Path | str | None = None,
    ) -> None:
        self.state = EmulatorState(region=region, products=dict(products or {}), clock=clock)
        if state_file is not None:
            self.state.attach_journal(state_file)
        self.signer = TokenSigner(key_factory)
        self.verify_signatures = verify_signatures
        self._principals: dict[str, Principal] = {}
        self._resolvers: list[CredentialResolver] = []
        self._principals_lock = threading.Lock()
        self.add_principal(
            Principal(
                access_key_id=EMULATOR_ACCESS_KEY_ID,
                secret_access_key=EMULATOR_SECRET_ACCESS_KEY,
                arn="arn:aws:iam::111122223333:user/emulator",
            )
        )
        self.platform = PlatformState(region, self.add_principal)
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
        server.platform = self.platform
        server.emulator = self
        server.faults = self.faults
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},  # how long stop() waits for the loop
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
        with self.state.lock:
            if self.state.journal is not None:
                self.state.journal.close()

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

    # -- platform endpoints ------------------------------------------------------------------
    @property
    def ecs_metadata_uri(self) -> str:
        """The value of ``ECS_CONTAINER_METADATA_URI_V4`` for a task on this emulator."""
        return f"{self.url}/ecs/v4/{self.platform.task_id[:12]}-container"

    @property
    def container_credentials_uri(self) -> str:
        """The value of ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` for the emulated task role."""
        return f"{self.url}/ecs/credentials/{self.platform.task_id}"

    @property
    def imds_endpoint(self) -> str:
        """The value of ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` for the emulated instance."""
        return f"{self.url}/"

    @property
    def sts_endpoint(self) -> str:
        """The value of ``AWS_ENDPOINT_URL_STS`` for the emulator's AssumeRoleWithWebIdentity."""
        return f"{self.url}/sts"

    # -- credentials -------------------------------------------------------------------------
    def add_principal(self, principal: Principal) -> None:
        """Accept requests signed with these credentials."""
        with self._principals_lock:
            self._principals[principal.access_key_id] = principal

    def add_credential_resolver(self, resolver: CredentialResolver) -> None:
        """Also accept credentials that ``resolver`` recognises (e.g. a local STS's)."""
        with self._principals_lock:
            self._resolvers.append(resolver)

    def resolve_credentials(self, access_key_id: str) -> Principal | None:
        with self._principals_lock:
            known = self._principals.get(access_key_id)
            resolvers = list(self._resolvers)
        if known is not None:
            return known
        for resolver in resolvers:
            found = resolver(access_key_id)
            if found is not None:
                return found
        return None

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
