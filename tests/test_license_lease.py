"""`entrypoint.LicenseLease` against the emulated License Manager over HTTP: many simulated hours in
milliseconds (one injected clock for the lease and the service), the background thread in real
time, and a real process that returns its seat on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import entrypoint
from entrypoint import ConfigurationError, ExitCode, LeaseState, LicenseLease, NotEntitledError
from entrypoint.emulator import EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY, Emulator
from entrypoint.errors import RetriesExhaustedError
from entrypoint.license.client import BotocoreLicenseClient
from entrypoint.license.contract import parse_contract
from entrypoint.metering import StaticCredentials

from .license_support import (
    PRODUCT_ID,
    SEAT_REQUEST,
    checkout,
    contract_document,
    lm_client,
    write_contract,
)
from .support import HOUR, KEYS, T0, FakeClock

LEASE_PROCESS = Path(__file__).with_name("lease_process.py")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def em(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(key_factory=KEYS.factory, clock=clock) as emulator:
        yield emulator


def contract(model: str = "floating", entitlements: list[dict[str, str]] | None = None) -> Any:
    document = json.dumps(contract_document(model, entitlements)).encode()
    return parse_contract(document, product_code="prod-c")


def client(em: Emulator) -> BotocoreLicenseClient:
    return BotocoreLicenseClient(
        region=em.region,
        endpoint_url=em.url,
        credentials=StaticCredentials(EMULATOR_ACCESS_KEY_ID, EMULATOR_SECRET_ACCESS_KEY),
    )


def lease(em: Emulator, clock: FakeClock, model: str = "floating", **options: Any) -> LicenseLease:
    return LicenseLease(
        contract=options.pop("contract", None) or contract(model),
        client=client(em),
        background=False,
        clock=clock,
        monotonic=clock,
        sleep=clock.sleep,
        **options,
    )


def seats(em: Emulator, count: int = 1, **fields: Any) -> Any:
    return em.add_license(
        PRODUCT_ID, entitlements=[{"name": "Users", "unit": "Count", "max_count": count}], **fields
    )


def run_until(held: LicenseLease, clock: FakeClock, until: float) -> list[LeaseState]:
    """Advance to each due check until ``until``, ticking; the states after each check."""
    states = []
    while held.next_check <= until:
        clock.set(max(clock(), held.next_check))
        states.append(held.tick())
    clock.set(until)
    return states


def test_a_floating_seat_is_kept_across_ten_hours_and_returned_on_close(
    em: Emulator, clock: FakeClock
) -> None:
    seats(em, 1)
    held = lease(em, clock)
    state = held.open()
    assert (state.entitled, state.holding) == (True, True)
    (seat,) = em.checkouts(held=True)
    states = run_until(held, clock, T0 + 10 * HOUR)
    assert len(states) == 40  # every 15 minutes
    assert all(s.entitled and s.holding for s in states)
    assert em.checkouts(held=True) == [em.checkouts()[0]]
    assert em.checkouts(held=True)[0].token == seat.token  # the same seat, extended
    assert len(em.calls("ExtendLicenseConsumption")) == 40
    assert len(em.calls("GetLicense")) == 41  # at opening, then at each check
    with pytest.raises(Exception, match="maximum count is reached"):
        checkout(lm_client(em), SEAT_REQUEST)  # another task finds the seat taken
    held.close()
    assert em.checkouts(held=True) == []
    assert not held.entitled
    assert held.state.reason == "closed"


def test_the_seat_is_extended_before_its_60_minutes_whatever_the_interval(
    em: Emulator, clock: FakeClock
) -> None:
    seats(em, 1)
    held = lease(em, clock, recheck_interval=4 * HOUR)
    held.open()
    assert held.next_check == T0 + 50 * 60  # ten minutes before the seat's time runs out
    run_until(held, clock, T0 + 5 * HOUR)
    assert len(em.checkouts(held=True)) == 1
    assert len(em.checkouts()) == 1


def test_a_seat_lost_while_paused_is_taken_again(em: Emulator, clock: FakeClock) -> None:
    seats(em, 1)
    held = lease(em, clock)
    held.open()
    first = held.state.grant
    clock.advance(2 * HOUR)  # the process was stopped: the seat came back after 60 minutes
    state = held.tick()
    assert (state.entitled, state.holding) == (True, True)
    assert state.grant is not None
    assert first is not None
    assert state.grant.consumption_token != first.consumption_token
    assert len(em.checkouts(held=True)) == 1


def test_a_tier_upgrade_after_a_renewal_calls_back(em: Emulator, clock: FakeClock) -> None:
    lic = em.add_license(PRODUCT_ID, tier="Basic")
    changes: list[tuple[LeaseState, LeaseState]] = []
    held = lease(em, clock, "tiered", on_change=lambda old, new: changes.append((old, new)))
    assert held.open().tier == "Basic"
    assert em.checkouts(held=True) == []  # a tier is checked in at once
    run_until(held, clock, T0 + HOUR)
    assert len(changes) == 1  # opening; nothing changed since
    em.renew_license(lic.arn, tier="Premium")
    run_until(held, clock, T0 + HOUR + 900)
    old, new = changes[-1]
    assert (old.tier, new.tier) == ("Basic", "Premium")
    assert em.checkouts(held=True) == []


def test_an_expired_license_lapses_and_a_renewal_restores_it(
    em: Emulator, clock: FakeClock
) -> None:
    lic = seats(em, 1, valid_for=2 * HOUR)
    changes: list[tuple[LeaseState, LeaseState]] = []
    held = lease(em, clock, on_change=lambda old, new: changes.append((old, new)))
    held.open()
    run_until(held, clock, T0 + 2 * HOUR + 1)
    state = held.state
    assert not state.entitled
    assert not state.holding
    assert state.error is not None
    assert state.error.exit_code == ExitCode.NOT_ENTITLED
    assert "is EXPIRED" in (state.reason or "")
    with pytest.raises(NotEntitledError, match="EXPIRED"):
        held.raise_if_lapsed()
    assert em.checkouts(held=True) == []  # the seat was returned
    assert (changes[-1][0].entitled, changes[-1][1].entitled) == (True, False)
    em.renew_license(lic.arn, end=clock() + 30 * 24 * HOUR)
    run_until(held, clock, clock() + 120)
    assert held.entitled
    assert held.state.holding
    assert held.state.license_version == "2"


def test_transient_failures_keep_the_state_until_the_answer_expires(
    em: Emulator, clock: FakeClock
) -> None:
    lic = em.add_license(
        PRODUCT_ID, entitlements=[{"name": "Users", "unit": "Count", "max_count": 9}]
    )
    held = lease(em, clock, "counted")
    held.open()
    valid_until = held.state.valid_until
    assert valid_until is not None
    em.configure_license(lic.arn, throttle=10**9)
    states = run_until(held, clock, valid_until.timestamp() - 1)
    assert states
    assert all(s.entitled for s in states)
    assert "RateLimitExceededException" in (states[-1].reason or "")
    run_until(held, clock, valid_until.timestamp() + 120)
    assert not held.entitled
    assert isinstance(held.state.error, RetriesExhaustedError)
    em.configure_license(lic.arn, throttle=0)
    run_until(held, clock, clock() + 120)
    assert held.entitled


def test_a_failing_callback_does_not_stop_the_checks(em: Emulator, clock: FakeClock) -> None:
    em.add_license(PRODUCT_ID, tier="Basic")

    def broken(_old: LeaseState, _new: LeaseState) -> None:
        raise RuntimeError("the application's bug")

    held = lease(em, clock, "tiered", on_change=broken)
    held.open()
    run_until(held, clock, T0 + HOUR)
    assert held.entitled


def test_opening_fails_as_a_start_would(em: Emulator, clock: FakeClock) -> None:
    with pytest.raises(NotEntitledError, match="NoEntitlementsAllowedException") as caught:
        lease(em, clock).open()
    assert caught.value.exit_code == 77
    assert clock.sleeps == [1.5]  # the one short retry
    em.add_license(PRODUCT_ID, tier="Premium", home_region="eu-west-1")
    with pytest.raises(ConfigurationError, match="RedirectException"):
        lease(em, clock, "tiered").open()


def test_drawdown_and_metered_products_are_refused(keys_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a drawdown license"):
        LicenseLease(contract=contract("drawdown"), background=False)
    with pytest.raises(ConfigurationError, match="is metered"):
        LicenseLease(keys_dir=keys_dir, background=False)
    with pytest.raises(ConfigurationError, match="recheck_interval must be positive"):
        LicenseLease(contract=contract(), recheck_interval=0)


def test_the_background_thread_extends_in_real_time() -> None:
    with Emulator(key_factory=KEYS.factory) as em:
        seats(em, 1)
        with LicenseLease(contract=contract(), client=client(em), recheck_interval=0.1) as held:
            assert held.state.holding
            deadline = time.monotonic() + 10
            while len(em.calls("ExtendLicenseConsumption")) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert held.entitled
            assert len(em.checkouts(held=True)) == 1
        assert len(em.calls("ExtendLicenseConsumption")) >= 3
        assert em.checkouts(held=True) == []


def test_close_does_not_wait_for_a_retry_s_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPLACE_RETRY_BASE_DELAY", "30")
    monkeypatch.setenv("MARKETPLACE_RETRY_MAX_DELAY", "30")
    with Emulator(key_factory=KEYS.factory) as em:
        lic = seats(em, 1)
        held = LicenseLease(contract=contract(), client=client(em), recheck_interval=0.1)
        held.open()
        em.configure_license(lic.arn, throttle=10**9)
        deadline = time.monotonic() + 10
        while not [c for c in em.calls() if c.error] and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the check now waits up to 30 s before its next attempt
        em.configure_license(lic.arn, throttle=0)  # so that the check-in on close succeeds
        started = time.monotonic()
        held.close()
        assert time.monotonic() - started < 5
        assert em.checkouts(held=True) == []


def test_the_lease_is_part_of_the_public_api() -> None:
    assert entrypoint.LicenseLease is LicenseLease
    assert "LicenseLease" in entrypoint.__all__
    assert "LeaseState" in dir(entrypoint)


@pytest.mark.parametrize("ending", ["exit", "SIGTERM"])
def test_a_real_process_returns_its_seat_on_close_and_on_sigterm(
    tmp_path: Path, ending: str
) -> None:
    with Emulator(key_factory=KEYS.factory) as em:
        seats(em, 1)
        keys = write_contract(tmp_path / "keys", "floating")
        process = subprocess.Popen(
            [
                sys.executable,
                str(LEASE_PROCESS),
                str(keys),
                em.url,
                *(["exit"] if ending == "exit" else []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        assert process.stdout.readline() == "held\n"
        if ending == "SIGTERM":
            deadline = time.monotonic() + 10
            while len(em.calls("ExtendLicenseConsumption")) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(em.checkouts(held=True)) == 1
            process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == (143 if ending == "SIGTERM" else 0), stderr
        assert em.checkouts(held=True) == []
        assert em.calls()[-1].operation == "CheckInLicense"
