"""MeterUsage as the emulator answers it, one named test per rule, through boto3 over HTTP.

Time is the emulator's injected clock (``T0`` = 2026-11-21T10:30:00Z), moved explicitly. Every
test checks the error code and status, and the emulator's records are the proof of what was
billed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from entrypoint.emulator import Emulator, ProductBehavior

from .support import HOUR, KEYS, T0, FakeClock, metering_client

PRODUCT = "prod-meter"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[Emulator]:
    products = {PRODUCT: ProductBehavior(dimensions=("users", "gb"))}
    with Emulator(products=products, key_factory=KEYS.factory, clock=clock) as em:
        yield em


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return metering_client(emulator)


def meter(client: Any, **overrides: Any) -> Any:
    params: dict[str, Any] = {
        "ProductCode": PRODUCT,
        "Timestamp": T0 - 60,
        "UsageDimension": "users",
        "UsageQuantity": 3,
    }
    params.update(overrides)
    return client.meter_usage(**{k: v for k, v in params.items() if v is not None})


def refused(client: Any, **overrides: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        meter(client, **overrides)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_record_is_accepted_and_billed(emulator: Emulator, client: Any) -> None:
    answer = meter(client)
    (record,) = emulator.records()
    assert answer["MeteringRecordId"] == record.record_id
    assert (record.status, record.billed, record.quantity) == ("Success", True, "3")
    assert record.hour == T0 - 30 * 60  # 10:00, rounded down


def test_one_record_per_dimension_and_hour_the_timestamp_rounded_down(
    emulator: Emulator, client: Any
) -> None:
    first = meter(client, Timestamp=T0 - 29 * 60)  # 10:01
    again = meter(client, Timestamp=T0)  # 10:30, same hour, same quantity
    assert again["MeteringRecordId"] == first["MeteringRecordId"]
    assert [r.billed for r in emulator.records()] == [True, False]


def test_another_quantity_for_the_same_hour_is_a_duplicate_request(
    emulator: Emulator, client: Any
) -> None:
    meter(client, UsageQuantity=3)
    assert refused(client, UsageQuantity=4) == ("DuplicateRequestException", 400)
    assert [(r.status, r.billed) for r in emulator.records()] == [
        ("Success", True),
        ("DuplicateRequest", False),
    ]


def test_the_next_hour_is_a_new_record(emulator: Emulator, client: Any) -> None:
    meter(client, UsageQuantity=3)
    meter(client, UsageQuantity=4, Timestamp=T0 - HOUR)  # 09:30: the hour before
    assert len(emulator.records(billed=True)) == 2


def test_dimensions_are_metered_apart(emulator: Emulator, client: Any) -> None:
    meter(client, UsageDimension="users", UsageQuantity=3)
    meter(client, UsageDimension="gb", UsageQuantity=4)
    assert len(emulator.records(billed=True)) == 2


def test_quantities_compare_by_value_whole_or_decimal(emulator: Emulator, client: Any) -> None:
    first = meter(client, UsageQuantity=17)
    again = meter(client, UsageQuantity=None, UsageQuantityAsDecimal="17.00")
    assert again["MeteringRecordId"] == first["MeteringRecordId"]
    assert len(emulator.records(billed=True)) == 1


def test_decimal_quantities_are_recorded_exactly(emulator: Emulator, client: Any) -> None:
    meter(client, UsageQuantity=None, UsageQuantityAsDecimal="0.000001")
    assert Decimal(emulator.records()[0].quantity) == Decimal("0.000001")


def test_no_quantity_means_zero(emulator: Emulator, client: Any) -> None:
    meter(client, UsageQuantity=None)
    assert emulator.records()[0].quantity == "0"


def test_both_quantity_members_is_a_validation_exception(client: Any) -> None:
    assert refused(client, UsageQuantityAsDecimal="3") == ("ValidationException", 400)


def test_the_same_client_token_and_parameters_is_the_same_record(
    emulator: Emulator, client: Any
) -> None:
    first = meter(client, ClientToken="token-1")
    again = meter(client, ClientToken="token-1")
    assert again["MeteringRecordId"] == first["MeteringRecordId"]
    assert [r.billed for r in emulator.records()] == [True, False]


def test_the_same_client_token_with_other_parameters_is_an_idempotency_conflict(
    emulator: Emulator, client: Any
) -> None:
    meter(client, ClientToken="token-1", UsageQuantity=3)
    assert refused(client, ClientToken="token-1", UsageQuantity=4) == (
        "IdempotencyConflictException",
        400,
    )
    assert emulator.records()[-1].status == "IdempotencyConflict"


def test_the_same_client_token_in_another_hour_is_an_idempotency_conflict(client: Any) -> None:
    meter(client, ClientToken="token-1")
    assert refused(client, ClientToken="token-1", Timestamp=T0 - 2 * HOUR)[0] == (
        "IdempotencyConflictException"
    )


def test_boto3_sends_a_fresh_client_token_when_none_is_given(
    emulator: Emulator, client: Any
) -> None:
    meter(client)
    meter(client)
    tokens = [c.request.get("ClientToken") for c in emulator.calls("MeterUsage")]
    assert all(tokens)
    assert tokens[0] != tokens[1]  # so the hour rule, not the token, deduplicated


def test_a_timestamp_six_hours_old_is_accepted(client: Any) -> None:
    assert meter(client, Timestamp=T0 - 6 * HOUR)["MeteringRecordId"]


def test_a_timestamp_more_than_six_hours_old_is_out_of_bounds(
    emulator: Emulator, client: Any
) -> None:
    assert refused(client, Timestamp=T0 - 6 * HOUR - 1) == ("TimestampOutOfBoundsException", 400)
    assert emulator.records() == []


def test_a_timestamp_in_the_future_is_out_of_bounds(client: Any) -> None:
    assert refused(client, Timestamp=T0 + 1) == ("TimestampOutOfBoundsException", 400)


def test_the_bounds_follow_the_service_clock(clock: FakeClock, client: Any) -> None:
    clock.advance(7 * HOUR)
    assert refused(client, Timestamp=T0)[0] == "TimestampOutOfBoundsException"


def test_dry_run_answers_dry_run_operation_and_records_nothing(
    emulator: Emulator, client: Any
) -> None:
    assert refused(client, DryRun=True) == ("DryRunOperation", 412)
    assert emulator.records() == []
    assert meter(client)["MeteringRecordId"]  # the hour is still free


def test_dry_run_still_checks_the_dimension(client: Any) -> None:
    assert refused(client, DryRun=True, UsageDimension="cpus") == (
        "InvalidUsageDimensionException",
        400,
    )


def test_an_unknown_dimension_is_invalid(client: Any) -> None:
    assert refused(client, UsageDimension="cpus") == ("InvalidUsageDimensionException", 400)


def test_any_dimension_when_the_product_declares_none(emulator: Emulator, client: Any) -> None:
    emulator.configure("prod-open")
    assert meter(client, ProductCode="prod-open", UsageDimension="anything")["MeteringRecordId"]


def test_an_unknown_product_is_invalid(client: Any) -> None:
    assert refused(client, ProductCode="prod-nope") == ("InvalidProductCodeException", 400)


def test_a_buyer_without_subscription_is_not_entitled(emulator: Emulator, client: Any) -> None:
    emulator.configure(PRODUCT, outcome="not-entitled")
    assert refused(client) == ("CustomerNotEntitledException", 400)


def test_another_region_is_an_invalid_endpoint_region(emulator: Emulator) -> None:
    other = metering_client(emulator, region="eu-west-1")
    assert refused(other) == ("InvalidEndpointRegionException", 400)


def test_throttling_and_faults_count_down(emulator: Emulator, client: Any) -> None:
    emulator.configure(PRODUCT, throttle=1, server_errors=1)
    assert refused(client) == ("ThrottlingException", 400)
    assert refused(client) == ("InternalServiceErrorException", 500)
    assert meter(client)["MeteringRecordId"]


def allocation(quantity: int | str, **tags: str) -> dict[str, Any]:
    key = (
        "AllocatedUsageQuantityAsDecimal" if isinstance(quantity, str) else "AllocatedUsageQuantity"
    )
    item: dict[str, Any] = {key: quantity}
    if tags:
        item["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return item


def test_allocations_that_sum_to_the_quantity_are_accepted(emulator: Emulator, client: Any) -> None:
    meter(client, UsageAllocations=[allocation(1, team="a"), allocation(2, team="b")])
    tags = [tags for tags, _ in emulator.records()[0].allocations]
    assert tags == [(("team", "a"),), (("team", "b"),)]


def test_allocations_must_sum_to_the_quantity(client: Any) -> None:
    assert refused(client, UsageAllocations=[allocation(1, team="a"), allocation(1, team="b")]) == (
        "InvalidUsageAllocationsException",
        400,
    )


def test_decimal_allocations_sum_by_value(client: Any) -> None:
    answer = meter(
        client,
        UsageQuantity=None,
        UsageQuantityAsDecimal="1.5",
        UsageAllocations=[allocation("0.25", team="a"), allocation("1.250", team="b")],
    )
    assert answer["MeteringRecordId"]


def test_allocations_must_use_the_quantitys_type(client: Any) -> None:
    assert refused(client, UsageAllocations=[allocation("3", team="a")])[0] == (
        "InvalidUsageAllocationsException"
    )


def test_each_allocation_needs_a_unique_tag_set(client: Any) -> None:
    items = [allocation(1, team="a", env="x"), allocation(2, env="x", team="a")]
    assert refused(client, UsageAllocations=items)[0] == "InvalidUsageAllocationsException"


def test_a_tag_key_twice_in_one_allocation_is_an_invalid_tag(client: Any) -> None:
    item = {"AllocatedUsageQuantity": 3, "Tags": [{"Key": "k", "Value": "1"}] * 2}
    assert refused(client, UsageAllocations=[item]) == ("InvalidTagException", 400)


def test_other_allocations_for_the_same_hour_are_a_duplicate_request(client: Any) -> None:
    meter(client, UsageAllocations=[allocation(3, team="a")])
    assert refused(client, UsageAllocations=[allocation(3, team="b")])[0] == (
        "DuplicateRequestException"
    )
