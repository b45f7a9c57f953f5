"""Every License Manager operation a contract product calls, through the AWS CLI (PyPI ``awscli``),
unmodified, against the emulator.

The CLI is pointed at the emulator only by the standard variable
``AWS_ENDPOINT_URL_LICENSE_MANAGER``. As in tests/test_awscli.py, the scenarios run once,
concurrently, in a module fixture (the CLI takes about half a second to start); each uses its own
product, so their order does not matter across scenarios, only within one.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from entrypoint.emulator import Emulator, Principal

from .license_support import FINGERPRINT
from .support import KEYS
from .test_awscli import Cli as MeteringCli
from .test_awscli import Invocation


class Cli(MeteringCli):
    """tests/test_awscli.py's CLI environment, pointed at License Manager instead."""

    SERVICE = "license-manager"

    def __init__(self, emulator: Emulator, access_key: str | None = None) -> None:
        super().__init__(emulator)
        self.env["AWS_ENDPOINT_URL_LICENSE_MANAGER"] = self.env.pop(
            "AWS_ENDPOINT_URL_MARKETPLACE_METERING"
        )
        if access_key is not None:
            self.env["AWS_ACCESS_KEY_ID"], self.env["AWS_SECRET_ACCESS_KEY"] = (
                access_key,
                "denied-secret",
            )

    def checkout(self, sku: str, *entitlements: str, kind: str = "PROVISIONAL") -> Invocation:
        return self(
            "checkout-license",
            "--product-sku",
            sku,
            "--checkout-type",
            kind,
            "--key-fingerprint",
            FINGERPRINT,
            "--entitlements",
            *entitlements,
            "--client-token",
            f"cli-{sku}-{len(entitlements)}-{kind}",
        )


SEAT = "Name=Users,Unit=Count,Value=1"


def scenarios(cli: Cli, denied: Cli, em: Emulator) -> dict[str, Any]:
    def tiered() -> list[Invocation]:
        return [cli.checkout("prod-tiered", "Name=Basic,Unit=None", "Name=Premium,Unit=None")]

    def seat() -> list[Invocation]:
        taken = cli.checkout("prod-seat", SEAT)
        token = taken.json["LicenseConsumptionToken"]
        token_args = ["--license-consumption-token", token]
        return [
            taken,
            cli.checkout("prod-seat", SEAT, "Name=Users,Unit=Count,Value=1"),  # a second seat
            cli("extend-license-consumption", *token_args),
            cli("check-in-license", *token_args),
            cli("check-in-license", *token_args),
        ]

    def drawdown() -> list[Invocation]:
        drawn = cli.checkout("prod-drawdown", "Name=Data,Unit=Gigabytes,Value=10", kind="PERPETUAL")
        token_args = ["--license-consumption-token", drawn.json["LicenseConsumptionToken"]]
        return [
            drawn,
            cli("check-in-license", *token_args),
            cli("extend-license-consumption", *token_args),
        ]

    def errors() -> list[Invocation]:
        return [
            cli.checkout("prod-nothing", SEAT),
            cli.checkout("prod-eu", "Name=Basic,Unit=None"),
            cli.checkout("prod-throttled", "Name=Basic,Unit=None"),
            cli.checkout("prod-failing", "Name=Basic,Unit=None"),
            cli.checkout("prod-tiered", "Name=Basic,Unit=None", kind="FOREVER"),
            denied.checkout("prod-tiered", "Name=Basic,Unit=None"),
        ]

    def describe() -> list[Invocation]:
        arn = next(lic.arn for lic in em.licenses() if lic.product_sku == "prod-tiered")
        return [
            cli("get-license", "--license-arn", arn),
            cli("get-license", "--license-arn", arn.replace("l-", "l-0")),
            cli(
                "list-received-licenses",
                "--filters",
                "Name=ProductSKU,Values=prod-tiered",
                f"Name=Fingerprint,Values={FINGERPRINT}",
            ),
            cli("list-received-licenses", "--filters", "Name=Colour,Values=red"),
        ]

    return {
        "tiered": tiered,
        "seat": seat,
        "drawdown": drawdown,
        "errors": errors,
        "describe": describe,
    }


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(key_factory=KEYS.factory) as em:
        em.add_license("prod-tiered", tier="Premium")
        em.add_license(
            "prod-seat", entitlements=[{"name": "Users", "unit": "Count", "max_count": 1}]
        )
        em.add_license(
            "prod-drawdown", entitlements=[{"name": "Data", "unit": "Gigabytes", "max_count": 100}]
        )
        em.add_license("prod-eu", tier="Basic", home_region="eu-west-1")
        em.add_license("prod-throttled", tier="Basic", throttle=100)
        em.add_license("prod-failing", tier="Basic", server_errors=100)
        em.add_principal(Principal("AKIADENIEDEXAMPLE000", "denied-secret", allowed=False))
        yield em


