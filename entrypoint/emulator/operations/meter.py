"""MeterUsage: one custom-dimension metering record per product, dimension and hour.

After the API model's limits, in this order: the caller's Region (InvalidEndpointRegionException:
"The Region of the Metering Service endpoint and the Amazon Web Services Region of the resource
must match"), the product (InvalidProductCodeException) and its injected faults, entitlement
(CustomerNotEntitledException), the dimension (InvalidUsageDimensionException), the allocations
(InvalidUsageAllocationsException, InvalidTagException), the timestamp
(TimestampOutOfBoundsException), then ``DryRun``, then the record itself (`Ledger.meter_usage`:
idempotent repeat, IdempotencyConflictException, DuplicateRequestException, or a new record).

Timestamp: "If you submit records more than six hours after events occur, the records won't be
accepted"; **[reading]** a timestamp after the service's "now" is out of bounds too (no clock
skew is allowed for).

DryRun: "Checks whether you have the permissions required for the action, but does not make the
request. If you have the permissions, the request returns DryRunOperation". DryRunOperation is
not a modelled error shape; **[reading]** it is answered with HTTP 412, the status EC2 documents
for its DryRunOperation, after every check above (so a start-up DryRun also proves the product,
entitlement and dimension), and nothing is recorded.
"""

from __future__ import annotations

from typing import Any

from entrypoint.emulator.ledger import UsageEntry, canonical_quantity, hour_of
from entrypoint.emulator.model import modelled_error
from entrypoint.emulator.protocol import ApiError, Reply, RequestContext
from entrypoint.emulator.state import EmulatorState, Outcome
from entrypoint.emulator.tokens import TokenSigner

from .common import allocations, check_dimension, check_region, product, quantity

__all__ = ["MAX_AGE_SECONDS", "meter_usage"]

OPERATION = "MeterUsage"
MAX_AGE_SECONDS = 6 * 3600  # "more than six hours after events occur ... won't be accepted"
DRY_RUN_STATUS = 412


def meter_usage(
    state: EmulatorState, _signer: TokenSigner, ctx: RequestContext, body: dict[str, Any]
) -> Reply:
    product_code: str = body["ProductCode"]
    dimension: str = body["UsageDimension"]
    timestamp = float(body["Timestamp"])
    amount, kind = quantity(body, "UsageQuantity", "UsageQuantityAsDecimal")
    check_region(state, ctx, OPERATION, "InvalidEndpointRegionException")
    behavior = product(state, OPERATION, product_code)
    if behavior.outcome is Outcome.NOT_ENTITLED:
        raise modelled_error(
            OPERATION,
            "CustomerNotEntitledException",
            "Customer does not have a valid subscription for this product",
        )
    check_dimension(behavior, OPERATION, dimension)
    allocated = allocations(OPERATION, body.get("UsageAllocations"), amount, kind)
    now = state.clock()
    if timestamp > now or now - timestamp > MAX_AGE_SECONDS:
        raise modelled_error(
            OPERATION,
            "TimestampOutOfBoundsException",
            "Timestamp must be in the past and at most 6 hours old",
        )
    if body.get("DryRun") is True:
        raise ApiError(
            "DryRunOperation",
            "Request would have succeeded, but the DryRun flag is set",
            status=DRY_RUN_STATUS,
        )
    with state.lock:
        entry = state.ledger.meter_usage(
            UsageEntry(
                seq=state.ledger.next_seq(),
                operation=OPERATION,
                status="",
                billed=False,
                record_id=None,
                product_code=product_code,
                dimension=dimension,
                timestamp=timestamp,
                hour=hour_of(timestamp),
                quantity=canonical_quantity(amount),
                allocations=allocated,
                client_token=body.get("ClientToken"),
                received_at=now,
            )
        )
    if entry.status == "IdempotencyConflict":
        raise modelled_error(
            OPERATION,
            "IdempotencyConflictException",
            "The ClientToken was already used with different parameters",
        )
    if entry.status == "DuplicateRequest":
        raise modelled_error(
            OPERATION,
            "DuplicateRequestException",
            f"A metering record was already emitted for dimension {dimension} and this hour "
            "with a different quantity",
        )
    return Reply({"MeteringRecordId": entry.record_id})
