"""A broken or hostile License Manager answer, at start: the console script against the emulator's
fault plans (entrypoint/emulator/faults.py), keyed by the product ID. A complete answer that is not
one fails closed at once (65, or 76 for an unknown refusal); a transport fault is retried with the
same ClientToken, so the checkout whose answer was lost is the one that is checked in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint import ExitCode
from entrypoint.emulator import Emulator
from entrypoint.emulator.faults import Fault

from .license_support import PRODUCT_ID, write_contract
from .support import KEYS
from .test_license_bootstrap import assert_refused, assert_started, start


@pytest.fixture
def em() -> Iterator[Emulator]:
    with Emulator(key_factory=KEYS.factory) as emulator:
        emulator.add_license(
            PRODUCT_ID, entitlements=[{"name": "Users", "unit": "Count", "max_count": 1}]
        )
        yield emulator


@pytest.mark.parametrize(
    ("fault", "value", "code", "diagnosis"),
    [
        (Fault.HUGE_BODY, 1024 * 1024, ExitCode.BAD_SIGNATURE, "answer could not be read"),
        # botocore reads a body that is not JSON as an empty answer
        (Fault.MALFORMED_JSON, None, ExitCode.BAD_SIGNATURE, "carried no EntitlementsAllowed"),
        (Fault.WRONG_CONTENT_TYPE, None, ExitCode.BAD_SIGNATURE, "carried no EntitlementsAllowed"),
        (Fault.EMPTY_BODY, None, ExitCode.BAD_SIGNATURE, "carried no EntitlementsAllowed"),
        # ... and its parser raises on a member of the wrong type
        (Fault.BODY, '{"EntitlementsAllowed": "all"}', ExitCode.BAD_SIGNATURE, "not be parsed"),
        (Fault.UNKNOWN_4XX, None, ExitCode.SERVICE_ERROR, "UnknownFutureException"),
        (Fault.UNKNOWN_5XX, None, ExitCode.RETRIES_EXHAUSTED, "UnknownOutageException"),
    ],
)
def test_an_answer_that_is_not_one_never_starts_the_workload(
    em: Emulator, tmp_path: Path, fault: Fault, value: object, code: ExitCode, diagnosis: str
) -> None:
    em.faults.inject(PRODUCT_ID, fault, value=value)  # type: ignore[arg-type]
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "floating"), report, "--deadline", "1")
    assert_refused(run, code, diagnosis, report)


@pytest.mark.parametrize("fault", [Fault.CLOSE_MID_RESPONSE, Fault.RESET])
def test_a_lost_answer_is_asked_again_with_the_same_token_and_its_seat_returned(
    em: Emulator, tmp_path: Path, fault: Fault
) -> None:
    em.faults.inject(PRODUCT_ID, fault, times=1)
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "floating"), report)
    assert assert_started(run, report)["held_checkouts"] == 0
    tries = em.calls("CheckoutLicense")
    assert [t.error for t in tries] == [f"fault:{fault}", None]
    assert len({t.request["ClientToken"] for t in tries}) == 1
    assert len(em.checkouts()) == 1  # one seat taken, answered twice, checked in once


def test_a_genuine_answer_under_another_success_status_starts_the_workload(
    em: Emulator, tmp_path: Path
) -> None:
    em.faults.inject(PRODUCT_ID, Fault.STATUS, value=202)
    report = tmp_path / "report.json"
    run = start(em, write_contract(tmp_path / "keys", "floating"), report)
    assert assert_started(run, report)["held_checkouts"] == 0


def test_signature_faults_do_not_apply_to_license_manager(em: Emulator, tmp_path: Path) -> None:
    em.faults.inject(PRODUCT_ID, Fault.FOREIGN_KEY)
    report = tmp_path / "report.json"
    assert_started(start(em, write_contract(tmp_path / "keys", "floating"), report), report)