@pytest.fixture(scope="module")
def runs(emulator: Emulator) -> dict[str, list[Invocation]]:
    cli, denied = Cli(emulator), Cli(emulator, access_key="AKIADENIEDEXAMPLE000")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run) for name, run in scenarios(cli, denied, emulator).items()}
        return {name: future.result() for name, future in futures.items()}


def test_a_tiered_checkout_answers_the_tier_bought(runs: dict[str, list[Invocation]]) -> None:
    (answer,) = runs["tiered"]
    assert answer.returncode == 0, answer.stderr
    assert answer.json["EntitlementsAllowed"] == [{"Name": "Premium", "Unit": "None"}]
    assert len(answer.json["SignedToken"]) >= 4096


def test_a_seat_is_taken_extended_and_checked_in_once(runs: dict[str, list[Invocation]]) -> None:
    taken, second, extended, checked_in, again = runs["seat"]
    assert taken.returncode == 0, taken.stderr
    assert second.error_code() == "NoEntitlementsAllowedException"
    assert extended.json["LicenseConsumptionToken"] == taken.json["LicenseConsumptionToken"]
    assert extended.json["Expiration"] >= taken.json["Expiration"]
    assert checked_in.returncode == 0, checked_in.stderr
    assert again.error_code() == "ResourceNotFoundException"


def test_a_drawdown_cannot_be_returned_or_extended(runs: dict[str, list[Invocation]]) -> None:
    drawn, check_in, extend = runs["drawdown"]
    assert drawn.json["CheckoutType"] == "PERPETUAL"
    assert check_in.error_code() == "ConflictException"
    assert extend.error_code() == "InvalidParameterValueException"


def test_each_checkout_error_reaches_the_cli(runs: dict[str, list[Invocation]]) -> None:
    nothing, redirect, throttled, failing, invalid, denied = runs["errors"]
    assert nothing.error_code() == "NoEntitlementsAllowedException"
    assert redirect.error_code() == "RedirectException"
    assert "The license is in eu-west-1, not us-east-1" in redirect.stderr
    assert throttled.error_code() == "RateLimitExceededException"
    assert failing.error_code() == "ServerInternalException"
    assert invalid.error_code() == "ValidationException"
    assert "Member must satisfy enum value set: [PROVISIONAL, PERPETUAL]" in invalid.stderr
    assert denied.error_code() == "AccessDeniedException"
    assert "license-manager:CheckoutLicense" in denied.stderr


def test_get_and_list_licenses(runs: dict[str, list[Invocation]]) -> None:
    found, unknown, listed, bad_filter = runs["describe"]
    assert found.json["License"]["Status"] == "AVAILABLE"
    assert found.json["License"]["Issuer"]["KeyFingerprint"] == FINGERPRINT
    assert unknown.error_code() == "InvalidParameterValueException"
    assert [lic["ProductSKU"] for lic in listed.json["Licenses"]] == ["prod-tiered"]
    assert bad_filter.error_code() == "InvalidParameterValueException"


def test_the_state_shows_what_the_cli_left_held(
    runs: dict[str, list[Invocation]], emulator: Emulator
) -> None:
    assert runs  # every scenario ran
    state = emulator.export()["license_manager"]
    held = [c for c in state["checkouts"] if c["held"]]
    # The tiered checkout (never checked in) and the drawdown; the seat was returned.
    assert sorted(c["checkout_type"] for c in held) == ["PERPETUAL", "PROVISIONAL"]
    seat = next(lic for lic in state["licenses"].values() if lic["product_sku"] == "prod-seat")
    assert seat["entitlements"][0]["in_use"] == "0"
