"""BatchMeterUsage and ResolveCustomer (SaaS) as the emulator answers them, through boto3.

One named test per rule; time is the emulator's injected clock (``T0`` = 2026-11-21T10:30:00Z).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from entrypoint.emulator import Customer, Emulator, ProductBehavior

from .support import HOUR, KEYS, T0, FakeClock, metering_client

PRODUCT = "prod-saas"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[Emulator]:
    products = {PRODUCT: ProductBehavior(dimensions=("requests", "gb"))}
    with Emulator(products=products, key_factory=KEYS.factory, clock=clock) as em:
        yield em


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return metering_client(emulator)


@pytest.fixture
def alice(emulator: Emulator) -> Customer:
    return emulator.add_customer(PRODUCT, aws_account_id="111111111111", identifier="cust-alice")


@pytest.fixture
def bob(emulator: Emulator) -> Customer:
    return emulator.add_customer(PRODUCT, aws_account_id="222222222222")


def record(customer: Customer | str, **overrides: Any) -> dict[str, Any]:
    account = customer if isinstance(customer, str) else customer.aws_account_id
    item: dict[str, Any] = {
        "Timestamp": datetime.fromtimestamp(T0 - 60, UTC),
        "CustomerAWSAccountId": account,
        "Dimension": "requests",
        "Quantity": 10,
    }
    item.update(overrides)
    return {k: v for k, v in item.items() if v is not None}


def batch(client: Any, *records: dict[str, Any], product: str | None = PRODUCT) -> Any:
    params: dict[str, Any] = {"UsageRecords": list(records)}
    if product is not None:
        params["ProductCode"] = product
    return client.batch_meter_usage(**params)


def statuses(answer: Any) -> list[str]:
    return [result["Status"] for result in answer["Results"]]


def refused(call: Any, *args: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# -- BatchMeterUsage ------------------------------------------------------------------------------


def test_each_record_gets_a_status_and_a_record_id(
    emulator: Emulator, client: Any, alice: Customer, bob: Customer
) -> None:
    answer = batch(client, record(alice), record(bob, Dimension="gb", Quantity=2))
    assert statuses(answer) == ["Success", "Success"]
    assert answer["UnprocessedRecords"] == []
    ids = [result["MeteringRecordId"] for result in answer["Results"]]
    assert ids == [r.record_id for r in emulator.records(billed=True)]
    assert answer["Results"][1]["UsageRecord"]["Dimension"] == "gb"


def test_25_records_are_accepted(client: Any, alice: Customer) -> None:
    records = [
        record(alice, Timestamp=datetime.fromtimestamp(T0 - i * HOUR, UTC)) for i in range(20)
    ]
    records += [
        record(alice, Dimension="gb", Timestamp=datetime.fromtimestamp(T0 - i * HOUR, UTC))
        for i in range(5)
    ]
    assert statuses(batch(client, *records)) == ["Success"] * 25


def test_a_customer_without_subscription_is_customer_not_subscribed(
    emulator: Emulator, client: Any, alice: Customer
) -> None:
    gone = emulator.add_customer(PRODUCT, aws_account_id="333333333333", subscribed=False)
    answer = batch(client, record(alice), record(gone), record("444444444444"))
    assert statuses(answer) == ["Success", "CustomerNotSubscribed", "CustomerNotSubscribed"]
    assert "MeteringRecordId" not in answer["Results"][1]
    assert len(emulator.records(billed=True)) == 1


def test_a_legacy_customer_identifier_names_the_same_customer(client: Any, alice: Customer) -> None:
    first = batch(client, record(alice))
    again = batch(client, record(alice, CustomerAWSAccountId=None, CustomerIdentifier="cust-alice"))
    assert again["Results"][0]["MeteringRecordId"] == first["Results"][0]["MeteringRecordId"]


def test_identical_records_are_idempotent(emulator: Emulator, client: Any, alice: Customer) -> None:
    first = batch(client, record(alice), record(alice, Dimension="gb"))
    again = batch(client, record(alice), record(alice, Dimension="gb"))
    assert statuses(again) == ["Success", "Success"]
    assert [r["MeteringRecordId"] for r in again["Results"]] == [
        r["MeteringRecordId"] for r in first["Results"]
    ]
    assert len(emulator.records(billed=True)) == 2


def test_a_retry_of_a_subset_is_idempotent(
    emulator: Emulator, client: Any, alice: Customer
) -> None:
    batch(client, record(alice), record(alice, Dimension="gb"))
    again = batch(client, record(alice, Dimension="gb"))
    assert statuses(again) == ["Success"]
    assert len(emulator.records(billed=True)) == 2


def test_another_quantity_for_the_same_customer_dimension_and_hour_is_a_duplicate_record(
    emulator: Emulator, client: Any, alice: Customer
) -> None:
    batch(client, record(alice, Quantity=10))
    answer = batch(client, record(alice, Quantity=11, Timestamp=datetime.fromtimestamp(T0, UTC)))
    assert statuses(answer) == ["DuplicateRecord"]
    assert len(emulator.records(billed=True)) == 1


def test_records_throttled_part_way_come_back_unprocessed(
    emulator: Emulator, client: Any, alice: Customer, bob: Customer
) -> None:
    emulator.configure(PRODUCT, unprocessed=1)
    answer = batch(client, record(alice), record(bob))
    assert statuses(answer) == ["Success"]
    assert [r["CustomerAWSAccountId"] for r in answer["UnprocessedRecords"]] == [bob.aws_account_id]
    retry = batch(client, *answer["UnprocessedRecords"])
    assert statuses(retry) == ["Success"]
    assert len(emulator.records(billed=True)) == 2
    assert [r.status for r in emulator.records()] == ["Success", "Unprocessed", "Success"]


def test_a_record_24_hours_old_fails_the_whole_batch(
    emulator: Emulator, client: Any, alice: Customer
) -> None:
    old = record(alice, Timestamp=datetime.fromtimestamp(T0 - 24 * HOUR, UTC))
    assert refused(batch, client, record(alice), old) == ("TimestampOutOfBoundsException", 400)
    assert emulator.records() == []


def test_a_record_just_under_24_hours_old_is_accepted(client: Any, alice: Customer) -> None:
    young = record(alice, Timestamp=datetime.fromtimestamp(T0 - 24 * HOUR + 1, UTC))
    assert statuses(batch(client, young)) == ["Success"]


def test_a_record_in_the_future_fails_the_whole_batch(client: Any, alice: Customer) -> None:
    future = record(alice, Timestamp=datetime.fromtimestamp(T0 + 60, UTC))
    assert refused(batch, client, future)[0] == "TimestampOutOfBoundsException"


def test_last_months_records_are_accepted_until_0600_utc_on_the_first(
    clock: FakeClock, client: Any, alice: Customer
) -> None:
    march_31 = datetime(2027, 3, 31, 23, 30, tzinfo=UTC)
    clock.set(datetime(2027, 4, 1, 5, 59, tzinfo=UTC).timestamp())
    assert statuses(batch(client, record(alice, Timestamp=march_31))) == ["Success"]
    clock.set(datetime(2027, 4, 1, 6, 0, tzinfo=UTC).timestamp())
    assert refused(batch, client, record(alice, Timestamp=march_31, Quantity=1))[0] == (
        "TimestampOutOfBoundsException"
    )


def test_an_unknown_dimension_fails_the_whole_batch(client: Any, alice: Customer) -> None:
    assert refused(batch, client, record(alice), record(alice, Dimension="cpus")) == (
        "InvalidUsageDimensionException",
        400,
    )


def test_an_unknown_product_is_invalid(client: Any, alice: Customer) -> None:
    assert refused(batch, client, record(alice), product="prod-nope") == (
        "InvalidProductCodeException",
        400,
    )


def test_a_disabled_api(emulator: Emulator, client: Any, alice: Customer) -> None:
    emulator.configure(PRODUCT, outcome="disabled-api")
    assert refused(batch, client, record(alice)) == ("DisabledApiException", 400)


def test_throttling_and_faults_count_down(emulator: Emulator, client: Any, alice: Customer) -> None:
    emulator.configure(PRODUCT, throttle=1, server_errors=1)
    assert refused(batch, client, record(alice)) == ("ThrottlingException", 400)
    assert refused(batch, client, record(alice)) == ("InternalServiceErrorException", 500)
    assert statuses(batch(client, record(alice))) == ["Success"]


def test_a_record_naming_no_customer_is_an_invalid_customer_identifier(client: Any) -> None:
    assert refused(batch, client, record("0", CustomerAWSAccountId=None)) == (
        "InvalidCustomerIdentifierException",
        400,
    )


def test_allocations_must_sum_to_the_quantity(client: Any, alice: Customer) -> None:
    items = [{"AllocatedUsageQuantity": 3, "Tags": [{"Key": "k", "Value": "v"}]}]
    assert refused(batch, client, record(alice, UsageAllocations=items))[0] == (
        "InvalidUsageAllocationsException"
    )


def test_decimal_quantities(emulator: Emulator, client: Any, alice: Customer) -> None:
    batch(client, record(alice, Quantity=None, QuantityAsDecimal="2.5"))
    assert emulator.records()[0].quantity == "2.5"


def test_license_arn_records_name_product_and_customer(
    emulator: Emulator, client: Any, alice: Customer
) -> None:
    assert alice.license_arn is not None
    answer = batch(client, record(alice, LicenseArn=alice.license_arn), product=None)
    assert statuses(answer) == ["Success"]
    (entry,) = emulator.records(billed=True)
    assert (entry.product_code, entry.license_arn) == (PRODUCT, alice.license_arn)


def test_license_and_product_code_records_are_billed_apart(
    emulator: Emulator, client: Any, alice: Customer
) -> None:
    batch(client, record(alice))
    batch(client, record(alice, LicenseArn=alice.license_arn), product=None)
    assert len(emulator.records(billed=True)) == 2  # as AWS warns: "duplicate billing"


def test_a_license_arn_the_service_did_not_grant_is_invalid(client: Any, alice: Customer) -> None:
    arn = "arn:aws:license-manager::111111111111:license:l-00000000000000000000000000000000"
    assert refused(batch, client, record(alice, LicenseArn=arn), product=None) == (
        "InvalidLicenseException",
        400,
    )


def test_a_license_arn_of_another_customer_is_invalid(
    client: Any, alice: Customer, bob: Customer
) -> None:
    assert refused(batch, client, record(bob, LicenseArn=alice.license_arn), product=None)[0] == (
        "InvalidLicenseException"
    )


def test_without_product_code_every_record_needs_a_license_arn(
    client: Any, alice: Customer
) -> None:
    assert refused(batch, client, record(alice), product=None)[0] == "InvalidProductCodeException"


# -- ResolveCustomer ------------------------------------------------------------------------------


def test_a_registration_token_resolves_to_the_customer(
    emulator: Emulator, client: Any, alice: Customer
) -> None:
    token = emulator.issue_registration_token(alice)
    answer = client.resolve_customer(RegistrationToken=token.token)
    assert answer["ProductCode"] == PRODUCT
    assert answer["CustomerAWSAccountId"] == alice.aws_account_id
    assert answer["CustomerIdentifier"] == "cust-alice"
    assert answer["LicenseArn"] == alice.license_arn
    assert answer["Metadata"]["AgreementId"] == alice.agreement_id


def test_new_integrations_get_no_customer_identifier(
    emulator: Emulator, client: Any, bob: Customer
) -> None:
    answer = client.resolve_customer(RegistrationToken=emulator.issue_registration_token(bob).token)
    assert "CustomerIdentifier" not in answer


def test_an_unknown_token_is_invalid(client: Any) -> None:
    assert refused(client.resolve_customer, RegistrationToken="x" * 40) == (
        "InvalidTokenException",
        400,
    )


def test_a_token_past_its_lifetime_has_expired(
    emulator: Emulator, clock: FakeClock, client: Any, alice: Customer
) -> None:
    token = emulator.issue_registration_token(alice, ttl=600)
    clock.advance(600)
    assert refused(client.resolve_customer, RegistrationToken=token.token) == (
        "ExpiredTokenException",
        400,
    )


def test_a_token_resolves_once(emulator: Emulator, client: Any, alice: Customer) -> None:
    token = emulator.issue_registration_token(alice)
    client.resolve_customer(RegistrationToken=token.token)
    assert refused(client.resolve_customer, RegistrationToken=token.token)[0] == (
        "ExpiredTokenException"
    )


def test_resolve_customer_faults_and_disabled_api(
    emulator: Emulator, client: Any, alice: Customer
) -> None:
    token = emulator.issue_registration_token(alice)
    emulator.configure(PRODUCT, throttle=1)
    assert refused(client.resolve_customer, RegistrationToken=token.token)[0] == (
        "ThrottlingException"
    )
    emulator.configure(PRODUCT, outcome="disabled-api")
    assert refused(client.resolve_customer, RegistrationToken=token.token)[0] == (
        "DisabledApiException"
    )
