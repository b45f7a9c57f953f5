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

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

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
from .awssession import AwsSession, ClientCache, attempt_timeouts, bounded_sender, client_options
from .capped import CappedSend, OversizedAnswer
from .credentials import CredentialSource, StaticCredentials
from .errors import ConfigurationError, EntrypointError, ServiceError, one_line
from .sdk import classify_botocore, error_parts, raised_in

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
        self._clients = ClientCache(
            self._create,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            session=session,
            explicit_credentials=credentials is not None,
        )
        self.credential_source: CredentialSource | None = None

    def _client(self, timeout: float | None) -> tuple[MarketplaceMeteringClient, CappedSend]:
        connect, read = attempt_timeouts(self.connect_timeout, self.read_timeout, timeout)
        client, sender = self._clients.get(connect, read)
        return cast("MarketplaceMeteringClient", client), sender

    def _create(
        self,
        aws: AwsSession,
        connect: float,
        read: float,
        *,
        first: bool,  # noqa: ARG002 - Metering checks nothing once per session
    ) -> tuple[Any, CappedSend]:
        from botocore.exceptions import BotoCoreError

        if self._credentials is None:
            self.credential_source = aws.resolve_credentials()
        kwargs = client_options(self.region, connect, read, self._credentials)
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        try:
            client = aws.create_client("meteringmarketplace", **kwargs)
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

    def prepare(self) -> str:
        """Create the client (resolving credentials) without calling the API; return the endpoint
        URL botocore will use. For the ``check`` command."""
        client, _ = self._client(None)
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

        client, sender = self._client(timeout)
        try:
            with self._clients.refreshes_classified():
                response = client.register_usage(
                    ProductCode=product_code, PublicKeyVersion=public_key_version, Nonce=nonce
                )
        except (Transient, EntrypointError):
            raise
        except ClientError as exc:
            classify = (
                classify_client_error
                if exc.operation_name == "RegisterUsage"
                else classify_sts_error  # IRSA credentials refreshed during the call
            )
            raise classify(*error_parts(exc)) from None
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

        client, _ = self._client(timeout)
        params: dict[str, Any] = {
            "ProductCode": product_code,
            "Timestamp": timestamp,
            "UsageDimension": dimension,
            "ClientToken": client_token,
            "DryRun": dry_run,
        }
        params.update(_quantity_parameter(client, quantity))
        try:
            with self._clients.refreshes_classified():
                response: Mapping[str, Any] = client.meter_usage(**params)
        except (Transient, EntrypointError):
            raise
        except ClientError as exc:
            code, status, message = error_parts(exc)
            if dry_run and code == "DryRunOperation":
                # MeterUsageRequest.DryRun: "If you have the permissions, the request returns
                # DryRunOperation; otherwise, it returns UnauthorizedException."
                return MeterUsageAnswer(record_id=None, dry_run=True)
            raise classify_meter_usage_error(code, status, message) from None
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
