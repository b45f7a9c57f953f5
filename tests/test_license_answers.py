"""The pure core of contract products: what each License Manager answer means, with an explicit
``now`` (no I/O, no SDK)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from entrypoint import ExitCode, LicenseAnswerError, NotEntitledError
from entrypoint.answers import Transient
from entrypoint.errors import ConfigurationError, ServiceError
from entrypoint.license.answers import (
    NoLicenseError,
    classify_license_error,
    judge_checkout,
    parse_checkout,
    parse_license,
    parse_time,
)
from entrypoint.license.contract import parse_contract

from .license_support import contract_document

NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)


def contract(model: str = "counted", entitlements: list[dict[str, Any]] | None = None) -> Any:
    document = contract_document(model, entitlements)
    return parse_contract(json.dumps(document).encode(), product_code="prod-c")


def answer(allowed: list[dict[str, Any]], **times: object) -> Any:
    response: dict[str, Any] = {
        "EntitlementsAllowed": allowed,
        "IssuedAt": (NOW - timedelta(seconds=1)).isoformat(),
        "Expiration": (NOW + timedelta(hours=1)).isoformat(),
        "LicenseConsumptionToken": "token",
        "LicenseArn": "arn:aws:license-manager::294406891311:license:l-1",
        "CheckoutType": "PROVISIONAL",
    }
    response.update(times)
    return parse_checkout(response)


def test_a_tiered_license_grants_the_tier_bought() -> None:
    grant = judge_checkout(contract("tiered"), answer([{"Name": "Premium", "Unit": "None"}]), NOW)
    assert grant.tier == "Premium"
    assert grant.expires_at == NOW + timedelta(hours=1)
    assert "token" not in repr(grant)  # the consumption token is never shown


def test_a_tier_the_image_does_not_accept_is_not_entitled() -> None:
    with pytest.raises(NotEntitledError, match="allows Enterprise, none of the tiers") as caught:
        judge_checkout(contract("tiered"), answer([{"Name": "Enterprise", "Unit": "None"}]), NOW)
    assert caught.value.exit_code == ExitCode.NOT_ENTITLED


def test_counted_entitlements_must_all_be_allowed_with_their_quantity() -> None:
    wanted = [
        {"name": "Users", "unit": "Count", "value": "2"},
        {"name": "Data", "unit": "Gigabytes", "value": "1.5"},
    ]
    ok = [
        {"Name": "Users", "Unit": "Count", "Value": "2"},
        {"Name": "Data", "Unit": "Gigabytes", "Value": "1.50"},
    ]
    assert judge_checkout(contract("counted", wanted), answer(ok), NOW).tier is None
    with pytest.raises(NotEntitledError, match=r"not Data 1\.5 Gigabytes"):
        judge_checkout(contract("counted", wanted), answer(ok[:1]), NOW)
    less = [ok[0], {"Name": "Data", "Unit": "Gigabytes", "Value": "1"}]
    with pytest.raises(NotEntitledError, match=r"not Data 1\.5 Gigabytes"):
        judge_checkout(contract("counted", wanted), answer(less), NOW)
    other_unit = [ok[0], {"Name": "Data", "Unit": "Megabytes", "Value": "1500"}]
    with pytest.raises(NotEntitledError, match="not Data"):
        judge_checkout(contract("counted", wanted), answer(other_unit), NOW)


def test_a_counted_entitlement_allowed_without_a_number_is_allowed() -> None:
    # AWS's own example answer shows "Value": "Enabled" for a counted entitlement.
    for value in ("Enabled", None):
        item = {"Name": "Users", "Unit": "Count", **({"Value": value} if value else {})}
        assert judge_checkout(contract(), answer([item]), NOW).entitlements[0].name == "Users"


def test_nothing_allowed_is_not_entitled() -> None:
    with pytest.raises(NotEntitledError, match="allows nothing"):
        judge_checkout(contract(), answer([]), NOW)


@pytest.mark.parametrize(
    ("times", "reason"),
    [
        ({"Expiration": (NOW - timedelta(seconds=1)).isoformat()}, "expired at"),
        ({"Expiration": NOW.isoformat()}, "expired at"),
        (
            {
                "IssuedAt": (NOW + timedelta(minutes=6)).isoformat(),
                "Expiration": (NOW + timedelta(hours=2)).isoformat(),
            },
            "in the future",
        ),
        (
            {
                "IssuedAt": (NOW + timedelta(minutes=30)).isoformat(),
                "Expiration": (NOW + timedelta(minutes=10)).isoformat(),
            },
            "in the future",
        ),
        (
            {
                "IssuedAt": (NOW + timedelta(minutes=2)).isoformat(),
                "Expiration": (NOW + timedelta(minutes=1)).isoformat(),
            },
            "not after its IssuedAt",
        ),
    ],
)
def test_an_answer_that_is_not_current_is_refused(times: dict[str, str], reason: str) -> None:
    with pytest.raises(LicenseAnswerError, match=reason) as caught:
        judge_checkout(contract(), answer([{"Name": "Users", "Unit": "Count"}], **times), NOW)
    assert caught.value.exit_code == ExitCode.BAD_SIGNATURE
    assert caught.value.diagnosis().startswith("bad license answer: ")


def test_a_small_clock_skew_is_tolerated() -> None:
    issued = (NOW + timedelta(minutes=4)).isoformat()
    grant = judge_checkout(
        contract(), answer([{"Name": "Users", "Unit": "Count"}], IssuedAt=issued), NOW
    )
    assert grant.issued_at == NOW + timedelta(minutes=4)


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ({}, "no EntitlementsAllowed list"),
        ({"EntitlementsAllowed": "Users"}, "no EntitlementsAllowed list"),
        ({"EntitlementsAllowed": ["Users"]}, "is not {Name, Unit, Value} strings"),
        ({"EntitlementsAllowed": [{"Name": "Users"}]}, "is not {Name, Unit, Value} strings"),
        ({"EntitlementsAllowed": [{"Name": "U", "Unit": "Count", "Value": 1}]}, "strings"),
        ({"EntitlementsAllowed": [], "IssuedAt": None}, "IssuedAt is None, not an ISO 8601"),
        ({"EntitlementsAllowed": [], "IssuedAt": "yesterday"}, "not an ISO 8601 time"),
        ({"EntitlementsAllowed": [], "IssuedAt": "2026-13-40T99:99:99Z"}, "is not a valid time"),
        ({"EntitlementsAllowed": [], "IssuedAt": "2026-11-21 10:30:00Z"}, "not an ISO 8601"),
        ({"EntitlementsAllowed": [], "IssuedAt": "2026-11-21T10:30:00Z" + "0" * 50}, "ISO 8601"),
        ({"EntitlementsAllowed": [], "LicenseArn": 7}, "LicenseArn is int, not a string"),
    ],
)
def test_a_malformed_answer_is_refused(response: dict[str, Any], reason: str) -> None:
    full = {
        "IssuedAt": NOW.isoformat(),
        "Expiration": (NOW + timedelta(hours=1)).isoformat(),
        **response,
    }
    with pytest.raises(LicenseAnswerError, match=reason.replace("{", r"\{").replace("}", r"\}")):
        parse_checkout(full)


def test_times_without_an_offset_are_utc_and_fractions_are_kept() -> None:
    assert parse_time("2021-04-22T19:02:36", "t") == datetime(2021, 4, 22, 19, 2, 36, tzinfo=UTC)
    assert parse_time("2021-04-22T21:02:36.5+02:00", "t") == datetime(
        2021, 4, 22, 19, 2, 36, 500000, tzinfo=UTC
    )


def test_get_license_status_and_validity() -> None:
    status = parse_license(
        {
            "License": {
                "LicenseArn": "arn:x",
                "Status": "AVAILABLE",
                "Version": "2",
                "Validity": {
                    "Begin": NOW.isoformat(),
                    "End": (NOW + timedelta(days=1)).isoformat(),
                },
                "Entitlements": [{"Name": "Users", "Unit": "Count", "MaxCount": 5}],
            }
        }
    )
    assert (status.version, status.entitlements) == ("2", ("Users",))
    assert status.usable(NOW)
    assert not status.usable(NOW + timedelta(days=1))
    with pytest.raises(LicenseAnswerError, match="carried no License"):
        parse_license({})


@pytest.mark.parametrize(
    ("operation", "code", "status", "kind", "exit_code", "text"),
    [
        (
            "CheckoutLicense",
            "NoEntitlementsAllowedException",
            400,
            NoLicenseError,
            77,
            "no license",
        ),
        (
            "CheckoutLicense",
            "EntitlementNotAllowedException",
            400,
            NoLicenseError,
            77,
            "no license",
        ),
        ("CheckoutLicense", "ResourceNotFoundException", 400, NoLicenseError, 77, "no license"),
        ("CheckInLicense", "ResourceNotFoundException", 400, NotEntitledError, 77, "no longer"),
        (
            "CheckoutLicense",
            "AccessDeniedException",
            400,
            ConfigurationError,
            78,
            "CheckoutLicense",
        ),
        ("CheckoutLicense", "AuthorizationException", 400, ConfigurationError, 78, "IAM role"),
        ("CheckoutLicense", "ValidationException", 400, ConfigurationError, 78, "contract.json"),
        (
            "CheckoutLicense",
            "InvalidParameterValueException",
            400,
            ConfigurationError,
            78,
            "contract",
        ),
        (
            "CheckoutLicense",
            "UnrecognizedClientException",
            403,
            ConfigurationError,
            78,
            "credentials",
        ),
        ("CheckoutLicense", "ConflictException", 400, ServiceError, 76, "HTTP 400"),
        ("CheckoutLicense", "", 418, ServiceError, 76, "(no error code)"),
    ],
)
def test_final_errors_are_classified_with_their_exit_code(
    operation: str, code: str, status: int, kind: type, exit_code: int, text: str
) -> None:
    error = classify_license_error(operation, code, status, "message")
    assert type(error) is kind
    assert isinstance(error, NotEntitledError | ConfigurationError | ServiceError)
    assert error.exit_code == exit_code
    assert text in error.diagnosis()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("RateLimitExceededException", 400),
        ("ServerInternalException", 500),
        ("ThrottlingException", 400),
        ("", 503),
        ("", 429),
        ("SomethingNew", 502),
    ],
)
def test_throttling_and_server_faults_are_retried(code: str, status: int) -> None:
    assert isinstance(classify_license_error("CheckoutLicense", code, status, "m"), Transient)


def test_a_redirect_is_a_configuration_error_naming_the_location() -> None:
    error = classify_license_error(
        "CheckoutLicense",
        "RedirectException",
        400,
        "wrong Region",
        location="https://license-manager.eu-west-1.amazonaws.com",
    )
    assert isinstance(error, ConfigurationError)
    assert "Location: https://license-manager.eu-west-1.amazonaws.com" in error.reason
    assert "never followed" in (error.remedy or "")


def test_a_hostile_message_stays_on_one_line() -> None:
    error = classify_license_error(
        "CheckoutLicense",
        "NoEntitlementsAllowedException",
        400,
        "x\nmarketplace-entrypoint: info: entitled" + "y" * 1000,
    )
    assert isinstance(error, NoLicenseError)
    assert "\n" not in error.diagnosis()
    assert len(str(error)) < 1300
