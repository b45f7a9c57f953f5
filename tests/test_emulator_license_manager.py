"""The emulated AWS License Manager through an unmodified boto3, over HTTP: every operation a
contract product calls, every error it can answer, and what its state shows."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from entrypoint.emulator import Emulator, Principal
from entrypoint.emulator.cli import parse_license
from entrypoint.emulator.licensing import PROVISIONAL_TTL

from .license_support import (
    FINGERPRINT,
    PRODUCT_ID,
    SEAT_REQUEST,
    TIER_REQUEST,
    checkout,
    lm_client,
)
from .support import KEYS, T0, FakeClock, signed_post


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def em(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(key_factory=KEYS.factory, clock=clock) as emulator:
        yield emulator


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def seats(em: Emulator, count: int = 1, **fields: Any) -> Any:
    return em.add_license(
        PRODUCT_ID,
        entitlements=[{"name": "Users", "unit": "Count", "max_count": count}],
        **fields,
    )


# -- CheckoutLicense ------------------------------------------------------------------------------


def test_a_tiered_checkout_answers_the_tier_bought(em: Emulator) -> None:
    lic = em.add_license(PRODUCT_ID, tier="Premium")
    answer = checkout(lm_client(em), TIER_REQUEST, NodeId="node-1")
    assert answer["EntitlementsAllowed"] == [{"Name": "Premium", "Unit": "None"}]
    assert answer["LicenseArn"] == lic.arn
    assert answer["CheckoutType"] == "PROVISIONAL"
    assert answer["NodeId"] == "node-1"
    assert len(answer["SignedToken"]) >= 4096  # the model's minimum
    assert answer["IssuedAt"] == "2026-11-21T10:30:00.000Z"
    assert answer["Expiration"] == "2026-11-21T11:30:00.000Z"  # 60 minutes


def test_a_floating_seat_is_held_until_checked_in(em: Emulator) -> None:
    seats(em, 1)
    client = lm_client(em)
    first = checkout(client, SEAT_REQUEST)
    assert first["EntitlementsAllowed"] == [{"Name": "Users", "Unit": "Count", "Value": "1"}]
    with pytest.raises(ClientError) as taken:
        checkout(client, SEAT_REQUEST)
    assert error_of(taken) == ("NoEntitlementsAllowedException", 400)
    assert "maximum count is reached" in str(taken.value)
    assert len(em.checkouts(held=True)) == 1
    client.check_in_license(LicenseConsumptionToken=first["LicenseConsumptionToken"])
    assert em.checkouts(held=True) == []
    checkout(client, SEAT_REQUEST)


def test_an_unreturned_seat_comes_back_after_60_minutes(em: Emulator, clock: FakeClock) -> None:
    seats(em, 1)
    client = lm_client(em)
    checkout(client, SEAT_REQUEST)
    clock.advance(PROVISIONAL_TTL - 1)
    with pytest.raises(ClientError):
        checkout(client, SEAT_REQUEST)
    clock.advance(1)
    checkout(client, SEAT_REQUEST)


def test_a_drawdown_is_taken_for_good(em: Emulator, clock: FakeClock) -> None:
    em.add_license(
        PRODUCT_ID, entitlements=[{"name": "Data", "unit": "Gigabytes", "max_count": 25}]
    )
    client = lm_client(em)
    request = [{"Name": "Data", "Unit": "Gigabytes", "Value": "10"}]
    drawn = [checkout(client, request, CheckoutType="PERPETUAL") for _ in range(2)]
    clock.advance(10 * PROVISIONAL_TTL)
    with pytest.raises(ClientError) as exhausted:
        checkout(client, request, CheckoutType="PERPETUAL")
    assert error_of(exhausted)[0] == "NoEntitlementsAllowedException"
    with pytest.raises(ClientError) as returned:
        client.check_in_license(LicenseConsumptionToken=drawn[0]["LicenseConsumptionToken"])
    assert error_of(returned) == ("ConflictException", 400)
    state = em.export()["license_manager"]
    (lic,) = state["licenses"].values()
    assert lic["entitlements"][0]["in_use"] == "20"


def test_a_client_token_makes_a_checkout_idempotent(em: Emulator) -> None:
    seats(em, 1)
    client = lm_client(em)
    first = checkout(client, SEAT_REQUEST, ClientToken="same-token")
    again = checkout(client, SEAT_REQUEST, ClientToken="same-token")
    assert again["LicenseConsumptionToken"] == first["LicenseConsumptionToken"]
    assert len(em.checkouts()) == 1
    with pytest.raises(ClientError) as conflict:
        checkout(
            client, [{"Name": "Users", "Unit": "Count", "Value": "2"}], ClientToken="same-token"
        )
    assert error_of(conflict) == ("InvalidParameterValueException", 400)


def test_no_license_for_the_product_is_no_entitlements_allowed(em: Emulator) -> None:
    em.add_license("prod-other", tier="Premium")
    em.add_license(
        PRODUCT_ID, tier="Premium", fingerprint="aws:111122223333:Someone:issuer-fingerprint"
    )
    with pytest.raises(ClientError) as none:
        checkout(lm_client(em), TIER_REQUEST)
    assert error_of(none) == ("NoEntitlementsAllowedException", 400)


def test_a_tier_not_bought_and_a_unit_mismatch_are_refused(em: Emulator) -> None:
    em.add_license(
        PRODUCT_ID, tier="Basic", entitlements=[{"name": "Users", "unit": "Count", "max_count": 5}]
    )
    client = lm_client(em)
    with pytest.raises(ClientError) as tier:
        checkout(client, [{"Name": "Premium", "Unit": "None"}])
    assert error_of(tier)[0] == "NoEntitlementsAllowedException"
    # A counted entitlement asked for with Unit None (a live integration found it refused).
    with pytest.raises(ClientError) as unit:
        checkout(client, [{"Name": "Users", "Unit": "None"}])
    assert error_of(unit)[0] == "NoEntitlementsAllowedException"
    with pytest.raises(ClientError) as no_value:
        checkout(client, [{"Name": "Users", "Unit": "Count"}])
    assert error_of(no_value) == ("InvalidParameterValueException", 400)


def test_an_expired_or_suspended_license_allows_nothing(em: Emulator, clock: FakeClock) -> None:
    lic = em.add_license(PRODUCT_ID, tier="Premium", valid_for=3600)
    client = lm_client(em)
    checkout(client, TIER_REQUEST)
    clock.advance(3600)
    with pytest.raises(ClientError) as expired:
        checkout(client, TIER_REQUEST)
    assert "The license is EXPIRED" in str(expired.value)
    assert client.get_license(LicenseArn=lic.arn)["License"]["Status"] == "EXPIRED"
    em.renew_license(lic.arn, end=clock() + 86400)
    checkout(client, TIER_REQUEST)
    em.configure_license(lic.arn, status="SUSPENDED")
    with pytest.raises(ClientError, match="The license is SUSPENDED"):
        checkout(client, TIER_REQUEST)


def test_a_renewal_makes_a_new_version_with_new_entitlements(em: Emulator) -> None:
    lic = em.add_license(PRODUCT_ID, tier="Basic")
    client = lm_client(em)
    assert checkout(client, TIER_REQUEST)["EntitlementsAllowed"][0]["Name"] == "Basic"
    em.renew_license(lic.arn, tier="Premium")
    assert checkout(client, TIER_REQUEST)["EntitlementsAllowed"][0]["Name"] == "Premium"
    assert client.get_license(LicenseArn=lic.arn)["License"]["Version"] == "2"
    old = client.get_license(LicenseArn=lic.arn, Version="1")["License"]
    assert old["Entitlements"][0]["Name"] == "Basic"


def test_the_wrong_region_is_redirected_with_a_location(em: Emulator) -> None:
    em.add_license(PRODUCT_ID, tier="Premium", home_region="eu-west-1")
    with pytest.raises(ClientError) as redirect:
        checkout(lm_client(em), TIER_REQUEST)
    assert error_of(redirect) == ("RedirectException", 400)
    response: Any = redirect.value.response  # the error shape's members, parsed by botocore
    assert response["Location"] == "https://license-manager.eu-west-1.amazonaws.com"
    checkout(lm_client(em, region="eu-west-1"), TIER_REQUEST)


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("throttle", "RateLimitExceededException", 400),
        ("server_errors", "ServerInternalException", 500),
        ("not_found", "ResourceNotFoundException", 400),
    ],
)
def test_faults_count_down_then_answer(em: Emulator, fault: str, code: str, status: int) -> None:
    fields: dict[str, Any] = {fault: 2}
    em.add_license(PRODUCT_ID, tier="Premium", **fields)
    client = lm_client(em)
    for _ in range(2):
        with pytest.raises(ClientError) as failed:
            checkout(client, TIER_REQUEST)
        assert error_of(failed) == (code, status)
    checkout(client, TIER_REQUEST)


def test_latency_delays_the_answer(em: Emulator) -> None:
    import time

    em.add_license(PRODUCT_ID, tier="Premium", latency=0.3)
    start = time.monotonic()
    checkout(lm_client(em), TIER_REQUEST)
    assert time.monotonic() - start >= 0.3


def test_stale_answers_are_dated_in_the_past(em: Emulator) -> None:
    em.add_license(PRODUCT_ID, tier="Premium", stale=7200)
    answer = checkout(lm_client(em), TIER_REQUEST)
    assert answer["Expiration"] == "2026-11-21T09:30:00.000Z"  # an hour before "now"


def test_the_rate_limiter_answers_license_managers_own_error(em: Emulator) -> None:
    em.add_license(PRODUCT_ID, tier="Premium")
    em.faults.rate_limit(rate=0.001, burst=1)
    client = lm_client(em)
    checkout(client, TIER_REQUEST)
    with pytest.raises(ClientError) as throttled:
        checkout(client, TIER_REQUEST)
    assert error_of(throttled) == ("RateLimitExceededException", 400)


def test_requests_are_validated_from_the_model(em: Emulator) -> None:
    client = lm_client(em, validate=False)
    with pytest.raises(ClientError) as invalid:
        client.checkout_license(
            ProductSKU=PRODUCT_ID,
            CheckoutType="FOREVER",
            KeyFingerprint=FINGERPRINT,
            Entitlements=[{"Name": "Users", "Unit": "Seats"}],
            ClientToken="has space",
        )
    assert error_of(invalid) == ("ValidationException", 400)
    message = invalid.value.response["Error"]["Message"]
    assert message.startswith("3 validation errors detected: ")
    assert "at 'checkoutType' failed to satisfy constraint: Member must satisfy enum" in message
    assert "at 'entitlements.1.member.unit'" in message
    assert "at 'clientToken' failed to satisfy constraint: Member must satisfy regular" in message
    with pytest.raises(ClientError) as missing:
        client.check_in_license()
    assert "Value null at 'licenseConsumptionToken'" in str(missing.value)


# -- CheckInLicense, ExtendLicenseConsumption -----------------------------------------------------


def test_check_in_of_a_checkout_not_held_is_resource_not_found(
    em: Emulator, clock: FakeClock
) -> None:
    seats(em, 2)
    client = lm_client(em)
    twice = checkout(client, SEAT_REQUEST)["LicenseConsumptionToken"]
    client.check_in_license(LicenseConsumptionToken=twice)
    expired = checkout(client, SEAT_REQUEST)["LicenseConsumptionToken"]
    clock.advance(PROVISIONAL_TTL)
    for token in ("f1603b3c1f574b7284db84", twice, expired):
        with pytest.raises(ClientError) as gone:
            client.check_in_license(LicenseConsumptionToken=token)
        assert error_of(gone) == ("ResourceNotFoundException", 400)


def test_a_check_in_refused_by_the_entitlement_is_a_conflict(em: Emulator) -> None:
    em.add_license(
        PRODUCT_ID,
        entitlements=[{"name": "Users", "unit": "Count", "max_count": 1, "allow_check_in": False}],
    )
    client = lm_client(em)
    token = checkout(client, SEAT_REQUEST)["LicenseConsumptionToken"]
    with pytest.raises(ClientError) as refused:
        client.check_in_license(LicenseConsumptionToken=token)
    assert error_of(refused) == ("ConflictException", 400)


def test_extend_keeps_a_seat_60_minutes_more(em: Emulator, clock: FakeClock) -> None:
    seats(em, 1)
    client = lm_client(em)
    token = checkout(client, SEAT_REQUEST)["LicenseConsumptionToken"]
    for _ in range(5):  # five hours, extended every 50 minutes
        clock.advance(50 * 60)
        extended = client.extend_license_consumption(LicenseConsumptionToken=token)
        assert extended["LicenseConsumptionToken"] == token
    assert extended["Expiration"] == "2026-11-21T15:40:00.000Z"
    dry = client.extend_license_consumption(LicenseConsumptionToken=token, DryRun=True)
    assert dry["Expiration"] == extended["Expiration"]
    with pytest.raises(ClientError):
        checkout(client, SEAT_REQUEST)  # still held
    clock.advance(PROVISIONAL_TTL)
    with pytest.raises(ClientError) as gone:
        client.extend_license_consumption(LicenseConsumptionToken=token)
    assert error_of(gone) == ("ResourceNotFoundException", 400)


def test_a_perpetual_checkout_cannot_be_extended(em: Emulator) -> None:
    seats(em, 5)
    client = lm_client(em)
    token = checkout(client, SEAT_REQUEST, CheckoutType="PERPETUAL")["LicenseConsumptionToken"]
    with pytest.raises(ClientError) as refused:
        client.extend_license_consumption(LicenseConsumptionToken=token)
    assert error_of(refused) == ("InvalidParameterValueException", 400)


# -- GetLicense, ListReceivedLicenses -------------------------------------------------------------


def test_get_license_describes_a_marketplace_license(em: Emulator) -> None:
    lic = seats(em, 10, valid_for=86400)
    described = lm_client(em).get_license(LicenseArn=lic.arn)["License"]
    assert described["Issuer"] == {"Name": "AWS/Marketplace", "KeyFingerprint": FINGERPRINT}
    assert described["ProductSKU"] == PRODUCT_ID
    assert described["Status"] == "AVAILABLE"
    assert described["Validity"] == {
        "Begin": "2026-11-21T10:30:00.000Z",
        "End": "2026-11-22T10:30:00.000Z",
    }
    assert described["Entitlements"][0]["MaxCount"] == 10
    assert described["ConsumptionConfiguration"]["ProvisionalConfiguration"] == {
        "MaxTimeToLiveInMinutes": 60
    }
    for params in (
        {"LicenseArn": lic.arn.replace("l-", "l-0")},
        {"LicenseArn": lic.arn, "Version": "7"},
    ):
        with pytest.raises(ClientError) as unknown:
            lm_client(em).get_license(**params)
        assert error_of(unknown) == ("InvalidParameterValueException", 400)


def test_list_received_licenses_filters_and_pages(em: Emulator) -> None:
    for index in range(5):
        em.add_license(PRODUCT_ID if index < 3 else "prod-other", tier=f"T{index}")
    client = lm_client(em)
    mine = client.list_received_licenses(
        Filters=[
            {"Name": "ProductSKU", "Values": [PRODUCT_ID]},
            {"Name": "Fingerprint", "Values": [FINGERPRINT]},
            {"Name": "Status", "Values": ["AVAILABLE"]},
        ]
    )["Licenses"]
    assert len(mine) == 3
    assert mine[0]["ReceivedMetadata"]["ReceivedStatus"] == "ACTIVE"
    pages = (
        list(
            client.get_paginator("list_received_licenses").paginate(
                PaginationConfig={"PageSize": 2}
            )
        )
        if client.can_paginate("list_received_licenses")
        else None
    )
    first = client.list_received_licenses(MaxResults=2)
    second = client.list_received_licenses(MaxResults=2, NextToken=first["NextToken"])
    third = client.list_received_licenses(MaxResults=2, NextToken=second["NextToken"])
    assert [len(p["Licenses"]) for p in (first, second, third)] == [2, 2, 1]
    assert "NextToken" not in third
    if pages is not None:
        assert sum(len(p["Licenses"]) for p in pages) == 5
    one = client.list_received_licenses(LicenseArns=[mine[0]["LicenseArn"]])["Licenses"]
    assert [lic["LicenseArn"] for lic in one] == [mine[0]["LicenseArn"]]
    with pytest.raises(ClientError) as unknown:
        client.list_received_licenses(Filters=[{"Name": "Color", "Values": ["red"]}])
    assert error_of(unknown) == ("InvalidParameterValueException", 400)


# -- the protocol and the state -------------------------------------------------------------------


def test_license_manager_requests_are_signed_for_license_manager(em: Emulator) -> None:
    em.add_license(PRODUCT_ID, tier="Premium")
    body = json.dumps({"LicenseArn": "arn:aws:license-manager::1:license:l-1"}).encode()
    target = "AWSLicenseManager.GetLicense"
    status, answer = signed_post(em.url, body, target, service="aws-marketplace")
    assert (status, answer["__type"]) == (400, "InvalidSignatureException")
    assert "'license-manager'" in answer["message"]
    status, answer = signed_post(em.url, body, target, sign=False)
    assert (status, answer["__type"]) == (400, "MissingAuthenticationTokenException")
    status, answer = signed_post(em.url, body, target, service="license-manager")
    assert (status, answer["__type"]) == (400, "InvalidParameterValueException")
    assert "Message" in answer  # the shape's member name
    status, answer = signed_post(
        em.url, b"{}", "AWSLicenseManager.CreateLicense", service="license-manager"
    )
    assert (status, answer["__type"]) == (400, "com.amazon.coral.service#UnknownOperationException")


def test_a_role_without_the_policy_is_denied_license_manager_actions(em: Emulator) -> None:
    em.add_license(PRODUCT_ID, tier="Premium")
    em.add_principal(Principal("AKIADENIEDEXAMPLE000", "denied-secret", allowed=False))
    import boto3

    client = boto3.client(
        "license-manager",
        region_name=em.region,
        endpoint_url=em.url,
        aws_access_key_id="AKIADENIEDEXAMPLE000",
        aws_secret_access_key="denied-secret",
    )
    with pytest.raises(ClientError) as denied:
        checkout(client, TIER_REQUEST)
    assert error_of(denied)[0] == "AccessDeniedException"
    assert "license-manager:CheckoutLicense" in denied.value.response["Error"]["Message"]


def test_the_state_shows_licenses_and_held_seats_and_reset_clears_checkouts(
    em: Emulator,
) -> None:
    lic = seats(em, 3)
    client = lm_client(em)
    checkout(client, SEAT_REQUEST)
    token = checkout(client, SEAT_REQUEST)["LicenseConsumptionToken"]
    client.check_in_license(LicenseConsumptionToken=token)
    with urllib.request.urlopen(f"{em.url}/_emulator/state", timeout=5) as response:  # noqa: S310
        state = json.loads(response.read())["license_manager"]
    assert state["held_checkouts"] == 1
    assert state["licenses"][lic.arn]["entitlements"][0] == {
        "name": "Users",
        "unit": "Count",
        "max_count": 3,
        "in_use": "1",
    }
    assert [c["held"] for c in state["checkouts"]] == [True, False]
    assert "token" not in json.dumps(state["checkouts"][0])  # consumption tokens stay private
    em.reset()
    assert em.export()["license_manager"]["held_checkouts"] == 0
    assert em.licenses() == [lic]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("prod-a:tier=Premium", {"entitlements": [{"name": "Premium"}]}),
        (
            "prod-a:count=Users/10,valid-for=60,region=eu-west-1,throttle=2",
            {
                "entitlements": [{"name": "Users", "unit": "Count", "max_count": 10}],
                "valid_for": 60.0,
                "home_region": "eu-west-1",
                "throttle": 2,
            },
        ),
        (
            (
                "prod-a:unit=Data/Gigabytes/500,expired,stale=30,not-found=1,server-error=3,"
                "latency=0.5,status=suspended"
            ),
            {
                "entitlements": [{"name": "Data", "unit": "Gigabytes", "max_count": 500}],
                "valid_for": -1.0,
                "stale": 30.0,
                "not_found": 1,
                "server_errors": 3,
                "latency": 0.5,
                "status": "SUSPENDED",
            },
        ),
    ],
)
def test_licenses_from_the_command_line(spec: str, expected: dict[str, Any]) -> None:
    assert parse_license(spec) == ("prod-a", expected)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (":tier=A", "has no product ID"),
        ("prod-a", "grants nothing"),
        ("prod-a:count=Users", "is not NAME/MAX"),
        ("prod-a:unit=Data/5", "is not NAME/UNIT/MAX"),
        ("prod-a:tier=A,colour=red", "unknown license option"),
        ("prod-a:tier=A,expired=yes", "takes no value"),
    ],
)
def test_bad_license_specs_are_refused(spec: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_license(spec)
