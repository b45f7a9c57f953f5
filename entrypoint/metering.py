"""The Metering API calls through botocore: one RegisterUsage or MeterUsage attempt.

This is the thin I/O layer under the retry loop. A `MeteringClient` (RegisterUsage) or
`MeterUsageClient` (MeterUsage) makes exactly one attempt and either returns the answer, raises
`Transient` (worth retrying: throttling, server faults, the network) or raises a final
`EntrypointError` that says what the operator must fix; what each answer means is decided by the
pure functions of `entrypoint.answers`.

`BotocoreMeteringClient` uses botocore's own credential chain, SigV4 signer, endpoint resolution
(so ``AWS_ENDPOINT_URL_MARKETPLACE_METERING`` works) and wire protocol, with botocore's retries
switched off: retries, deadline and logging belong to `entrypoint.retry`. What botocore does not
bound, the size and duration of an answer, `entrypoint.capped.CappedSend` does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._version import __version__
from .answers import (
    METER_USAGE_ROLE_REMEDY,
    MeterUsageAnswer,
    RegisterUsageAnswer,
    Transient,
    answer_from_response,
    classify_client_error,
    classify_meter_usage_error,
    classify_oversized,
    classify_sts_error,
    classify_unparsable,
)
from .awssession import AwsSession, bounded_sender
from .capped import CappedSend, OversizedAnswer
from .credentials import CredentialSource
from .errors import ConfigurationError, EntrypointError, ServiceError, one_line
from .sdk import classify_botocore, raised_in

if TYPE_CHECKING:
    from botocore.session import Session
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

__all__ = [
    "BotocoreMeteringClient",
    "MeterUsageClient",
    "MeteringClient",
    "StaticCredentials",
    "create_metering_client",
]


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
        self._aws: AwsSession | None = None
        self._clients: dict[tuple[float, float], tuple[MarketplaceMeteringClient, CappedSend]] = {}
        self._lock = threading.Lock()
        self.credential_source: CredentialSource | None = None

    def _client(self, connect: float, read: float) -> tuple[MarketplaceMeteringClient, CappedSend]:
        key = (round(connect, 2), round(read, 2))
        with self._lock:
            if self._aws is not None and self._aws.spent:
                # Fetching credentials failed: the next attempt starts from a new session.
                self._aws = None
                self._clients.clear()
            client = self._clients.get(key)
            if client is None:
                client = self._create(*key)
                self._clients[key] = client
            return client

    def _create(self, connect: float, read: float) -> tuple[MarketplaceMeteringClient, CappedSend]:
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        if self._aws is None:
            # Checks the environment and the files it names (exit 78 naming the variable), and
            # bounds every answer of every client and credential fetcher (entrypoint.awssession).
            self._aws = AwsSession(
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                session=self._session,
            )
        if self._credentials is None:
            self.credential_source = self._aws.resolve_credentials()
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
                self._aws.create_client("meteringmarketplace", **kwargs),
            )
        except BotoCoreError as exc:
            raise classify_botocore(exc) from None
        except ValueError as exc:  # botocore refuses malformed endpoint URLs with ValueError
            raise ConfigurationError(
                f"cannot create the Metering client: {one_line(exc, 200)}",
                remedy="check AWS_ENDPOINT_URL_MARKETPLACE_METERING and the AWS config file",
            ) from None
        # Every client of the session reads its answers through its own CappedSend, over the
        # HTTP session botocore resolved for it (per client, so per timeout).
        return client, bounded_sender(client)

    def _refreshes_classified(self) -> contextlib.AbstractContextManager[None]:
        """A credential refresh that fails mid-call, classified as a credential failure."""
        if self._aws is None or self._credentials is not None:  # nothing botocore refreshes
            return contextlib.nullcontext()
        return self._aws.refreshes_classified()

    def prepare(self) -> str:
        """Create the client (resolving credentials) without calling the API; return the endpoint
        URL botocore will use. For the ``check`` command."""
        client, _ = self._client(self.connect_timeout, self.read_timeout)
        return str(client.meta.endpoint_url)

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
            with self._refreshes_classified():
                response = client.register_usage(
                    ProductCode=product_code, PublicKeyVersion=public_key_version, Nonce=nonce
                )
        except (Transient, EntrypointError):
            raise
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
        except OversizedAnswer as exc:
            raise classify_oversized(exc.status, exc.size) from None
        except BotoCoreError as exc:
            raise classify_botocore(exc) from None
        except ResponseParserError as exc:  # not a BotoCoreError: lives in botocore.parsers
            raise classify_unparsable(exc, sender.last_status()) from None
        except Exception as exc:  # noqa: BLE001 - fail closed on anything the SDK did not classify
            if raised_in(exc, "botocore.parsers"):
                # botocore's parser lets AttributeError/ValueError escape on answers that are JSON
                # but not objects, or carry a timestamp it cannot read: a bad answer, not a bug.
                raise classify_unparsable(exc, sender.last_status()) from None
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
            with self._refreshes_classified():
                response: Mapping[str, Any] = client.meter_usage(**params)
        except (Transient, EntrypointError):
            raise
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
        except OversizedAnswer as exc:  # the ClientToken makes sending the record again safe
            raise Transient("OversizedAnswer", str(exc)) from None
        except BotoCoreError as exc:
            raise classify_botocore(exc, METER_USAGE_ROLE_REMEDY) from None
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


def create_metering_client(
    *,
    region: str,
    connect_timeout: float,
    read_timeout: float,
) -> BotocoreMeteringClient:
    """The client a start uses: botocore's, in ``region``, with the bootstrap's timeouts."""
    return BotocoreMeteringClient(
        region=region, connect_timeout=connect_timeout, read_timeout=read_timeout
    )
