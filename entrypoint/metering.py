"""The Metering API call: one RegisterUsage attempt, its outcome classified.

This is the thin I/O layer under the retry loop. A `MeteringClient` makes exactly one attempt and
either returns the answer, raises `Transient` (worth retrying: throttling, server faults, the
network) or raises a final `EntrypointError` that says what the operator must fix.

`BotocoreMeteringClient` uses botocore's own credential chain, SigV4 signer, endpoint resolution
(so ``AWS_ENDPOINT_URL_MARKETPLACE_METERING`` works) and wire protocol, with botocore's retries
switched off: retries, deadline and logging belong to `entrypoint.register`.

One thing botocore does not do is bound what it reads: it loads a whole response body into memory,
however large, and a body that trickles in one byte per read timeout never times out. So the answer
is read by `_CappedSend` (through botocore's own HTTP session, with its proxies, CA bundle and
timeouts): at most `MAX_ANSWER_BYTES`, in at most the attempt's read timeout, and never less than
its ``Content-Length`` (a connection closed mid-answer is a transport fault, retried; urllib3 is
told by botocore not to check that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._version import __version__
from .errors import (
    ConfigurationError,
    EntrypointError,
    NotEntitledError,
    PlatformNotSupportedError,
    ServiceError,
    VerificationError,
    one_line,
)

if TYPE_CHECKING:
    from botocore.session import Session
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

__all__ = [
    "MAX_ANSWER_BYTES",
    "BotocoreMeteringClient",
    "MeteringClient",
    "RegisterUsageAnswer",
    "StaticCredentials",
    "Transient",
    "classify_client_error",
]

IAM_ACTION = "aws-marketplace:RegisterUsage"
# Cap on a RegisterUsage response body (tuf's UpdaterConfig habit: a size cap for every untrusted
# input). A real answer is a Signature of at most MAX_TOKEN_LENGTH (16 KiB) plus a timestamp; an
# error is a short JSON object. 64 KiB leaves room for a proxy's error page and refuses floods.
MAX_ANSWER_BYTES = 64 * 1024
_READ_CHUNK = 16 * 1024
_ROLE_REMEDY = (
    f"give the task an IAM role allowing {IAM_ACTION} (ECS task role, or IRSA on EKS; managed "
    "policy AWSMarketplaceMeteringRegisterUsage)"
)


@dataclass(frozen=True, slots=True)
class RegisterUsageAnswer:
    """A successful RegisterUsage response, not yet verified."""

    signature: str
    public_key_rotation: datetime | None = None


class Transient(Exception):  # noqa: N818 - names an outcome, not a failure of ours
    """An attempt failed in a way worth retrying. ``code`` names it for the log."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = one_line(code, 80)
        self.detail = one_line(detail, 200)
        super().__init__(f"{self.code}: {self.detail}" if self.detail else self.code)


class MeteringClient(Protocol):
    """One RegisterUsage attempt. ``timeout`` caps the attempt in seconds (None: the default)."""

    def register_usage(
        self,
        *,
        product_code: str,
        public_key_version: int,
        nonce: str,
        timeout: float | None = None,
    ) -> RegisterUsageAnswer: ...


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Explicit credentials (the demo and tests). Production uses botocore's provider chain."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print a secret, even by accident
        return f"StaticCredentials(access_key_id={self.access_key_id[:4]}…)"


