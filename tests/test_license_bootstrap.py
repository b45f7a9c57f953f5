"""A contract product's start, end to end: the console script as a real process, License Manager
emulated over HTTP. Each outcome asserts the exit code, the one-line diagnosis and whether the
workload ran; each start that runs its workload asserts, from the workload itself, that no seat
was held any more when it started."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import Emulator, Principal

from .license_support import (
    ALLOW,
    CONTRACT_CODE,
    FINGERPRINT,
    PRODUCT_ID,
    SEAT_REQUEST,
    checkout,
    license_env,
    lm_client,
    write_contract,
)
from .support import KEYS, Run, run_cli

SEAT_WORKLOAD = Path(__file__).with_name("seat_workload.py")


@pytest.fixture
def em() -> Iterator[Emulator]:
    with Emulator(key_factory=KEYS.factory) as emulator:
        yield emulator


def start(
    em: Emulator,
    keys: Path,
    report: Path,
    *flags: str,
    env: dict[str, str] | None = None,
    allow: bool = True,
) -> Run:
    workload = [sys.executable, str(SEAT_WORKLOAD), str(report), f"{em.url}/_emulator/state"]
    args = ["--keys-dir", str(keys), *([ALLOW] if allow else []), *flags, "--", *workload]
    return run_cli(args, env if env is not None else license_env(em))


def assert_started(run: Run, report: Path) -> dict[str, int]:
    assert run.returncode == 0, run.stderr
    assert run.stdout == "workload ran\n"
    facts: dict[str, int] = json.loads(report.read_text())
    assert facts["pid"] == run.pid  # exec'd in place
    return facts


def assert_refused(run: Run, code: ExitCode, diagnosis: str, report: Path) -> None:
    assert run.returncode == code, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.last_line.startswith("marketplace-entrypoint: error: "), run.stderr
    assert diagnosis in run.last_line, run.last_line
    assert not report.exists(), "the workload ran"


def seats(em: Emulator, count: int = 1, **fields: Any) -> object:
    return em.add_license(
        PRODUCT_ID, entitlements=[{"name": "Users", "unit": "Count", "max_count": count}], **fields
    )


# -- each license kind ----------------------------------------------------------------------------


def test_a_tiered_license_starts_the_workload_with_the_tier_bought(
    em: Emulator, tmp_path: Path
) -> None:
    em.add_license(PRODUCT_ID, tier="Premium")
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report)
    assert assert_started(run, report)["held_checkouts"] == 0
    assert (
        "license verified for product prod-code-contract: tier Premium (checked in)" in run.stderr
    )
    (call,) = em.calls("CheckoutLicense")
    assert call.request["KeyFingerprint"] == FINGERPRINT
    assert call.request["ProductSKU"] == PRODUCT_ID
    assert call.request["CheckoutType"] == "PROVISIONAL"
    assert call.request["Entitlements"] == [
        {"Name": "Basic", "Unit": "None"},
        {"Name": "Premium", "Unit": "None"},
    ]
    assert len(call.request["ClientToken"]) == 43  # 256 bits, base64url
    assert [c.operation for c in em.calls()] == ["CheckoutLicense", "CheckInLicense"]


def test_a_counted_license_is_checked_out_and_checked_in_before_exec(
    em: Emulator, tmp_path: Path
) -> None:
    seats(em, 1)
    report = tmp_path / "report.json"
    keys = write_contract(tmp_path / "keys", "counted")
    for _ in range(3):  # one seat: each start returns it before the next
        report.unlink(missing_ok=True)
        run = start(em, keys, report)
        assert assert_started(run, report)["held_checkouts"] == 0
    assert "Users 1 Count (checked in)" in run.stderr
    assert em.checkouts(held=True) == []


def test_a_floating_seat_held_by_another_task_is_not_entitled_after_one_retry(
    em: Emulator, tmp_path: Path
) -> None:
    seats(em, 1)
    checkout(lm_client(em), SEAT_REQUEST)  # another task's seat
    report = tmp_path / "report.json"
    began = time.monotonic()
    run = start(em, write_contract(tmp_path / "keys", "floating"), report)
    assert_refused(run, ExitCode.NOT_ENTITLED, "not entitled: License Manager found no", report)
    assert "maximum count is reached" in run.last_line
    assert "if it is a floating license, every seat may be in use" in run.last_line
    tries = em.calls("CheckoutLicense")[1:]
    assert len(tries) == 2
    assert tries[0].request["ClientToken"] != tries[1].request["ClientToken"]
    assert tries[1].time - tries[0].time >= 1.4  # the short retry's wait
    assert time.monotonic() - began < 10
    assert "retrying once in 1.5s" in run.stderr


def test_a_seat_returned_during_the_short_retry_starts_the_workload(
    em: Emulator, tmp_path: Path
) -> None:
    seats(em, 1)
    client = lm_client(em)
    other = checkout(client, SEAT_REQUEST)["LicenseConsumptionToken"]

    def return_the_seat() -> None:
        while not em.calls("CheckoutLicense")[1:]:
            time.sleep(0.02)
        client.check_in_license(LicenseConsumptionToken=other)

    returner = threading.Thread(target=return_the_seat)
    returner.start()
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "floating"), report)
    returner.join()
    assert assert_started(run, report)["held_checkouts"] == 0


def test_a_drawdown_is_drawn_at_each_start_until_the_pool_is_empty(
    em: Emulator, tmp_path: Path
) -> None:
    em.add_license(PRODUCT_ID, entitlements=[{"name": "Runs", "unit": "Count", "max_count": 2}])
    keys = write_contract(
        tmp_path / "keys", "drawdown", [{"name": "Runs", "unit": "Count", "value": "1"}]
    )
    for _ in range(2):
        report = tmp_path / "report.json"
        report.unlink(missing_ok=True)
        run = start(em, keys, report)
        assert_started(run, report)
        assert "Runs 1 Count (drawn down for good)" in run.stderr
    assert {c.operation for c in em.calls()} == {"CheckoutLicense"}  # never checked in
    assert all(c.request["CheckoutType"] == "PERPETUAL" for c in em.calls())
    run = start(em, keys, tmp_path / "third.json")
    assert_refused(run, ExitCode.NOT_ENTITLED, "maximum count is reached", tmp_path / "third.json")


# -- expiry, renewal, not entitled -------------------------------------------------------------


def test_an_expired_license_is_not_entitled(em: Emulator, tmp_path: Path) -> None:
    em.add_license(PRODUCT_ID, tier="Premium", valid_for=-1)
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report)
    assert_refused(run, ExitCode.NOT_ENTITLED, "The license is EXPIRED", report)


def test_a_renewal_to_an_accepted_tier_starts_the_workload(em: Emulator, tmp_path: Path) -> None:
    lic = em.add_license(PRODUCT_ID, tier="Basic")
    keys = write_contract(tmp_path / "keys", "tiered", [{"name": "Premium", "unit": "None"}])
    report = tmp_path / "report.json"
    run = start(em, keys, report)
    assert_refused(run, ExitCode.NOT_ENTITLED, "no license covering this product", report)
    em.renew_license(lic.arn, tier="Premium")  # an upgrade: version 2
    run = start(em, keys, report)
    assert_started(run, report)
    assert "tier Premium" in run.stderr


def test_no_license_at_all_is_not_entitled(em: Emulator, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report)
    assert_refused(run, ExitCode.NOT_ENTITLED, "NoEntitlementsAllowedException", report)
    assert len(em.calls("CheckoutLicense")) == 2


def test_a_license_not_yet_visible_is_found_by_the_short_retry(
    em: Emulator, tmp_path: Path
) -> None:
    em.add_license(PRODUCT_ID, tier="Premium", not_found=1)
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report)
    assert_started(run, report)
    assert "CheckoutLicense answered ResourceNotFoundException; retrying once" in run.stderr


def test_the_wrong_region_names_the_license_s_region(em: Emulator, tmp_path: Path) -> None:
    em.add_license(PRODUCT_ID, tier="Premium", home_region="eu-west-1")
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report)
    assert_refused(
        run,
        ExitCode.CONFIGURATION,
        "RedirectException (Location: https://license-manager.eu-west-1.amazonaws.com)",
        report,
    )
    assert "a redirect is never followed" in run.last_line
    assert len(em.calls("CheckoutLicense")) == 1  # final at once


# -- faults --------------------------------------------------------------------------------------


def test_throttling_and_server_faults_are_retried_with_the_same_client_token(
    em: Emulator, tmp_path: Path
) -> None:
    em.add_license(PRODUCT_ID, tier="Premium", throttle=2, server_errors=2)
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report)
    assert assert_started(run, report)["held_checkouts"] == 0
    tries = em.calls("CheckoutLicense")
    assert [t.error for t in tries] == [
        "RateLimitExceededException",
        "RateLimitExceededException",
        "ServerInternalException",
        "ServerInternalException",
        None,
    ]
    assert len({t.request["ClientToken"] for t in tries}) == 1  # one checkout, retried
    assert "CheckoutLicense attempt 1 failed: RateLimitExceededException" in run.stderr
    assert "after 5 attempts" in run.stderr


def test_throttling_past_the_deadline_exhausts_the_retries(em: Emulator, tmp_path: Path) -> None:
    em.add_license(PRODUCT_ID, tier="Premium", throttle=10_000)
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report, "--deadline", "1")
    assert_refused(run, ExitCode.RETRIES_EXHAUSTED, "CheckoutLicense did not succeed", report)


def test_a_stale_answer_is_refused_and_its_checkout_returned(em: Emulator, tmp_path: Path) -> None:
    seats(em, 1, stale=7200)
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "floating"), report)
    assert_refused(run, ExitCode.BAD_SIGNATURE, "bad license answer: the checkout expired", report)
    assert em.checkouts(held=True) == []
    assert [c.operation for c in em.calls()] == ["CheckoutLicense", "CheckInLicense"]


def test_a_role_without_license_manager_actions_is_a_configuration_error(
    em: Emulator, tmp_path: Path
) -> None:
    em.add_license(PRODUCT_ID, tier="Premium")
    em.add_principal(Principal("AKIADENIEDEXAMPLE000", "denied-secret", allowed=False))
    env = license_env(
        em, AWS_ACCESS_KEY_ID="AKIADENIEDEXAMPLE000", AWS_SECRET_ACCESS_KEY="denied-secret"
    )
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report, env=env)
    assert_refused(run, ExitCode.CONFIGURATION, "license-manager:CheckoutLicense", report)
    assert "deploy/ holds the policy" in run.last_line


def test_no_credentials_is_a_configuration_error(em: Emulator, tmp_path: Path) -> None:
    env = license_env(em, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report, env=env)
    assert_refused(run, ExitCode.CONFIGURATION, "no AWS credentials found", report)
    assert em.calls() == []


# -- nothing in the environment may redirect the call ----------------------------------------------


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_LICENSE_MANAGER", "AWS_ENDPOINT_URL"])
def test_an_endpoint_variable_is_refused_without_the_flag(
    em: Emulator, tmp_path: Path, variable: str
) -> None:
    em.add_license(PRODUCT_ID, tier="Premium")  # it would answer "entitled"
    overrides: dict[str, str | None] = {"AWS_ENDPOINT_URL_LICENSE_MANAGER": None, variable: em.url}
    env = license_env(em, **overrides)
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report, env=env, allow=False)
    assert_refused(run, ExitCode.CONFIGURATION, f"{variable}='{em.url}' would send License", report)
    assert "--allow-license-endpoint-override in its ENTRYPOINT" in run.last_line
    assert em.calls() == []  # never asked


@pytest.mark.parametrize(
    "config",
    [
        "[default]\nendpoint_url = {url}\n",
        (
            "[default]\nservices = emulated\n[services emulated]\nlicense_manager =\n"
            "  endpoint_url = {url}\n"
        ),
    ],
)
def test_a_config_file_endpoint_is_refused_without_the_flag(
    em: Emulator, tmp_path: Path, config: str
) -> None:
    em.add_license(PRODUCT_ID, tier="Premium")
    config_file = tmp_path / "aws-config"
    config_file.write_text(config.format(url=em.url))
    env = license_env(em, AWS_ENDPOINT_URL_LICENSE_MANAGER=None, AWS_CONFIG_FILE=str(config_file))
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report, env=env, allow=False)
    assert_refused(run, ExitCode.CONFIGURATION, "the AWS config file's endpoint_url=", report)
    assert em.calls() == []


def test_the_flag_honours_a_config_file_endpoint(em: Emulator, tmp_path: Path) -> None:
    em.add_license(PRODUCT_ID, tier="Premium")
    config_file = tmp_path / "aws-config"
    config_file.write_text(f"[default]\nendpoint_url = {em.url}\n")
    env = license_env(em, AWS_ENDPOINT_URL_LICENSE_MANAGER=None, AWS_CONFIG_FILE=str(config_file))
    report = tmp_path / "report.json"
    assert_started(start(em, write_contract(tmp_path / "keys", "tiered"), report, env=env), report)


def test_the_flag_is_never_read_from_the_environment(em: Emulator, tmp_path: Path) -> None:
    env = license_env(
        em,
        MARKETPLACE_ALLOW_LICENSE_ENDPOINT_OVERRIDE="true",
        ALLOW_LICENSE_ENDPOINT_OVERRIDE="1",
    )
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "tiered"), report, env=env, allow=False)
    assert_refused(run, ExitCode.CONFIGURATION, "AWS_ENDPOINT_URL_LICENSE_MANAGER=", report)
    assert em.calls() == []


# -- a metered product beside a contract product ---------------------------------------------------


def test_one_image_may_trust_a_metered_and_a_contract_product(
    emulator: Emulator, keys_dir: Path, tmp_path: Path
) -> None:
    emulator.add_license(PRODUCT_ID, tier="Premium")
    write_contract(keys_dir, "tiered")
    for code, operation in (("prod-test", "RegisterUsage"), (CONTRACT_CODE, "CheckoutLicense")):
        report = tmp_path / f"{code}.json"
        env = license_env(emulator, MARKETPLACE_PRODUCT_CODE=code)
        assert_started(start(emulator, keys_dir, report, env=env), report)
        assert emulator.calls()[-1].operation in {operation, "CheckInLicense"}


def test_json_logs_carry_the_license_facts(em: Emulator, tmp_path: Path) -> None:
    lic = em.add_license(PRODUCT_ID, tier="Premium")
    report = tmp_path / "report.json"
    keys = write_contract(tmp_path / "keys", "tiered")
    run = start(em, keys, report, "--log-format", "json")
    assert_started(run, report)
    events = [json.loads(line) for line in run.stderr_lines]
    (verified,) = [e for e in events if e.get("event") == "license_verified"]
    assert verified["license_arn"] == lic.arn
    assert verified["tier"] == "Premium"
    assert verified["checked_in"] is True
    assert "consumption" not in json.dumps(verified).lower()  # the token is never logged
