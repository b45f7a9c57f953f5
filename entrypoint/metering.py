"""The Metering API calls: one RegisterUsage or MeterUsage attempt, its outcome classified.

This is the thin I/O layer under the retry loop. A `MeteringClient` (RegisterUsage) or
`MeterUsageClient` (MeterUsage) makes exactly one attempt and either returns the answer, raises
`Transient` (worth retrying: throttling, server faults, the network) or raises a final
`EntrypointError` that says what the operator must fix.

`BotocoreMeteringClient` uses botocore's own credential chain, SigV4 signer, endpoint resolution
(so ``AWS_ENDPOINT_URL_MARKETPLACE_METERING`` works) and wire protocol, with botocore's retries
switched off: retries, deadline and logging belong to `entrypoint.retry`.

One thing botocore does not do is bound what it reads: it loads a whole response body into memory,
however large, and a body that trickles in one byte per read timeout never times out. So the answer
is read by `_CappedSend` (through botocore's own HTTP session, with its proxies, CA bundle and
timeouts): at most `MAX_ANSWER_BYTES`, in at most the attempt's read timeout, and never less than
its ``Content-Length`` (a connection closed mid-answer is a transport fault, retried; urllib3 is
told by botocore not to check that). The lean client (`entrypoint.aws`) applies the same bounds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._version import __version__
from .credentials import CredentialSource, announce_credentials
from .errors import (
    ConfigurationError,
    EntrypointError,
    NotEntitledError,
    PlatformNotSupportedError,
    ServiceError,
    UsageRejectedError,
    VerificationError,
    one_line,
)
from .logs import event

if TYPE_CHECKING:
    from botocore.session import Session
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

__all__ = [
    "MAX_ANSWER_BYTES",
    "AutoMeteringClient",
    "BotocoreMeteringClient",
    "MeterUsageAnswer",
    "MeterUsageClient",
    "MeteringClient",
    "RegisterUsageAnswer",
    "StaticCredentials",
    "Transient",
    "classify_client_error",
    "classify_meter_usage_error",
    "classify_oversized",
    "classify_sts_error",
    "create_metering_client",
]

IAM_ACTION = "aws-marketplace:RegisterUsage"
# Cap on a RegisterUsage response body (tuf's UpdaterConfig habit: a size cap for every untrusted
# input). A real answer is a Signature of at most MAX_TOKEN_LENGTH (16 KiB) plus a timestamp; an
# error is a short JSON object. 64 KiB leaves room for a proxy's error page and refuses floods.
MAX_ANSWER_BYTES = 64 * 1024
_READ_CHUNK = 16 * 1024
METER_USAGE_IAM_ACTION = "aws-marketplace:MeterUsage"


def _role_remedy(action: str, policy: str) -> str:
    return (
        f"give the task an IAM role allowing {action} (ECS task role, or IRSA on EKS; managed "
        f"policy {policy})"
    )


ROLE_REMEDY = _role_remedy(IAM_ACTION, "AWSMarketplaceMeteringRegisterUsage")
_IRSA_REMEDY = (
    "check the IAM role's trust policy (the cluster's OIDC provider, sub "
    "system:serviceaccount:<namespace>:<serviceaccount>) and the service account's "
    "eks.amazonaws.com/role-arn annotation"
)
IDENTITY_FILE_REMEDY = (
    "on EKS the IRSA token is projected at AWS_WEB_IDENTITY_TOKEN_FILE: set the pod's "
    "securityContext.fsGroup so a non-root user can read it; on ECS check "
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
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
class MeterUsageAnswer:
    """A MeterUsage that the service accepted: ``record_id`` is its MeteringRecordId, or None
    for a DryRun (answered ``DryRunOperation``: permitted, nothing recorded)."""

    record_id: str | None
    dry_run: bool = False


class MeterUsageClient(Protocol):
    """One MeterUsage attempt.

    ``quantity`` is a canonical decimal string (``^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,6})?$``,
    UsageQuantityAsDecimalString in the API model). ``client_token`` makes retries idempotent.
    """

    def meter_usage(
        self,
        *,
        product_code: str,
        dimension: str,
        timestamp: datetime,
        quantity: str,
        client_token: str,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> MeterUsageAnswer: ...


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Explicit credentials (the demo and tests). Production uses botocore's provider chain."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print a secret, even by accident
        return f"StaticCredentials(access_key_id={self.access_key_id[:4]}…)"


def _credential_remedies(role_remedy: str) -> dict[str, str]:
    """What AWS's front end answers for credentials and signing, and the remedy for each."""
    return {
        "AccessDeniedException": role_remedy,
        "AccessDenied": role_remedy,
        "UnrecognizedClientException": "the credentials are not valid AWS credentials; "
        + role_remedy,
        "InvalidClientTokenId": "the access key is not valid; " + role_remedy,
        "ExpiredTokenException": "the credentials have expired; use the task role or IRSA, whose "
        "credentials are refreshed automatically",
        "ExpiredToken": "the credentials have expired; use the task role or IRSA, whose "
        "credentials are refreshed automatically",
        "InvalidSignatureException": "the request signature was refused; check the secret key "
        "and this host's clock",
        "SignatureDoesNotMatch": "the request signature was refused; check the secret key and "
        "this host's clock",
        "IncompleteSignature": "the request signature was incomplete; check the credentials",
        "MissingAuthenticationTokenException": "the request was not signed; " + role_remedy,
        "MissingAuthenticationToken": "the request was not signed; " + role_remedy,
    }


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
    **_credential_remedies(ROLE_REMEDY),
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


