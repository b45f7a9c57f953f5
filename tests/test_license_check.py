"""``marketplace-entrypoint check`` for contract products: the contract, Region, endpoint, TLS trust
and credentials, and with ``--call`` one checkout, checked in at once (a listing, for drawdown)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import Emulator

from .license_support import ALLOW, CONTRACT_CODE, PRODUCT_ID, license_env, write_contract
from .support import KEYS, Run, run_cli


@pytest.fixture
def em() -> Iterator[Emulator]:
    with Emulator(key_factory=KEYS.factory) as emulator:
        yield emulator


def check(em: Emulator, keys: Path, *flags: str, allow: bool = True) -> Run:
    return run_cli(
        ["check", "--keys-dir", str(keys), *([ALLOW] if allow else []), *flags], license_env(em)
    )


def test_check_call_checks_out_and_in_at_once(em: Emulator, tmp_path: Path) -> None:
    lic = em.add_license(
        PRODUCT_ID, entitlements=[{"name": "Users", "unit": "Count", "max_count": 1}]
    )
    run = check(em, write_contract(tmp_path / "keys", "floating"), "--call")
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(None, 1) for line in run.stdout.splitlines())
    assert (
        lines["product"] == f"{CONTRACT_CODE}: contract {PRODUCT_ID}, floating: Users 1 Count "
        "(product from default)"
    )
    assert lines["endpoint"] == (
        f"{em.url} (environment overrides allowed by --allow-license-endpoint-override)"
    )
    assert lines["license"] == f"entitled: Users 1 Count, {lic.arn} (checked in)"
    assert lines["result"] == "ready: entitled"
    assert [c.operation for c in em.calls()] == ["CheckoutLicense", "CheckInLicense"]
    assert em.checkouts(held=True) == []


def test_check_call_for_a_drawdown_lists_and_draws_nothing(em: Emulator, tmp_path: Path) -> None:
    em.add_license(PRODUCT_ID, entitlements=[{"name": "Runs", "unit": "Count", "max_count": 5}])
    keys = write_contract(
        tmp_path / "keys", "drawdown", [{"name": "Runs", "unit": "Count", "value": "1"}]
    )
    run = check(em, keys, "--call")
    assert run.returncode == 0, run.stderr
    assert "AVAILABLE v1 (drawdown: listed, nothing drawn down)" in run.stdout
    assert [c.operation for c in em.calls()] == ["ListReceivedLicenses"]
    assert em.checkouts() == []


@pytest.mark.parametrize("model", ["drawdown", "tiered"])
def test_check_call_without_a_license_is_not_entitled(
    em: Emulator, tmp_path: Path, model: str
) -> None:
    entitlements = (
        [{"name": "Runs", "unit": "Count", "value": "1"}] if model == "drawdown" else None
    )
    run = check(em, write_contract(tmp_path / "keys", model, entitlements), "--call")
    assert run.returncode == ExitCode.NOT_ENTITLED, run.stderr
    assert "result       failed (see the error below)" in run.stdout
    assert "not entitled:" in run.last_line


def test_check_refuses_the_override_without_the_flag(em: Emulator, tmp_path: Path) -> None:
    run = check(em, write_contract(tmp_path / "keys", "tiered"), "--call", allow=False)
    assert run.returncode == ExitCode.CONFIGURATION, run.stderr
    assert "AWS_ENDPOINT_URL_LICENSE_MANAGER=" in run.last_line
    assert em.calls() == []


def test_meter_dimensions_are_not_for_contract_products(em: Emulator, tmp_path: Path) -> None:
    run = check(em, write_contract(tmp_path / "keys", "tiered"), "--meter-dimension", "users")
    assert run.returncode == ExitCode.USAGE, run.stderr
    assert "--meter-dimension checks MeterUsage" in run.last_line


def test_check_reports_one_json_object(em: Emulator, tmp_path: Path) -> None:
    em.add_license(PRODUCT_ID, tier="Premium")
    run = check(em, write_contract(tmp_path / "keys", "tiered"), "--call", "--log-format", "json")
    assert run.returncode == 0, run.stderr
    (report,) = [json.loads(line) for line in run.stdout.splitlines()]
    assert report["result"] == "ready: entitled"
    assert report["license"].startswith("entitled: Premium, arn:aws:license-manager::")
