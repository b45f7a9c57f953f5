"""Sending usage: one MeterUsage per bucket with retries, and the DryRun preflight.

Retries go through the same loop as RegisterUsage (`entrypoint.retry`): throttling, server
faults and the network are retried with capped, jittered backoff inside a deadline; anything
else is final. Every attempt for a bucket carries the bucket's own ClientToken, hour-start
timestamp and frozen quantity, so a retry is the *same* request: AWS answers it with the record
it already made, never a second one.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from entrypoint.errors import ServiceError
from entrypoint.logs import event
from entrypoint.metering import MeterUsageClient
from entrypoint.retry import Backoff, retry_transient

from .hours import check_dimension, hour_text

__all__ = ["DryRunResult", "default_client", "meter_dry_run", "send_usage"]

_REMEDY = (
    "check egress to the Metering endpoint and the task's credentials; the usage is kept and "
    "sent again later"
)


def default_client(
    region: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
) -> MeterUsageClient:
    """botocore's client for the task's Region (``AWS_REGION``, then ``AWS_DEFAULT_REGION``),
    with botocore's credential chain and ``AWS_ENDPOINT_URL_MARKETPLACE_METERING``."""
    from entrypoint.metering import BotocoreMeteringClient
    from entrypoint.region import default_region_chain, resolve_region, validate_region

    if region is not None:
        name = validate_region(region, "region")
    else:
        name = resolve_region(default_region_chain(environ or os.environ)).name
    return BotocoreMeteringClient(
        region=name, connect_timeout=connect_timeout, read_timeout=read_timeout
    )


def send_usage(
    client: MeterUsageClient,
    *,
    product_code: str,
    dimension: str,
    hour: int,
    quantity: str,
    client_token: str,
    deadline: float,
    backoff: Backoff,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    uniform: Callable[[float, float], float] = random.uniform,
) -> str:
    """Report one hour of one dimension; return its MeteringRecordId.

    Raises `UsageRejectedError` when AWS refuses the record for good, `RetriesExhaustedError`
    when transient errors outlast ``deadline``, and the other final errors at once.
    """
    timestamp = datetime.fromtimestamp(hour, UTC)

    def attempt(remaining: float) -> str:
        answer = client.meter_usage(
            product_code=product_code,
            dimension=dimension,
            timestamp=timestamp,
            quantity=quantity,
            client_token=client_token,
            timeout=remaining,
        )
        if answer.record_id is None:  # only a DryRun answers without a record
            raise ServiceError("MeterUsage answered without a MeteringRecordId")
        return answer.record_id

    outcome = retry_transient(
        attempt,
        operation=f"MeterUsage ({dimension}, {hour_text(hour)})",
        event_name="meter_usage_retry",
        deadline=deadline,
        backoff=backoff,
        remedy=_REMEDY,
        clock=clock,
        sleep=sleep,
        uniform=uniform,
    )
    return outcome.value


@dataclass(frozen=True, slots=True)
class DryRunResult:
    """A MeterUsage DryRun that AWS answered with DryRunOperation: the task's credentials may
    call MeterUsage, the product code is valid, the buyer is entitled and the dimension exists."""

    product_code: str
    dimension: str
    attempts: int


def meter_dry_run(
    *,
    product_code: str,
    dimension: str,
    client: MeterUsageClient | None = None,
    region: str | None = None,
    deadline: float = 60.0,
    backoff: Backoff | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> DryRunResult:
    """Ask AWS whether this task could meter ``dimension`` of ``product_code``, recording nothing.

    MeterUsageRequest.DryRun: "Checks whether you have the permissions required for the action,
    but does not make the request. If you have the permissions, the request returns
    DryRunOperation; otherwise, it returns UnauthorizedException." This is the start-up check
    of `Meter` and the hook for a ``check`` command.

    Returns `DryRunResult`, or raises the `entrypoint.EntrypointError` that says what to fix
    (each carries ``exit_code`` and ``diagnosis()``): `ConfigurationError` (product code,
    dimension, Region, credentials or IAM), `NotEntitledError`, `RetriesExhaustedError`, or
    `ServiceError` (which includes an endpoint that recorded the DryRun instead).
    """
    check_dimension(dimension)
    metering = client if client is not None else default_client(region)

    def attempt(remaining: float) -> None:
        metering.meter_usage(
            product_code=product_code,
            dimension=dimension,
            timestamp=datetime.fromtimestamp(int(wall_clock()), UTC),
            quantity="0",
            client_token=str(uuid.uuid4()),  # a DryRun records nothing to be idempotent about
            dry_run=True,
            timeout=remaining,
        )

    outcome = retry_transient(
        attempt,
        operation="MeterUsage DryRun",
        event_name="meter_usage_dry_run_retry",
        deadline=deadline,
        backoff=backoff or Backoff(base=1.0, cap=10.0),
        remedy="check egress to the Metering endpoint and the task's credentials",
        clock=clock,
        sleep=sleep,
    )
    event(
        logging.INFO,
        f"MeterUsage DryRun for product {product_code}, dimension {dimension}: permitted",
        event="meter_usage_dry_run",
        product_code=product_code,
        dimension=dimension,
        attempts=outcome.attempts,
    )
    return DryRunResult(product_code=product_code, dimension=dimension, attempts=outcome.attempts)
