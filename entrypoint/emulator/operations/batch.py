"""BatchMeterUsage: up to 25 SaaS usage records per call, for one product, with a status each.

After the API model's limits (UsageRecords 0-25, each member's shape), in this order:

1. the product: the request's ProductCode (legacy integrations), else each record's LicenseArn
   ("The LicenseArn in each UsageRecord identifies both the product and the specific agreement");
   InvalidProductCodeException, or InvalidLicenseException for a LicenseArn the service did not
   grant ("Ensure the LicenseArn is valid, matches the customer"); then injected faults and
   DisabledApiException;
2. every record, before any is processed ("If any usage record fails these checks, the entire
   BatchMeterUsage request fails and no records are processed"): its quantity, allocations,
   dimension, and timestamp (TimestampOutOfBoundsException: "if any of the records are outside
   of the allowed range, the entire batch is not processed");
3. each record in order: UnprocessedRecords for the last records of the batch while the
   product's ``unprocessed`` countdown runs ("records that have failed due to transient
   error"), CustomerNotSubscribed for a customer without an active subscription (or unknown to
   the service), else `Ledger.batch_record` (Success, the same MeteringRecordId for a repeat,
   or DuplicateRecord).

Timestamps: "Usage records aren't accepted 24 hours or more after an event"; "We accept usage
records for the previous billing month until 06:00 UTC on the first day of the next month".
**[reading]** a timestamp after the service's "now" is out of bounds, and a record naming no
customer (neither CustomerIdentifier nor CustomerAWSAccountId) is
InvalidCustomerIdentifierException.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from entrypoint.emulator.ledger import UsageEntry, canonical_quantity, hour_of
from entrypoint.emulator.model import modelled_error
from entrypoint.emulator.protocol import Reply, RequestContext
from entrypoint.emulator.state import Customer, EmulatorState, Outcome
from entrypoint.emulator.tokens import TokenSigner

from .common import allocations, check_dimension, product, quantity

__all__ = ["batch_meter_usage", "in_bounds"]

OPERATION = "BatchMeterUsage"
MAX_AGE_SECONDS = 24 * 3600
GRACE_HOURS = 6


def in_bounds(timestamp: float, now: float) -> bool:
    """BatchMeterUsage's window: not in the future, under 24 hours old, and not of an earlier
    billing month once 06:00 UTC on the 1st has passed."""
    if timestamp > now or now - timestamp >= MAX_AGE_SECONDS:
        return False
    when, current = datetime.fromtimestamp(timestamp, UTC), datetime.fromtimestamp(now, UTC)
    if (when.year, when.month) != (current.year, current.month):
        grace_end = datetime(current.year, current.month, 1, GRACE_HOURS, tzinfo=UTC)
        return current < grace_end
    return True


def batch_meter_usage(
    state: EmulatorState, _signer: TokenSigner, _ctx: RequestContext, body: dict[str, Any]
) -> Reply:
    records: list[dict[str, Any]] = body["UsageRecords"]
    product_code: str | None = body.get("ProductCode")
    code = product_code if product_code is not None else _licensed_product(state, records)
    behavior = product(state, OPERATION, code) if code is not None else None
    if behavior is not None and behavior.outcome is Outcome.DISABLED_API:
        raise modelled_error(OPERATION, "DisabledApiException", "The API is disabled")
    now = state.clock()
    drafts = [_draft(state, product_code, record, now) for record in records]
    results: list[dict[str, Any]] = []
    unprocessed: list[dict[str, Any]] = []
    with state.lock:
        cut = len(records) - state.take_unprocessed(code or "", len(records))
        for index, (record, draft) in enumerate(zip(records, drafts, strict=True)):
            customer = _customer(state, product_code, record)
            if index >= cut:
                state.ledger.refused(_stamped(state, draft, customer), "Unprocessed")
                unprocessed.append(record)
                continue
            if customer is None or not customer.subscribed:
                state.ledger.refused(_stamped(state, draft, customer), "CustomerNotSubscribed")
                results.append({"UsageRecord": record, "Status": "CustomerNotSubscribed"})
                continue
            entry = state.ledger.batch_record(_stamped(state, draft, customer))
            result: dict[str, Any] = {"UsageRecord": record, "Status": entry.status}
            if entry.record_id is not None:
                result["MeteringRecordId"] = entry.record_id
            results.append(result)
    return Reply({"Results": results, "UnprocessedRecords": unprocessed})


def _licensed_product(state: EmulatorState, records: list[dict[str, Any]]) -> str | None:
    """Without a request-level ProductCode, every record must carry a LicenseArn."""
    code: str | None = None
    for index, record in enumerate(records, start=1):
        arn = record.get("LicenseArn")
        if arn is None:
            raise modelled_error(
                OPERATION,
                "InvalidProductCodeException",
                f"record {index} has no LicenseArn, and the request has no ProductCode",
            )
        customer = state.find_customer(license_arn=arn)
        if customer is None:
            raise modelled_error(OPERATION, "InvalidLicenseException", f"Invalid LicenseArn {arn}")
        code = code or customer.product_code
    return code


def _draft(
    state: EmulatorState, product_code: str | None, record: Mapping[str, Any], now: float
) -> UsageEntry:
    """Check one record (raising for the whole request) and draft its ledger entry."""
    amount, kind = quantity(record, "Quantity", "QuantityAsDecimal")
    allocated = allocations(OPERATION, record.get("UsageAllocations"), amount, kind)
    license_arn = record.get("LicenseArn")
    if record.get("CustomerIdentifier") is None and record.get("CustomerAWSAccountId") is None:
        raise modelled_error(
            OPERATION,
            "InvalidCustomerIdentifierException",
            "A usage record must name its customer (CustomerAWSAccountId or CustomerIdentifier)",
        )
    code = product_code
    if license_arn is not None:
        owner = state.find_customer(license_arn=license_arn)
        account = record.get("CustomerAWSAccountId")
        if owner is None or (account is not None and owner.aws_account_id != account):
            raise modelled_error(
                OPERATION,
                "InvalidLicenseException",
                f"LicenseArn {license_arn} does not match the customer",
            )
        code = code or owner.product_code
    with state.lock:
        behavior = state.products.get(code or "")
    if behavior is not None:
        check_dimension(behavior, OPERATION, record["Dimension"])
    timestamp = float(record["Timestamp"])
    if not in_bounds(timestamp, now):
        raise modelled_error(
            OPERATION,
            "TimestampOutOfBoundsException",
            "A usage record's timestamp is out of the allowed range; no record was processed",
        )
    return UsageEntry(
        seq=0,
        operation=OPERATION,
        status="",
        billed=False,
        record_id=None,
        product_code=code,
        dimension=record["Dimension"],
        timestamp=timestamp,
        hour=hour_of(timestamp),
        quantity=canonical_quantity(amount),
        allocations=allocated,
        license_arn=license_arn,
        customer=record.get("CustomerAWSAccountId") or record.get("CustomerIdentifier"),
        received_at=now,
    )


def _customer(
    state: EmulatorState, product_code: str | None, record: Mapping[str, Any]
) -> Customer | None:
    return state.find_customer(
        product_code=product_code,
        identifier=record.get("CustomerIdentifier"),
        aws_account_id=record.get("CustomerAWSAccountId"),
        license_arn=record.get("LicenseArn"),
    )


def _stamped(state: EmulatorState, draft: UsageEntry, customer: Customer | None) -> UsageEntry:
    """The draft with its sequence number and the customer's canonical identity (the account)."""
    from dataclasses import replace

    who = customer.aws_account_id if customer is not None else draft.customer
    return replace(draft, seq=state.ledger.next_seq(), customer=who)