def classify_sts_error(code: str, status: int, message: str) -> EntrypointError | Transient:
    """An error from STS while botocore fetched IRSA credentials (AssumeRoleWithWebIdentity)."""
    shown = one_line(message, 200)
    if (
        code in _RETRYABLE_CODES
        or code == "IDPCommunicationError"
        or status == 429
        or status >= 500
    ):
        return Transient(f"STS {code or f'HTTP {status}'}", shown)
    return ConfigurationError(
        f"IRSA credentials refused: STS AssumeRoleWithWebIdentity answered {code}: {shown}",
        remedy=_IRSA_REMEDY,
    )


_METER_USAGE_ROLE_REMEDY = _role_remedy(METER_USAGE_IAM_ACTION, "AWSMarketplaceMeteringFullAccess")

# Errors MeterUsage models (botocore service-2.json, operation MeterUsage), plus the front end's.
_METER_USAGE_CONFIGURATION: Mapping[str, str] = {
    "InvalidProductCodeException": "the product code does not match an AWS Marketplace listing; "
    "check MARKETPLACE_PRODUCT_CODE against the Management Portal",
    "InvalidUsageDimensionException": "the dimension is not one of the product's pricing "
    "dimensions; use a dimension's API name as the Management Portal shows it",
    "InvalidEndpointRegionException": "MeterUsage must be called in the Region the task runs in; "
    "check AWS_REGION / AWS_DEFAULT_REGION",
    "InvalidUsageAllocationsException": "the usage allocations do not add up to the quantity, or "
    "mix whole and decimal quantities",
    "InvalidTagException": "an allocation tag is invalid; check the tag keys and values",
    "ValidationException": "the request broke a limit of the Metering API model; check the "
    "dimension (1-255 characters) and the quantity (at most 10 digits and 6 decimals)",
    "DisabledApiException": "the Metering API is disabled in this Region; run in a Region "
    "AWS Marketplace supports",
    # The DryRun answer when the caller lacks permission (MeterUsageRequest.DryRun documentation).
    "UnauthorizedException": _METER_USAGE_ROLE_REMEDY,
    **_credential_remedies(_METER_USAGE_ROLE_REMEDY),
}
_USAGE_REJECTED: Mapping[str, str] = {
    "DuplicateRequestException": "another quantity was already recorded for this dimension and "
    "hour (AWS takes one record per dimension per hour per task, and never changes it)",
    "IdempotencyConflictException": "this ClientToken was already used with other parameters: "
    "the hour was already reported with another quantity",
    "TimestampOutOfBoundsException": "MeterUsage takes usage at most 6 hours old and never from "
    "the future; check the timestamp and this host's clock",
}