# Errors RegisterUsage models, plus the ones AWS's front end gives for credentials and signing.
_FINAL_CONFIGURATION: Mapping[str, str] = {
    "InvalidProductCodeException": "the product code does not match an AWS Marketplace listing; "
    "check MARKETPLACE_PRODUCT_CODE and the keys directory against the Management Portal",
    "InvalidPublicKeyVersionException": "AWS does not know this public key version for the "
    "product; check MARKETPLACE_PUBLIC_KEY_VERSION and the v<N>.pem files",
    "InvalidRegionException": "RegisterUsage must be called in the Region the task runs in; "
    "check AWS_REGION / AWS_DEFAULT_REGION",
    "DisabledApiException": "the Metering API is disabled in this Region; run in a Region "
    "AWS Marketplace supports",
    "AccessDeniedException": _ROLE_REMEDY,
    "AccessDenied": _ROLE_REMEDY,
    "UnrecognizedClientException": "the credentials are not valid AWS credentials; " + _ROLE_REMEDY,
    "InvalidClientTokenId": "the access key is not valid; " + _ROLE_REMEDY,
    "ExpiredTokenException": "the credentials have expired; use the task role or IRSA, whose "
    "credentials are refreshed automatically",
    "ExpiredToken": "the credentials have expired; use the task role or IRSA, whose credentials "
    "are refreshed automatically",
    "InvalidSignatureException": "the request signature was refused; check the secret key and "
    "this host's clock",
    "SignatureDoesNotMatch": "the request signature was refused; check the secret key and this "
    "host's clock",
    "IncompleteSignature": "the request signature was incomplete; check the credentials",
    "MissingAuthenticationTokenException": "the request was not signed; " + _ROLE_REMEDY,
    "MissingAuthenticationToken": "the request was not signed; " + _ROLE_REMEDY,
}
_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def classify_client_error(code: str, status: int, message: str) -> EntrypointError | Transient:
    """Map a Metering error response to what the bootstrap must do about it.

    AWS: retry ThrottlingException (and server faults) "for up to 30 minutes, with exponential
    back off"; "if your container image ... receives an exception other than ThrottlingException
    at container startup, you should terminate the container".
    """
    shown = one_line(message, 200)
    if code in _RETRYABLE_CODES or status == 429 or status >= 500:
        return Transient(code or f"HTTP {status}", shown)
    if code == "CustomerNotEntitledException":
        return NotEntitledError(
            f"the buyer has no active subscription to this product (CustomerNotEntitledException"
            f"{': ' + shown if shown else ''})",
            remedy="the buyer must subscribe to the product in AWS Marketplace",
        )
    if code == "PlatformNotSupportedException":
        return PlatformNotSupportedError(
            f"RegisterUsage is only answered on Amazon ECS, Amazon EKS and AWS Fargate "
            f"(PlatformNotSupportedException{': ' + shown if shown else ''})",
            remedy="run the product on ECS, EKS or Fargate; use `marketplace-entrypoint demo` "
            "to try it locally",
        )
    remedy = _FINAL_CONFIGURATION.get(code)
    if remedy is not None:
        return ConfigurationError(f"RegisterUsage refused: {code}: {shown}", remedy=remedy)
    return ServiceError(
        f"RegisterUsage refused with HTTP {status} {code or '(no error code)'}: {shown}",
        remedy="the container was stopped as AWS requires for errors other than throttling; "
        "report this if it persists",
    )


def _parse_rotation(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    raise VerificationError(
        f"answer's PublicKeyRotationTimestamp is {type(value).__name__}, not a timestamp",
        remedy="the workload was not started",
    )


def answer_from_response(response: Mapping[str, Any]) -> RegisterUsageAnswer:
    """Check the parsed response's shape: a non-empty string Signature, an optional timestamp."""
    signature = response.get("Signature")
    if not isinstance(signature, str) or not signature:
        raise VerificationError(
            "the RegisterUsage answer carried no Signature",
            remedy="the workload was not started",
        )
    return RegisterUsageAnswer(
        signature=signature,
        public_key_rotation=_parse_rotation(response.get("PublicKeyRotationTimestamp")),
    )


class BotocoreMeteringClient:
    """RegisterUsage through botocore, one attempt per call.

    ``session`` defaults to a fresh botocore session (environment, shared config, container and
    web-identity credentials: botocore's full provider chain). ``credentials`` overrides the chain
    with explicit keys, for the demo and tests. ``endpoint_url`` overrides the endpoint; without
    it botocore applies ``AWS_ENDPOINT_URL_MARKETPLACE_METERING`` and then the regional default.
    """

    def __init__(
        self,
        *,
        region: str,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        endpoint_url: str | None = None,
        credentials: StaticCredentials | None = None,
        session: Session | None = None,
    ) -> None:
        self.region = region
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.endpoint_url = endpoint_url
        self._credentials = credentials
        self._session = session
        self._clients: dict[tuple[float, float], tuple[MarketplaceMeteringClient, _CappedSend]] = {}
        self._lock = threading.Lock()

    def _client(self, connect: float, read: float) -> tuple[MarketplaceMeteringClient, _CappedSend]:
        key = (round(connect, 2), round(read, 2))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._create(*key)
                self._clients[key] = client
            return client

    def _create(self, connect: float, read: float) -> tuple[MarketplaceMeteringClient, _CappedSend]:
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        if self._session is None:
            self._session = botocore.session.get_session()
        config = Config(
            region_name=self.region,
            connect_timeout=connect,
            read_timeout=read,
            retries={"total_max_attempts": 1, "mode": "standard"},
            user_agent_extra=f"marketplace-entrypoint/{__version__}",
        )
        kwargs: dict[str, Any] = {"region_name": self.region, "config": config}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self._credentials is not None:
            kwargs["aws_access_key_id"] = self._credentials.access_key_id
            kwargs["aws_secret_access_key"] = self._credentials.secret_access_key
            kwargs["aws_session_token"] = self._credentials.session_token
        try:
            client = cast(
                "MarketplaceMeteringClient",
                self._session.create_client("meteringmarketplace", **kwargs),
            )
        except BotoCoreError as exc:
            raise _classify_botocore(exc) from None
        except ValueError as exc:  # botocore refuses malformed endpoint URLs with ValueError
            raise ConfigurationError(
                f"cannot create the Metering client: {one_line(exc, 200)}",
                remedy="check AWS_ENDPOINT_URL_MARKETPLACE_METERING and the AWS config file",
            ) from None
        # botocore exposes its HTTP session only as a private attribute; sending through it keeps
        # every transport setting botocore resolved. The handler is per client (per timeout).
        sender = _CappedSend(
            cast("Any", client)._endpoint.http_session, connect_timeout=connect, read_timeout=read
        )
        client.meta.events.register("before-send.marketplace-metering", sender)
        return client, sender

    def register_usage(
        self,
        *,
        product_code: str,
        public_key_version: int,
        nonce: str,
        timeout: float | None = None,
    ) -> RegisterUsageAnswer:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        connect, read = self.connect_timeout, self.read_timeout
        if timeout is not None:
            # The last attempts before the deadline get shorter timeouts, so the whole
            # bootstrap ends within the deadline (plus scheduling slack), not a timeout later.
            connect, read = min(connect, max(timeout, 0.05)), min(read, max(timeout, 0.05))
        client, sender = self._client(connect, read)
        try:
            response = client.register_usage(
                ProductCode=product_code, PublicKeyVersion=public_key_version, Nonce=nonce
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            raise classify_client_error(
                str(error.get("Code", "")), int(status or 0), str(error.get("Message", ""))
            ) from None
        except BotoCoreError as exc:
            raise _classify_botocore(exc) from None
        except _OversizedAnswer as exc:
            raise _classify_oversized(exc) from None
        except ResponseParserError as exc:  # not a BotoCoreError: lives in botocore.parsers
            raise _classify_unparsable(exc, sender.last_status()) from None
        except Exception as exc:  # noqa: BLE001 - fail closed on anything the SDK did not classify
            if _raised_in(exc, "botocore.parsers"):
                # botocore's parser lets AttributeError/ValueError escape on answers that are JSON
                # but not objects, or carry a timestamp it cannot read: a bad answer, not a bug.
                raise _classify_unparsable(exc, sender.last_status()) from None
            raise ServiceError(
                f"RegisterUsage failed unexpectedly ({type(exc).__name__}: {one_line(exc, 200)})",
                remedy="the workload was not started; report this if it persists",
            ) from None
        return answer_from_response(response)


class _OversizedAnswer(Exception):  # noqa: N818 - raised through botocore, classified below
    """A response body over `MAX_ANSWER_BYTES` (raised from `_CappedSend`, out of botocore)."""

    def __init__(self, status: int, size: str) -> None:
        super().__init__(f"HTTP {status} body of {size}")
        self.status = status
        self.size = size


def _classify_oversized(exc: _OversizedAnswer) -> EntrypointError | Transient:
    """A flood is an answer we refuse to read: a 2xx one is unverifiable (65), an error status
    is classified as its status would be (5xx/429 retried, anything else final)."""
    detail = f"the answer's body ({exc.size}) is over the {MAX_ANSWER_BYTES}-byte cap"
    if exc.status < 300:
        return VerificationError(
            f"the RegisterUsage answer could not be read: {detail}",
            remedy="the workload was not started; check what answers at the Metering endpoint",
        )
    return classify_client_error("", exc.status, detail)


def _raised_in(exc: BaseException, module: str) -> bool:
    """Whether any frame of ``exc``'s traceback ran code of ``module``."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == module:
            return True
        tb = tb.tb_next
    return False


def _classify_unparsable(exc: Exception, status: int | None) -> EntrypointError | Transient:
    """An answer botocore could not parse: a 2xx one is unverifiable (65); an error status keeps
    its class (5xx/429 retried, anything else final)."""
    detail = f"{type(exc).__name__}: {one_line(exc, 200)}"
    if status is None or status < 300:
        return VerificationError(
            f"the RegisterUsage answer could not be parsed ({detail})",
            remedy="the workload was not started",
        )
    return classify_client_error("", status, f"unparsable error answer ({detail})")


class _BufferedBody:
    """The part of urllib3's response that `botocore.awsrequest.AWSResponse` reads: ``stream``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *_args: object, **_kwargs: object) -> Iterator[bytes]:
        yield self._data


class _CappedSend:
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
            raise _OversizedAnswer(response.status_code, f"{declared} bytes, by Content-Length")
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
                    raise _OversizedAnswer(response.status_code, f"more than {size - 1} bytes")
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


def _classify_botocore(exc: Exception) -> EntrypointError | Transient:
    """Map botocore's own (non-HTTP-status) failures."""
    from botocore import exceptions as bx

    text = one_line(exc, 200)
    if isinstance(exc, bx.SSLError):
        return ConfigurationError(
            f"TLS to the Metering endpoint failed: {text}",
            remedy="check AWS_CA_BUNDLE, any TLS-inspecting proxy, and this host's clock",
        )
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return ConfigurationError(f"no usable AWS credentials ({text})", remedy=_ROLE_REMEDY)
    if isinstance(exc, bx.CredentialRetrievalError):
        # The container credentials endpoint or STS is not ready yet: common in the first
        # seconds of a task. Retried inside the deadline.
        return Transient("CredentialRetrievalError", text)
    if isinstance(exc, bx.NoRegionError | bx.InvalidRegionError):
        return ConfigurationError(
            f"invalid AWS Region ({text})", remedy="set AWS_REGION to the task's Region"
        )
    if isinstance(exc, bx.HTTPClientError | bx.ConnectionError):
        return Transient(type(exc).__name__, text)
    if isinstance(exc, bx.ProfileNotFound | bx.ConfigNotFound | bx.InvalidConfigError):
        return ConfigurationError(
            f"the AWS configuration is invalid ({text})",
            remedy="check AWS_PROFILE, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE",
        )
    return ConfigurationError(
        f"the AWS SDK refused the call ({type(exc).__name__}: {text})",
        remedy="check the AWS configuration of the task",
    )