def classify_meter_usage_error(code: str, status: int, message: str) -> EntrypointError | Transient:
    """Map a MeterUsage error response to what the meter must do about it.

    Throttling and server faults are retried (the same record with the same ClientToken, so a
    retry can never bill twice). A refused record (`UsageRejectedError`) is final for that record;
    configuration and credential errors are final until the operator fixes them.
    """
    shown = one_line(message, 200)
    if code in _RETRYABLE_CODES or status == 429 or status >= 500:
        return Transient(code or f"HTTP {status}", shown)
    if code == "CustomerNotEntitledException":
        return NotEntitledError(
            f"MeterUsage refused: the buyer has no active subscription to this product "
            f"(CustomerNotEntitledException{': ' + shown if shown else ''})",
            remedy="the buyer must subscribe to the product in AWS Marketplace",
        )
    rejected = _USAGE_REJECTED.get(code)
    if rejected is not None:
        return UsageRejectedError(
            f"MeterUsage refused the record: {code}: {shown}",
            code=code,
            remedy=rejected,
        )
    remedy = _METER_USAGE_CONFIGURATION.get(code)
    if remedy is not None:
        return ConfigurationError(f"MeterUsage refused: {code}: {shown}", remedy=remedy)
    return ServiceError(
        f"MeterUsage refused with HTTP {status} {code or '(no error code)'}: {shown}",
        remedy="the usage is kept and sent again later; report this if it persists",
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
        self.credential_source: CredentialSource | None = None
        self.path = "botocore"

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
        if self._credentials is None:
            self._resolve_credentials(self._session)
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

    def prepare(self) -> str:
        """Create the client (resolving credentials) without calling the API; return the endpoint
        URL botocore will use. For the ``check`` command."""
        client, _ = self._client(self.connect_timeout, self.read_timeout)
        return str(client.meta.endpoint_url)

    def _resolve_credentials(self, session: Session) -> None:
        """Resolve, and fetch, the task's credentials before the first call.

        botocore defers IRSA's STS call to the first signature; fetching here classifies its
        failures as credential failures, and names the source once in the log.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            credentials = session.get_credentials()
            if credentials is None:
                raise ConfigurationError(
                    "no AWS credentials found (no task role, no IRSA, no keys)",
                    remedy=ROLE_REMEDY,
                )
            credentials.get_frozen_credentials()
        except EntrypointError:
            raise
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            raise classify_sts_error(
                str(error.get("Code", "")), int(status or 0), str(error.get("Message", ""))
            ) from None
        except BotoCoreError as exc:
            raise _classify_botocore(exc) from None
        except OSError as exc:  # a token file botocore could not read
            raise ConfigurationError(
                f"cannot read {exc.filename or 'a credentials file'}: "
                f"{exc.strerror or one_line(exc, 120)}",
                remedy=IDENTITY_FILE_REMEDY,
            ) from None
        except ValueError as exc:  # e.g. a container credentials URI botocore will not use
            raise ConfigurationError(
                f"the credentials configuration was refused: {one_line(exc, 200)}",
                remedy="AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, loopback, or the ECS "
                "agent's address",
            ) from None
        if self.credential_source is None:
            self.credential_source = announce_credentials(
                getattr(credentials, "method", None), os.environ
            )

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
            classify = (
                classify_client_error
                if exc.operation_name == "RegisterUsage"
                else classify_sts_error  # IRSA credentials refreshed during the call
            )
            raise classify(
                str(error.get("Code", "")), int(status or 0), str(error.get("Message", ""))
            ) from None
        except _OversizedAnswer as exc:
            raise classify_oversized(exc.status, exc.size) from None
        except BotoCoreError as exc:
            raise _classify_botocore(exc) from None
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

    def meter_usage(
        self,
        *,
        product_code: str,
        dimension: str,
        timestamp: datetime,
        quantity: str,
        client_token: str,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> MeterUsageAnswer:
        """One MeterUsage attempt (see `MeterUsageClient`).

        Sends ``UsageQuantityAsDecimal`` (the API model deprecates the integer ``UsageQuantity``
        since 2026-10-20); a botocore too old to know it gets whole quantities as
        ``UsageQuantity``. A malformed 200 answer is `Transient`: the ClientToken makes the retry
        safe, and only a parsed answer proves the record exists.
        """
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        connect, read = self.connect_timeout, self.read_timeout
        if timeout is not None:
            connect, read = min(connect, max(timeout, 0.05)), min(read, max(timeout, 0.05))
        client, _ = self._client(connect, read)
        params: dict[str, Any] = {
            "ProductCode": product_code,
            "Timestamp": timestamp,
            "UsageDimension": dimension,
            "ClientToken": client_token,
            "DryRun": dry_run,
        }
        params.update(_quantity_parameter(client, quantity))
        try:
            response: Mapping[str, Any] = client.meter_usage(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if dry_run and code == "DryRunOperation":
                # MeterUsageRequest.DryRun: "If you have the permissions, the request returns
                # DryRunOperation; otherwise, it returns UnauthorizedException."
                return MeterUsageAnswer(record_id=None, dry_run=True)
            raise classify_meter_usage_error(
                code, int(status or 0), str(error.get("Message", ""))
            ) from None
        except _OversizedAnswer as exc:  # the ClientToken makes sending the record again safe
            raise Transient("OversizedAnswer", str(exc)) from None
        except BotoCoreError as exc:
            raise _classify_botocore(exc, _METER_USAGE_ROLE_REMEDY) from None
        except ResponseParserError as exc:  # not a BotoCoreError: lives in botocore.parsers
            raise Transient("ResponseParserError", str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - fail closed on anything the SDK did not classify
            raise ServiceError(
                f"MeterUsage failed unexpectedly ({type(exc).__name__}: {one_line(exc, 200)})",
                remedy="the usage is kept and sent again later; report this if it persists",
            ) from None
        record_id = response.get("MeteringRecordId")
        if dry_run:
            raise ServiceError(
                "MeterUsage answered a DryRun with success instead of DryRunOperation",
                remedy="check AWS_ENDPOINT_URL_MARKETPLACE_METERING points at the Metering service",
            )
        if not isinstance(record_id, str) or not record_id:
            raise Transient("NoMeteringRecordId", "the MeterUsage answer carried no record id")
        return MeterUsageAnswer(record_id=record_id)


class _OversizedAnswer(Exception):  # noqa: N818 - raised through botocore, classified below
    """A response body over `MAX_ANSWER_BYTES` (raised from `_CappedSend`, out of botocore)."""

    def __init__(self, status: int, size: str) -> None:
        super().__init__(f"HTTP {status} body of {size}")
        self.status = status
        self.size = size


def classify_oversized(status: int, size: str) -> EntrypointError | Transient:
    """A flood is an answer we refuse to read: a 2xx one is unverifiable (65), an error status
    is classified as its status would be (5xx/429 retried, anything else final). Both AWS client
    paths use this, with `MAX_ANSWER_BYTES`."""
    detail = f"the answer's body ({size}) is over the {MAX_ANSWER_BYTES}-byte cap"
    if status < 300:
        return VerificationError(
            f"the RegisterUsage answer could not be read: {detail}",
            remedy="the workload was not started; check what answers at the Metering endpoint",
        )
    return classify_client_error("", status, detail)


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


def _quantity_parameter(client: Any, quantity: str) -> dict[str, Any]:  # noqa: ANN401 - a botocore client
    """``UsageQuantityAsDecimal`` when the SDK's model has it, else a whole ``UsageQuantity``."""
    members = client.meta.service_model.operation_model("MeterUsage").input_shape.members
    if "UsageQuantityAsDecimal" in members:
        return {"UsageQuantityAsDecimal": quantity}
    whole, _, fraction = quantity.partition(".")
    if fraction.strip("0"):
        raise ConfigurationError(
            f"the installed botocore cannot send the fractional quantity {quantity} "
            "(its API model predates UsageQuantityAsDecimal)",
            remedy="upgrade boto3 and botocore",
        )
    return {"UsageQuantity": int(whole)}


def _classify_botocore(
    exc: Exception, role_remedy: str = ROLE_REMEDY
) -> EntrypointError | Transient:
    """Map botocore's own (non-HTTP-status) failures."""
    from botocore import exceptions as bx

    text = one_line(exc, 200)
    if isinstance(exc, bx.SSLError):
        return ConfigurationError(
            f"TLS to the Metering endpoint failed: {text}",
            remedy="check AWS_CA_BUNDLE, any TLS-inspecting proxy, and this host's clock",
        )
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return ConfigurationError(f"no usable AWS credentials ({text})", remedy=role_remedy)
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


class AutoMeteringClient:
    """The lean client where it applies, botocore where it does not (`create_metering_client`).

    If the lean client meets something only botocore implements mid-way (IMDSv1, say), it hands
    the work over for good; the retry loop above never notices.
    """

    def __init__(
        self, lean: MeteringClient, make_botocore: Callable[[], BotocoreMeteringClient]
    ) -> None:
        self._active: MeteringClient = lean
        self._make_botocore = make_botocore
        self.path = "lean (standard library)"

    def _switch(self, reason: object) -> None:
        event(
            logging.INFO,
            f"handing RegisterUsage over to botocore: {reason}",
            event="client_fallback",
            reason=str(reason),
        )
        self._active = self._make_botocore()
        self.path = f"botocore ({reason})"

    @property
    def credential_source(self) -> CredentialSource | None:
        return getattr(self._active, "credential_source", None)

    def prepare(self) -> str:
        from .aws.credentials import FallbackToBotocore

        try:
            return str(self._active.prepare())  # type: ignore[attr-defined]
        except FallbackToBotocore as reason:
            self._switch(reason)
            return str(self._active.prepare())  # type: ignore[attr-defined]

    def register_usage(
        self,
        *,
        product_code: str,
        public_key_version: int,
        nonce: str,
        timeout: float | None = None,
    ) -> RegisterUsageAnswer:
        from .aws.credentials import FallbackToBotocore

        try:
            return self._active.register_usage(
                product_code=product_code,
                public_key_version=public_key_version,
                nonce=nonce,
                timeout=timeout,
            )
        except FallbackToBotocore as reason:
            self._switch(reason)
            return self._active.register_usage(
                product_code=product_code,
                public_key_version=public_key_version,
                nonce=nonce,
                timeout=timeout,
            )


def create_metering_client(
    *,
    region: str,
    connect_timeout: float,
    read_timeout: float,
    environ: Mapping[str, str] | None = None,
) -> AutoMeteringClient | BotocoreMeteringClient:
    """The client a start uses: lean when `entrypoint.aws.eligibility` allows, else botocore.

    ``MARKETPLACE_AWS_CLIENT=botocore`` forces botocore (an escape hatch; both paths give the
    same outcomes).
    """
    from .aws.eligibility import endpoint_for, lean_unsupported

    env = os.environ if environ is None else environ

    def botocore_client() -> BotocoreMeteringClient:
        return BotocoreMeteringClient(
            region=region, connect_timeout=connect_timeout, read_timeout=read_timeout
        )

    reason = lean_unsupported(region, env)
    endpoint = endpoint_for("meteringmarketplace", region, env)
    if reason is not None or endpoint is None:
        client = botocore_client()
        client.path = f"botocore ({reason})"
        return client
    from .aws.client import LeanMeteringClient

    lean = LeanMeteringClient(
        region=region,
        endpoint=endpoint,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        environ=env,
    )
    return AutoMeteringClient(lean, botocore_client)
